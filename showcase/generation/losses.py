"""Losses of PC²L (Section 4.3): contrastive (Eq. 7), cross-modal with hard negatives (Eq. 8), personalized (Eq. 9-10).

Everything here is a pure function of tensors, except the projection heads φ_V, φ_R, φ_Y (`ProjectionHead`).

Readings of Section 4.3 that the paper leaves open (`LossConfig`, measured in `benchmarks/ablation.py`):
 * H^Y (Eq. 6) is the mean of the decoder's last hidden states over the target. Read from the CE pass, those states
   have attended to this example's own photos, so Eq. 7/8 can be lowered by copying the photos into H^Y without
   reading the text (probe: `showcase.generation.probe`). `target_view="text"` decodes the target a second time
   without cross-attention: H^Y is then a function of the words alone, and the image loss must match photos to
   words, which is the grounding the paper wants (the decoder's weights are shared, so the CE pass learns it too).
 * R̃ of Eq. 10 is "the average features of the users' historical reviews": CLIP features share a large common
   offset, so raw cosines sit near 1 and α^(1 − cos) near 1 (PCL ≈ CL). `history_features="standardized"` centres
   and scales them with the training statistics the encoder already uses.
 * Eq. 5 sums the token log-likelihoods over a sequence: `ce_reduction="sequence"` keeps that scale, so λ weighs a
   contrastive term against a sentence's CE, not against one token's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

IMAGE_LOSSES = ("none", "cl", "ccl")
TEXT_LOSSES = ("none", "cl", "pcl")
CE_REDUCTIONS = ("sequence", "token")
TARGET_VIEWS = ("text", "conditioned")
HISTORY_FEATURES = ("standardized", "raw")


def contrastive_loss(
    source: torch.Tensor,
    target: torch.Tensor,
    tau: float,
    hard_negatives: torch.Tensor | None = None,
    negative_weights: torch.Tensor | None = None,
    hard_negative_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """InfoNCE between paired rows of `source` and `target`, optionally with hard negatives and weighted negatives.

    Row i contributes `-log( e^{s_ii} / (e^{s_ii} + Σ_{j≠i} w_ij e^{s_ij} + e^{s_i,ent}) )` where
    `s_ij = cos(source_i, target_j) / tau`, `w = negative_weights` (1 when not given) and
    `s_i,ent = cos(source_i, hard_negatives_i) / tau` (the term is absent without `hard_negatives`).

    Args:
        source: (B, D) e.g. projected image or history states.
        target: (B, D) projected target-text states; row i is the positive of `source[i]`.
        tau: temperature (> 0).
        hard_negatives: (B, D) one extra negative per row (the entity-swapped target for CCL, Eq. 8).
        negative_weights: (B, B) non-negative weights of the in-batch negatives (PCL, Eq. 9); the diagonal is unused.
        hard_negative_mask: (B,) bool, rows whose hard negative exists (default: all).

    Returns:
        The mean of the per-row losses (a scalar).
    """
    if source.dim() != 2 or source.shape != target.shape:
        raise ValueError(f"source and target must both be (B, D); got {tuple(source.shape)} and {tuple(target.shape)}")
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    b = source.shape[0]
    src, tgt = F.normalize(source, dim=-1), F.normalize(target, dim=-1)
    logits = src @ tgt.T / tau  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=source.device)
    if negative_weights is not None:
        if negative_weights.shape != (b, b):
            raise ValueError(f"negative_weights must be ({b}, {b}), got {tuple(negative_weights.shape)}")
        if (negative_weights < 0).any():
            raise ValueError("negative_weights must be >= 0")
        log_w = torch.log(negative_weights.to(logits.dtype)).masked_fill(eye, 0.0)  # log 0 = -inf drops a negative
        logits = logits + log_w
    columns = [logits]
    if hard_negatives is not None:
        if hard_negatives.shape != source.shape:
            raise ValueError(f"hard_negatives must be {tuple(source.shape)}, got {tuple(hard_negatives.shape)}")
        ent = (src * F.normalize(hard_negatives, dim=-1)).sum(-1, keepdim=True) / tau  # (B, 1)
        if hard_negative_mask is not None:
            ent = ent.masked_fill(~hard_negative_mask.bool().view(b, 1), float("-inf"))
        columns.append(ent)
    all_logits = torch.cat(columns, dim=1)  # (B, B [+1])
    return (torch.logsumexp(all_logits, dim=1) - logits.diagonal()).mean()


def personalization_weights(history_means: torch.Tensor, alpha: float) -> torch.Tensor:
    """PCL's negative weights `f(i, j) = alpha ** (1 - cos(R̃_i, R̃_j))` (Eq. 10).

    Args:
        history_means: (B, D) each row the mean feature of a user's input history reviews.
        alpha: base (> 1 up-weights negatives whose histories differ).

    Returns:
        (B, B) weights; rows with an all-zero history (no reviews) have cosine 0 with everyone.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    r = F.normalize(history_means, dim=-1)
    return torch.pow(torch.as_tensor(alpha, dtype=r.dtype, device=r.device), 1.0 - r @ r.T)


