"""Probes of a trained generator's contrastive heads: does the image loss read the text, and how are PCL's weights
spread?

`image_text_probe` decodes each target on *another* example's encoder states (a derangement) and asks every image
which projected target it prefers. A grounded H^Y makes an image pick its own text; an H^Y that copies the images it
attended to makes the image pick whichever text was decoded on its images. With `target_view="text"` (H^Y decoded
without cross-attention) the second share can only be chance.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from showcase.generation.losses import masked_mean, personalization_weights


def _derangement(n: int, generator: torch.Generator) -> torch.Tensor:
    """A random permutation without fixed points (n >= 2)."""
    while True:
        perm = torch.randperm(n, generator=generator)
        if not (perm == torch.arange(n)).any():
            return perm


@torch.no_grad()
def image_text_probe(module: Any, batch: dict[str, Any], seed: int = 0) -> dict[str, float]:
    """Which target each image's projection prefers when target j is decoded on example perm(j)'s encoder states.

    Args:
        module: a `GeneratorModule` with an image loss (its `phi_v` and `phi_y` heads).
        batch: a collated batch of at least 2 examples that have photos.
        seed: seed of the derangement.

    Returns:
        `{"own_text": share of images whose best target is their own, "own_images": share whose best target is the
        one decoded on their own images, "chance": 1 / B}`.
    """
    heads, model, cfg = module.heads, module.model, module.loss_config
    if heads.phi_v is None:
        raise ValueError("the probe needs a module trained with an image loss")
    was_training = module.training
    module.eval()
    states, mask, pos = model.encode(*module._inputs(batch))  # (B, S, D), (B, S)
    b = states.shape[0]
    perm = _derangement(b, torch.Generator().manual_seed(seed))
    ids, attention = batch["input_ids"], batch["attention_mask"]
    if cfg.target_view == "conditioned":
        hidden, _ = model.decode(ids, attention, states[perm], mask[perm], with_logits=False)  # (B, T, D)
    else:
        hidden = model.decoder.transformer(input_ids=ids, attention_mask=attention, use_cache=False).last_hidden_state
    z_y = F.normalize(heads.phi_y(masked_mean(hidden, attention)), dim=-1)  # (B, P)
    z_v = F.normalize(heads.phi_v(masked_mean(states, pos["image"])), dim=-1)  # (B, P)
    best = (z_v @ z_y.T).argmax(1)  # (B,) the target image i prefers
    rows = torch.arange(b)
    module.train(was_training)
    return {"own_text": (best == rows).float().mean().item(),
            "own_images": (perm[best] == rows).float().mean().item(), "chance": 1.0 / b}


def pcl_weight_quantiles(module: Any, batch: dict[str, Any], quantiles=(0.05, 0.5, 0.95)) -> dict[str, float]:
    """Quantiles of Eq. 10's off-diagonal weights over a batch, with the module's `history_features` setting."""
    cfg, enc = module.loss_config, module.model.encoder
    feats = batch["review_features"].float()
    if cfg.history_features == "standardized":
        feats = (feats - enc.review_mean) / enc.review_std
    w = personalization_weights(masked_mean(feats, batch["review_mask"]), cfg.alpha)
    off = w[~torch.eye(len(w), dtype=torch.bool)]
    return {f"q{int(100 * q)}": torch.quantile(off, q).item() for q in quantiles}
