"""`showcase features`: compute CLIP features of a dataset's photos and texts, or of a folder of images.

    showcase features --dataset DATASET --model NAME [--pretrained TAG|PATH] --output STORE [--batch-size N]
    showcase features --photos DIR --model NAME --output STORE

With `--dataset`, every photo of the dataset (files in its photo folder, or in `--photos DIR` when given) and
every text (`ShowcaseDataset.all_texts()`: reviews, sentences, histories). With `--photos` alone, every image file
of the folder, keyed by file stem. Re-running the same command resumes an interrupted run.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from showcase.encoders.clip import TINY_MODEL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `features` options to `parser`."""
    src = parser.add_argument_group("what to encode (at least one)")
    src.add_argument("--dataset", type=Path, help="dataset folder written by `showcase prepare`")
    src.add_argument("--photos", type=Path, help="folder of image files (ids = file stems); with --dataset: "
                     "where the dataset's photos are")
    parser.add_argument("--model", default=TINY_MODEL, help="open_clip model name (ViT-B-32, ...) or a local CLIP "
                        f"folder (default: {TINY_MODEL}, the tiny test model)")
    parser.add_argument("--pretrained", default=None, help="open_clip pretrained tag (openai, ...) or a local "
                        "checkpoint file; omit for random weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (no --pretrained)")
    parser.add_argument("--output", type=Path, required=True, help="feature store folder (created or resumed)")
    parser.add_argument("--batch-size", type=int, default=64, help="photos or texts per encoder batch (default 64)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers decoding photos")
    parser.add_argument("--shard-size", type=int, default=1024, help="items per shard (the unit of resumption)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu, ...")
    parser.add_argument("--devices", default="1", help="Lightning devices (e.g. 1, 4, auto); >1 runs DDP")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def collect_inputs(dataset: Path | None, photos_dir: Path | None) -> tuple[dict[str, Path | None], list[str]]:
    """The photos (id -> file, None when unresolvable) and texts to encode for these options."""
    from showcase.data.photos import PhotoStore

    if dataset is None and photos_dir is None:
        raise ValueError("give --dataset DATASET and/or --photos DIR")
    if photos_dir is not None and not photos_dir.is_dir():
        raise FileNotFoundError(f"photo folder not found: {photos_dir}")
    if dataset is None:
        folder = PhotoStore(photos_dir)
        return {pid: folder.path(pid) for pid in folder.ids()}, []
    from showcase.data import ShowcaseDataset

    ds = ShowcaseDataset.load(dataset)
    root = photos_dir or ds.photos_dir
    if root is None:
        raise ValueError(f"{dataset} names no photo folder: pass --photos DIR")
    folder = PhotoStore(root)
    photos: dict[str, Path | None] = {}
    for pid in ds.all_photos():
        try:
            photos[pid] = folder.path(pid)
        except ValueError:  # an id that would escape the folder: skipped and reported, like a missing file
            photos[pid] = None
    return photos, ds.all_texts()


def run(args: argparse.Namespace) -> int:
    """Run `showcase features`; prints a summary; returns the exit status."""
    from showcase.encoders.clip import load_clip
    from showcase.encoders.extract import extract_features

    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer_kwargs = {"accelerator": args.accelerator, "devices": devices}
    if isinstance(devices, int) and devices > 1:
        trainer_kwargs["strategy"] = "ddp"  # each rank encodes every world_size-th shard
    try:
        photos, texts = collect_inputs(args.dataset, args.photos)
        encoder = load_clip(args.model, args.pretrained, seed=args.seed)
        print(f"encoding {len(photos)} photos and {len(texts)} texts with {encoder} into {args.output}")
        report = extract_features(args.output, encoder, photos, texts, batch_size=args.batch_size,
                                  num_workers=args.num_workers, progress=not args.no_progress,
                                  trainer_kwargs=trainer_kwargs, shard_size=args.shard_size)
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # user errors: bad name, path, or store
        print(f"showcase features: error: {e}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m showcase.encoders.cli`), the same as `showcase features`."""
    parser = argparse.ArgumentParser(prog="showcase features", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
