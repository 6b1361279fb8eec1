"""Selection examples and their LightningDataModule.

One example per review with photos: the author's profile (history texts and photos, never the review itself), the
business's photo pool and the positions of the review's own photos in it (the target set). Features are gathered
from a `FeatureStore` once into two matrices; examples keep only row indices, so memory is O(photos), not
O(examples x pool).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, Sequence

from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from showcase.data.records import ShowcaseDataset
from showcase.datamodule import EpochSampler, SplitDataModule
from showcase.inputs import FeatureLookup, InputLimits, limit_history
from showcase.selection.profile import SelectionBatch, collate_requests

log = logging.getLogger(__name__)


class FeatureSource(Protocol):
    """What selection needs of a feature store (`showcase.encoders.FeatureStore` is one)."""

    dim: int

    def has_image(self, photo_id: str) -> bool: ...
    def has_text(self, text: str) -> bool: ...
    def image_features(self, photo_ids: Sequence[str]) -> Tensor: ...
    def text_features(self, texts: Sequence[str]) -> Tensor: ...


@dataclass(frozen=True)
class Example:
    """Row indices into `SelectionExamples.images` / `.texts` of one selection request."""

    review_id: str
    user_id: str
    business_id: str
    texts: tuple[int, ...]
    history: tuple[int, ...]
    pool: tuple[int, ...]
    target: tuple[int, ...]  # positions in `pool`


class SelectionExamples(Dataset):
    """Selection examples of one split, with the feature matrices they index."""

    def __init__(self, examples: list[Example], images: Tensor, texts: Tensor):
        self.examples, self.images, self.texts = examples, images, texts

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def features(self) -> tuple[Tensor, Tensor]:
        """The distinct image rows (pools and histories) and text rows these examples use: `(n, d)`, `(t, d)`."""
        photos = sorted({i for e in self.examples for i in (*e.pool, *e.history)})
        texts = sorted({i for e in self.examples for i in e.texts})
        return self.images[photos], self.texts[texts]

    def collate(self, examples: list[Example]) -> SelectionBatch:
        def rows(matrix: Tensor, idx: tuple[int, ...]) -> Tensor:
            return matrix[list(idx)] if idx else matrix.new_zeros(0, matrix.shape[1])

        return collate_requests(
            [rows(self.texts, e.texts) for e in examples],
            [rows(self.images, e.history) for e in examples],
            [rows(self.images, e.pool) for e in examples],
            targets=[list(e.target) for e in examples],
            user_ids=[e.user_id for e in examples],
        )


def build_examples(
    dataset: ShowcaseDataset,
    store: FeatureSource,
    splits: Sequence[str] = ("train", "val", "test"),
    max_history_texts: int = 50,
    max_history_photos: int = 200,
    max_pool: int | None = None,
    train_pools: str = "train",
    features: FeatureLookup | None = None,
) -> dict[str, SelectionExamples]:
    """Selection examples per split; photos missing from the store are skipped and counted (logged).

    Histories follow `showcase.inputs` (the most recent texts and photos with features); texts the store lacks are
    encoded with its encoder (`features`, default `FeatureLookup(store)`).

    A review is kept when at least one of its photos is in its business's pool (always, unless features are
    missing). With `max_pool`, pools are cut to that many photos, keeping the review's own ones.

    `train_pools="train"` (default) builds training pools from training reviews only: since the dataset is split
    by user, held-out users' photos would otherwise sit in training pools as negatives only, and the model learns
    to reject them (the very photos it is tested on). Evaluation pools are always the whole business pool.
    `"all"` uses whole pools everywhere.
    """
    if train_pools not in ("train", "all"):
        raise ValueError(f"train_pools must be 'train' or 'all', got {train_pools!r}")
    train_only = dataset.with_reviews(dataset.split("train")) if train_pools == "train" else dataset
    photo_row: dict[str, int] = {}
    text_row: dict[str, int] = {}
    skipped = {"photos": 0, "texts": 0, "reviews": 0}

    def row_indexer(table: dict[str, int], in_store, kind: str):
        """Row of each key in `table` (new keys appended); keys missing from the store are skipped and counted."""

        def rows(keys: Sequence[str]) -> list[int]:
            out = []
            for key in keys:
                if key not in table:
                    if not in_store(key):
                        skipped[kind] += 1
                        continue
                    table[key] = len(table)
                out.append(table[key])
            return out

        return rows

    features = features or FeatureLookup(store)
    limits = InputLimits(history_texts=max_history_texts, history_photos=max_history_photos)
    photo_rows = row_indexer(photo_row, store.has_image, "photos")
    text_rows = row_indexer(text_row, lambda text: True, "texts")  # unseen texts are encoded below

    per_split: dict[str, list[Example]] = {}
    for split in splits:
        examples = per_split.setdefault(split, [])
        for review in dataset.split(split):
            if not review.photos:
                continue
            source = train_only if split == "train" else dataset
            pool_ids = [p for p in source.business_photos(review.business_id) if p in photo_row or store.has_image(p)]
            own = set(review.photos)
            if max_pool is not None and len(pool_ids) > max_pool:
                others = [p for p in pool_ids if p not in own]
                keep = set([p for p in pool_ids if p in own][:max_pool]) | set(others[: max(max_pool - len(own), 0)])
                pool_ids = [p for p in pool_ids if p in keep]
            target = tuple(i for i, p in enumerate(pool_ids) if p in own)
            if not target:
                skipped["reviews"] += 1
                continue
            profile = dataset.profile(review)
            history = limit_history(profile.texts, profile.photos, store.has_image, limits)
            examples.append(Example(
                review.review_id, review.user_id, review.business_id,
                tuple(text_rows(history.texts)), tuple(photo_rows(history.photos)),
                tuple(photo_rows(pool_ids)), target,
            ))
    if any(skipped.values()):
        log.warning("selection examples: skipped %s (not in the feature store / no photo in the pool)", skipped)
    images, texts = features.images(list(photo_row)), features.texts(list(text_row))
    return {s: SelectionExamples(ex, images, texts) for s, ex in per_split.items()}


class SelectionDataModule(SplitDataModule):
    """Selection examples from a dataset folder and a feature store folder.

    Args:
        dataset: a dataset folder (`showcase prepare`).
        store: a feature store folder (`showcase features`) holding the dataset's photos and history texts.
        batch_size: examples per batch (paper: 512).
        max_history_texts: most recent history texts kept per user.
        max_history_photos: most recent history photos kept per user.
        max_pool: cut pools to this many photos (keeping the target ones); None keeps all.
        train_pools: "train" (training pools from training reviews only) or "all" (see `build_examples`).
        num_workers: DataLoader workers.
        seed: seed of the per-epoch shuffling.
    """

    def __init__(self, dataset: str, store: str, batch_size: int = 512, max_history_texts: int = 50,
                 max_history_photos: int = 200, max_pool: int | None = None, train_pools: str = "train",
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.splits: dict[str, SelectionExamples] | None = None
        self._sources: tuple[ShowcaseDataset, FeatureSource] | None = None

    def attach(self, dataset: ShowcaseDataset, store: FeatureSource) -> "SelectionDataModule":
        """Use in-memory objects instead of the folders (tests, notebooks)."""
        self._sources, self.splits = (dataset, store), None
        return self

    def _open(self) -> tuple[ShowcaseDataset, FeatureSource]:
        if self._sources is None:
            from showcase.encoders import FeatureStore

            self._sources = (ShowcaseDataset.load(self.hparams.dataset), FeatureStore.open(self.hparams.store))
        return self._sources

    @property
    def feature_store(self) -> FeatureSource:
        return self._open()[1]

    @property
    def feature_dim(self) -> int:
        return int(self._open()[1].dim)

    @property
    def input_limits(self) -> InputLimits:
        """The history limits of these examples (saved with the exported selector)."""
        return InputLimits(history_texts=self.hparams.max_history_texts,
                           history_photos=self.hparams.max_history_photos)

    @property
    def train_users(self) -> list[str]:
        return sorted({r.user_id for r in self._open()[0].split("train")})

    def training_features(self) -> tuple[Tensor, Tensor]:
        """Image and text features of the training split (to fit the selectors' `FeatureNorm`)."""
        if self.splits is None:
            self.setup()
        return self.splits["train"].features()

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            dataset, store = self._open()
            hp = self.hparams
            self.splits = build_examples(dataset, store, max_history_texts=hp.max_history_texts,
                                         max_history_photos=hp.max_history_photos, max_pool=hp.max_pool,
                                         train_pools=hp.train_pools)
            sizes = {k: len(v) for k, v in self.splits.items()}
            if not sizes.get("train") and stage in (None, "fit"):
                raise ValueError(f"{hp.dataset}: no training example with photos in the feature store ({sizes})")

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if self.splits is None:
            self.setup()
        data = self.splits[split]
        sampler = EpochSampler(len(data), self.hparams.seed, shuffle=shuffle)  # same order when resumed
        return DataLoader(data, batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=data.collate,
                          num_workers=self.hparams.num_workers)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
