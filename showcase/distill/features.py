"""Feature look-up for Φ: CLIP features from a feature store, with missing sentences encoded on the fly."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch


def open_store(store: Any) -> Any:
    """A `FeatureStore` from a folder path, or `store` itself when it is one already."""
    if isinstance(store, (str, Path)):
        from showcase.encoders import FeatureStore

        return FeatureStore.open(store)
    return store


def encoder_for(store: Any) -> Any:
    """The CLIP encoder that wrote `store`, to encode the texts it lacks."""
    return store.load_encoder()


class FeatureLookup:
    """Text and photo features of one store; texts absent from it are encoded with the store's encoder.

    Attributes:
        encoded_texts: how many texts were encoded on the fly because the store lacked them.
    """

    def __init__(self, store: Any, encoder: Any = None) -> None:
        self.store = open_store(store)
        self._encoder = encoder
        self._extra: dict[str, torch.Tensor] = {}
        self.encoded_texts = 0

    @property
    def dim(self) -> int:
        return int(self.store.dim)

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            self._encoder = encoder_for(self.store)
        return self._encoder

    def texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Features of `texts` in order: ``(len(texts), D)``."""
        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.dim)
        missing = [t for t in dict.fromkeys(texts) if t not in self._extra and not self.store.has_text(t)]
        if missing:
            with torch.no_grad():
                encoded = torch.as_tensor(self.encoder.encode_texts(missing)).float().cpu()
            self._extra.update(zip(missing, encoded))
            self.encoded_texts += len(missing)
        stored = [t for t in dict.fromkeys(texts) if t not in self._extra]
        rows = dict(zip(stored, self.store.text_features(stored).float())) if stored else {}
        rows.update(self._extra)
        return torch.stack([rows[t] for t in texts])

    def photos(self, photo_ids: Sequence[str]) -> tuple[torch.Tensor, list[str]]:
        """Features of the photos present in the store, and their ids (missing photos are left out)."""
        present = [p for p in photo_ids if self.store.has_image(p)]
        if not present:
            return torch.zeros(0, self.dim), []
        return self.store.image_features(present).float(), present
