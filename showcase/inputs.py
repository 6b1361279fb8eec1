"""The one request layer: a (user, business[, review]) request becomes model inputs, the same way everywhere.

Training (`SelectionDataModule`, `GeneratorDataModule`), testing and serving (`Showcaser`) all call these
functions, so what is served is what was tested.

Order and limits (documented once, here):
    * **History** of a request: the texts and photos of the user's other reviews, oldest first, as the dataset
      records them. For a dataset review (training, testing, or serving a pair the dataset holds) it is that
      review's recorded history (`dataset.profile(review)`); for any other pair it is the user's reviews of other
      businesses (`dataset.user_profile(user, exclude_business=business)`).
    * **Limits** keep the *most recent* items: the last `history_texts` texts and the last `history_photos`
      photos that have features. Photos without features (missing or unreadable files) are dropped before the
      limit; texts are never dropped: a text the feature store lacks is encoded with the store's own encoder.
    * **Pool**: the business's photos with features, in first-seen order (`dataset.business_photos`).
    * **Generator photos**: the given photos (a review's own, or the selected ones) that have features, in the
      given order, the first `images` of them.
    * **Padding**: `pad_rows` stacks `(n_i, d)` rows into `(B, max n, d)` zeros plus a `(B, max n)` bool mask.

Each exported model saves its limits in `config.json` (`"inputs"`), and `Showcaser` reads them back.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from showcase.selection.profile import pad_stack

MAX_CACHED_TEXTS = 50_000  # texts encoded on the fly that a FeatureLookup keeps (~100 MB at width 512)

INPUTS_KEY = "inputs"  # key of the limits in an exported model's config.json


@dataclass(frozen=True)
class InputLimits:
    """How much of a request a model sees (see the module docstring for the order).

    Attributes:
        history_texts: most recent history texts kept.
        history_photos: most recent history photos (with features) kept.
        images: photos fed to the generator.
    """

    history_texts: int = 50
    history_photos: int = 200
    images: int = 5

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, **defaults: int) -> "InputLimits":
        """Limits from a saved `inputs` dict; missing keys take `defaults`, then the class defaults."""
        merged = {**defaults, **{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__}}
        return cls(**merged)


def open_store(store: Any) -> Any:
    """A `FeatureStore` from a folder path, or `store` itself when it is one already."""
    if isinstance(store, (str, Path)):
        from showcase.encoders import FeatureStore

        return FeatureStore.open(store)
    return store


class FeatureLookup:
    """CLIP features from a feature store; texts it lacks are encoded with the store's own encoder and cached.

    Args:
        store: a `FeatureStore`, its folder, or anything with its `dim`, `has_image`, `has_text`,
            `image_features`, `text_features` and `load_encoder`.
        encoder: the encoder for unseen texts (default: `store.load_encoder()`, loaded on first need).
        max_cached_texts: how many encoded texts to keep, least recently used first out (a server meets new texts
            forever: the cache stays bounded, ~2 KB a text at width 512; an evicted text is encoded again).

    Attributes:
        encoded_texts: how many texts were encoded on the fly because the store lacked them.
    """

    def __init__(self, store: Any, encoder: Any = None, max_cached_texts: int = MAX_CACHED_TEXTS) -> None:
        self.store = open_store(store)
        self._encoder = encoder
        self._extra: OrderedDict[str, Tensor] = OrderedDict()
        self.max_cached_texts = max_cached_texts
        self.encoded_texts = 0

    @property
    def dim(self) -> int:
        return int(self.store.dim)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = self.store.load_encoder()
        return self._encoder

    def has_image(self, photo_id: str) -> bool:
        return self.store.has_image(photo_id)

    def images(self, photo_ids: Sequence[str]) -> Tensor:
        """`(n, d)` float features of photos, in order (all must be in the store)."""
        if not photo_ids:
            return torch.zeros(0, self.dim)
        return self.store.image_features(list(photo_ids)).float()

    def photos(self, photo_ids: Sequence[str]) -> tuple[Tensor, list[str]]:
        """Features of the photos present in the store, and their ids (missing photos are left out)."""
        present = [p for p in photo_ids if self.store.has_image(p)]
        return self.images(present), present

    def texts(self, texts: Sequence[str]) -> Tensor:
        """`(n, d)` float features of texts, in order; texts the store lacks are encoded with its encoder."""
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        unique = list(dict.fromkeys(texts))
        rows: dict[str, Tensor] = {}
        for text in unique:
            if text in self._extra:
                self._extra.move_to_end(text)
                rows[text] = self._extra[text]
        missing = [t for t in unique if t not in rows and not self.store.has_text(t)]
        if missing:
            with torch.no_grad():
                encoded = torch.as_tensor(self.encoder.encode_texts(missing)).float().cpu()
            rows.update(zip(missing, encoded))
            self.encoded_texts += len(missing)
            self._extra.update(zip(missing, encoded))
            while len(self._extra) > self.max_cached_texts:
                self._extra.popitem(last=False)
        stored = [t for t in unique if t not in rows]
        if stored:
            rows.update(zip(stored, self.store.text_features(stored).float()))
        return torch.stack([rows[t] for t in texts])


@dataclass
class History:
    """A user's history for one request, already limited: texts and photo ids, oldest first."""

    texts: list[str]
    photos: list[str]

    @property
    def empty(self) -> bool:
        return not self.texts and not self.photos


