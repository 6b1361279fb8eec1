"""Binary-classification figures for Φ: ROC AUC, F1 at a threshold, and the max-F1 threshold."""
from __future__ import annotations

import torch


def _check(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scores, labels = scores.detach().flatten().double().cpu(), labels.detach().flatten().cpu()
    if scores.shape != labels.shape:
        raise ValueError(f"scores and labels differ in size: {scores.numel()} vs {labels.numel()}")
    return scores, labels.bool()


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Area under the ROC curve (Mann–Whitney U; tied scores count one half). NaN when one class is absent."""
    scores, labels = _check(scores, labels)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.float64)
    # average the ranks of ties
    unique, inverse, counts = torch.unique(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    mean_rank = ends - (counts.double() - 1) / 2
    ranks[order] = mean_rank[inverse]
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def f1_at(scores: torch.Tensor, labels: torch.Tensor, threshold: float) -> float:
    """F1 of the decisions ``scores >= threshold``."""
    scores, labels = _check(scores, labels)
    pred = scores >= threshold
    tp = int((pred & labels).sum())
    denom = int(pred.sum()) + int(labels.sum())
    return 2 * tp / denom if denom else 0.0


def best_f1_threshold(scores: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """The threshold maximising F1 of ``scores >= threshold``, and that F1.

    The threshold is placed midway between the chosen score and the next lower one, so it generalises better than
    the score itself. Returns ``(0.5, 0.0)`` when there is no positive label.
    """
    scores, labels = _check(scores, labels)
    n_pos = int(labels.sum())
    if n_pos == 0 or scores.numel() == 0:
        return 0.5, 0.0
    order = torch.argsort(scores, descending=True)
    s, y = scores[order], labels[order].double()
    tp = torch.cumsum(y, 0)
    predicted = torch.arange(1, s.numel() + 1, dtype=torch.float64)
    f1 = 2 * tp / (predicted + n_pos)
    # only cut between distinct scores: the last index of each run of ties
    last_of_tie = torch.ones_like(s, dtype=torch.bool)
    last_of_tie[:-1] = s[:-1] != s[1:]
    f1 = torch.where(last_of_tie, f1, torch.full_like(f1, -1.0))
    k = int(torch.argmax(f1))
    lower = float(s[k + 1]) if k + 1 < s.numel() else max(float(s[k]) - 1e-6, 0.0)
    return (float(s[k]) + lower) / 2, float(f1[k])
