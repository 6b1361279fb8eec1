"""Rendering a `Showcase`: the self-contained HTML card and the PNG collage.

The card says who it is for and which business it is about (by name when the dataset knows it), shows the photos
in selection order with a readable rank ("2nd of 38"), the user's earlier review and photo closest to each photo,
the text, and for each sentence the photo it talks about. A cold-start card says so in a banner.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #1d1d1f;
       background: #fafafa; }
.card { max-width: %(width)spx; background: #fff; border: 1px solid #e3e3e3; border-radius: 14px;
        padding: 1.1rem 1.4rem 1.3rem; box-shadow: 0 2px 10px rgba(0,0,0,.06); }
h1 { font-size: 1.45rem; margin: 0 0 .15rem; } .meta { color: #666; font-size: .85rem; margin: 0 0 .8rem; }
.cold { background: #fff4d6; border: 1px solid #f0c64c; border-radius: 8px; padding: .55rem .8rem; margin: 0 0 .9rem;
        font-size: .92rem; }
.photos { display: flex; gap: 12px; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; width: %(thumb)spx; } img.main { border-radius: 8px; object-fit: cover; display: block; }
.badge { display: inline-block; min-width: 1.3em; text-align: center; border-radius: 1em; background: #1d1d1f;
         color: #fff; font-size: .75rem; font-weight: 600; padding: 0 .35em; margin-right: .3em; }
figcaption { font-size: .8rem; color: #444; margin-top: .35rem; line-height: 1.35; }
.rank { font-weight: 600; } .why { color: #666; } .why q { font-style: italic; }
.why img { width: 36px; height: 36px; border-radius: 4px; vertical-align: middle; object-fit: cover; }
.text { font-size: 1.12rem; line-height: 1.55; margin: 1rem 0 .6rem; }
.links { list-style: none; padding: 0; margin: 0; font-size: .85rem; color: #444; }
.links li { margin: .2rem 0; } .links .score { color: #888; }
.help { color: #888; font-size: .75rem; margin-top: .7rem; }
.notes { color: #8a5a00; font-size: .8rem; padding-left: 1.1rem; }
.missing { width: %(thumb)spx; height: %(thumb)spx; background: #eee; display: flex; align-items: center;
           justify-content: center; color: #999; border-radius: 8px; }
"""


def card_page(showcase, thumbnail: int = 220) -> str:
    """The whole HTML page of one card (see the module docstring)."""
    esc = html.escape
    title = _title(showcase)
    width = max(3, len(showcase.photos)) * (thumbnail + 12) + 40
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f"<title>{esc(title)} for {esc(showcase.user_id)}</title>\n"
            f"<style>{CSS % {'width': width, 'thumb': thumbnail}}</style></head>\n"
            f"<body>{card_fragment(showcase, thumbnail)}</body></html>\n")


def card_fragment(showcase, thumbnail: int = 220, photo_src=None) -> str:
    """The card as a `<div class="card">`, for embedding (the viewer of `showcase serve`).

    Args:
        photo_src: photo id -> image URL; default: the photo file inlined as a data URI.
    """
    esc = html.escape
    explanation = showcase.explanation
    src_of = photo_src or (lambda pid, path, size: _data_uri(path, size))
    number = {p.photo_id: i + 1 for i, p in enumerate(showcase.photos)}
    figures = []
    for i, photo in enumerate(showcase.photos, 1):
        src = src_of(photo.photo_id, photo.path, thumbnail)
        image = (f'<img class="main" src="{src}" alt="photo {i}: {esc(photo.photo_id)}" width="{thumbnail}" '
                 f'height="{thumbnail}">' if src
                 else f'<div class="missing">photo {esc(photo.photo_id)} unavailable</div>')
        caption = [f'<span class="badge">{i}</span>']
        reason = explanation.for_photo(photo.photo_id) if explanation is not None else None
        if reason is not None and reason.rank is not None:
            caption.append(f'<span class="rank" title="relevance {photo.relevance:.3f}">ranked {reason.rank_text} '
                           f"for you</span>")
        elif showcase.cold_start:
            caption.append(f'<span class="rank" title="group score {photo.relevance:.3f}">group pick</span>')
        else:
            caption.append(f'<span class="rank">relevance {photo.relevance:.3f}</span>')
        for match in (reason.matches if reason is not None else []):
            if match.kind == "review":
                caption.append(f'<br><span class="why">because you wrote <q>{esc(match.text)}</q> '
                               f"({_score_text(explanation.scorer, match.similarity).strip()})</span>")
            else:
                thumb = src_of(match.item_id, match.path, 72)
                pic = f'<img src="{thumb}" alt="your photo {esc(match.item_id)}">' if thumb else esc(match.item_id)
                caption.append(f'<br><span class="why">and posted {pic} (cosine {match.similarity:.2f})</span>')
        figures.append(f'<figure class="photo" data-photo-id="{esc(photo.photo_id)}">{image}'
                       f"<figcaption>{''.join(caption)}</figcaption></figure>")
    links = ""
    if explanation is not None and explanation.sentences and showcase.photos:
        items = "".join(
            f'<li data-photo-id="{esc(link.photo_id or "")}">“{esc(link.sentence)}” → '
            f'<span class="badge">{number.get(link.photo_id, "–")}</span>'
            f'<span class="score">{_score_text(explanation.scorer, link.score)}</span></li>'
            for link in explanation.sentences)
        links = (f'<ul class="links">{items}</ul><p class="help">Which photo each sentence talks about, scored by '
                 f"{esc(explanation.scorer_text)}. Ranks order the business's photos by the selector's relevance "
                 f"for this user; the selector also trades relevance for variety (DPP).</p>")
    cold = ""
    if showcase.cold_start:
        cold = ('<p class="cold" role="note"><b>New visitor:</b> we know nothing about this user yet, so these are '
                "the photos the business's reviewers as a group would pick, and the text is written from the photos "
                "alone.</p>")
    notes = [n for n in showcase.notes if not (showcase.cold_start and n.startswith("cold start"))]
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    name = explanation.business_name if explanation is not None else None
    return (f'<div class="card"><h1 class="business">{esc(_title(showcase))}</h1>'
            f'<p class="meta">for user <b class="user">{esc(showcase.user_id)}</b>'
            f"{f' · business id {esc(showcase.business_id)}' if name else ''}</p>{cold}"
            f'<div class="photos">{"".join(figures)}</div>'
            f'<p class="text">{esc(showcase.text)}</p>{links}'
            f"{f'<ul class=notes>{notes_html}</ul>' if notes_html else ''}</div>")


