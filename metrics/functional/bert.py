"""BERT-Score (Zhang et al. 2020) through the ``bert-score`` package, with the model given by name or local folder."""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

from metrics.functional.text import Refs, normalize_refs


@lru_cache(maxsize=4)
def get_scorer(model_type: str, num_layers: Optional[int] = None, batch_size: int = 64,
               device: Optional[str] = None, idf: bool = False):
    """A cached ``bert_score.BERTScorer`` for ``model_type`` (a Hugging Face name or a local folder) using the
    hidden states of layer ``num_layers`` (required for models bert-score has no default layer for)."""
    from bert_score import BERTScorer

    try:
        return BERTScorer(model_type=model_type, num_layers=num_layers, batch_size=batch_size, device=device,
                          idf=idf)
    except KeyError as exc:
        raise ValueError(f"bert-score has no default layer for {model_type!r}: pass num_layers") from exc


def bert_score_samples(preds: Sequence[str], refs: Sequence[Refs], model_type: str,
                       num_layers: Optional[int] = None, batch_size: int = 64,
                       device: Optional[str] = None) -> List[Tuple[float, float, float]]:
    """Per-sample ``(precision, recall, F1)`` of greedy cosine matching of contextual token embeddings, no idf
    weighting, no baseline rescaling; with several references the best (by F1) is taken, as bert-score does."""
    groups = normalize_refs(preds, refs)
    if not preds:
        return []
    scorer = get_scorer(str(model_type), num_layers, batch_size, device)  # paths accepted
    p, r, f = scorer.score(list(preds), groups)
    return list(zip(p.tolist(), r.tolist(), f.tolist()))


def bert_score(preds: Sequence[str], refs: Sequence[Refs], model_type: str, num_layers: Optional[int] = None,
               batch_size: int = 64, device: Optional[str] = None) -> Dict[str, float]:
    """Corpus BERT-Score: ``{"precision", "recall", "f1"}`` averaged over samples (see :func:`bert_score_samples`)."""
    rows = bert_score_samples(preds, refs, model_type, num_layers, batch_size, device)
    n = max(len(rows), 1)
    return {name: sum(r[i] for r in rows) / n for i, name in enumerate(("precision", "recall", "f1"))}
