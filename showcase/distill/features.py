"""Feature look-up for Φ: moved to `showcase.inputs` (one look-up with the encoder fallback for every model)."""
from showcase.inputs import FeatureLookup, open_store

__all__ = ["FeatureLookup", "open_store"]
