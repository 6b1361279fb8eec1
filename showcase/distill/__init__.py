"""Explanation distillation: the sentence–image classifier Φ, labelled pairs, `distill`, visual diversity.

Lightning pieces (:class:`ClassifierModule`, :class:`PairDataModule`) are imported lazily so that loading Φ
(e.g. for CLIP-Align) does not import Lightning.
"""
from __future__ import annotations

from typing import Any

from showcase.distill.model import ClassifierConfig, SentenceImageClassifier, load_classifier
from showcase.distill.pairs import (
    LabeledPair,
    aggregate_labels,
    pairs_from_world,
    read_pairs,
    sample_pairs,
    split_pairs,
    write_pairs,
)

_LAZY = {
    "ClassifierModule": "showcase.distill.module",
    "PairDataModule": "showcase.distill.datamodule",
    "distill": "showcase.distill.distillation",
    "DistillStats": "showcase.distill.distillation",
    "visual_diversity": "showcase.distill.diversity",
    "Diversity": "showcase.distill.diversity",
}

__all__ = [
    "ClassifierConfig",
    "SentenceImageClassifier",
    "load_classifier",
    "LabeledPair",
    "aggregate_labels",
    "pairs_from_world",
    "read_pairs",
    "sample_pairs",
    "split_pairs",
    "write_pairs",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'showcase.distill' has no attribute {name!r}")
