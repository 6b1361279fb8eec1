"""`select_photos`: pick K photos of a business's pool for a user, from CLIP features (used by the API)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from showcase.selection.models import Selector, load_selector
from showcase.selection.profile import collate_requests


@dataclass
class Selection:
    """Result of `select_photos`.

    Attributes:
        indices: `(B, k)` positions in each pool, in selection order, -1 where a pool ran out
            (`(k,)` for an unbatched call).
        relevance: `(B, N)` the selector's relevance of every candidate, 0 on padding (`(N,)` unbatched).
    """

    indices: Tensor
    relevance: Tensor


def _as_list(x: Tensor | Sequence[Tensor], name: str) -> list[Tensor]:
    if isinstance(x, Tensor):
        if x.dim() != 2:
            raise ValueError(f"{name}: a single request takes an (n, d) tensor, got shape {tuple(x.shape)}")
        return [x]
    return list(x)


@torch.no_grad()
def select_photos(
    selector: Selector | str | Path,
    history_text_features: Tensor | Sequence[Tensor],
    history_image_features: Tensor | Sequence[Tensor],
    pool_features: Tensor | Sequence[Tensor],
    k: int = 3,
    user_ids: Sequence[str] | None = None,
) -> Selection:
    """Select `k` photos per request.

    Pass one request as `(n, d)` tensors, or a batch as sequences of them (pools and histories of any sizes;
    an empty history is a `(0, d)` tensor).

    Args:
        selector: a selector, or a folder saved by `save_pretrained` / `SelectionModule.export`.
        history_text_features: CLIP features of the user's history review texts.
        history_image_features: CLIP features of the user's history photos.
        pool_features: CLIP features of the business's candidate photos.
        k: photos to select.
        user_ids: user ids, for selectors with user embeddings (ELVis authorship).

    Returns:
        A `Selection` (indices into each pool, and the relevance of every candidate).
    """
    if not isinstance(selector, Selector):
        selector = load_selector(selector)
    single = isinstance(pool_features, Tensor)
    texts = _as_list(history_text_features, "history_text_features")
    images = _as_list(history_image_features, "history_image_features")
    pools = _as_list(pool_features, "pool_features")
    dim = getattr(selector.config, "feature_dim", None)
    for p in pools:
        if dim is not None and p.shape[-1] != dim:
            raise ValueError(f"pool features have dim {p.shape[-1]} but the selector was built for {dim}")
    device = next(iter(selector.parameters()), torch.empty(0)).device
    batch = collate_requests(texts, images, pools, user_ids=user_ids)
    batch = {key: v.to(device) if isinstance(v, Tensor) else v for key, v in batch.items()}
    was_training = selector.training
    selector.eval()
    try:
        indices = selector.select(batch, k)
        relevance = selector.scores(batch).masked_fill(~batch["pool_mask"], 0.0)
    finally:
        selector.train(was_training)
    if single:
        return Selection(indices[0], relevance[0, : pools[0].shape[0]])
    return Selection(indices, relevance)
