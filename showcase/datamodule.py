"""A base for the package's LightningDataModules: train/val/test loaders from one `_loader(split, train)`, and the
seeded per-epoch sampler that makes resumed runs see the data in the same order as unbroken ones."""
from __future__ import annotations

from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler[int]):
    """Shuffles with a generator seeded by `(seed, epoch)`, so a resumed run sees the same order as an unbroken one.

    Lightning calls `set_epoch` at the start of every epoch.
    """

    def __init__(self, n: int, seed: int, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


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
