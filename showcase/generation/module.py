"""Lightning wrapper of the generator: CE + λ1·(image CL/CCL) + λ2·(text CL/PCL) training, beam-search testing.

Use with `GeneratorDataModule` (`configs/generator*.yaml`): `showcase fit --config configs/generator.yaml`.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F

from showcase.generation.losses import ContrastiveHeads, LossConfig, masked_mean
from showcase.generation.model import ExplanationGenerator, GeneratorConfig
from showcase.pretrained import training_extras
from showcase.training import as_config, check_width, datamodule_of
from showcase.utils import write_jsonl

log = logging.getLogger(__name__)
PREDICTIONS_FILE = "predictions.jsonl"
REFERENCES_FILE = "references.jsonl"  # with PREDICTIONS_FILE, the input of `python -m metrics`
# fields of GeneratorConfig that must equal the GeneratorDataModule's argument of the same name
LINKED_FROM_DATA = ("tokenizer", "max_images", "max_reviews", "max_length")
DEFAULT_GENERATOR, DEFAULT_LOSS = GeneratorConfig(), LossConfig()  # never mutated: `as_config` copies them


class GeneratorModule(L.LightningModule):
    """Trains an `ExplanationGenerator` with PC²L.

    Args:
        generator: architecture. `feature_dim`, `tokenizer` and the input limits (`max_images`, `max_reviews`,
            `max_length`) must match the datamodule: `showcase fit` links them from `--data.store` and `--data.*`.
        loss: which contrastive losses to add to CE (Table 4's rows; `image_loss="none", text_loss="none"` is CE only).
        use_images: feed the photos to the encoder (Table 2's "img" input).
        use_reviews: feed the history reviews to the encoder (Table 2's "text" input).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        num_beams: beam width at test time (1 = greedy).
        max_new_tokens: length limit of generated explanations.
    """

    def __init__(self, generator: GeneratorConfig = DEFAULT_GENERATOR, loss: LossConfig = DEFAULT_LOSS,
                 use_images: bool = True, use_reviews: bool = True, lr: float = 1e-4, weight_decay: float = 0.01,
                 num_beams: int = 2, max_new_tokens: int = 64):
        super().__init__()
        gen_cfg, loss_cfg = as_config(GeneratorConfig, generator), as_config(LossConfig, loss)
        if not (use_images or use_reviews):
            raise ValueError("at least one of use_images and use_reviews must be true")
        if loss_cfg.image_loss != "none" and not use_images:
            raise ValueError(f"image_loss={loss_cfg.image_loss!r} needs use_images=true")
        if loss_cfg.text_loss != "none" and not use_reviews:
            raise ValueError(f"text_loss={loss_cfg.text_loss!r} needs use_reviews=true")
        self.save_hyperparameters()  # keeps LightningCLI's class path, so `--ckpt_path` resumes through the CLI
        # plain dicts in checkpoints (they load with weights_only=True); decoder_config is derived, never an input
        self.hparams["generator"] = {k: v for k, v in dataclasses.asdict(gen_cfg).items() if k != "decoder_config"}
        self.hparams["loss"] = dataclasses.asdict(loss_cfg)
        self.gen_config, self.loss_config = gen_cfg, loss_cfg
        self.model = ExplanationGenerator(gen_cfg)
        self.heads = ContrastiveHeads(self.model.width, loss_cfg)
        self._predictions: list[dict[str, Any]] = []

    # --- construction ---------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Check the model against the datamodule; on a fresh fit, set the encoder's feature statistics."""
        dm = datamodule_of(self)
        if dm is None:
            return
        check_width("generator.feature_dim", self.model.config.feature_dim, dm)
        data = getattr(dm, "hparams", {})
        for name in LINKED_FROM_DATA:
            ours = getattr(self.model.config, name)
            if name in data and data[name] != ours:
                raise ValueError(f"generator.{name} = {ours!r} but data.{name} = {data[name]!r}: set both alike "
                                 f"(`showcase fit` links them from --data.{name})")
        enc = self.model.encoder
        fresh = not enc.image_mean.any() and bool((enc.image_std == 1).all())  # a checkpoint restore comes later
        if fresh and self.trainer.state.fn == "fit" and hasattr(dm, "training_features"):
            enc.set_feature_statistics(*dm.training_features())

    def setup(self, stage: str) -> None:
        dm = datamodule_of(self)
        if dm is not None and hasattr(dm, "hparams") and "entity_swap" in dm.hparams:
            dm.hparams.entity_swap = self.loss_config.needs_entity_swap  # spaCy runs only when CCL needs it

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

    def on_fit_start(self) -> None:
        # Lightning keeps each module's mode when fitting starts: a part loaded or built in eval mode (a pretrained
        # decoder, an exported folder, a frozen copy) would train with its dropout off. Validation and test still
        # switch to eval mode and back.
        self.train()

    # --- steps ----------------------------------------------------------------------------------------------------
    def _inputs(self, batch: dict[str, Any]) -> tuple:
        hp = self.hparams
        return (batch["image_features"] if hp.use_images else None, batch["image_mask"] if hp.use_images else None,
                batch["review_features"] if hp.use_reviews else None,
                batch["review_mask"] if hp.use_reviews else None)

    def losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """All configured losses of a batch, and their weighted sum under `"loss"` (Eq. 11)."""
        cfg, model = self.loss_config, self.model
        states, mask, pos = model.encode(*self._inputs(batch))  # (B, S, D), (B, S)
        hidden, _ = model.decode(batch["input_ids"], batch["attention_mask"], states, mask, with_logits=False)
        target = batch["labels"] != -100  # (B, T): the LM head (the costliest layer) runs on real targets only
        logits = model.decoder.lm_head(hidden[target])  # (n, V)
        ce_sum = F.cross_entropy(logits.float(), batch["labels"][target], reduction="sum")
        n_tokens = target.sum().clamp_min(1)
        ce = ce_sum / len(target) if cfg.ce_reduction == "sequence" else ce_sum / n_tokens
        # "ce" is per token whatever the reduction (comparable across runs, monitored for the best checkpoint)
        out = {"ce": ce if cfg.ce_reduction == "token" else ce_sum.detach() / n_tokens}
        if self.heads.phi_y is not None:
            def target_states(ids: torch.Tensor, attention: torch.Tensor, conditioned: torch.Tensor | None = None):
                if cfg.target_view == "conditioned":  # H^Y from a pass that saw this example's images
                    h = conditioned if conditioned is not None else model.decode(ids, attention, states, mask,
                                                                                 with_logits=False)[0]
                else:  # H^Y of the text alone: no cross-attention (GPT-2 skips it without encoder states)
                    h = model.decoder.transformer(input_ids=ids, attention_mask=attention,
                                                  use_cache=False).last_hidden_state  # (B, T, D)
                return masked_mean(h, attention)

            h_y = target_states(batch["input_ids"], batch["attention_mask"], hidden)
            h_ent = None
            if cfg.image_loss == "ccl":
                h_ent = target_states(batch["ent_input_ids"], batch["ent_attention_mask"])
            history = None
            if cfg.text_loss == "pcl":
                enc = model.encoder
                feats = batch["review_features"].float()
                if cfg.history_features == "standardized":
                    feats = (feats - enc.review_mean) / enc.review_std  # (B, K, F)
                history = masked_mean(feats, batch["review_mask"])
            out.update(self.heads(masked_mean(states, pos["image"]), masked_mean(states, pos["review"]),
                                  h_y, h_ent, batch.get("ent_mask"), history))
        out["loss"] = ce + cfg.lambda1 * out.get("image", 0.0) + cfg.lambda2 * out.get("text", 0.0)
        return out

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self.losses(batch)
        self.log_dict({f"train/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(batch["ids"]))
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        out = self.losses(batch)
        self.log_dict({f"val/{k}": v for k, v in out.items()}, prog_bar=True, batch_size=len(batch["ids"]))

    def on_test_epoch_start(self) -> None:
        self._predictions = []

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        texts = self.model.generate(*self._inputs(batch), num_beams=self.hparams.num_beams,
                                    max_new_tokens=self.hparams.max_new_tokens)
        for i, text in enumerate(texts):
            self._predictions.append({
                "id": batch["ids"][i], "text": text, "user_id": batch["user_ids"][i],
                "business_id": batch["business_ids"][i], "photos": batch["photos"][i],
                "reference": batch["targets"][i],
            })

    def on_test_epoch_end(self) -> None:
        from showcase.training import gather_in_order

        # every rank's share, once each, in the test split's order (only rank 0 writes)
        splits = getattr(getattr(self.trainer, "datamodule", None), "splits", None) or {}
        position = {e.review.review_id: i for i, e in enumerate(splits["test"].examples)} if "test" in splits else None
        self._predictions = gather_in_order(self._predictions, position)
        folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
        if self.trainer.is_global_zero:
            write_jsonl(folder / PREDICTIONS_FILE, self._predictions)
            write_jsonl(folder / REFERENCES_FILE, [{"id": p["id"], "text": p["reference"], "photos": p["photos"]}
                                                   for p in self._predictions])
            log.info("wrote %d predictions to %s", len(self._predictions), folder / PREDICTIONS_FILE)
        scores = text_metrics([p["text"] for p in self._predictions], [p["reference"] for p in self._predictions])
        if scores:
            self.log_dict({f"test/{k}": v for k, v in scores.items()})

    # --- export ---------------------------------------------------------------------------------------------------
    def export(self, folder: str | Path) -> Path:
        """Save the plain generator with its current weights, tokenizer, decoding settings, input limits and the
        store's encoder fingerprint (`showcase.load_model` loads the folder alone); `showcase fit` loads the best
        checkpoint before calling this."""
        hp = self.hparams
        extras = training_extras(datamodule_of(self))
        cfg = self.model.config
        seen = extras.get("inputs") or {"history_texts": cfg.max_reviews, "history_photos": 0, "images": cfg.max_images}
        extras["inputs"] = {**seen, "use_images": bool(hp.use_images), "use_reviews": bool(hp.use_reviews)}
        extras["decoding"] = {"num_beams": int(hp.num_beams), "max_new_tokens": int(hp.max_new_tokens)}
        extras["training"] = {"loss": hp.loss, "lr": hp.lr, "weight_decay": hp.weight_decay}
        return Path(self.model.save_pretrained(folder, **extras))


def text_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """BLEU-1/4, NIST and Distinct-1/2 (fractions) from `metrics.functional.ngram_suite`; {} when unavailable."""
    if not predictions:
        return {}
    try:
        from metrics.functional import ngram_suite
    except ImportError as e:
        log.warning("text metrics unavailable (%s)", e)
        return {}
    return {k: float(v) for k, v in ngram_suite(predictions, [[r] for r in references]).items()}
