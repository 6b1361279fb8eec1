"""A Lightning callback that records the train/eval mode of every module at the start of each stage, for tests that
run `showcase fit` / `showcase test` through `showcase.cli.main` (pass it as
`--trainer.callbacks+={"class_path": "mode_probe.ModeProbe", "init_args": {"path": ...}}`)."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import torch


class ModeProbe(L.Callback):
    """Writes to `path` (JSON), at the first batch of each stage, the names of the modules in the wrong mode:
    `"train"` lists modules in eval mode, `"validate"` / `"test"` list modules in train mode. With
    `eval_before_fit`, it puts the whole module in eval mode when fitting starts, before the module's own hook.
    For a module with a `losses(batch)` method, it also records two training losses of the first batch (same
    batch, same weights): they differ when dropout runs."""

    def __init__(self, path: str, eval_before_fit: bool = False):
        self.path, self.eval_before_fit = Path(path), eval_before_fit
        self.record: dict = json.loads(self.path.read_text()) if self.path.exists() else {}

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.eval_before_fit:  # any builder that leaves modules in eval mode; runs before the module's own hook
            pl_module.eval()

    def _save(self) -> None:
        self.path.write_text(json.dumps(self.record, indent=2))

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "train" in self.record:
            return
        self.record["train"] = [name for name, m in pl_module.named_modules() if not m.training]
        if hasattr(pl_module, "losses"):
            with torch.random.fork_rng(), torch.no_grad():  # leaves the run's random stream untouched
                self.record["train_losses"] = [float(pl_module.losses(batch)["loss"]) for _ in range(2)]
        self._save()

    def _in_train_mode(self, stage: str, pl_module) -> None:
        if stage not in self.record:
            self.record[stage] = [name for name, m in pl_module.named_modules() if m.training]
            self._save()

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if not trainer.sanity_checking:
            self._in_train_mode("validate", pl_module)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._in_train_mode("test", pl_module)
