"""The result of `generate_showcase`: chosen photos + generated text, renderable as an HTML card or a PNG collage."""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path

from showcase.utils import atomic_write_text


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
    """

    user_id: str
    business_id: str
    photos: list[ShowcasePhoto]
    text: str
    sentences: list[str] = field(default_factory=list)
    cold_start: bool = False
    notes: list[str] = field(default_factory=list)

    def to_html(self, thumbnail: int = 220) -> str:
        """A self-contained HTML card: photos inline (base64), the text, who and what. All text is escaped."""
        esc = html.escape
        figures = []
        for photo in self.photos:
            src = _data_uri(photo.path)
            image = (f'<img src="{src}" alt="{esc(photo.photo_id)}" width="{thumbnail}" height="{thumbnail}">'
                     if src else f'<div class="missing">photo {esc(photo.photo_id)} unavailable</div>')
            figures.append(f'<figure class="photo" data-photo-id="{esc(photo.photo_id)}">{image}'
                           f"<figcaption>relevance {photo.relevance:.3f}</figcaption></figure>")
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Showcase: {esc(self.business_id)} for {esc(self.user_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.card {{ max-width: {max(3, len(self.photos)) * (thumbnail + 16)}px; border: 1px solid #ddd; border-radius: 12px;
        padding: 1rem 1.25rem; box-shadow: 0 2px 8px rgba(0,0,0,.06); }}
.photos {{ display: flex; gap: 8px; flex-wrap: wrap; }}
figure {{ margin: 0; }} figcaption {{ font-size: .75rem; color: #777; }}
img {{ border-radius: 8px; object-fit: cover; }}
.text {{ font-size: 1.1rem; line-height: 1.5; }} .meta {{ color: #666; font-size: .85rem; }}
.missing {{ width: {thumbnail}px; height: {thumbnail}px; background: #eee; display: flex; align-items: center;
           justify-content: center; color: #999; }}
</style></head>
<body><div class="card">
<p class="meta">For user <b class="user">{esc(self.user_id)}</b> at business <b class="business">{esc(self.business_id)}</b>
{" (cold start: no history, group showcase)" if self.cold_start else ""}</p>
<div class="photos">{"".join(figures)}</div>
<p class="text">{esc(self.text)}</p>
{f'<ul class="notes">{notes}</ul>' if notes else ""}
</div></body></html>
"""

    def collage(self, thumbnail: int = 224):
        """A PIL image: the photos side by side with the text underneath."""
        from PIL import Image, ImageDraw

        n = max(len(self.photos), 1)
        lines = _wrap(self.text, max(20, n * thumbnail // 7))
        canvas = Image.new("RGB", (n * thumbnail, thumbnail + 16 + 14 * len(lines)), "white")
        for i, photo in enumerate(self.photos):
            try:
                with Image.open(photo.path) as im:
                    canvas.paste(im.convert("RGB").resize((thumbnail, thumbnail)), (i * thumbnail, 0))
            except (OSError, TypeError, ValueError):
                pass  # missing photo: leave the slot blank
        draw = ImageDraw.Draw(canvas)
        for j, line in enumerate(lines):
            draw.text((6, thumbnail + 6 + 14 * j), line, fill="black")
        return canvas

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


def _data_uri(path: Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            buffer = io.BytesIO()
            im.convert("RGB").save(buffer, format="JPEG", quality=90)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