def _title(showcase) -> str:
    explanation = showcase.explanation
    name = explanation.business_name if explanation is not None else None
    return name or f"Business {showcase.business_id}"


def _score_text(scorer: str, score: float) -> str:
    return f" Φ {score:.0%}" if scorer == "classifier" else f" cosine {score:.2f}"


def _data_uri(path: Path | None, size: int | None = None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size:
                im.thumbnail((size * 2, size * 2))  # sharp on high-density screens, small in the page
            buffer = io.BytesIO()
            im.save(buffer, format="JPEG", quality=88)
    except OSError:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- PNG collage ------------------------------------------------------------------------------------------------
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    names = (("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf") if bold
             else ("DejaVuSans.ttf", "LiberationSans-Regular.ttf"))
    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def wrap_words(text: str, font, width: int) -> list[list[str]]:
    """Greedy word wrap by rendered width: lines of words, each line at most `width` pixels (a longer word alone)."""
    space = _space(font)
    lines: list[list[str]] = []
    line: list[str] = []
    used = 0.0
    for word in text.split():
        w = font.getlength(word)
        if line and used + space + w > width:
            lines.append(line)
            line, used = [], 0.0
        used += (space if line else 0) + w
        line.append(word)
    if line:
        lines.append(line)
    return lines or [[]]


def _space(font) -> float:
    # Pillow's built-in font draws a 2-pixel space, which runs words together ("isdeliciousand"): never less
    # than a third of the font's size between words.
    return max(font.getlength(" "), 0.33 * getattr(font, "size", 10))


def _draw_words(draw, xy: tuple[float, float], words: list[str], font, fill) -> None:
    x, y = xy
    space = _space(font)
    for word in words:
        draw.text((x, y), word, font=font, fill=fill)
        x += font.getlength(word) + space


def collage(showcase, thumbnail: int = 224):
    """A PIL image: header (business, user, cold start), numbered photos with their ranks, the wrapped text."""
    from PIL import Image, ImageDraw

    n = max(len(showcase.photos), 1)
    pad, gap = 16, 8
    width = max(n * thumbnail + (n - 1) * gap + 2 * pad, 560)
    title_font, small, body = _font(22, bold=True), _font(13), _font(16)
    explanation = showcase.explanation
    sub = f"for user {showcase.user_id}"
    if showcase.cold_start:
        sub += "  ·  new visitor: group picks, no history"
    lines = wrap_words(showcase.text, body, width - 2 * pad)
    header_h, label_h, line_h = 62, 22, 22
    height = header_h + thumbnail + label_h + 10 + line_h * len(lines) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, 0, width, header_h - 8), fill="#fff4d6" if showcase.cold_start else "#f3f3f5")
    _draw_words(draw, (pad, 8), _title(showcase).split(), title_font, "#1d1d1f")
    _draw_words(draw, (pad, 34), sub.split(), small, "#555")
    top = header_h
    for i, photo in enumerate(showcase.photos):
        x = pad + i * (thumbnail + gap)
        try:
            with Image.open(photo.path) as im:
                canvas.paste(im.convert("RGB").resize((thumbnail, thumbnail)), (x, top))
        except (OSError, TypeError, ValueError, AttributeError):
            draw.rectangle((x, top, x + thumbnail, top + thumbnail), fill="#eeeeee")  # missing photo
        reason = explanation.for_photo(photo.photo_id) if explanation is not None else None
        label = f"{i + 1}. " + (f"ranked {reason.rank_text}" if reason is not None and reason.rank is not None
                                else ("group pick" if showcase.cold_start else f"relevance {photo.relevance:.2f}"))
        _draw_words(draw, (x, top + thumbnail + 4), label.split(), small, "#333")
    y = top + thumbnail + label_h + 10
    for line in lines:
        _draw_words(draw, (pad, y), line, body, "black")
        y += line_h
    return canvas
