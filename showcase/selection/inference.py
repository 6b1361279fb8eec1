"""`select_photos`: pick K photos of a business's pool for a user, from CLIP features (used by the API).

Requests are bounded: the selector scores the whole pool by relevance (O(P·d) time; the DPP's image tower takes
`POOL_CHUNK` photos at a time, so memory stays flat: 85–176 MB over 8 runs instead of 438 MB above the process
for a 74k-photo pool at width 512, `benchmarks/pool_scoring.py`), and the DPP (greedy MAP on a (M, M) kernel) runs
on the `max_candidates` most relevant photos only (default `MAX_CANDIDATES`; the paper's pools hold ~36 photos on
average). A pool of at most M photos is selected exactly as without the cap.
`group_relevance` is the cold-start ranking φ(S, f) = Σ_u Pr(u, f) of ELVis, computed in reviewer chunks without any
(R, P, P) kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import torch
from torch import Tensor

from showcase.selection.dpp import build_kernel, greedy_map
from showcase.selection.models import Selector, load_selector, topk_select
from showcase.selection.profile import SelectionBatch, collate_requests

MAX_CANDIDATES = 64  # photos the DPP sees per request (the most relevant ones); paper's mean pool: ~36
CHUNK_ELEMENTS = 1 << 22  # reviewers x photos x dim per chunk of the cold-start ranking (~16 MB of float32)
CHUNK_REVIEWERS = 256  # reviewers per chunk when the selector scores a shared pool once (`shared_pool_scores`)


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
    max_candidates: int | None = MAX_CANDIDATES,
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
        max_candidates: the DPP runs on this many most relevant photos (None: the whole pool).

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
        if max_candidates is None or batch["pool"].shape[1] <= max_candidates:
            indices = selector.select(batch, k)
            relevance = selector.scores(batch).masked_fill(~batch["pool_mask"], 0.0)
        else:
            relevance = selector.scores(batch).masked_fill(~batch["pool_mask"], 0.0)  # (B, N)
            indices = select_top_candidates(selector, batch, relevance, k, max_candidates)
    finally:
        selector.train(was_training)
    if single:
        return Selection(indices[0], relevance[0, : pools[0].shape[0]])
    return Selection(indices, relevance)


def select_top_candidates(selector: Selector, batch: SelectionBatch, relevance: Tensor, k: int, m: int) -> Tensor:
    """Selection among each row's `m` most relevant photos; returns `(B, k)` positions in the full pool (-1 pads)."""
    mask = batch["pool_mask"]
    top = relevance.masked_fill(~mask, float("-inf")).topk(min(m, relevance.shape[1]), dim=1)  # (B, m)
    keep = torch.isfinite(top.values)  # (B, m)
    pool = batch["pool"].gather(1, top.indices.unsqueeze(-1).expand(-1, -1, batch["pool"].shape[-1]))  # (B, m, d)
    quality = top.values.masked_fill(~keep, 0.0)
    kernel_of = getattr(selector, "kernel", None)
    if kernel_of is not None:
        chosen = greedy_map(kernel_of({**batch, "pool": pool, "pool_mask": keep}, quality=quality), k, mask=keep)
    else:
        chosen = topk_select(quality, keep, k)
    return torch.where(chosen >= 0, top.indices.gather(1, chosen.clamp_min(0)), -1)


@torch.no_grad()
def group_relevance(selector: Selector, reviewer_texts: Sequence[Tensor], reviewer_images: Sequence[Tensor],
                    pool_features: Tensor, user_ids: Sequence[str] | None = None) -> Tensor:
    """ELVis's group ranking φ(S, f) = Σ_u Pr(u, f): the selector's relevance summed over reviewers, `(P,)`.

    A selector with `shared_pool_scores` (the DPP) runs its towers once per reviewer and once per photo, in chunks of
    `CHUNK_REVIEWERS` reviewers; any other is scored with the pool repeated, in chunks of about `CHUNK_ELEMENTS`
    reviewer x photo x dim elements. Memory stays bounded whatever the number of reviewers; no DPP kernel is built.
    """
    P, d = pool_features.shape
    total = torch.zeros(P)
    if not reviewer_texts or P == 0:
        return total
    device = next(iter(selector.parameters()), torch.empty(0)).device
    chunk = max(1, CHUNK_ELEMENTS // max(P * d, 1))
    ids = list(user_ids) if user_ids is not None else [""] * len(reviewer_texts)
    n = len(reviewer_texts)

    def batches(size: int, pools: Sequence[Tensor]) -> Iterator[SelectionBatch]:
        for start in range(0, n, size):
            stop = min(start + size, n)
            batch = collate_requests(reviewer_texts[start:stop], reviewer_images[start:stop], pools[start:stop],
                                     user_ids=ids[start:stop])
            yield {key: v.to(device) if isinstance(v, Tensor) else v for key, v in batch.items()}

    was_training = selector.training
    selector.eval()
    try:
        shared = getattr(selector, "shared_pool_scores", None)
        if shared is not None:  # towers run once per reviewer and once per photo: no (R, P, d) at all
            pool, chunks = pool_features.to(device), batches(CHUNK_REVIEWERS, [pool_features[:0]] * n)
            first = shared(next(chunks), pool)  # (chunk, P), or None when this selector cannot share a pool
            if first is not None:
                total += first.float().sum(0).cpu()
                for batch in chunks:
                    total += shared(batch, pool).float().sum(0).cpu()
                return total
        for batch in batches(chunk, [pool_features] * n):
            total += selector.scores(batch).float().sum(0).cpu()  # (P,)
    finally:
        selector.train(was_training)
    return total


def select_by_quality(quality: Tensor, pool_features: Tensor, k: int, max_candidates: int | None = MAX_CANDIDATES,
                      jitter: float = 1e-4) -> list[int]:
    """Greedy DPP MAP with quality `(P,)` and cosine similarity, on the `max_candidates` best photos; pool positions."""
    order = torch.arange(len(quality))
    if max_candidates is not None and len(quality) > max_candidates:
        order = quality.topk(max_candidates).indices
    chosen = greedy_map(build_kernel(quality[order], pool_features[order], jitter=jitter), k)
    return [int(order[j]) for j in chosen.tolist() if j >= 0]
