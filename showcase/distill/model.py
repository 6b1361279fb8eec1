"""The sentence–image classifier Φ (Section 3.3 of the paper): does a sentence describe a photo?

Φ takes frozen CLIP features of a sentence `t` and of a photo `v` and returns the probability that the sentence
describes the photo. Two heads:

- ``"concat"``, the paper's: ``sigmoid(W [t; v] + b)``. A single linear layer over the concatenation scores
  ``w_t·t + w_v·v``, a sentence score plus a photo score: it can learn that a sentence is "photo-like", never
  whether it matches *this* photo.
- ``"match"``: both features are projected to a shared space (``p = A t``, ``q = B v``; needed when the two
  embeddings are not aligned, as with an untrained CLIP), then a hidden layer over ``[p, q, p⊙q, |p−q|]`` (the
  classic sentence-pair features) models the match itself.

Calling the module scores all pairs: ``phi(text (m, d), image (n, d)) -> probabilities (m, n)`` (CLIP-Align, Eq. 12,
uses this form); :meth:`SentenceImageClassifier.pair_logits` scores aligned pairs for training.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from showcase.pretrained import PretrainedMixin

HEADS = ("concat", "match")


@dataclass
class ClassifierConfig:
    """Configuration of Φ.

    Attributes:
        dim: CLIP embedding size of both sentence and photo features.
        head: ``"concat"`` (the paper's single linear layer) or ``"match"`` (hidden layer over match features).
        hidden: size of the shared space and of the hidden layer of the ``"match"`` head.
        dropout: dropout before the last layer of the ``"match"`` head.
        threshold: decision threshold on the probability; set to the max-F1 threshold on validation when trained.
    """

    dim: int = 512
    head: str = "match"
    hidden: int = 128
    dropout: float = 0.2
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"ClassifierConfig.head: unknown head {self.head!r}; expected one of {HEADS}")
        if self.dim <= 0 or self.hidden <= 0:
            raise ValueError(f"ClassifierConfig: dim and hidden must be positive, got {self.dim}, {self.hidden}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"ClassifierConfig.threshold must lie in [0, 1], got {self.threshold}")


class ConcatHead(nn.Module):
    """The paper's head: one linear layer over ``[t; v]``, applied as ``W_t t + W_v v + b`` so it broadcasts."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(2 * dim, 1)

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        # text (..., D), image (..., D), broadcastable -> logits (...)
        w_t, w_v = self.linear.weight[:, : self.dim], self.linear.weight[:, self.dim :]
        return (F.linear(text, w_t) + F.linear(image, w_v, self.linear.bias)).squeeze(-1)


class MatchHead(nn.Module):
    """Projections to a shared space, then a hidden layer over ``[p, q, p⊙q, |p−q|]``: models the match."""

    def __init__(self, dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.text_proj = nn.Linear(dim, hidden)
        self.image_proj = nn.Linear(dim, hidden)
        self.mlp = nn.Sequential(
            nn.Linear(4 * hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        # text (..., D), image (..., D), broadcastable -> logits (...)
        text, image = self.text_proj(text), self.image_proj(image)  # (..., H)
        text, image = torch.broadcast_tensors(text, image)
        features = torch.cat([text, image, text * image, (text - image).abs()], dim=-1)  # (..., 4D)
        return self.mlp(features).squeeze(-1)


class SentenceImageClassifier(nn.Module, PretrainedMixin):
    """Φ: probability that a sentence describes a photo, from their CLIP features.

    Inputs are L2-normalised, then standardised per feature with running statistics gathered in training (a
    BatchNorm without affine parameters, one per modality): CLIP features share a large common component, and the
    small differences that tell dishes apart only become usable once centred and scaled.

    Example:
        >>> phi = SentenceImageClassifier(ClassifierConfig(dim=8, head="match"))
        >>> phi(torch.randn(3, 8), torch.randn(2, 8)).shape      # every sentence against every photo
        torch.Size([3, 2])
        >>> phi.pair_probs(torch.randn(5, 8), torch.randn(5, 8)).shape
        torch.Size([5])
    """

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.text_norm = nn.BatchNorm1d(config.dim, affine=False, momentum=None)
        self.image_norm = nn.BatchNorm1d(config.dim, affine=False, momentum=None)
        if config.head == "concat":
            self.head: nn.Module = ConcatHead(config.dim)
        else:
            self.head = MatchHead(config.dim, config.hidden, config.dropout)

    @property
    def threshold(self) -> float:
        """The decision threshold stored with the model (chosen on validation when trained)."""
        return self.config.threshold

    def _prepare(self, features: torch.Tensor, norm: nn.BatchNorm1d, name: str) -> torch.Tensor:
        if features.shape[-1] != self.config.dim:
            raise ValueError(f"{name} features have size {features.shape[-1]}, Φ expects {self.config.dim}")
        param = next(self.parameters())
        features = F.normalize(features.to(device=param.device, dtype=param.dtype), dim=-1)
        return norm(features.reshape(-1, self.config.dim)).reshape(features.shape)  # (..., D)

    def pair_logits(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Logits of aligned (or broadcastable) pairs: ``text (..., D)``, ``image (..., D)`` -> ``(...)``."""
        return self.head(self._prepare(text, self.text_norm, "text"), self._prepare(image, self.image_norm, "image"))

    def pair_probs(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Probabilities of aligned pairs: ``text (B, D)``, ``image (B, D)`` -> ``(B,)``."""
        return torch.sigmoid(self.pair_logits(text, image))

    def forward(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Probabilities for all pairs: ``text (M, D)``, ``image (N, D)`` -> ``(M, N)``."""
        if text.dim() != 2 or image.dim() != 2:
            raise ValueError(f"expected text (M, D) and image (N, D), got {tuple(text.shape)}, {tuple(image.shape)}")
        return torch.sigmoid(self.pair_logits(text[:, None, :], image[None, :, :]))  # (M, N)

    def predict(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Boolean decisions for all pairs at the stored threshold: ``(M, N)``."""
        return self(text, image) >= self.threshold


def load_classifier(folder: str | Path, map_location: str | torch.device = "cpu") -> SentenceImageClassifier:
    """Load a trained Φ from its folder (``config.json`` + ``model.safetensors``), in eval mode.

    Raises:
        FileNotFoundError: when `folder` is not a saved model folder.
    """
    return SentenceImageClassifier.from_pretrained(folder, map_location=map_location)
