"""A base for the package's LightningDataModules: train/val/test loaders from one `_loader(split, train)`."""
from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader


class SplitDataModule(L.LightningDataModule):
    """Subclasses implement `_loader(split, train)`; training shuffles, evaluation does not."""

    def _loader(self, split: str, train: bool) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)
