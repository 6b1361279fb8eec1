"""Image-set selectors: the learned DPP (Personalized Showcases, Sec. 4.1) and the baselines of Table 3 and ELVis.

Every selector is a plain `nn.Module` built from a config dataclass, saved with `save_pretrained` and read back with
`load_selector(folder)`. They share one interface on a `SelectionBatch` (see `showcase.selection.profile`):

- `scores(batch) -> (B, N)`: the relevance of each candidate (higher is better);
- `select(batch, k) -> (B, k)`: selected candidate positions in order, -1 where the pool ran out;
- `loss(batch) -> scalar` for the trainable ones (`trainable = True`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from showcase.errors import UserError
from showcase.pretrained import PretrainedMixin, read_config
from showcase.selection.dpp import build_kernel, dpp_log_likelihood, greedy_map
from showcase.selection.profile import SelectionBatch, check_modality, masked_mean, modality_count, profile_features

__all__ = [
    "AuthorshipConfig", "AuthorshipSelector", "CentroidConfig", "CentroidSelector", "DPPSelector",
    "DPPSelectorConfig", "FeatureNorm", "RandomConfig", "RandomSelector", "Selector", "load_selector",
    "tower_widths",
]


POOL_CHUNK = 8192  # pool photos per pass through the DPP's image tower (bounds a request's activations)


def tower_widths(dim: int) -> tuple[int, ...]:
    """Hidden and output widths of a tower for CLIP dim `dim`: (d, d, d/2, d/4) = 512, 512, 256, 128 for ViT-B/32."""
    return (dim, dim, max(dim // 2, 1), max(dim // 4, 1))


def mlp(in_dim: int, widths: tuple[int, ...], dropout: float = 0.0) -> nn.Sequential:
    """Linear-ReLU stack ending with a plain Linear (no activation on the output)."""
    layers: list[nn.Module] = []
    for i, width in enumerate(widths):
        layers.append(nn.Linear(in_dim, width))
        if i < len(widths) - 1:
            layers += [nn.ReLU(), nn.Dropout(dropout)] if dropout else [nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers)


def standardise(x: Tensor, dim: int) -> Tensor:
    """Rescale each `dim`-wide block of the last axis to norm sqrt(dim) (unit variance per coordinate).

    CLIP features are unit vectors (coordinates ~ 1/sqrt(d)) and profile means are shorter still; fed as they are
    to a deep ReLU tower they give almost constant outputs, and the towers barely learn. Zero blocks stay zero.
    """
    blocks = x.unflatten(-1, (x.shape[-1] // dim, dim))  # (..., m, d)
    return (F.normalize(blocks, dim=-1) * dim**0.5).flatten(-2)


class FeatureNorm(nn.Module):
    """Per-coordinate mean and std of image and text features, kept as buffers so they are saved with the model.

    CLIP features are anisotropic (all photos of a domain share a large common component: on the test world's
    tiny CLIP the mean pairwise cosine of photos is 0.98), so raw cosines barely tell photos apart and the DPP's
    similarity S is nearly all-ones. Centring and scaling each coordinate by statistics of the training features
    fixes both. Until `fit` is called the transform is the identity.
    """

    def __init__(self, dim: int):
        super().__init__()
        for name in ("image", "text"):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, images: Tensor, texts: Tensor | None = None) -> "FeatureNorm":
        """Set the statistics from `(n, d)` training image (and text) features; an empty or None matrix is skipped."""
        for name, x in (("image", images), ("text", texts)):
            if x is not None and x.shape[0] > 1:
                x = x.to(self.image_mean)
                std = x.std(0)
                getattr(self, f"{name}_mean").copy_(x.mean(0))
                getattr(self, f"{name}_std").copy_(std.clamp_min(1e-3 * float(std.max()) + 1e-12))
        return self

    def images(self, x: Tensor) -> Tensor:
        return (x - self.image_mean) / self.image_std

    def texts(self, x: Tensor) -> Tensor:
        return (x - self.text_mean) / self.text_std


def topk_select(scores: Tensor, mask: Tensor, k: int) -> Tensor:
    """Positions of the `k` best real candidates per row, best first; -1 where fewer than `k` are real."""
    B, N = scores.shape
    out = torch.full((B, k), -1, dtype=torch.long, device=scores.device)
    if k == 0 or N == 0:
        return out
    top = scores.masked_fill(~mask, float("-inf")).topk(min(k, N), dim=1)
    out[:, : top.indices.shape[1]] = torch.where(torch.isfinite(top.values), top.indices, -1)
    return out


class Selector(nn.Module):
    """Base class of the selectors (see the module docstring)."""

    trainable: ClassVar[bool] = False

    def scores(self, batch: SelectionBatch) -> Tensor:
        raise NotImplementedError

    def select(self, batch: SelectionBatch, k: int = 3) -> Tensor:
        return topk_select(self.scores(batch), batch["pool_mask"], k)

    def loss(self, batch: SelectionBatch) -> Tensor:
        raise TypeError(f"{type(self).__name__} has nothing to train")


# --- the learned DPP --------------------------------------------------------------------------------------------
@dataclass
class DPPSelectorConfig:
    """Learned DPP selector.

    Attributes:
        feature_dim: CLIP dim d (512 for ViT-B/32); towers are d -> d -> d/2 -> d/4 (user input d or 2d).
        modality: user profile from "img", "text" or "img+text" history features.
        diversity: False gives the relevance-only baseline: S = I, so the DPP is a product of independent
            Bernoullis P(i in Y) = sigmoid(2 s_i) and greedy MAP is top-K by relevance.
        top_w: VisualLens history retrieval: only the top-w history photos most similar to the pool (None: all).
        jitter: added to the kernel's diagonal so duplicate photos keep it positive definite.
        max_logit: clamp of the relevance logits s (q = exp(s)) for numerical safety.
        dropout: dropout between the towers' hidden layers.
        skip_init: initial weight of the learned skip term, the cosine between the (standardised) image profile and
            each photo; the text profile's cross-modal cosine starts at weight 0. With the output layer of the user
            tower starting at zero, an untrained model ranks like that cosine and training only improves on it.
            None removes the skip term (towers only).
    """

    feature_dim: int = 512
    modality: str = "img+text"
    diversity: bool = True
    top_w: int | None = None
    jitter: float = 1e-3
    max_logit: float = 10.0
    dropout: float = 0.1
    skip_init: float | None = 4.0

    def __post_init__(self) -> None:
        check_modality(self.modality)
        if self.top_w is not None and self.top_w < 1:
            raise ValueError(f"top_w must be >= 1 or None, got {self.top_w}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class DPPSelector(PretrainedMixin, Selector):
    """Relevance q_i = exp(s_i) with s_i = <u, v_i> / sqrt(m) + sum_k a_k cos(p_k, f_i); L = diag(q) S diag(q).

    u and v_i are the user and image towers' outputs (width m) on the standardised profile and photo features,
    p_k the standardised profile blocks (text, image), f_i the standardised photo, a_k learned skip weights, and
    S the cosine Gram matrix of the standardised photos (`FeatureNorm`, fitted on the training features).
    Trained by the DPP log-likelihood of the user's own photos within the business's pool; selection is greedy MAP.
    """

    config_class = DPPSelectorConfig
    trainable = True

    def __init__(self, config: DPPSelectorConfig):
        super().__init__()
        self.config = config
        d, m = config.feature_dim, modality_count(config.modality)
        widths = tower_widths(d)
        self.norm = FeatureNorm(d)
        self.user_tower = mlp(d * m, widths, config.dropout)
        self.image_tower = mlp(d, widths, config.dropout)
        nn.init.zeros_(self.user_tower[-1].weight)  # the tower term starts at 0: the skip term ranks at first
        nn.init.zeros_(self.user_tower[-1].bias)
        if config.skip_init is not None:
            blocks = ["text", "img"] if config.modality == "img+text" else [config.modality]
            init = torch.tensor([config.skip_init if b == "img" else 0.0 for b in blocks])  # (blocks,)
            self.skip = nn.Parameter(init.unsqueeze(1).repeat(1, d))  # (blocks, d): a diagonal bilinear form

    def profile(self, batch: SelectionBatch) -> Tensor:
        """The standardised user profile `(B, m d)`, each d-block rescaled to norm sqrt(d)."""
        std_batch = {**batch, "hist_img": self.norm.images(batch["hist_img"]),
                     "hist_text": self.norm.texts(batch["hist_text"])}
        if self.config.top_w is not None:  # the retrieval compares history photos with the (standardised) pool
            std_batch["pool"] = self.norm.images(batch["pool"])
        return standardise(profile_features(std_batch, self.config.modality, self.config.top_w),
                           self.config.feature_dim)

    def user_terms(self, batch: SelectionBatch) -> tuple[Tensor, Tensor | None]:
        """The user tower's output u `(B, m')` and the skip term's per-user weights `(B, d)` (None without it)."""
        d = self.config.feature_dim
        profile = self.profile(batch)  # (B, m d)
        skip = None
        if self.config.skip_init is not None:  # Σ_k a_k ⊙ p_k: the diagonal bilinear form applied to the profile
            skip = (profile.unflatten(-1, (-1, d)) * self.skip.to(profile.dtype)).sum(1)
        return self.user_tower(profile), skip

    def logits(self, batch: SelectionBatch) -> Tensor:
        """Relevance logits s `(B, N)`. The pool goes through the image tower `POOL_CHUNK` photos at a time, so a
        request's activations stay bounded however large the business's pool (each photo's score is unchanged)."""
        d = self.config.feature_dim
        u, skip = self.user_terms(batch)  # (B, m'), (B, d)
        chunks = []
        for pool in batch["pool"].split(POOL_CHUNK, dim=1):
            pool = standardise(self.norm.images(pool), d)  # (B, n, d)
            s = torch.einsum("bm,bnm->bn", u, self.image_tower(pool)) / u.shape[-1] ** 0.5  # (B, n)
            chunks.append(s if skip is None else s + torch.einsum("bd,bnd->bn", skip, pool) / d)
        return torch.cat(chunks, dim=1).clamp(-self.config.max_logit, self.config.max_logit)

    def scores(self, batch: SelectionBatch) -> Tensor:
        """Relevance q (positive), `(B, N)`."""
        return self.logits(batch).exp()

    def shared_pool_scores(self, batch: SelectionBatch, pool: Tensor) -> Tensor | None:
        """Relevance `(B, P)` of B users' histories (the batch's `hist_*`) for one shared pool `(P, d)`.

        Equals `scores` with the pool repeated per user, but the image tower runs once: `O(B m + P m)` instead of
        `O(B P d)` (a cold-start group ranking over many reviewers). None when the profile depends on the pool
        (VisualLens top-w retrieval): use `scores` then.
        """
        if self.config.top_w is not None:
            return None
        d = self.config.feature_dim
        u, skip = self.user_terms(batch)  # (B, m'), (B, d)
        parts = []
        for chunk in pool.split(POOL_CHUNK):
            std_pool = standardise(self.norm.images(chunk), d)  # (n, d)
            s = u @ self.image_tower(std_pool).T / u.shape[-1] ** 0.5  # (B, n)
            parts.append(s if skip is None else s + skip @ std_pool.T / d)
        return torch.cat(parts, dim=1).clamp(-self.config.max_logit, self.config.max_logit).exp()

    def kernel(self, batch: SelectionBatch, quality: Tensor | None = None) -> Tensor:
        """L, `(B, N, N)`; padded rows and columns are zero."""
        q = self.scores(batch) if quality is None else quality  # (B, N)
        mask = batch["pool_mask"]
        if self.config.diversity:
            return build_kernel(q, self.norm.images(batch["pool"]), mask, jitter=self.config.jitter)
        real = mask.to(q.dtype)
        return torch.diag_embed((q * q + self.config.jitter) * real)

    def select(self, batch: SelectionBatch, k: int = 3) -> Tensor:
        return greedy_map(self.kernel(batch), k, mask=batch["pool_mask"])

    def loss(self, batch: SelectionBatch) -> Tensor:
        """Mean negative DPP log-likelihood of the targets, computed in float64 (small N, exact log-dets)."""
        q = self.scores(batch).double()
        kernel = self.kernel({**batch, "pool": batch["pool"].double()}, quality=q)
        return -dpp_log_likelihood(kernel, batch["target"], batch["pool_mask"]).mean().float()


# --- baselines ------------------------------------------------------------------------------------------------
@dataclass
class RandomConfig:
    """Random selection (Table 3's "random"); `feature_dim` is kept only for a uniform interface."""

    feature_dim: int = 512


class RandomSelector(PretrainedMixin, Selector):
    """Uniformly random distinct candidates (uses torch's global RNG: seed it for reproducible runs)."""

    config_class = RandomConfig

    def __init__(self, config: RandomConfig):
        super().__init__()
        self.config = config

    def scores(self, batch: SelectionBatch) -> Tensor:
        return torch.rand(batch["pool_mask"].shape, device=batch["pool"].device)


@dataclass
class CentroidConfig:
    """ELVis's centroid baseline: the photos closest (cosine) to the mean of the business's pool."""

    feature_dim: int = 512


class CentroidSelector(PretrainedMixin, Selector):
    config_class = CentroidConfig

    def __init__(self, config: CentroidConfig):
        super().__init__()
        self.config = config

    def scores(self, batch: SelectionBatch) -> Tensor:
        pool, mask = F.normalize(batch["pool"], dim=-1), batch["pool_mask"]  # (B, N, d)
        centre = F.normalize(masked_mean(pool, mask), dim=-1)  # (B, d)
        return torch.einsum("bnd,bd->bn", pool, centre)


@dataclass
class AuthorshipConfig:
    """ELVis photo authorship Pr(u, f): user embedding ⊕ projected photo features -> MLP -> sigmoid.

    Attributes:
        feature_dim: CLIP dim d; photos are projected to d/2, users embedded in d/2 (ELVis: 256 and 256).
        users: the training users; row 0 of the embedding is the unknown user (unseen users, user dropout).
        dropout: dropout before the output layer (ELVis: 0.2).
        user_dropout: probability of training on the unknown-user row, so it learns a population prior.
        other_negatives: weight of the other-business negatives in the loss (the batch's other pools).
    """

    feature_dim: int = 512
    users: list[str] = field(default_factory=list)
    dropout: float = 0.2
    user_dropout: float = 0.1
    other_negatives: float = 1.0


class AuthorshipSelector(PretrainedMixin, Selector):
    """ELVis: rank a business's photos by Pr(u, f); BCE with same-business and other-business negatives."""

    config_class = AuthorshipConfig
    trainable = True

    def __init__(self, config: AuthorshipConfig):
        super().__init__()
        self.config = config
        d = config.feature_dim
        half = max(d // 2, 1)
        self.index = {u: i + 1 for i, u in enumerate(config.users)}
        self.norm = FeatureNorm(d)
        self.user_embedding = nn.Embedding(len(config.users) + 1, half)
        self.photo_proj = nn.Linear(d, half)
        self.head = nn.Sequential(nn.Linear(2 * half, half), nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(half, 1))

    def user_index(self, user_ids: list[str], device: torch.device) -> Tensor:
        idx = torch.tensor([self.index.get(u, 0) for u in user_ids], dtype=torch.long, device=device)
        if self.training and self.config.user_dropout:
            idx = idx.masked_fill(torch.rand(idx.shape, device=device) < self.config.user_dropout, 0)
        return idx

    def logits(self, batch: SelectionBatch, pool: Tensor | None = None) -> Tensor:
        pool = batch["pool"] if pool is None else pool  # (B, N, d)
        u = self.user_embedding(self.user_index(batch["user_ids"], pool.device))  # (B, h)
        f = self.photo_proj(standardise(self.norm.images(pool), self.config.feature_dim))  # (B, N, h)
        x = torch.cat([u.unsqueeze(1).expand(-1, f.shape[1], -1), f], dim=-1)  # (B, N, 2h)
        return self.head(x).squeeze(-1)  # (B, N)

    def scores(self, batch: SelectionBatch) -> Tensor:
        """Pr(u, f), `(B, N)`."""
        return self.logits(batch).sigmoid()

    def loss(self, batch: SelectionBatch) -> Tensor:
        mask, target = batch["pool_mask"], batch["target"].to(batch["pool"].dtype)
        same = F.binary_cross_entropy_with_logits(self.logits(batch), target, reduction="none")
        loss = (same * mask).sum() / mask.sum().clamp_min(1)
        if self.config.other_negatives and len(batch["user_ids"]) > 1:  # other businesses: the next pool in the batch
            other_pool, other_mask = batch["pool"].roll(1, 0), batch["pool_mask"].roll(1, 0)
            other = F.binary_cross_entropy_with_logits(
                self.logits(batch, other_pool), torch.zeros_like(other_mask, dtype=target.dtype), reduction="none")
            loss = loss + self.config.other_negatives * (other * other_mask).sum() / other_mask.sum().clamp_min(1)
        return loss


SELECTORS: dict[str, type[Selector]] = {
    "dpp": DPPSelector, "random": RandomSelector, "centroid": CentroidSelector, "authorship": AuthorshipSelector,
}


def load_selector(folder: str | Path, map_location: str | torch.device = "cpu") -> Selector:
    """Load any selector saved with `save_pretrained` (the class is read from `config.json`)."""
    _, payload = read_config(folder)
    path = payload.get("class", "")
    by_path = {f"{c.__module__}.{c.__qualname__}": c for c in SELECTORS.values()}
    if path not in by_path:
        raise UserError(f"class {path!r} is not a selector; expected one of {sorted(by_path)}",
                        path=Path(folder) / "config.json")
    return by_path[path].from_pretrained(folder, map_location=map_location)


def build_selector(name: str, **config) -> Selector:
    """Build a selector by short name ("dpp", "random", "centroid", "authorship") from config fields."""
    if name not in SELECTORS:
        raise ValueError(f"unknown selector {name!r}; expected one of {sorted(SELECTORS)}")
    cls = SELECTORS[name]
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"selector {name!r} takes no option(s) {sorted(unknown)}; it takes {sorted(fields)}")
    return cls(cls.config_class(**config))
