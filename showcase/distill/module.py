"""LightningModule training Φ with BCE; logs AUC and F1 (at the threshold chosen on validation) on val and test."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from showcase.distill.model import ClassifierConfig, SentenceImageClassifier
from showcase.distill.scores import best_f1_threshold, f1_at, roc_auc
from showcase.training import as_config, check_width, datamodule_of

DEFAULT_CONFIG = ClassifierConfig()  # never mutated: `as_config` copies it


class ClassifierModule(L.LightningModule):
    """Trains :class:`SentenceImageClassifier` on labelled pairs (batches of ``(text, image, label)``).

    After each validation epoch the max-F1 threshold is chosen on validation and stored in the model's config;
    the weights and threshold of the epoch with the best validation AUC are kept for :meth:`export`.

    Args:
        classifier: Φ's architecture (:class:`ClassifierConfig`: ``head`` "match" or the paper's "concat", ``hidden``,
            ``dropout``); ``dim`` must equal the feature store's width (`showcase fit` links it from ``--data.store``).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
    """

    def __init__(self, classifier: ClassifierConfig = DEFAULT_CONFIG, lr: float = 3e-3,
                 weight_decay: float = 1e-2) -> None:
        super().__init__()
        config = as_config(ClassifierConfig, classifier)
        self.save_hyperparameters()
        self.hparams["classifier"] = dataclasses.asdict(config)  # a plain dict: checkpoints load with weights_only
        self.model = SentenceImageClassifier(config)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.best: dict[str, Any] | None = None

    def setup(self, stage: str) -> None:
        check_width("classifier.dim", self.model.config.dim, datamodule_of(self), "dim")

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Probabilities of all pairs: ``text (M, D)``, ``image (N, D)`` -> ``(M, N)``."""
        return self.model(text, image)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_fit_start(self) -> None:
        # Lightning keeps each module's mode when fitting starts: a part loaded or built in eval mode (a pretrained
        # decoder, an exported folder, a frozen copy) would train with its dropout off. Validation and test still
        # switch to eval mode and back.
        self.train()

    # --- steps ----------------------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        text, image, label = batch  # (B, D), (B, D), (B,)
        loss = F.binary_cross_entropy_with_logits(self.model.pair_logits(text, image), label.float())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(label))
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, ...], stage: str) -> None:
        text, image, label = batch
        logits = self.model.pair_logits(text, image)  # (B,)
        loss = F.binary_cross_entropy_with_logits(logits, label.float())
        self.log(f"{stage}/loss", loss, batch_size=len(label))
        self._outputs.append((torch.sigmoid(logits).detach().cpu(), label.detach().cpu()))

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def _collected(self) -> tuple[torch.Tensor, torch.Tensor]:
        if not self._outputs:
            return torch.zeros(0), torch.zeros(0)
        probs, labels = (torch.cat(x) for x in zip(*self._outputs))
        self._outputs = []
        return probs, labels

    def on_validation_epoch_end(self) -> None:
        probs, labels = self._collected()
        auc = roc_auc(probs, labels)
        threshold, f1 = best_f1_threshold(probs, labels)
        self.log_dict({"val/auc": auc, "val/f1": f1, "val/threshold": threshold}, prog_bar=True)
        if self.trainer.sanity_checking:
            return
        self.model.config.threshold = threshold
        score = auc if auc == auc else -1.0  # NaN (one class) ranks last
        if self.best is None or score >= self.best["val_auc"]:
            state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.best = {"val_auc": score, "val_f1": f1, "threshold": threshold, "state": state}

    def on_test_epoch_end(self) -> None:
        probs, labels = self._collected()
        threshold = self.model.config.threshold
        self.log_dict({"test/auc": roc_auc(probs, labels), "test/f1": f1_at(probs, labels, threshold)})

    # --- checkpoints and export -----------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["phi_threshold"] = self.model.config.threshold

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.model.config.threshold = float(checkpoint.get("phi_threshold", 0.5))

    def best_model(self) -> SentenceImageClassifier:
        """A copy of Φ with the best validation weights and their threshold (the current ones if never validated)."""
        model = copy.deepcopy(self.model).cpu().eval()
        if self.best is not None:
            model.load_state_dict(self.best["state"])
            model.config.threshold = self.best["threshold"]
        return model

    def export(self, folder: str | Path) -> Path:
        """Save the best Φ as a folder loadable with :func:`showcase.distill.load_classifier`."""
        from showcase.pretrained import training_extras

        metrics = {k: v for k, v in (self.best or {}).items() if k != "state"}
        return self.best_model().save_pretrained(folder, metrics=metrics, **training_extras(datamodule_of(self)))
