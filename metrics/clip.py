"""Stateful CLIP-Score and CLIP-Align (definitions in :mod:`metrics.functional.clip`)."""
from __future__ import annotations

from typing import Any, Optional

from metrics.base import MeanMetric
from metrics.functional.clip import Classifier, clip_align_samples, clip_score_samples


class CLIPScore(MeanMetric):
    """Mean per-sample CLIP-Score; ``variant`` ``"hessel"`` (2.5 * max(cos, 0), "A photo depicts " prefix) or
    ``"cosine"`` (plain mean cosine). ``update(texts, images)``; ``images[k]`` is one image or a list."""

    def __init__(self, encoder: Any, variant: str = "hessel", prefix: Optional[str] = None, w: float = 2.5,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder, self.variant, self.prefix, self.w = encoder, variant, prefix, w

    def _scores(self, texts, images):
        return clip_score_samples(texts, images, self.encoder, self.variant, self.prefix, self.w)


class CLIPAlign(MeanMetric):
    """Mean per-sample CLIP-Align (Eq. 12) with classifier Φ (``None``: cosine). ``update(texts, images)``."""

    def __init__(self, encoder: Any, classifier: Optional[Classifier] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoder, self.classifier = encoder, classifier

    def _scores(self, texts, images):
        return clip_align_samples(texts, images, self.encoder, self.classifier)
