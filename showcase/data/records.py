"""Typed records of the processed dataset: reviews, users' histories and businesses' photo pools."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
        history: the user's other reviews (the profile used by selection and generation). A review read from a
            dataset file resolves it from the stored references on first use.
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
    history: Sequence[HistoryItem] = ()
    explanation: tuple[str, ...] | None = None

    @property
    def target_text(self) -> str:
        """The text a generator learns to write: the distilled explanation when present, else the review."""
        return " ".join(self.explanation) if self.explanation is not None else self.text

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "history"}
        data["photos"] = list(self.photos)
        data["sentences"] = list(self.sentences)
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


from showcase.data.dataset import ShowcaseDataset  # noqa: E402  (the dataset builds on the records above)

__all__ = ["SPLITS", "HistoryItem", "Review", "ShowcaseDataset", "UserProfile"]
