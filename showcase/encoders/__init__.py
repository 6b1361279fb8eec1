"""CLIP encoders (`load_clip`, tiny `showcase-tiny` config) and the on-disk feature store (`FeatureStore`).

`extract_features` (Lightning `predict`) is imported lazily: reading a store needs neither Lightning nor open_clip.
"""
from showcase.encoders.clip import TINY_MODEL, ClipEncoder, load_clip, load_clip_from_spec
from showcase.encoders.store import FeatureStore

__all__ = ["TINY_MODEL", "ClipEncoder", "FeatureStore", "load_clip", "load_clip_from_spec", "extract_features",
           "ExtractionReport"]


def __getattr__(name: str):
    if name in ("extract_features", "ExtractionReport"):
        from showcase.encoders import extract

        return getattr(extract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
