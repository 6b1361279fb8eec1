"""Stateful ranking metrics for image selection and photo ranking (definitions in
:mod:`metrics.functional.ranking`). All are macro averages over samples, summed over DDP ranks."""
from __future__ import annotations

from typing import Any

from metrics.base import MeanMetric
from metrics.functional.ranking import (
    _best_rank,
    _check,
    div_at_k,
    div_at_k_samples,
    f1_at_k,
    percentile_rank,
    precision_at_k,
    precision_recall_f1_samples,
    recall_at_k,
    top_n_accuracy,
)

__all__ = ["PrecisionAtK", "RecallAtK", "F1AtK", "DivAtK", "TopNAccuracy", "PercentileRank", "precision_at_k",
           "recall_at_k", "f1_at_k", "div_at_k", "top_n_accuracy", "percentile_rank"]


class _AtK(MeanMetric):
    _index = 0

    def __init__(self, k: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.k = k

    def _scores(self, selected, targets):
        return [s[self._index] for s in precision_recall_f1_samples(selected, targets, self.k)]


class PrecisionAtK(_AtK):
    """Mean P@K; ``update(selected: list[list[id]], targets: list[set[id]])``."""

    _index = 0


class RecallAtK(_AtK):
    """Mean R@K; ``update(selected, targets)``."""

    _index = 1


class F1AtK(_AtK):
    """Mean per-sample F1@K; ``update(selected, targets)``."""

    _index = 2


class DivAtK(MeanMetric):
    """Mean truncated div@K (Eq. 13); ``update(features: list of (n_k, d) tensors in selection order)``."""

    def __init__(self, k: int = 3, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.k = k

    def _scores(self, features):
        return div_at_k_samples(features, self.k)


class TopNAccuracy(MeanMetric):
    """ELVis top-n accuracy; ``update(ranked: list of full rankings, targets: list[set])``."""

    def __init__(self, n: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n

    def _scores(self, ranked, targets):
        _check(ranked, targets)
        return [float(_best_rank(r, set(t), i) < self.n) for i, (r, t) in enumerate(zip(ranked, targets))]


class PercentileRank(MeanMetric):
    """ELVis percentile rank (lower is better); ``update(ranked, targets)``."""

    def _scores(self, ranked, targets):
        return [percentile_rank([r], [t]) for r, t in zip(ranked, targets)]
