"""Generator speed: one PC²L training step against a CE-only step, and generation with and without the KV cache.

    python benchmarks/generator.py                      # tiny config, CPU
    python benchmarks/generator.py --device cuda --size full --batch-size 32   # the paper's size on a GPU (bf16)

Inputs are synthetic (random features and token ids of the configured lengths): speed does not depend on content.
On CUDA the full-size run also reports training samples/s and the share of the GPU's dense bf16 peak reached
(FLOPs counted by `torch.utils.flop_counter` on one step).
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from showcase.generation.losses import LossConfig  # noqa: E402
from showcase.generation.model import GeneratorConfig  # noqa: E402
from showcase.generation.module import GeneratorModule  # noqa: E402

BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}  # dense TFLOP/s


def make_batch(b: int, cfg: GeneratorConfig, target_len: int, device: str) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50000, (b, target_len), generator=g)
    batch = {
        "image_features": torch.randn(b, cfg.max_images, cfg.feature_dim, generator=g),
        "image_mask": torch.ones(b, cfg.max_images, dtype=torch.bool),
        "review_features": torch.randn(b, cfg.max_reviews, cfg.feature_dim, generator=g),
        "review_mask": torch.ones(b, cfg.max_reviews, dtype=torch.bool),
        "input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.roll(-1, 1),
        "ent_input_ids": torch.randint(0, 50000, (b, target_len), generator=g),
        "ent_attention_mask": torch.ones_like(ids),
        "ent_mask": torch.ones(b, dtype=torch.bool),
    }
    return {k: v.to(device) for k, v in batch.items()}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(module: GeneratorModule, batch: dict, steps: int, device: str, amp: bool) -> float:
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            loss = module.losses(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / steps


def count_flops(module: GeneratorModule, batch: dict, amp: bool) -> int:
    with FlopCounterMode(display=False) as counter:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
            loss = module.losses(batch)["loss"]
        loss.backward()
    module.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=["tiny", "full"], default="tiny")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 16 (tiny) / 32 (full)")
    ap.add_argument("--target-len", type=int, default=32, help="target tokens per example")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--gen-batch", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dev, amp = args.device, args.device.startswith("cuda")
    b = args.batch_size or (16 if args.size == "tiny" else 32)
    cfg = (GeneratorConfig.tiny(feature_dim=512) if args.size == "tiny"
           else GeneratorConfig(feature_dim=512, dropout=0.0))
    print(f"device {dev} ({torch.cuda.get_device_name() if amp else f'{torch.get_num_threads()} threads'}), "
          f"size {args.size}, batch {b}, target {args.target_len} tokens, bf16 autocast {amp}")
    batch = make_batch(b, cfg, args.target_len, dev)
    rows = {}
    for name, loss in (("CE only", LossConfig(image_loss="none", text_loss="none")), ("PC2L", LossConfig())):
        torch.manual_seed(0)
        module = GeneratorModule(cfg, loss).to(dev)
        rows[name] = time_steps(module, batch, args.steps, dev, amp)
        flops = count_flops(module, batch, amp)
        line = f"  train step {name:8s} {rows[name] * 1e3:9.1f} ms  {b / rows[name]:8.1f} samples/s  " \
               f"{flops / 1e9:8.1f} GFLOP/step  {flops / rows[name] / 1e12:7.2f} TFLOP/s"
        if amp:
            peak = next((v for k, v in BF16_PEAK.items() if k in torch.cuda.get_device_name()), None)
            if peak:
                line += f"  {100 * flops / rows[name] / peak:5.1f}% of bf16 peak"
        print(line)
    print(f"  PC2L / CE-only step time: {rows['PC2L'] / rows['CE only']:.2f}x")

    gen = module.model.eval()
    gb = make_batch(args.gen_batch, cfg, 2, dev)
    feats = (gb["image_features"], gb["image_mask"], gb["review_features"], gb["review_mask"])
    for beams in (1, 2):
        speeds = {}
        for cache in (True, False):
            kw = dict(num_beams=beams, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                      use_cache=cache)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=amp):
                gen.generate_ids(*feats, **kw)  # warm-up
                sync(dev)
                t = time.perf_counter()
                gen.generate_ids(*feats, **kw)
                sync(dev)
            speeds[cache] = args.gen_batch / (time.perf_counter() - t)
        print(f"  generate beams={beams} {args.new_tokens} tokens: {speeds[True]:8.1f} sentences/s with KV cache, "
              f"{speeds[False]:8.1f} without ({speeds[True] / speeds[False]:.2f}x)")


if __name__ == "__main__":
    main()
