"""LightningModule training Φ with BCE; logs AUC and F1 (at the threshold chosen on validation) on val and test."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from showcase.distill.model import ClassifierConfig, SentenceImageClassifier
from showcase.distill.scores import best_f1_threshold, f1_at, roc_auc


class ClassifierModule(L.LightningModule):
    """Trains :class:`SentenceImageClassifier` on labelled pairs (batches of ``(text, image, label)``).

    After each validation epoch the max-F1 threshold is chosen on validation and stored in the model's config;
    the weights and threshold of the epoch with the best validation AUC are kept for :meth:`export`.

    Args:
        head: ``"match"`` (projections, then a hidden layer over ``[p, q, p⊙q, |p−q|]``) or ``"concat"`` (the
            paper's linear layer).
        hidden: shared-space and hidden size of the match head.
        dropout: dropout of the match head.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        dim: CLIP feature size; taken from the datamodule (``datamodule.dim``) when not given.
    """

    def __init__(
        self,
        head: str = "match",
        hidden: int = 128,
        dropout: float = 0.2,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        dim: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        ClassifierConfig(head=head, hidden=hidden, dropout=dropout)  # validate early
        self.model: SentenceImageClassifier | None = None
        if dim is not None:
            self._build(dim)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.best: dict[str, Any] | None = None

    def _build(self, dim: int) -> None:
        h = self.hparams
        self.model = SentenceImageClassifier(ClassifierConfig(dim=dim, head=h.head, hidden=h.hidden, dropout=h.dropout))
        self.hparams.dim = dim

    def setup(self, stage: str) -> None:
        if self.model is None:
            datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
            if datamodule is None or not hasattr(datamodule, "dim"):
                raise ValueError("ClassifierModule: pass `dim` or use a datamodule with a `dim` (PairDataModule)")
            self._build(int(datamodule.dim))

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
        if self.model is None:
            self._build(int(checkpoint["hyper_parameters"]["dim"]))
        self.model.config.threshold = float(checkpoint.get("phi_threshold", 0.5))

    def best_model(self) -> SentenceImageClassifier:
        """A copy of Φ with the best validation weights and their threshold (the current ones if never validated)."""
        if self.model is None:
            raise RuntimeError("ClassifierModule has no model yet: fit it first")
        model = copy.deepcopy(self.model).cpu().eval()
        if self.best is not None:
            model.load_state_dict(self.best["state"])
            model.config.threshold = self.best["threshold"]
        return model

    def export(self, folder: str | Path) -> Path:
        """Save the best Φ as a folder loadable with :func:`showcase.distill.load_classifier`."""
        from showcase.pretrained import training_extras

        metrics = {k: v for k, v in (self.best or {}).items() if k != "state"}
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return self.best_model().save_pretrained(folder, metrics=metrics, **training_extras(dm))
