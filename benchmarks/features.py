"""Images per second of feature extraction (`extract_features`, Lightning predict, batched) against a naive loop
that decodes, preprocesses and encodes one image at a time, on the real photos when present.

    python benchmarks/features.py                       # tiny config and ViT-B-32 (random weights), CPU
    python benchmarks/features.py --device cuda --num-workers 8 --limit 3000

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

from showcase.encoders import extract_features, load_clip

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
                                  num_workers=args.num_workers, progress=False,
                                  trainer_kwargs={"accelerator": accelerator, "precision": args.precision})
        seconds = time.perf_counter() - t0
    assert report.images_encoded == len(photos), report.summary()
    return len(photos) / seconds


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of images")
    parser.add_argument("--limit", type=int, default=300, help="number of photos")
    parser.add_argument("--models", nargs="+", default=["showcase-tiny", "ViT-B-32"])
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--num-workers", type=int, default=0)
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
          f"batch {args.batch_size}, {args.num_workers} workers")
    print(f"{'model':<16}{'naive img/s':>14}{'extract img/s':>16}{'ratio':>9}")
    for name in args.models:
        encoder = load_clip(name, device=args.device)
        naive = naive_rate(encoder, paths)
        batched = extraction_rate(encoder, paths, args)
        print(f"{name:<16}{naive:>14.1f}{batched:>16.1f}{batched / naive:>8.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
