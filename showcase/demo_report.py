"""The demo's report page (`runs/demo/index.html`): what ran and how long, the paper's tables, Fig. 6, the cards.

Everything it shows is read from what the demo's steps left on disk, so the page can be rebuilt without
rerunning anything: `.steps/*.done` (timings), `models/*/run/test_metrics.json`, `text_metrics.json`,
`selection_rows.json`, `figures/*.png` and `showcases.json`.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from showcase.utils import atomic_write_text

# Table 2's columns: (key in text_metrics.json, header, unit, how to turn the stored percent into the shown value)
TEXT_COLUMNS = [
    ("bleu1", "BLEU-1", "%", 1.0), ("bleu4", "BLEU-4", "%", 1.0), ("meteor", "METEOR", "%", 1.0),
    ("nist", "NIST", "score", 0.01), ("distinct1", "Distinct-1", "%", 1.0), ("distinct2", "Distinct-2", "%", 1.0),
    ("clip_align", "CLIP-Align", "%", 1.0), ("clip_score", "CLIP-Score", "100·cos", 1.0),
]
SELECTION_COLUMNS = [("Prec@3", "Prec@3"), ("Recall@3", "Recall@3"), ("F1@3", "F1@3"), ("Div@3", "Div@3")]

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d1d1f; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5rem 2rem 3rem; }
h1 { font-size: 1.7rem; margin: .2rem 0 .3rem; } h2 { font-size: 1.2rem; margin: 2rem 0 .5rem; }
.lead { color: #555; margin: 0 0 1rem; } .small { color: #666; font-size: .85rem; }
table { border-collapse: collapse; background: #fff; font-size: .9rem; margin: .3rem 0; }
th, td { padding: .35rem .7rem; border-bottom: 1px solid #e6e6e6; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f1f1f4; font-weight: 600; }
th .unit { display: block; font-weight: 400; color: #777; font-size: .75rem; }
tr.gt td { color: #666; font-style: italic; } tr.ours td { font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 14px; }
.thumb { background: #fff; border: 1px solid #e3e3e3; border-radius: 10px; padding: .5rem; text-decoration: none;
         color: inherit; display: block; } .thumb:hover { box-shadow: 0 2px 10px rgba(0,0,0,.1); }
.thumb img { width: 100%; border-radius: 6px; display: block; } .thumb span { font-size: .85rem; color: #444; }
figure { margin: 0; background: #fff; border: 1px solid #e3e3e3; border-radius: 10px; padding: .5rem; }
figure img { max-width: 100%; } figcaption { font-size: .85rem; color: #555; }
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 14px; }
code { background: #f1f1f4; padding: .05rem .3rem; border-radius: 4px; font-size: .85em; }
"""


