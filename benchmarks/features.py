"""Images per second of feature extraction (`extract_features`: Lightning predict, photos decoded and resized in
DataLoader workers) beside its limit on CPU, decoding and preprocessing alone through the same DataLoader, and a
naive loop that decodes, preprocesses and encodes one image at a time; on the real photos when present.

    python benchmarks/features.py --models showcase-tiny          # the issue's ratio (target: extract/decode >= 0.8)
    python benchmarks/features.py                                 # tiny config and ViT-B-32 (random weights), CPU
    python benchmarks/features.py --device cuda --workers 8 --limit 3000

Random ViT-B-32 weights cost exactly what real ones cost. The extraction time includes Lightning's start-up and
writing the shards; the naive loop only encodes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from showcase.encoders import extract_features, load_clip
from showcase.encoders.cli import default_workers

DEFAULT_PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmaps-restaurant-reviews" / "photos"


def naive_rate(encoder, paths: list[Path]) -> float:
    """Images per second of a one-image-at-a-time loop (decode, preprocess, forward)."""
    encoder.image_features(encoder.preprocess_images(paths[:1]))  # warm-up
    _sync(encoder.device)
    t0 = time.perf_counter()
    for path in paths:
        encoder.image_features(encoder.preprocess_images([path]))
    _sync(encoder.device)
    return len(paths) / (time.perf_counter() - t0)


def extraction_rate(encoder, paths: list[Path], args: argparse.Namespace) -> float:
    """Images per second of `extract_features` into a fresh store."""
    photos = {p.stem: p for p in paths}
    accelerator = "gpu" if args.device.startswith("cuda") else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = extract_features(Path(tmp) / "store", encoder, photos, batch_size=args.batch_size,
                                  num_workers=args.workers, progress=False,
                                  trainer_kwargs={"accelerator": accelerator, "precision": args.precision})
        seconds = time.perf_counter() - t0
    assert report.images_encoded == len(photos), report.summary()
    return len(photos) / seconds


def decode_rate(encoder, paths: list[Path], args: argparse.Namespace) -> float:
    """Images per second of decoding and preprocessing alone, through extraction's own DataLoader and workers."""
    from showcase.encoders.extract import PhotoOptions, _BatchDataset

    photos = {p.stem: p for p in paths}
    keys = list(photos)
    batches = [("shard", keys[i : i + args.batch_size]) for i in range(0, len(keys), args.batch_size)]
    dataset = _BatchDataset("images", batches, PhotoOptions(photos), encoder)
    loader = DataLoader(dataset, batch_size=None, num_workers=args.workers)
    t0 = time.perf_counter()
    decoded = sum(len(batch["keys"]) for batch in loader)
    seconds = time.perf_counter() - t0
    assert decoded == len(paths)
    return len(paths) / seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of images")
    parser.add_argument("--limit", type=int, default=2000, help="number of photos (extraction pays a fixed start-up)")
    parser.add_argument("--models", nargs="+", default=["showcase-tiny", "ViT-B-32"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", "--num-workers", dest="workers", type=int, default=default_workers(),
                        help=f"DataLoader workers decoding photos (default: {default_workers()}, as `features`)")
    parser.add_argument("--no-naive", action="store_true", help="skip the one-image-at-a-time loop")
    parser.add_argument("--precision", default="32-true", help="Lightning precision of the extraction (16-mixed...)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not args.photos.is_dir():
        print(f"no photo folder at {args.photos}: pass --photos DIR", file=sys.stderr)
        return 2
    paths = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: args.limit]
    print(f"{len(paths)} photos from {args.photos}; device {args.device}, {torch.get_num_threads()} CPU threads, "
          f"batch {args.batch_size}, {args.workers} workers")
    print(f"{'model':<16}{'decode img/s':>14}{'extract img/s':>15}{'extract/decode':>16}"
          f"{'naive img/s':>13}{'extract/naive':>15}")
    for name in args.models:
        encoder = load_clip(name, device=args.device)
        decode = decode_rate(encoder, paths, args)
        batched = extraction_rate(encoder, paths, args)
        naive = float("nan") if args.no_naive else naive_rate(encoder, paths)
        print(f"{name:<16}{decode:>14.1f}{batched:>15.1f}{batched / decode:>15.2f}x{naive:>13.1f}"
              f"{batched / naive:>14.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
