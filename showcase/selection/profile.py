"""User profile features for selection: mean CLIP features of a user's history texts and photos.

A batch of selection requests is a dict of padded tensors (see `SelectionBatch`); the profile is computed from it
inside the model, so the modality switch and VisualLens's top-w history retrieval travel with the saved config.
"""
from __future__ import annotations

from typing import Sequence, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor

MODALITIES = ("img", "text", "img+text")


class SelectionBatch(TypedDict, total=False):
    """Padded tensors of B selection requests (d = CLIP dim).

    Keys:
        hist_text: `(B, T, d)` features of the user's history review texts; `hist_text_mask` `(B, T)` bool.
        hist_img: `(B, H, d)` features of the user's history photos; `hist_img_mask` `(B, H)` bool.
        pool: `(B, N, d)` features of the business's candidate photos; `pool_mask` `(B, N)` bool.
        target: `(B, N)` bool, the user's own photos of the business (training and evaluation only).
        user_ids: list of B user ids (for models with user embeddings).
    """

    hist_text: Tensor
    hist_text_mask: Tensor
    hist_img: Tensor
    hist_img_mask: Tensor
    pool: Tensor
    pool_mask: Tensor
    target: Tensor
    user_ids: list


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    return modality


def modality_count(modality: str) -> int:
    return 2 if check_modality(modality) == "img+text" else 1


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over dim 1 of `x` `(B, T, d)` where `mask` `(B, T)` is True; zeros for empty rows."""
    w = mask.to(x.dtype).unsqueeze(-1)  # (B, T, 1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, d)


def top_w_mask(hist: Tensor, hist_mask: Tensor, pool: Tensor, pool_mask: Tensor, w: int) -> Tensor:
    """VisualLens history retrieval: keep the `w` history items most similar (cosine) to the pool's mean."""
    query = F.normalize(masked_mean(pool, pool_mask), dim=-1)  # (B, d)
    sim = torch.einsum("bhd,bd->bh", F.normalize(hist, dim=-1), query)  # (B, H)
    sim = sim.masked_fill(~hist_mask, float("-inf"))
    keep = torch.zeros_like(hist_mask)
    if hist.shape[1]:
        idx = sim.topk(min(w, hist.shape[1]), dim=1).indices  # (B, w)
        keep.scatter_(1, idx, True)
    return keep & hist_mask


def profile_features(batch: SelectionBatch, modality: str, top_w: int | None = None) -> Tensor:
    """The user profile: mean text features ⊕ mean image features of the history (paper Sec. 4.1, 5.1).

    Args:
        batch: a `SelectionBatch`.
        modality: "img", "text" or "img+text" (text first, then image, as in "text ⊕ image").
        top_w: if set, only the `top_w` history photos most similar to the pool enter the image mean.

    Returns:
        `(B, d)` or `(B, 2d)` for img+text.
    """
    parts = []
    if modality in ("text", "img+text"):
        parts.append(masked_mean(batch["hist_text"], batch["hist_text_mask"]))
    if modality in ("img", "img+text"):
        mask = batch["hist_img_mask"]
        if top_w is not None:
            mask = top_w_mask(batch["hist_img"], mask, batch["pool"], batch["pool_mask"], top_w)
        parts.append(masked_mean(batch["hist_img"], mask))
    if not parts:
        check_modality(modality)
    return torch.cat(parts, dim=-1)


def pad_stack(rows: Sequence[Tensor], dim: int) -> tuple[Tensor, Tensor]:
    """Stack `(n_i, dim)` tensors into `(B, max n, dim)` zeros-padded plus a `(B, max n)` bool mask."""
    longest = max((len(r) for r in rows), default=0)
    out = torch.zeros(len(rows), max(longest, 1), dim)
    mask = torch.zeros(len(rows), max(longest, 1), dtype=torch.bool)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = r
            mask[i, : len(r)] = True
    return out, mask


def collate_requests(
    hist_texts: Sequence[Tensor],
    hist_imgs: Sequence[Tensor],
    pools: Sequence[Tensor],
    targets: Sequence[Tensor] | None = None,
    user_ids: Sequence[str] | None = None,
) -> SelectionBatch:
    """Build a padded `SelectionBatch` from per-request feature tensors (`(n_i, d)` each) and target positions."""
    if not (len(hist_texts) == len(hist_imgs) == len(pools)):
        raise ValueError(f"got {len(hist_texts)} text histories, {len(hist_imgs)} photo histories, {len(pools)} pools")
    dims = {t.shape[-1] for t in (*hist_texts, *hist_imgs, *pools) if t.dim() == 2 and t.shape[0]}
    if len(dims) > 1:
        raise ValueError(f"features of different dimensions in one batch: {sorted(dims)}")
    d = dims.pop() if dims else pools[0].shape[-1]
    batch: SelectionBatch = {}
    batch["hist_text"], batch["hist_text_mask"] = pad_stack(hist_texts, d)
    batch["hist_img"], batch["hist_img_mask"] = pad_stack(hist_imgs, d)
    batch["pool"], batch["pool_mask"] = pad_stack(pools, d)
    if targets is not None:
        target = torch.zeros_like(batch["pool_mask"])
        for i, pos in enumerate(targets):
            target[i, pos] = True
        batch["target"] = target
    batch["user_ids"] = list(user_ids) if user_ids is not None else [""] * len(pools)
    return batch
