"""Personalized image-set selection: a learned DPP with fast greedy MAP inference, and its baselines.

Plain modules (`DPPSelector`, `RandomSelector`, `CentroidSelector`, `AuthorshipSelector`) work on padded batches of
CLIP features; `SelectionModule` / `SelectionDataModule` train and evaluate them with Lightning; `select_photos` is
the inference entry point used by the API.
"""
from showcase.selection.dpp import build_kernel, dpp_log_likelihood, greedy_map
from showcase.selection.inference import Selection, select_photos
from showcase.selection.models import (
    AuthorshipConfig,
    AuthorshipSelector,
    CentroidConfig,
    CentroidSelector,
    DPPSelector,
    DPPSelectorConfig,
    FeatureNorm,
    RandomConfig,
    RandomSelector,
    Selector,
    build_selector,
    load_selector,
    tower_widths,
)
from showcase.selection.profile import SelectionBatch, collate_requests, profile_features

__all__ = [
    "AuthorshipConfig", "AuthorshipSelector", "CentroidConfig", "CentroidSelector", "DPPSelector",
    "DPPSelectorConfig", "FeatureNorm", "RandomConfig", "RandomSelector", "Selection", "SelectionBatch", "Selector",
    "build_kernel", "build_selector", "collate_requests", "dpp_log_likelihood", "greedy_map", "load_selector",
    "profile_features", "select_photos", "tower_widths",
]


def __getattr__(name: str):
    # Lightning pieces are imported lazily so `import showcase.selection` stays light.
    if name in ("SelectionModule", "SelectionMetrics", "format_table"):
        from showcase.selection import module

        return getattr(module, name)
    if name in ("SelectionDataModule", "build_examples"):
        from showcase.selection import data

        return getattr(data, name)
    raise AttributeError(f"module 'showcase.selection' has no attribute {name!r}")
