"""Lightning wrapper of the selectors: training by their own loss, P/R/F1/Div@K and ELVis ranking metrics.

`SelectionModule` builds its selector from its config dataclass (`dpp`, or `authorship` with the datamodule's training
users); `showcase fit` links the width to the feature store, so one YAML config serves every CLIP size. `test`
prints a Table 3-style row and writes it to `<log dir>/selection_test.json`; `export(folder)` saves the plain
selector (`showcase fit` restores the best checkpoint first).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from metrics.ranking import DivAtK, F1AtK, PercentileRank, PrecisionAtK, RecallAtK, TopNAccuracy
from showcase.pretrained import training_extras
from showcase.selection.models import (
    SELECTORS,
    AuthorshipConfig,
    AuthorshipSelector,
    DPPSelector,
    DPPSelectorConfig,
    Selector,
    build_selector,
)
from showcase.selection.profile import SelectionBatch
from showcase.training import as_config, check_width, datamodule_of
from showcase.utils import atomic_write_text

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("Prec", "Recall", "F1", "Div")
DEFAULT_DPP, DEFAULT_AUTHORSHIP = DPPSelectorConfig(), AuthorshipConfig()  # never mutated: `as_config` copies them


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
        selector: "dpp" (the learned DPP; `dpp.diversity=False` is relevance-only top-K), "random", "centroid" or
            "authorship" (ELVis).
        dpp: the DPP's config (`DPPSelectorConfig`: modality, diversity, top_w, jitter, dropout, skip_init); its
            `feature_dim` must equal the feature store's width (`showcase fit` links it from --data.store) and also
            sizes the untrained baselines.
        authorship: ELVis's authorship model (`AuthorshipConfig`: dropout, user_dropout, other_negatives; its
            `feature_dim` is linked like the DPP's); its users are the datamodule's training users, filled in when
            the model is built.
        lr: AdamW learning rate (paper: 1e-3).
        weight_decay: AdamW weight decay.
        patience: stop training after this many validation epochs without a better val Prec@K (None: never);
            the best epoch's weights are the ones exported and tested (`--ckpt_path best`).
        k: photos selected per request (paper: K = 3).
        name: the method's name in the printed table (default: derived from the options).
    """

    def __init__(self, selector: str = "dpp", dpp: DPPSelectorConfig = DEFAULT_DPP,
                 authorship: AuthorshipConfig = DEFAULT_AUTHORSHIP, lr: float = 1e-3, weight_decay: float = 1e-2,
                 patience: int | None = 10, k: int = 3, name: str | None = None):
        super().__init__()
        if selector not in SELECTORS:
            raise ValueError(f"unknown selector {selector!r}; expected one of {sorted(SELECTORS)}")
        self.dpp_config, self.authorship_config = as_config(DPPSelectorConfig, dpp), as_config(AuthorshipConfig,
                                                                                               authorship)
        self.save_hyperparameters()
        # plain dicts: checkpoints load with weights_only=True
        self.hparams["dpp"], self.hparams["authorship"] = (dataclasses.asdict(self.dpp_config),
                                                           dataclasses.asdict(self.authorship_config))
        self.val_metrics, self.test_metrics = SelectionMetrics(k), SelectionMetrics(k)
        self.test_results: dict[str, float] = {}
        # authorship embeds the training users: built in `setup`, once the datamodule is known
        self.selector: Selector | None = None if selector == "authorship" else self._build([])

    @property
    def method_name(self) -> str:
        hp = self.hparams
        if hp.name:
            return hp.name
        if hp.selector != "dpp":
            return hp.selector
        cfg = self.dpp_config
        return f"{cfg.modality} DPP" if cfg.diversity else f"{cfg.modality} relevance top-K"

    def _build(self, users: list[str]) -> Selector:
        kind, width = self.hparams.selector, self.dpp_config.feature_dim
        if kind == "dpp":
            return DPPSelector(self.dpp_config)
        if kind == "authorship":
            return AuthorshipSelector(dataclasses.replace(self.authorship_config, users=users))
        return build_selector(kind, feature_dim=width)

    def setup(self, stage: str) -> None:
        dm = datamodule_of(self)
        if self.hparams.selector == "authorship":
            check_width("authorship.feature_dim", self.authorship_config.feature_dim, dm)
        else:
            check_width("dpp.feature_dim", self.dpp_config.feature_dim, dm)
        if self.selector is None:
            if dm is None or not hasattr(dm, "train_users"):
                raise RuntimeError("SelectionModule(selector='authorship') needs a SelectionDataModule (its training "
                                   "users)")
            self.selector = self._build(dm.train_users)
        norm = getattr(self.selector, "norm", None)
        if norm is not None and (stage == "fit" or not norm.image_mean.any()) and hasattr(dm, "training_features"):
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
        return self.selector.save_pretrained(folder, method=self.method_name, **training_extras(datamodule_of(self)))