def masked_mean(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average (B, T, D) `states` over the positions where `mask` (B, T) is true; all-masked rows give zeros."""
    m = mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
    return (states * m).sum(1) / m.sum(1).clamp_min(1.0)


class ProjectionHead(nn.Sequential):
    """φ: two linear layers with a ReLU between them (Eq. 6); applied to mean-pooled last hidden states."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out_dim))


@dataclass
class LossConfig:
    """Which losses train the generator (Eq. 11: CE + λ1·L_image + λ2·L_text).

    Attributes:
        image_loss: "none", "cl" (Eq. 7 between images and target) or "ccl" (Eq. 8, entity-swapped hard negatives).
        text_loss: "none", "cl" (Eq. 7 between history and target) or "pcl" (Eq. 9, negatives weighted by Eq. 10).
        lambda1: weight of the image loss.
        lambda2: weight of the text loss.
        alpha: base of the personalization weights.
        tau: temperature of both contrastive losses.
        projection_dim: output width of the projection heads.
        ce_reduction: "sequence" sums the token losses of each target and averages over the batch (Eq. 5 sums over
            the sequence, so λ weighs a contrastive term against a whole sentence's CE); "token" averages over all
            target tokens (λ then weighs the contrastive terms ~length× more).
        target_view: how H^Y is read: "text" decodes the target without cross-attention, so H^Y holds the text
            alone and the image loss cannot be lowered by copying the example's own images into H^Y; "conditioned"
            reuses the CE pass, which has attended to this example's images and history (leaks the answer).
        history_features: the features whose cosine gives Eq. 10's weights: "standardized" (each feature centred
            and scaled with the training statistics, as the encoder sees them, so cosines span about [-1, 1]) or
            "raw" (CLIP features share a large common offset: cosines near 1, weights near 1, PCL ≈ CL).
    """

    image_loss: str = "ccl"
    text_loss: str = "pcl"
    lambda1: float = 0.2
    lambda2: float = 0.2
    alpha: float = math.e
    tau: float = 0.1
    projection_dim: int = 256
    ce_reduction: str = "sequence"
    target_view: str = "text"
    history_features: str = "standardized"

    def __post_init__(self) -> None:
        for name, allowed in (("ce_reduction", CE_REDUCTIONS), ("target_view", TARGET_VIEWS),
                              ("history_features", HISTORY_FEATURES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.image_loss not in IMAGE_LOSSES:
            raise ValueError(f"image_loss must be one of {IMAGE_LOSSES}, got {self.image_loss!r}")
        if self.text_loss not in TEXT_LOSSES:
            raise ValueError(f"text_loss must be one of {TEXT_LOSSES}, got {self.text_loss!r}")

    @property
    def needs_entity_swap(self) -> bool:
        return self.image_loss == "ccl"


class ContrastiveHeads(nn.Module):
    """The three projection heads and the contrastive part of the PC²L objective.

    Args:
        dim: width of the encoder/decoder hidden states.
        config: which losses to compute.
    """

    def __init__(self, dim: int, config: LossConfig):
        super().__init__()
        self.config = config
        self.phi_v = ProjectionHead(dim, config.projection_dim) if config.image_loss != "none" else None
        self.phi_r = ProjectionHead(dim, config.projection_dim) if config.text_loss != "none" else None
        active = self.phi_v is not None or self.phi_r is not None
        self.phi_y = ProjectionHead(dim, config.projection_dim) if active else None

    def forward(
        self,
        h_v: torch.Tensor,
        h_r: torch.Tensor,
        h_y: torch.Tensor,
        h_ent: torch.Tensor | None = None,
        ent_mask: torch.Tensor | None = None,
        history_means: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Compute the configured contrastive losses from mean-pooled states.

        Args:
            h_v: (B, D) mean encoder states at image positions.
            h_r: (B, D) mean encoder states at history-review positions.
            h_y: (B, D) mean decoder states of the target.
            h_ent: (B, D) mean decoder states of the entity-swapped target (needed for "ccl").
            ent_mask: (B,) rows that have an entity-swapped target.
            history_means: (B, F) mean raw features of the history reviews (needed for "pcl").

        Returns:
            `{"image": loss, "text": loss}` for the active losses.
        """
        cfg, out = self.config, {}
        if self.phi_y is None:
            return out
        z_y = self.phi_y(h_y)
        if self.phi_v is not None:
            hard = None
            if cfg.image_loss == "ccl":
                if h_ent is None:
                    raise ValueError("image_loss='ccl' needs the entity-swapped targets' states (h_ent)")
                hard = self.phi_y(h_ent)
            out["image"] = contrastive_loss(self.phi_v(h_v), z_y, cfg.tau, hard, hard_negative_mask=ent_mask)
        if self.phi_r is not None:
            weights = None
            if cfg.text_loss == "pcl":
                if history_means is None:
                    raise ValueError("text_loss='pcl' needs history_means")
                weights = personalization_weights(history_means, cfg.alpha)
            out["text"] = contrastive_loss(self.phi_r(h_r), z_y, cfg.tau, negative_weights=weights)
        return out
