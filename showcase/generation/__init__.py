"""Explanation generation (Sections 4.2-4.3): multi-modal encoder + GPT-2 with cross-attention, trained with PC²L.

Plain modules live here; the Lightning wrapper is `showcase.generation.module.GeneratorModule` and its data module
`showcase.generation.data.GeneratorDataModule` (imported on demand: they pull in Lightning).
"""
from showcase.generation.entities import EntitySwapper, load_spacy
from showcase.generation.losses import (
                                        ContrastiveHeads,
                                        LossConfig,
                                        contrastive_loss,
                                        masked_mean,
                                        personalization_weights,
)
from showcase.generation.model import ExplanationGenerator, GeneratorConfig, MultimodalEncoder
from showcase.generation.tokenizer import encode_targets, load_tokenizer

__all__ = ["ExplanationGenerator", "GeneratorConfig", "MultimodalEncoder", "LossConfig", "ContrastiveHeads",
           "contrastive_loss", "personalization_weights", "masked_mean", "EntitySwapper", "load_spacy",
           "load_tokenizer", "encode_targets"]
