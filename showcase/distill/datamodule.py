"""LightningDataModule of labelled (sentence, photo) pairs with their CLIP features, split 8:1:1 by review."""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from showcase.datamodule import SplitDataModule
from showcase.distill.features import FeatureLookup
from showcase.distill.pairs import LabeledPair, aggregate_labels, pairs_from_world, read_pairs, split_pairs


class PairFeatures(Dataset):
    """Pairs as feature rows: item ``i`` is ``(text (D,), image (D,), label ())``."""

    def __init__(self, text: torch.Tensor, image: torch.Tensor, labels: torch.Tensor) -> None:
        if not (len(text) == len(image) == len(labels)):
            raise ValueError(f"length mismatch: {len(text)} texts, {len(image)} images, {len(labels)} labels")
        self.text, self.image, self.labels = text, image, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.text[i], self.image[i], self.labels[i]


def find_world(dataset: str | Path) -> Path | None:
    """The test world behind a dataset folder: ``world.json`` in it, or the folder named in ``dataset.json``."""
    folder = Path(dataset)
    if (folder / "world.json").exists():
        return folder
    meta_path = folder / "dataset.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        for key in ("world", "world_dir", "source_dir", "source"):
            value = meta.get(key)
            if isinstance(value, str):
                candidate = Path(value) if Path(value).is_absolute() else folder / value
                candidate = candidate if candidate.is_dir() else candidate.parent
                if (candidate / "world.json").exists():
                    return candidate
    return None


class PairDataModule(SplitDataModule):
    """Labelled pairs for training Φ.

    Args:
        dataset: dataset folder (``showcase prepare``).
        store: feature store folder (``showcase features``); sentences it lacks are encoded with its encoder.
        labels: labelled pairs JSONL, or one file per annotator (the annotation tool's label logs are read as they
            are; annotators are merged by majority vote). When not
            given, labels are derived from the test world's ground truth found with the dataset (``world.json``).
        world: test world folder to derive labels from, when it is not found with the dataset.
        batch_size: pairs per training batch.
        seed: seed of the 8:1:1 split (by review).
        num_workers: DataLoader workers.
    """

    def __init__(
        self,
        dataset: str,
        store: str,
        labels: str | list[str] | None = None,
        world: str | None = None,
        batch_size: int = 128,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, PairFeatures] = {}
        self.stats: dict[str, Any] = {}
        self._lookup: FeatureLookup | None = None

    @property
    def lookup(self) -> FeatureLookup:
        if self._lookup is None:
            self._lookup = FeatureLookup(self.hparams.store)
        return self._lookup

    @property
    def dim(self) -> int:
        """CLIP feature size (Φ's input size)."""
        return self.lookup.dim

    def load_pairs(self) -> list[LabeledPair]:
        """The labelled pairs: from `labels`, else from the test world's ground truth."""
        if self.hparams.labels:
            files = [self.hparams.labels] if isinstance(self.hparams.labels, str) else list(self.hparams.labels)
            pairs = aggregate_labels([p for f in files for p in read_pairs(f)])
            if not pairs:
                raise ValueError(f"{', '.join(files)}: no labelled pair (all unlabelled or tied)")
            return pairs
        world = self.hparams.world or find_world(self.hparams.dataset)
        if world is None:
            raise ValueError(
                f"no labels: pass `labels` (a labelled pairs JSONL) or `world`; "
                f"{self.hparams.dataset} has no world.json"
            )
        return pairs_from_world(world, self.hparams.dataset)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        pairs = self.load_pairs()
        missing = 0
        for name, part in split_pairs(pairs, seed=self.hparams.seed).items():
            image, kept = self.lookup.photos(list(dict.fromkeys(p.photo_id for p in part)))
            row = {pid: i for i, pid in enumerate(kept)}
            present = [p for p in part if p.photo_id in row]
            missing += len(part) - len(present)
            text = self.lookup.texts([p.sentence for p in present])
            image_rows = image[[row[p.photo_id] for p in present]] if present else image[:0]
            labels = torch.tensor([float(p.label) for p in present])
            self.splits[name] = PairFeatures(text, image_rows, labels)
        if missing:
            warnings.warn(f"{missing} labelled pairs skipped: their photo is not in the feature store",
                          stacklevel=2)
        self.stats = {
            "pairs": {k: len(v) for k, v in self.splits.items()},
            "positives": {k: int(v.labels.sum()) for k, v in self.splits.items()},
            "skipped_missing_photo": missing,
            "encoded_texts": self.lookup.encoded_texts,
        }
        if len(self.splits["train"]) == 0:
            raise ValueError("no training pair left after the split (too few labelled reviews?)")

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(
            self.splits[name],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            generator=generator if shuffle else None,
        )

