"""Inter-annotator agreement on yes/no pair labels: Cohen's κ (two annotators), Fleiss' κ (more), disagreements.

Skips are not labels: κ is computed over the pairs that every annotator compared labelled yes or no.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Mapping, Sequence

from annotation.labels import NO, SKIP, YES, PairKey, read_labels


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's κ of two raters' labels of the same items: (p_o − p_e) / (1 − p_e).

    Returns NaN when κ is undefined (no items, or both raters used one and the same label throughout, p_e = 1).

    Raises:
        ValueError: when the sequences differ in length.
    """
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} labels against {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return math.nan if p_e == 1 else (p_o - p_e) / (1 - p_e)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float:
    """Fleiss' κ from an items × categories table of how many raters put each item in each category.

    Every item must have the same number of raters n ≥ 2. Returns NaN when undefined (no items, or P̄_e = 1).

    Raises:
        ValueError: on rows with different rater totals or fewer than two raters.
    """
    if not counts:
        return math.nan
    n = sum(counts[0])
    if n < 2 or any(sum(row) != n for row in counts):
        raise ValueError("fleiss_kappa: every item needs the same number of raters (at least 2)")
    items = len(counts)
    p_bar = sum((sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts) / items
    totals = [sum(col) for col in zip(*counts)]
    p_e = sum((t / (items * n)) ** 2 for t in totals)
    return math.nan if p_e == 1 else (p_bar - p_e) / (1 - p_e)


@dataclass
class AgreementReport:
    """Agreement of several annotators.

    Attributes:
        annotators: names, in the order of the files.
        counts: per annotator, how many pairs they labelled yes, no and skip.
        n_common: pairs labelled yes/no by every annotator (the items κ is computed on).
        n_agree: of those, pairs on which every annotator gave the same label.
        kappa: Cohen's κ for two annotators, Fleiss' κ for more.
        method: "cohen" or "fleiss".
        pairwise: Cohen's κ of each pair of annotators over the pairs both labelled yes/no.
        disagreements: pairs labelled yes/no by at least two annotators with different labels, and their labels.
    """

    annotators: list[str]
    counts: dict[str, dict[str, int]]
    n_common: int
    n_agree: int
    kappa: float
    method: str
    pairwise: dict[tuple[str, str], float] = field(default_factory=dict)
    disagreements: list[tuple[PairKey, dict[str, int]]] = field(default_factory=list)

    def format(self, max_disagreements: int = 50) -> str:
        """A plain-text report."""
        lines = [f"annotators: {', '.join(self.annotators)}"]
        for name in self.annotators:
            c = self.counts[name]
            lines.append(f"  {name}: {c['yes']} yes, {c['no']} no, {c['skip']} skip")
        lines.append(f"pairs labelled yes/no by all: {self.n_common}, identical labels: {self.n_agree}"
                     + (f" ({self.n_agree / self.n_common:.1%})" if self.n_common else ""))
        method = "Cohen's" if self.method == "cohen" else "Fleiss'"
        lines.append(f"{method} kappa: {_fmt(self.kappa)}")
        if len(self.annotators) > 2:
            for (x, y), k in self.pairwise.items():
                lines.append(f"  Cohen's kappa {x} vs {y}: {_fmt(k)}")
        lines.append(f"disagreements: {len(self.disagreements)}")
        for key, labels in self.disagreements[:max_disagreements]:
            votes = ", ".join(f"{n}={'yes' if v == YES else 'no'}" for n, v in labels.items())
            lines.append(f"  [{key.review_id}] photo {key.photo_id}: {key.sentence!r} -> {votes}")
        if len(self.disagreements) > max_disagreements:
            lines.append(f"  ... {len(self.disagreements) - max_disagreements} more")
        return "\n".join(lines)


def _fmt(k: float) -> str:
    return "undefined (a single label used throughout)" if math.isnan(k) else f"{k:.4f}"


def agreement(labels: Mapping[str, Mapping[PairKey, int | str]]) -> AgreementReport:
    """Agreement of annotators given as `{annotator: {pair: 1 | 0 | "skip"}}` (at least two).

    Raises:
        ValueError: with fewer than two annotators.
    """
    names = list(labels)
    if len(names) < 2:
        raise ValueError("agreement needs the labels of at least two annotators")
    binary = {n: {k: v for k, v in labels[n].items() if v in (YES, NO)} for n in names}
    counts = {n: {"yes": sum(v == YES for v in labels[n].values()), "no": sum(v == NO for v in labels[n].values()),
                  "skip": sum(v == SKIP for v in labels[n].values())} for n in names}
    order = list(dict.fromkeys(k for n in names for k in labels[n]))  # first-seen order, for a stable report
    common = [k for k in order if all(k in binary[n] for n in names)]
    n_agree = sum(len({binary[n][k] for n in names}) == 1 for k in common)
    pairwise = {}
    for x, y in itertools.combinations(names, 2):
        both = [k for k in order if k in binary[x] and k in binary[y]]
        pairwise[(x, y)] = cohen_kappa([binary[x][k] for k in both], [binary[y][k] for k in both])
    if len(names) == 2:
        kappa, method = pairwise[(names[0], names[1])], "cohen"
    else:
        table = [[sum(binary[n][k] == c for n in names) for c in (YES, NO)] for k in common]
        kappa, method = fleiss_kappa(table), "fleiss"
    disagreements = []
    for k in order:
        votes = {n: binary[n][k] for n in names if k in binary[n]}
        if len(votes) >= 2 and len(set(votes.values())) > 1:
            disagreements.append((k, votes))
    return AgreementReport(names, counts, len(common), n_agree, kappa, method, pairwise, disagreements)


def agreement_from_files(paths: Sequence[str | Path]) -> AgreementReport:
    """`agreement` of label files, one per annotator (the annotator's name is read from the file).

    Raises:
        ValueError: fewer than two files, or two files of the same annotator.
    """
    if len(paths) < 2:
        raise ValueError("--agreement needs at least two label files (one per annotator)")
    labels: dict[str, dict[PairKey, int | str]] = {}
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"label file {path} not found")
        name, effective = read_labels(path)
        if name in labels:
            raise ValueError(f"{path}: annotator {name!r} appears in two label files; agreement compares "
                             "different annotators")
        labels[name] = effective
    return agreement(labels)
