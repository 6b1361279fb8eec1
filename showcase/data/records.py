"""Typed records of the processed dataset: reviews, users' histories and businesses' photo pools."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class HistoryItem:
    """One of the user's earlier reviews, as given in `history_reviews` (id and text).

    `photos` is filled from the dataset when that review is itself a record of the dataset.
    """

    review_id: str
    text: str
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Review:
    """One review with photos: the unit of both selection (its photos) and generation (its text).

    Attributes:
        review_id: unique id of the review.
        user_id: author.
        business_id: the reviewed business.
        text: the full review text.
        photos: photo ids attached to the review (the selection target).
        rating: star rating when known.
        split: "train", "val" or "test" (datasets are split by user).
        sentences: `text` split into sentences.
        history: the user's other reviews (the profile used by selection and generation).
        explanation: after distillation, the sentences that describe a photo; `None` before.
    """

    review_id: str
    user_id: str
    business_id: str
    text: str
    photos: tuple[str, ...]
    rating: float | None = None
    split: str = "train"
    sentences: tuple[str, ...] = ()
    history: tuple[HistoryItem, ...] = ()
    explanation: tuple[str, ...] | None = None

    @property
    def target_text(self) -> str:
        """The text a generator learns to write: the distilled explanation when present, else the review."""
        return " ".join(self.explanation) if self.explanation is not None else self.text

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["history"] = [dataclasses.asdict(h) for h in self.history]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Review":
        history = tuple(
            HistoryItem(h["review_id"], h["text"], tuple(h.get("photos", ()))) for h in data.get("history", ())
        )
        explanation = data.get("explanation")
        return cls(
            review_id=str(data["review_id"]),
            user_id=str(data["user_id"]),
            business_id=str(data["business_id"]),
            text=data["text"],
            photos=tuple(data.get("photos", ())),
            rating=data.get("rating"),
            split=data.get("split", "train"),
            sentences=tuple(data.get("sentences", ())),
            history=history,
            explanation=tuple(explanation) if explanation is not None else None,
        )


@dataclass(frozen=True)
class UserProfile:
    """What is known of a user before the target review: texts and photos of their history."""

    user_id: str
    texts: tuple[str, ...]
    photos: tuple[str, ...]


@dataclass
class ShowcaseDataset:
    """A processed dataset folder: `reviews.jsonl` plus `dataset.json` (photo folder, statistics).

    Example:
        >>> ds = ShowcaseDataset.load("runs/demo/dataset")        # doctest: +SKIP
        >>> test = ds.split("test")                               # doctest: +SKIP
        >>> pool = ds.business_photos(test[0].business_id)        # doctest: +SKIP
    """

    reviews: list[Review]
    photos_dir: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {r.review_id: r for r in self.reviews}
        self._pools: dict[str, list[str]] = {}
        self._by_user: dict[str, list[Review]] = {}
        for r in self.reviews:
            pool = self._pools.setdefault(r.business_id, [])
            pool.extend(p for p in r.photos if p not in pool)
            self._by_user.setdefault(r.user_id, []).append(r)

    # --- access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.reviews)

    def __iter__(self) -> Iterator[Review]:
        return iter(self.reviews)

    def split(self, name: str) -> list[Review]:
        """Reviews of one split ("train", "val" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return [r for r in self.reviews if r.split == name]

    def review(self, review_id: str) -> Review:
        return self._by_id[review_id]

    @property
    def businesses(self) -> list[str]:
        return list(self._pools)

    @property
    def users(self) -> list[str]:
        return list(self._by_user)

    def user_reviews(self, user_id: str) -> list[Review]:
        return list(self._by_user.get(user_id, ()))

    def business_photos(self, business_id: str) -> list[str]:
        """The business's photo pool: every photo of every review of it, in first-seen order.

        Raises:
            KeyError: naming the business when it has no review in the dataset.
        """
        if business_id not in self._pools:
            raise KeyError(f"unknown business {business_id!r}")
        return list(self._pools[business_id])

    def profile(self, review: Review) -> UserProfile:
        """The author's profile for `review`: texts and photos of their history (never the review itself)."""
        texts, photos = [], []
        for item in review.history:
            if item.review_id == review.review_id:
                continue
            texts.append(item.text)
            known = self._by_id.get(item.review_id)
            photos.extend(item.photos or (known.photos if known else ()))
        return UserProfile(review.user_id, tuple(texts), tuple(dict.fromkeys(photos)))

    def user_profile(self, user_id: str, exclude_business: str | None = None) -> UserProfile:
        """Profile of a user from all their reviews in the dataset (optionally leaving one business out)."""
        rs = [r for r in self._by_user.get(user_id, ()) if r.business_id != exclude_business]
        photos = [p for r in rs for p in r.photos]
        return UserProfile(user_id, tuple(r.text for r in rs), tuple(dict.fromkeys(photos)))

    def all_texts(self) -> list[str]:
        """Every distinct text a model may need features for: reviews, sentences, explanations, histories."""
        seen: dict[str, None] = {}
        for r in self.reviews:
            seen[r.text] = None
            seen.update(dict.fromkeys(r.sentences))
            if r.explanation:
                seen.update(dict.fromkeys(r.explanation))
            seen.update(dict.fromkeys(h.text for h in r.history))
        return list(seen)

    def all_photos(self) -> list[str]:
        return list(dict.fromkeys(p for r in self.reviews for p in r.photos))

    def photo_path(self, photo_id: str) -> Path:
        from showcase.data.photos import PhotoStore

        if self.photos_dir is None:
            raise ValueError("this dataset has no photos_dir")
        return PhotoStore(self.photos_dir).path(photo_id)

    # --- files --------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> "ShowcaseDataset":
        """Read a dataset folder written by `save` (`showcase prepare`, `showcase distill`)."""
        folder = Path(folder)
        meta_path, reviews_path = folder / "dataset.json", folder / "reviews.jsonl"
        if not reviews_path.exists():
            raise FileNotFoundError(f"{reviews_path} not found: is {folder} a dataset folder (showcase prepare)?")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        reviews = []
        with reviews_path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    reviews.append(Review.from_json(json.loads(line)))
                except (json.JSONDecodeError, KeyError, TypeError) as e:
                    raise ValueError(f"{reviews_path}:{lineno}: malformed review record ({e!r})") from e
        photos_dir = meta.get("photos_dir")
        if photos_dir is not None and not Path(photos_dir).is_absolute():
            photos_dir = folder / photos_dir
        return cls(reviews, Path(photos_dir) if photos_dir else None, meta)

    def save(self, folder: str | Path, **meta: Any) -> Path:
        """Write `reviews.jsonl` and `dataset.json` atomically (a crash never leaves half a file)."""
        from showcase.utils import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        lines = "".join(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in self.reviews)
        atomic_write_text(folder / "reviews.jsonl", lines)
        self.meta.update(meta)
        if self.photos_dir is not None:
            self.meta["photos_dir"] = str(Path(self.photos_dir).resolve())
        atomic_write_text(folder / "dataset.json", json.dumps(self.meta, indent=2, default=str))
        return folder

    def with_reviews(self, reviews: Iterable[Review]) -> "ShowcaseDataset":
        return ShowcaseDataset(list(reviews), self.photos_dir, dict(self.meta))
