"""CLIP-based metrics: CLIP-Score (two named variants) and CLIP-Align (Eq. 12 of Personalized Showcases).

Encoders are passed in: any object with ``encode_texts(list[str]) -> (n, d)`` and ``encode_images(list) -> (n, d)``
(``showcase.encoders.load_clip`` returns one). Features are re-normalised here, so unnormalised ones are fine.
The classifier of CLIP-Align is a callable ``classifier(text_features (m, d), image_features (n, d)) -> (m, n)``
of probabilities (``showcase.distill.load_classifier`` returns one).
"""
from __future__ import annotations

import re
from typing import Any, Callable, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F

HESSEL_PREFIX = "A photo depicts "
CLIP_SCORE_VARIANTS = ("hessel", "cosine")
Classifier = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> List[str]:
    """Split a generated text into sentences at ``.``/``!``/``?`` followed by whitespace (empty parts dropped)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def clip_score_from_features(text_features: torch.Tensor, image_features: torch.Tensor, variant: str = "hessel",
                             w: float = 2.5) -> torch.Tensor:
    """Per-pair CLIP-Score of row-aligned features (both ``(n, d)``), shape ``(n,)``.

    * ``"hessel"``: CLIP-S of Hessel et al. (2021), ``w * max(cos(t, v), 0)`` with ``w = 2.5`` (the text is expected
      to have been encoded with the prefix "A photo depicts ");
    * ``"cosine"``: the plain cosine ``cos(t, v)`` (reported x100 as "mean cosine").
    """
    if variant not in CLIP_SCORE_VARIANTS:
        raise ValueError(f"variant must be one of {CLIP_SCORE_VARIANTS}, got {variant!r}")
    if text_features.shape != image_features.shape:
        raise ValueError(f"text features {tuple(text_features.shape)} and image features "
                         f"{tuple(image_features.shape)} must have the same shape")
    cos = (F.normalize(text_features.float(), dim=-1) * F.normalize(image_features.float(), dim=-1)).sum(-1)
    return w * cos.clamp(min=0) if variant == "hessel" else cos


def clip_align_from_scores(confidence: torch.Tensor) -> float:
    """Eq. 12: ``1/n * sum_i max_j cs[j, i]`` for a ``(m sentences, n images)`` confidence matrix.

    Returns 0.0 when there is no sentence (nothing describes any image); an empty image set is an error.
    """
    if confidence.dim() != 2:
        raise ValueError(f"confidence must be (sentences, images), got shape {tuple(confidence.shape)}")
    if confidence.shape[1] == 0:
        raise ValueError("CLIP-Align needs at least one image")
    if confidence.shape[0] == 0:
        return 0.0
    return confidence.max(dim=0).values.mean().item()


def _as_list(images: Any) -> list:
    return list(images) if isinstance(images, (list, tuple)) else [images]


def clip_score_samples(texts: Sequence[str], images: Sequence[Any], encoder: Any, variant: str = "hessel",
                       prefix: Optional[str] = None, w: float = 2.5) -> List[float]:
    """Per-sample CLIP-Score: the mean over the sample's images of the per-pair score of its whole text.

    ``prefix`` defaults to "A photo depicts " for ``"hessel"`` and to nothing for ``"cosine"``.
    """
    if len(texts) != len(images):
        raise ValueError(f"got {len(texts)} texts but {len(images)} image sets")
    prefix = (HESSEL_PREFIX if variant == "hessel" else "") if prefix is None else prefix
    groups = [_as_list(i) for i in images]
    if any(not g for g in groups):
        raise ValueError("every text needs at least one image")
    flat = [im for g in groups for im in g]
    owners = torch.tensor([k for k, g in enumerate(groups) for _ in g])
    text_feats = encoder.encode_texts([prefix + t for t in texts])  # (B, d)
    image_feats = encoder.encode_images(flat)  # (N, d)
    pair = clip_score_from_features(text_feats[owners], image_feats, variant, w)  # (N,)
    sums = torch.zeros(len(groups)).index_add_(0, owners, pair.float().cpu())
    return (sums / torch.tensor([len(g) for g in groups], dtype=torch.float)).tolist()


def clip_score(texts: Sequence[str], images: Sequence[Any], encoder: Any, variant: str = "hessel",
               prefix: Optional[str] = None, w: float = 2.5) -> float:
    """Corpus CLIP-Score: the mean of :func:`clip_score_samples` (``images[k]`` is one image or a list)."""
    scores = clip_score_samples(texts, images, encoder, variant, prefix, w)
    return sum(scores) / len(scores) if scores else 0.0


def clip_align_samples(texts: Sequence[Union[str, Sequence[str]]], images: Sequence[Any], encoder: Any,
                       classifier: Optional[Classifier] = None) -> List[float]:
    """Per-sample CLIP-Align (Eq. 12): for each image the highest classifier confidence over the sentences of the
    generated text, averaged over the images.

    Args:
        texts: per sample a generated text (split with :func:`split_sentences`) or its list of sentences.
        images: per sample one image or a list of images (anything ``encoder.encode_images`` takes).
        classifier: Φ, ``(m, d), (n, d) -> (m, n)`` probabilities. ``None`` uses the cosine similarity instead,
            which is the paper's reading of CLIP-Score in Section 4.4 ("replacing cs with the cosine").
    """
    if len(texts) != len(images):
        raise ValueError(f"got {len(texts)} texts but {len(images)} image sets")
    out = []
    for text, imgs in zip(texts, images):
        sentences = split_sentences(text) if isinstance(text, str) else [s for s in text if s.strip()]
        imgs = _as_list(imgs)
        image_feats = encoder.encode_images(imgs)  # (n, d)
        if not sentences:
            out.append(clip_align_from_scores(torch.zeros(0, len(imgs))))
            continue
        text_feats = encoder.encode_texts(sentences)  # (m, d)
        if classifier is None:
            conf = F.normalize(text_feats.float(), dim=-1) @ F.normalize(image_feats.float(), dim=-1).T
        else:
            conf = classifier(text_feats, image_feats)
        conf = torch.as_tensor(conf).detach().float().cpu()
        if conf.shape != (len(sentences), len(imgs)):
            raise ValueError(f"classifier returned shape {tuple(conf.shape)}, expected "
                             f"({len(sentences)}, {len(imgs)})")
        out.append(clip_align_from_scores(conf))
    return out


def clip_align(texts: Sequence[Union[str, Sequence[str]]], images: Sequence[Any], encoder: Any,
               classifier: Optional[Classifier] = None) -> float:
    """Corpus CLIP-Align: the mean over samples of :func:`clip_align_samples`."""
    scores = clip_align_samples(texts, images, encoder, classifier)
    return sum(scores) / len(scores) if scores else 0.0