def _read(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def steps_table(out: Path, descriptions: dict[str, str]) -> tuple[str, float, float]:
    """Rows of the steps that ran (from their markers), and the total wall and CPU seconds."""
    rows, wall, cpu = [], 0.0, 0.0
    for name, description in descriptions.items():
        marker = _read(out / ".steps" / f"{name}.done")
        seconds, cpu_seconds = marker.get("seconds"), marker.get("cpu_seconds")
        wall += seconds or 0.0
        cpu += cpu_seconds or 0.0
        rows.append(f"<tr><td>{html.escape(name)}</td><td style='text-align:left'>{html.escape(description)}</td>"
                    f"<td>{_fmt(seconds, 1)}</td><td>{_fmt(cpu_seconds, 1)}</td></tr>")
    table = ("<table><thead><tr><th>step</th><th style='text-align:left'>what it did</th><th>wall<span class=unit>s"
             "</span></th><th>CPU<span class=unit>s</span></th></tr></thead><tbody>" + "".join(rows) +
             f"<tr><td><b>total</b></td><td></td><td><b>{wall:.1f}</b></td><td><b>{cpu:.1f}</b></td></tr>"
             "</tbody></table>")
    return table, wall, cpu


def text_table(text_metrics: dict[str, dict[str, float]]) -> str:
    """Table 2: one row per system, the columns of the paper with their units."""
    present = [c for c in TEXT_COLUMNS if any(c[0] in row for row in text_metrics.values())]
    head = "".join(f"<th>{h}<span class=unit>{u}</span></th>" for _, h, u, _ in present)
    rows = []
    labels = {"generated": ("PC²L (tiny, this demo)", "ours"), "ground truth": ("GT (reference vs itself)", "gt")}
    for key, values in text_metrics.items():
        label, css = labels.get(key, (key, ""))
        cells = "".join(f"<td>{_fmt(values[k] * scale if k in values else None)}</td>" for k, _, _, scale in present)
        rows.append(f"<tr class='{css}'><td>{html.escape(label)}</td>{cells}</tr>")
    return f"<table><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def selection_table(rows: dict[str, dict[str, float]]) -> str:
    """Table 3: Prec/Recall/F1/Div@3 in percent, one row per selector."""
    head = "".join(f"<th>{h}<span class=unit>%</span></th>" for _, h in SELECTION_COLUMNS)
    body = []
    for name, metrics in rows.items():
        cells = "".join(f"<td>{_fmt(100 * metrics[k] if k in metrics else None)}</td>" for k, _ in SELECTION_COLUMNS)
        body.append(f"<tr class='{'ours' if 'img+text' in name else ''}'><td>{html.escape(name)}</td>{cells}</tr>")
    return f"<table><thead><tr><th>method</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _embed_png(path: Path) -> str | None:
    if not path.is_file():
        return None
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_report(out: Path, descriptions: dict[str, str], larger: str) -> Path:
    """Write `out/index.html` from what the demo's steps left in `out`; returns its path.

    Args:
        out: the demo folder.
        descriptions: step name -> what it does, in run order.
        larger: the command that runs the larger version of the demo.
    """
    esc = html.escape
    steps, wall, cpu = steps_table(out, descriptions)
    models = out / "models"
    classifier = _read(models / "classifier" / "test" / "test_metrics.json")
    selection = _read(out / "selection_rows.json")
    if not selection:
        own = {k.split("/", 1)[-1]: v for k, v in _read(models / "selector" / "test" / "test_metrics.json").items()}
        selection = {"img+text DPP (ours)": own} if own else {}
    text_metrics = _read(out / "text_metrics.json")
    pages = json.loads((out / "showcases.json").read_text()) if (out / "showcases.json").exists() else []
    figures = []
    for name, caption in (("length_distribution.png", "Length of the generated texts and of the references (Fig. 6a)"),
                          ("keyword_coverage.png", "Keyword coverage of the generated texts (Fig. 6b)")):
        src = _embed_png(out / "figures" / name)
        if src:
            figures.append(f'<figure><img src="{src}" alt="{esc(caption)}">'
                           f'<figcaption>{esc(caption)}</figcaption></figure>')
    thumbs = []
    for page in pages:
        href, user, business = page[0], page[1], page[2]
        title = page[3] if len(page) > 3 and page[3] else f"business {business}"
        png = str(Path(href).with_suffix(".png"))
        img = f'<img src="{esc(png)}" alt="card for {esc(user)} at {esc(title)}">' if (out / png).is_file() else ""
        thumbs.append(f'<a class="thumb" href="{esc(href)}">{img}<span><b>{esc(title)}</b> for user {esc(user)}'
                      f"</span></a>")
    auc = classifier.get("test/auc")
    f1 = classifier.get("test/f1")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>showcase demo report</title>
<style>{CSS}</style></head><body><main>
<h1>Personalized showcases on the test world</h1>
<p class="lead">The whole pipeline of the paper, trained from scratch on the built-in test world (rendered dishes,
reviews that name them) with tiny models on CPU: {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU.
The scores below measure tiny models on a toy world; they are not comparable with the paper's figures.</p>

<h2>Showcases</h2>
<p class="small">Each card shows the photos chosen for the user, their rank among the business's photos, the user's
earlier review and photo closest to each photo, the generated text, and which photo each sentence talks about.</p>
<div class="grid">{''.join(thumbs) or '<p>no showcase written</p>'}</div>

<h2>Table 2 · Generated text</h2>
{text_table(text_metrics) if text_metrics else '<p>text metrics did not run</p>'}
<p class="small">BLEU, METEOR, Distinct and CLIP-Align in percent; NIST is a score (information-weighted n-gram
matches, 0 to about 10 here), not a percent; CLIP-Score is 100 × the CLIP cosine of text and photos.
The <b>GT</b> row scores the references against themselves: BLEU is 100 by construction and its NIST, Distinct and
CLIP figures are the ceiling a generator could reach on this test split. BLEU and NIST tokenise with sacrebleu's
13a tokenizer, case kept; METEOR lowercases; Distinct counts distinct n-grams over the whole corpus.</p>

<h2>Table 3 · Image-set selection (K = 3)</h2>
{selection_table(selection) if selection else '<p>selection metrics did not run</p>'}
<p class="small">Precision, recall and F1 of the 3 chosen photos against the photos the user actually posted;
Div@3 is the mean pairwise CLIP distance of the chosen photos (higher is more varied).
Sentence–photo classifier Φ on its test pairs: AUC {_fmt(auc, 3)}, F1 {_fmt(f1, 3)}.</p>

<h2>Fig. 6 · Length and keywords</h2>
<div class="figs">{''.join(figures) or '<p>no plots (matplotlib missing?)</p>'}</div>

<h2>What ran</h2>
{steps}
<p class="small">Steps marked done are skipped on a second run (times then show the first run). The larger version:
<code>{esc(larger)}</code>. Serve the trained pipeline in a browser: <code>showcase serve --pipeline
{esc(str(out / 'pipeline'))}</code>.</p>
</main></body></html>
"""
    atomic_write_text(out / "index.html", page)
    return out / "index.html"
