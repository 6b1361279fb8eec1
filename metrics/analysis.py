"""Fig. 6 analyses as stateful metrics, and their plots (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from metrics.base import Metric
from metrics.functional.analysis import DEFAULT_EDGES, DEFAULT_POS, keyword_coverage, length_distribution


class LengthDistribution(Metric):
    """Share of texts per length bin (see :func:`metrics.functional.length_distribution`); ``update(texts)``."""

    def __init__(self, edges: Sequence[int] = DEFAULT_EDGES, tokenize: str = "whitespace", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.edges, self.tokenize = tuple(edges), tokenize
        self.add_state("texts", [], "cat")

    def update(self, texts: Sequence[str]) -> None:
        self.texts.extend(texts)

    def _compute(self) -> Dict[str, float]:
        return length_distribution(self.texts, self.edges, self.tokenize)


class KeywordCoverage(Metric):
    """Keyword coverage per POS tag (see :func:`metrics.functional.keyword_coverage`); ``update(preds, refs)``."""

    def __init__(self, pos: Sequence[str] = DEFAULT_POS, spacy_model: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pos, self.spacy_model = tuple(pos), spacy_model
        self.add_state("preds", [], "cat")
        self.add_state("refs", [], "cat")

    def update(self, preds: Sequence[str], refs: Sequence[Any]) -> None:
        if len(preds) != len(refs):
            raise ValueError(f"got {len(preds)} predictions but {len(refs)} reference entries")
        self.preds.extend(preds)
        self.refs.extend(refs)

    def _compute(self) -> Dict[str, float]:
        return keyword_coverage(self.preds, self.refs, self.pos, spacy_model=self.spacy_model)


def _bar_plot(series: Mapping[str, Mapping[str, float]], path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(next(iter(series.values())).keys())
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for k, (name, values) in enumerate(series.items()):
        ax.bar([i + k * width for i in range(len(labels))], [100 * values[lb] for lb in labels], width, label=name)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))], labels)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_length_distribution(series: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Fig. 6a: one bar series per label (e.g. ``{"generated": ..., "ground truth": ...}``), written as PNG."""
    return _bar_plot(series, Path(path), "length (words)", "share of texts (%)", "Length distribution")


def plot_keyword_coverage(series: Mapping[str, Mapping[str, float]], path: Path) -> Path:
    """Fig. 6b: keyword coverage per POS tag, one bar series per label, written as PNG."""
    return _bar_plot(series, Path(path), "part of speech", "coverage (%)", "Keyword coverage")
