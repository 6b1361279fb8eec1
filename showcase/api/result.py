"""The result of `generate_showcase`: chosen photos + generated text, renderable as an HTML card or a PNG collage."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from showcase.utils import atomic_write_text

if TYPE_CHECKING:
    from showcase.api.explain import Explanation


@dataclass(frozen=True)
class ShowcasePhoto:
    """One chosen photo: its id, its file (None when missing) and the selector's relevance for the user."""

    photo_id: str
    path: Path | None
    relevance: float


@dataclass
class Showcase:
    """A personalized showcase for one (user, business) pair.

    Attributes:
        user_id, business_id: whom it is for and what it explains.
        photos: the chosen photos in selection order.
        text: the generated explanation; `sentences` is the same text split into sentences.
        cold_start: True when the user had no history: photos come from the group ranking of the business's
            reviewers (ELVis) and the text is conditioned on the photos alone.
        notes: what the pipeline had to fall back on, in words.
        explanation: the card's reasons (readable ranks, the user's history behind each photo, which photo each
            sentence talks about), set by `showcase.api.Explainer.explain`; None until then.
    """

    user_id: str
    business_id: str
    photos: list[ShowcasePhoto]
    text: str
    sentences: list[str] = field(default_factory=list)
    cold_start: bool = False
    notes: list[str] = field(default_factory=list)
    explanation: "Explanation | None" = None

    @property
    def business_name(self) -> str | None:
        """The business's name when the explanation found one in the dataset."""
        return self.explanation.business_name if self.explanation is not None else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: ids, photos (id, relevance, file), text, sentences, flags, notes, explanation."""
        return {
            "user_id": self.user_id, "business_id": self.business_id, "business_name": self.business_name,
            "photos": [{"photo_id": p.photo_id, "relevance": round(float(p.relevance), 6),
                        "path": str(p.path) if p.path is not None else None} for p in self.photos],
            "text": self.text, "sentences": list(self.sentences), "cold_start": self.cold_start,
            "notes": list(self.notes),
            "explanation": self.explanation.to_dict() if self.explanation is not None else None,
        }

    def to_html(self, thumbnail: int = 220) -> str:
        """A self-contained HTML card (photos inline as base64, reasons when explained). All text is escaped."""
        from showcase.api.card import card_page

        return card_page(self, thumbnail)

    def collage(self, thumbnail: int = 224):
        """A PIL image: a header (business, user), the photos side by side with their ranks, the wrapped text."""
        from showcase.api.card import collage

        return collage(self, thumbnail)

    def save(self, path: str | Path) -> Path:
        """Write the showcase as `.html` (self-contained card) or `.png`/`.jpg` (collage), chosen by extension."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            atomic_write_text(path, self.to_html())
        elif suffix in (".png", ".jpg", ".jpeg"):
            path.parent.mkdir(parents=True, exist_ok=True)
            self.collage().save(path)
        else:
            raise ValueError(f"cannot save a showcase as {path.name!r}: use .html, .png or .jpg")
        return path
