"""What every `showcase fit` run carries besides Lightning's defaults: exact resume, and the encoder it trained on.

* `ResumeState` saves the random number generators' states (torch, numpy, random) and the feature store's encoder
  fingerprint into every checkpoint, and restores the generators on resume, so a stopped run resumed from
  `last.ckpt` ends with the same weights as an unbroken one (with the package's seeded samplers).
* `LastCheckpoint` writes `checkpoints/last.ckpt` after every epoch for every config (`showcase fit` adds it;
  Lightning's own `save_last` only writes when the monitored metric improved).
* `as_config`, `datamodule_of` and `check_width` are what the three Lightning modules share to build their model
  from its config dataclass (the CLI links the config's width to the feature store, see `showcase.cli.links`).
* `find_last_checkpoint(folder)` resolves `--ckpt_path last`: the newest `last.ckpt` of any earlier run (any
  `version_N`) under the run's output folder. Lightning alone looks only in the new run's own folder.
"""
from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

FINGERPRINT_KEY = "encoder_fingerprint"
RNG_KEY = "rng_states"


def as_config(cls: type, value: Any) -> Any:
    """A fresh `cls` instance from None (the defaults), a dict of fields (a checkpoint's hparams) or an instance
    (copied, so a shared default is never mutated)."""
    if value is None:
        return cls()
    if isinstance(value, dict):
        return cls(**value)
    return dataclasses.replace(value)


def datamodule_of(module: L.LightningModule) -> Any:
    """The datamodule of the trainer the module is attached to (None outside a trainer)."""
    return getattr(module.trainer, "datamodule", None) if module._trainer is not None else None


def check_width(field: str, width: int, datamodule: Any, attribute: str = "feature_dim") -> None:
    """Refuse a model whose input width differs from the datamodule's feature store, naming the config field."""
    store_width = getattr(datamodule, attribute, None)
    if store_width is not None and int(store_width) != int(width):
        raise ValueError(f"{field} = {width} but the feature store is {store_width} wide: set {field} to "
                         f"{store_width} (`showcase fit` links it from --data.store)")


def rng_states() -> dict[str, Any]:
    """The generators' states in types `torch.load(weights_only=True)` accepts."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": [version, list(state), gauss],
              "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                        float(cached)]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    version, state, gauss = states["python"]
    random.setstate((version, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class ResumeState(L.Callback):
    """Save RNG states and the store's encoder fingerprint in checkpoints; restore the RNG states on resume."""

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        from showcase.pretrained import training_extras

        checkpoint[RNG_KEY] = rng_states()
        fingerprint = training_extras(getattr(trainer, "datamodule", None)).get("encoder")
        if fingerprint:
            checkpoint[FINGERPRINT_KEY] = fingerprint

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if RNG_KEY in checkpoint and trainer.state.fn == "fit":
            set_rng_states(checkpoint[RNG_KEY])


class LastCheckpoint(ModelCheckpoint):
    """`last.ckpt`, rewritten after every epoch (its own type, so `configure_callbacks` never replaces it)."""

    def __init__(self) -> None:
        super().__init__(filename="last", monitor=None, save_top_k=1, enable_version_counter=False)


def best_checkpoint(trainer: L.Trainer) -> str:
    """The best checkpoint of the run's monitoring checkpoint callback ("" when there is none)."""
    for callback in trainer.checkpoint_callbacks:
        if not isinstance(callback, LastCheckpoint) and getattr(callback, "best_model_path", ""):
            return callback.best_model_path
    return ""


def find_last_checkpoint(*folders: str | Path | None) -> Path | None:
    """The newest `last*.ckpt` under any of `folders` (searched recursively), or None."""
    found = [p for folder in folders if folder and Path(folder).is_dir()
             for p in Path(folder).rglob("last*.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def checkpoint_fingerprint(path: str | Path) -> dict[str, Any] | None:
    """The encoder fingerprint a checkpoint recorded (None for checkpoints written before fingerprints)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint.get(FINGERPRINT_KEY)


def gather_in_order(records: list[dict[str, Any]], position: dict[str, int] | None = None,
                    key: str = "id") -> list[dict[str, Any]]:
    """Every rank's records, once each, in input order (`position[record[key]]`, else first seen).

    Under DDP each rank holds its share (and `DistributedSampler` repeats a few examples to even the shares);
    outside a process group the records come back as they are, deduplicated and ordered the same way.
    """
    import torch.distributed as dist

    shares = [records]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        shares = [None] * dist.get_world_size()
        dist.all_gather_object(shares, records)
    unique: dict[Any, dict[str, Any]] = {}
    for share in shares:
        for record in share:
            unique.setdefault(record[key], record)
    if position is None:
        return list(unique.values())
    return sorted(unique.values(), key=lambda r: position.get(r[key], len(position)))
