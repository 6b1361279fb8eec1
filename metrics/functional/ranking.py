"""Ranking metrics for image selection (Prec/Recall/F1/Div@K of Personalized Showcases, Table 3) and photo ranking
(top-n accuracy and percentile rank of ELVis).

Every function averages a per-sample value over samples (macro average); the ``*_samples`` functions return the
per-sample values. ``selected[k]`` is the ordered list of chosen item ids (str or int) of sample ``k``,
``targets[k]`` the set of relevant ids.
"""
from __future__ import annotations

from typing import Hashable, List, Sequence, Set

import torch
import torch.nn.functional as F


def _check(selected: Sequence[Sequence[Hashable]], targets: Sequence[Set[Hashable]]) -> None:
    if len(selected) != len(targets):
        raise ValueError(f"got {len(selected)} selections but {len(targets)} target sets")


def _mean(values: List[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def precision_recall_f1_samples(selected: Sequence[Sequence[Hashable]], targets: Sequence[Set[Hashable]],
                                k: int = 3) -> List[tuple]:
    """Per sample ``(P@K, R@K, F1@K)``: hits = |top-K of selected ∩ targets|; P = hits / K (K even when fewer
    were selected), R = hits / |targets| (0 when there is no target), F1 their harmonic mean (0 when both 0)."""
    _check(selected, targets)
    out = []
    for sel, tgt in zip(selected, targets):
        tgt = set(tgt)
        hits = len(set(list(sel)[:k]) & tgt)
        p = hits / k
        r = hits / len(tgt) if tgt else 0.0
        out.append((p, r, 2 * p * r / (p + r) if p + r else 0.0))
    return out


def precision_at_k(selected, targets, k: int = 3) -> float:
    """Mean P@K (see :func:`precision_recall_f1_samples`)."""
    return _mean([s[0] for s in precision_recall_f1_samples(selected, targets, k)])


def recall_at_k(selected, targets, k: int = 3) -> float:
    """Mean R@K (see :func:`precision_recall_f1_samples`)."""
    return _mean([s[1] for s in precision_recall_f1_samples(selected, targets, k)])


def f1_at_k(selected, targets, k: int = 3) -> float:
    """Mean of the per-sample F1@K (not the F1 of the mean P and R)."""
    return _mean([s[2] for s in precision_recall_f1_samples(selected, targets, k)])


def div_at_k_samples(features: Sequence[torch.Tensor], k: int = 3) -> List[float]:
    """Per-sample truncated div@K (Eq. 13): the mean cosine dissimilarity ``1 - cos`` over all pairs of the first K
    selected items, i.e. the pair sum / (K'(K'-1)/2) with K' = min(K, n). Samples with fewer than 2 items are left
    out (no pair)."""
    out = []
    for f in features:
        f = F.normalize(torch.as_tensor(f).float()[:k], dim=-1)  # (K', d)
        n = f.shape[0]
        if n < 2:
            continue
        iu = torch.triu_indices(n, n, offset=1)
        out.append((1 - (f @ f.T)[iu[0], iu[1]]).mean().item())
    return out


def div_at_k(features: Sequence[torch.Tensor], k: int = 3) -> float:
    """Mean div@K over samples (see :func:`div_at_k_samples`); ``features[k]`` is ``(n_k, d)`` in selection order."""
    return _mean(div_at_k_samples(features, k))


def _best_rank(ranked: Sequence[Hashable], tgt: Set[Hashable], i: int) -> int:
    for r, item in enumerate(ranked):
        if item in tgt:
            return r
    raise ValueError(f"sample {i}: no target item is among the {len(ranked)} ranked candidates")


def top_n_accuracy(ranked: Sequence[Sequence[Hashable]], targets: Sequence[Set[Hashable]], n: int = 10) -> float:
    """ELVis top-n accuracy: the share of samples whose best-ranked target is within the first ``n`` candidates.
    ``ranked[k]`` ranks all candidates of sample k (best first); a target missing from it is an error."""
    _check(ranked, targets)
    return _mean([float(_best_rank(r, set(t), i) < n) for i, (r, t) in enumerate(zip(ranked, targets))])


def percentile_rank(ranked: Sequence[Sequence[Hashable]], targets: Sequence[Set[Hashable]]) -> float:
    """ELVis percentile rank: the mean over samples of ``(r - 1) / (N - 1)`` where ``r`` is the 1-based rank of the
    best-ranked target among the N candidates (0 = ranked first, 1 = last, about 0.5 for a random ranker; 0 when
    N = 1). Lower is better."""
    _check(ranked, targets)
    out = []
    for i, (r, t) in enumerate(zip(ranked, targets)):
        best = _best_rank(r, set(t), i)
        out.append(best / (len(r) - 1) if len(r) > 1 else 0.0)
    return _mean(out)