def dataset_review(dataset: Any, user_id: str, business_id: str) -> Any | None:
    """The dataset's review of `business_id` by `user_id`, or None (the latest one when there are several)."""
    reviews = getattr(dataset, "user_reviews", None)
    if reviews is None:
        return None
    found = [r for r in reviews(user_id) if r.business_id == business_id]
    return found[-1] if found else None


def user_history(dataset: Any, user_id: str, business_id: str, review: Any = None) -> tuple[list[str], list[str]]:
    """Full (unlimited) history texts and photos of a request, oldest first (see the module docstring)."""
    review = review if review is not None else dataset_review(dataset, user_id, business_id)
    profile = dataset.profile(review) if review is not None else dataset.user_profile(
        user_id, exclude_business=business_id)
    return list(profile.texts), list(profile.photos)


def limit_history(texts: Sequence[str], photos: Sequence[str], has_image: Callable[[str], bool],
                  limits: InputLimits) -> History:
    """The most recent `limits.history_texts` texts and `limits.history_photos` photos with features."""
    usable = [p for p in photos if has_image(p)]
    keep_texts = list(texts)[-limits.history_texts:] if limits.history_texts > 0 else []
    keep_photos = usable[-limits.history_photos:] if limits.history_photos > 0 else []
    return History(keep_texts, keep_photos)


def generator_photos(photos: Sequence[str], has_image: Callable[[str], bool], limits: InputLimits) -> list[str]:
    """The photos the generator sees: the given ones with features, in order, the first `limits.images`."""
    return [p for p in photos if has_image(p)][: max(limits.images, 0)]


def business_pool(dataset: Any, business_id: str, has_image: Callable[[str], bool]) -> tuple[list[str], int]:
    """The business's photos with features (first-seen order) and how many it has without.

    Raises:
        KeyError: naming the business when the dataset has no review of it.
    """
    try:
        pool = dataset.business_photos(business_id)
    except KeyError:
        raise KeyError(f"unknown business {business_id!r}: it has no review in "
                       f"{getattr(dataset, 'meta', {}).get('source', 'the dataset')}") from None
    usable = [p for p in pool if has_image(p)]
    return usable, len(pool) - len(usable)


def pad_rows(rows: Sequence[Tensor], dim: int, width: int | None = None) -> tuple[Tensor, Tensor]:
    """Stack `(n_i, dim)` rows into `(B, W, dim)` zeros-padded and a `(B, W)` bool mask (W = `width` or max n_i)."""
    if width is None:
        return pad_stack(rows, dim)
    out = torch.zeros(len(rows), max(width, 1), dim)
    mask = torch.zeros(len(rows), max(width, 1), dtype=torch.bool)
    for i, r in enumerate(rows):
        n = min(len(r), width)
        if n:
            out[i, :n] = r[:n]
            mask[i, :n] = True
    return out, mask


@dataclass
class Request:
    """One (user, business) request resolved against the dataset: pool, history and what was given."""

    user_id: str
    business_id: str
    pool: list[str]
    texts: list[str]  # full history texts, oldest first
    photos: list[str]  # full history photos with features, oldest first
    given_photos: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cold_start(self) -> bool:
        return not self.texts and not self.photos

    def history(self, limits: InputLimits) -> History:
        return limit_history(self.texts, self.photos, lambda p: True, limits)


def resolve_request(dataset: Any, features: FeatureLookup, user_id: str, business_id: str,
                    photos: Sequence[str] | None = None, review: Any = None) -> Request:
    """Resolve a request: the business pool, the user's history, notes on what is missing.

    Args:
        photos: photos chosen by the caller (skip selection); they also count as the user's (explained) photos.
        review: the dataset review the request stands for (training and testing); found by id otherwise.

    Raises:
        KeyError: when the business is unknown.
    """
    pool, unusable = business_pool(dataset, business_id, features.has_image)
    notes = []
    if unusable:
        notes.append(f"{unusable} photos of the business have no features (missing or unreadable)")
    texts, history_photos = user_history(dataset, user_id, business_id, review)
    request = Request(user_id, business_id, pool, texts, [p for p in history_photos if features.has_image(p)],
                      None if photos is None else list(photos), notes)
    if photos is not None:
        unknown = [p for p in photos if not features.has_image(p)]
        if unknown:
            notes.append(f"{len(unknown)} given photos have no features and are left out: {unknown[:3]}")
    elif request.cold_start:
        notes.append("cold start: the user has no history, so the photos come from the group ranking of the "
                     "business's reviewers (ELVis) and the text is conditioned on the photos alone")
    if not pool and photos is None:
        notes.append("the business has no usable photo: the text is conditioned on the user's history alone")
    return request
