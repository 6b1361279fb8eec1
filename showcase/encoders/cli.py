"""`showcase features`: compute CLIP features of a dataset's photos and texts, or of a folder of images.

    showcase features --dataset DATASET --model NAME [--pretrained TAG|PATH] --output STORE [--batch-size N]
    showcase features --photos DIR --model NAME --output STORE

With `--dataset`, every photo of the dataset (files in its photo folder, or in `--photos DIR` when given) and
every text (`ShowcaseDataset.all_texts()`: reviews, sentences, histories). With `--photos` alone, every image file
of the folder, keyed by file stem. Re-running the same command resumes an interrupted run. A bad photo (missing,
empty, unreadable, truncated, over `--max-pixels`, a link out of the photo folder) is skipped, never fatal, and
listed with its reason in STORE/skipped.json.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from showcase.encoders.clip import TINY_MODEL
from showcase.encoders.decode import DEFAULT_MAX_PIXELS
from showcase.errors import UserError


def default_workers() -> int:
    """Photo-decoding workers by default: one per core but one (the model's), at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


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
    parser.add_argument("--workers", "--num-workers", dest="num_workers", type=int, default=default_workers(),
                        help="DataLoader worker processes decoding and resizing photos (default: one per CPU core "
                        f"but one, at most 8; here {default_workers()}); 0 decodes in the main process")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="skip photos whose header claims more pixels, as decompression bombs (default: "
                        f"{DEFAULT_MAX_PIXELS:,}, PIL's limit); 0 for no limit")
    parser.add_argument("--shard-size", type=int, default=1024, help="items per shard (the unit of resumption)")
    parser.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu, ...")
    parser.add_argument("--devices", default="1", help="Lightning devices (e.g. 1, 4, auto); >1 runs DDP")
    parser.add_argument("--num-nodes", type=int, default=1, help="machines of a DDP run (Lightning num_nodes, "
                        "launched by torchrun or SLURM): ranks write disjoint shards of one store")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def collect_inputs(dataset: Path | None, photos_dir: Path | None) -> tuple[dict[str, Path | None], list[str], Path]:
    """The photos (id -> file, None when no file can be named), the texts to encode, and the photo folder.

    A file is named even when it is a link out of the photo folder: extraction skips it, with that reason.
    """
    from showcase.data.photos import EXTENSIONS, PhotoStore

    if dataset is None and photos_dir is None:
        raise ValueError("give --dataset DATASET and/or --photos DIR")
    if photos_dir is not None and not photos_dir.is_dir():
        raise FileNotFoundError(f"photo folder not found: {photos_dir}")
    if dataset is None:
        files = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in EXTENSIONS
                       and (p.is_symlink() or p.is_file()))
        return {p.stem: p for p in files}, [], photos_dir
    from showcase.data import ShowcaseDataset

    ds = ShowcaseDataset.load(dataset)
    root = photos_dir or ds.photos_dir
    if root is None:
        raise ValueError(f"{dataset} names no photo folder: pass --photos DIR")
    folder = PhotoStore(root)
    return {pid: _photo_file(folder, pid) for pid in ds.all_photos()}, ds.all_texts(), Path(root)


def _photo_file(folder, photo_id: str) -> Path | None:
    """The file of `photo_id` in `folder` (a PhotoStore), a link out of it included; None for an unsafe id."""
    try:
        return folder.path(photo_id)
    except ValueError:
        try:
            folder.check_id(photo_id)
        except ValueError:
            return None  # "../x", "/etc/passwd": no file is named at all
        from showcase.data.photos import EXTENSIONS

        base = folder.root / photo_id
        names = [base] if base.suffix.lower() in EXTENSIONS else [base.with_name(photo_id + e) for e in EXTENSIONS]
        return next((p for p in names if p.is_symlink() or p.exists()), names[0])


def run(args: argparse.Namespace) -> int:
    """Run `showcase features`; prints a summary; returns the exit status."""
    from showcase.encoders.clip import load_clip
    from showcase.encoders.extract import extract_features

    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer_kwargs = {"accelerator": args.accelerator, "devices": devices, "num_nodes": args.num_nodes}
    if (isinstance(devices, int) and devices > 1) or args.num_nodes > 1:
        trainer_kwargs["strategy"] = "ddp"  # each rank encodes every world_size-th shard
    try:
        photos, texts, photo_root = collect_inputs(args.dataset, args.photos)
        encoder = load_clip(args.model, args.pretrained, seed=args.seed)
        print(f"encoding {len(photos)} photos and {len(texts)} texts with {encoder} into {args.output}")
        report = extract_features(args.output, encoder, photos, texts, batch_size=args.batch_size,
                                  num_workers=args.num_workers, progress=not args.no_progress,
                                  trainer_kwargs=trainer_kwargs, shard_size=args.shard_size,
                                  max_pixels=args.max_pixels or None, photo_root=photo_root)
    except (UserError, ValueError, FileNotFoundError, RuntimeError) as e:  # user errors: bad name, path, or store
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
