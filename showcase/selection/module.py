"""Lightning wrapper of the selectors: training by their own loss, P/R/F1/Div@K and ELVis ranking metrics.

`SelectionModule` builds its selector lazily in `setup` from the datamodule's feature dim (and training users, for
the authorship model), so one YAML config serves every CLIP size. `test` prints a Table 3-style row and writes it
to `<log dir>/selection_test.json`; `export(folder)` saves the plain selector (`showcase fit` restores the best
checkpoint first).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from metrics.ranking import DivAtK, F1AtK, PercentileRank, PrecisionAtK, RecallAtK, TopNAccuracy
from showcase.pretrained import training_extras
from showcase.selection.models import SELECTORS, Selector, build_selector
from showcase.selection.profile import SelectionBatch
from showcase.utils import atomic_write_text

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("Prec", "Recall", "F1", "Div")


class SelectionMetrics:
    """Prec/Recall/F1/Div@K of selections plus ELVis top-n accuracy and percentile rank of the full ranking."""

    def __init__(self, k: int = 3, top_n: int = 10):
        self.k, self.top_n = k, top_n
        self.reset()

    def reset(self) -> None:
        k = self.k
        self.metrics = {f"Prec@{k}": PrecisionAtK(k), f"Recall@{k}": RecallAtK(k), f"F1@{k}": F1AtK(k),
                        f"Div@{k}": DivAtK(k), f"Top{self.top_n}": TopNAccuracy(self.top_n),
                        "PercentileRank": PercentileRank()}

    def update(self, selected: torch.Tensor, scores: torch.Tensor, batch: SelectionBatch) -> None:
        """`selected` `(B, k)` positions (-1 padded), `scores` `(B, N)` relevance of the pool."""
        mask, target, pool = batch["pool_mask"].cpu(), batch["target"].cpu(), batch["pool"].detach().cpu()
        chosen = [[int(i) for i in row if i >= 0] for row in selected.cpu()]
        targets = [set(t.nonzero().squeeze(1).tolist()) for t in target]
        ranked = [[int(i) for i in s.masked_fill(~m, float("-inf")).argsort(descending=True)[: int(m.sum())]]
                  for s, m in zip(scores.detach().float().cpu(), mask)]
        for name, metric in self.metrics.items():
            if name.startswith("Div"):
                metric.update([pool[b, c] for b, c in enumerate(chosen)])
            elif name.startswith("Top") or name == "PercentileRank":
                metric.update(ranked, targets)
            else:
                metric.update(chosen, targets)

    def compute(self) -> dict[str, float]:
        return {name: float(m.compute()) for name, m in self.metrics.items()}


def format_table(rows: dict[str, dict[str, float]], k: int = 3) -> str:
    """Table 3 of the paper: one row per method, Prec/Recall/F1/Div@K in percent."""
    head = f"{'Method':<22}" + "".join(f"{c + f'@{k}':>11}" for c in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]
    for name, m in rows.items():
        lines.append(f"{name:<22}" + "".join(f"{100 * m[f'{c}@{k}']:>11.2f}" for c in TABLE_COLUMNS))
    return "\n".join(lines)


class SelectionModule(L.LightningModule):
    """Train and evaluate one selector.

    Args:
        selector: "dpp" (diversity=False: relevance-only top-K), "random", "centroid" or "authorship" (ELVis).
        modality: DPP user profile from "img", "text" or "img+text" history features.
        diversity: DPP with the cosine similarity kernel (True) or S = I (relevance-only).
        top_w: VisualLens history retrieval for the DPP profile (None: whole history).
        jitter: DPP kernel jitter.
        dropout: dropout in the DPP towers.
        skip_init: initial weight of the DPP's profile-photo cosine skip term (None: towers only).
        lr: Adam learning rate (paper: 1e-3).
        weight_decay: AdamW weight decay.
        patience: stop training after this many validation epochs without a better val Prec@K (None: never);
            the best epoch's weights are the ones exported and tested (`--ckpt_path best`).
        k: photos selected per request (paper: K = 3).
        name: the method's name in the printed table (default: derived from the options).
        feature_dim: CLIP dim; None takes it from the datamodule's feature store.
    """

    def __init__(self, selector: str = "dpp", modality: str = "img+text", diversity: bool = True,
                 top_w: int | None = None, jitter: float = 1e-3, dropout: float = 0.1,
                 skip_init: float | None = 4.0, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int | None = 10, k: int = 3, name: str | None = None, feature_dim: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.selector: Selector | None = None
        self.val_metrics, self.test_metrics = SelectionMetrics(k), SelectionMetrics(k)
        self.test_results: dict[str, float] = {}
        if feature_dim is not None and selector != "authorship":
            self.selector = self._build(feature_dim, [])

    @property
    def method_name(self) -> str:
        hp = self.hparams
        if hp.name:
            return hp.name
        if hp.selector != "dpp":
            return hp.selector
        return f"{hp.modality} DPP" if hp.diversity else f"{hp.modality} relevance top-K"

    def _build(self, dim: int, users: list[str]) -> Selector:
        hp = self.hparams
        if hp.selector == "dpp":
            return build_selector("dpp", feature_dim=dim, modality=hp.modality, diversity=hp.diversity,
                                  top_w=hp.top_w, jitter=hp.jitter, dropout=hp.dropout, skip_init=hp.skip_init)
        if hp.selector == "authorship":
            return build_selector("authorship", feature_dim=dim, users=users)
        return build_selector(hp.selector, feature_dim=dim)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        fresh = self.selector is None
        if fresh:
            if dm is None or not hasattr(dm, "feature_dim"):
                raise RuntimeError("SelectionModule needs feature_dim, or a SelectionDataModule to read it from")
            users = dm.train_users if self.hparams.selector == "authorship" else []
            self.selector = self._build(self.hparams.feature_dim or dm.feature_dim, users)
        norm = getattr(self.selector, "norm", None)
        if norm is not None and (fresh or stage == "fit") and hasattr(dm, "training_features"):
            # feature statistics of the training split; a checkpoint restored after setup brings its own
            norm.fit(*dm.training_features())

    def configure_optimizers(self) -> Any:
        params = [p for p in self.selector.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay) if params else None

    def on_fit_start(self) -> None:
        # Lightning keeps each module's mode when fitting starts: a part loaded or built in eval mode (a pretrained
        # decoder, an exported folder, a frozen copy) would train with its dropout off. Validation and test still
        # switch to eval mode and back.
        self.train()

    def configure_callbacks(self) -> list:
        if not SELECTORS[self.hparams.selector].trainable:  # called before setup: read the class
            return []
        monitor = f"val/Prec@{self.hparams.k}"
        callbacks: list = [ModelCheckpoint(monitor=monitor, mode="max", save_top_k=1, filename="best-{epoch}")]
        if self.hparams.patience is not None:
            callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=self.hparams.patience))
        return callbacks

    def training_step(self, batch: SelectionBatch, batch_idx: int) -> torch.Tensor | None:
        if not self.selector.trainable:
            return None
        loss = self.selector.loss(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["user_ids"]))
        return loss

    def _evaluate(self, batch: SelectionBatch, metrics: SelectionMetrics, prefix: str) -> None:
        selected = self.selector.select(batch, self.hparams.k)
        metrics.update(selected, self.selector.scores(batch), batch)
        if self.selector.trainable:
            self.log(f"{prefix}/loss", self.selector.loss(batch), batch_size=len(batch["user_ids"]))

    def validation_step(self, batch: SelectionBatch, batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        for name, value in self.val_metrics.compute().items():
            self.log(f"val/{name}", value, prog_bar=name.startswith("Prec"))
        self.val_metrics.reset()

    def test_step(self, batch: SelectionBatch, batch_idx: int) -> None:
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        self.test_results = self.test_metrics.compute()
        self.test_metrics.reset()
        for name, value in self.test_results.items():
            self.log(f"test/{name}", value)
        if self.trainer.is_global_zero:
            print(format_table({self.method_name: self.test_results}, self.hparams.k))
            if self.trainer.log_dir:
                path = Path(self.trainer.log_dir) / "selection_test.json"
                atomic_write_text(path, json.dumps({"method": self.method_name, "k": self.hparams.k,
                                                    "metrics": self.test_results}, indent=2))

    def export(self, folder: str | Path) -> Path:
        """Save the plain selector with its current weights, its input limits and the store's encoder fingerprint
        (`showcase fit` restores the best checkpoint before calling this)."""
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        return self.selector.save_pretrained(folder, method=self.method_name, **training_extras(dm))
