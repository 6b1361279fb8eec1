"""The explanation generator (Section 4.2): a multi-modal encoder over photo and history features, and GPT-2 with
cross-attention to it as the decoder.

Example:
    >>> gen = ExplanationGenerator(GeneratorConfig.tiny(feature_dim=64))            # doctest: +SKIP
    >>> gen.generate(img, img_mask, rev, rev_mask, num_beams=2, max_new_tokens=64)  # doctest: +SKIP
    ['The miso ramen was rich.', ...]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from showcase.errors import UserError
from showcase.generation.tokenizer import load_tokenizer
from showcase.pretrained import CONFIG_NAME, PretrainedMixin, config_from_dict, load_weights, read_config

TOKENIZER_DIR = "tokenizer"


@dataclass
class GeneratorConfig:
    """Architecture of the generator. Defaults are the paper's full size (GPT-2 small: 768 wide, 12 heads, 12 layers;
    3 encoder layers; explanations of at most 64 tokens).

    Attributes:
        feature_dim: width of the stored image features (CLIP ViT-B/32: 512).
        review_feature_dim: width of the stored text features (default: `feature_dim`).
        decoder: Hub name or local folder of pretrained GPT-2 weights (`"gpt2"`); None builds a randomly
            initialised decoder from the fields below (Table 5's "random" initialisation).
        tokenizer: name or folder of the tokenizer (None: GPT-2's).
        n_embd, n_head, n_layer, n_positions, vocab_size: decoder shape (ignored when `decoder` is given).
        encoder_layers, encoder_heads: the multi-modal attention stack (heads default to `n_head`).
        dropout: dropout of encoder and (random) decoder.
        max_images, max_reviews, max_length: input set sizes and target length in tokens (BOS and EOS included).
        decoder_config: the resolved `GPT2Config` as a dict; filled in when the model is built and used on reload.
    """

    feature_dim: int = 512
    review_feature_dim: int | None = None
    decoder: str | None = None
    tokenizer: str | None = None
    n_embd: int = 768
    n_head: int = 12
    n_layer: int = 12
    n_positions: int = 1024
    vocab_size: int = 50257
    encoder_layers: int = 3
    encoder_heads: int | None = None
    dropout: float = 0.1
    max_images: int = 5
    max_reviews: int = 10
    max_length: int = 64
    decoder_config: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def tiny(cls, **overrides: Any) -> "GeneratorConfig":
        """A small config for tests and the demo: 64 wide, 2 decoder layers, 1 encoder layer."""
        base = dict(n_embd=64, n_head=4, n_layer=2, n_positions=128, encoder_layers=1, dropout=0.0)
        return cls(**{**base, **overrides})


class MultimodalEncoder(nn.Module):
    """MMA (Eq. 2-3): project photo features (W_V) and history features (W_R) to the decoder width, add a modality
    embedding, and run a stack of self-attention layers over the concatenated set, with padding masks.

    Sets have no order, so there is no position embedding. A learned "global" slot is prepended so that the
    attention never sees a row with every position masked (a user with no history and no photo).

    Input features are standardised with per-dimension statistics kept as buffers (saved with the weights):
    unit-normalised CLIP features share a large common direction that otherwise slows learning down. They are
    0/1 until `set_feature_statistics` is called with training features.
    """

    IMAGE, REVIEW, GLOBAL = 0, 1, 2

    def __init__(self, config: GeneratorConfig, width: int, heads: int):
        super().__init__()
        self.w_v = nn.Linear(config.feature_dim, width)
        review_dim = config.review_feature_dim or config.feature_dim
        self.w_r = nn.Linear(review_dim, width)
        for name, dim in (("image", config.feature_dim), ("review", review_dim)):
            self.register_buffer(f"{name}_mean", torch.zeros(dim))
            self.register_buffer(f"{name}_std", torch.ones(dim))
        self.modality = nn.Embedding(3, width)
        layer = nn.TransformerEncoderLayer(
            width, config.encoder_heads or heads, 4 * width, config.dropout, activation="gelu", batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, config.encoder_layers, norm=nn.LayerNorm(width),
                                            enable_nested_tensor=False)

    @torch.no_grad()
    def set_feature_statistics(self, images: torch.Tensor | None, reviews: torch.Tensor | None) -> None:
        """Standardise inputs with the mean and std of these (n, F) training features (None leaves one as is)."""
        for name, feats in (("image", images), ("review", reviews)):
            if feats is not None and len(feats) > 1:
                getattr(self, f"{name}_mean").copy_(feats.float().mean(0))
                getattr(self, f"{name}_std").copy_(feats.float().std(0).clamp_min(1e-6))

    def forward(
        self,
        image_features: torch.Tensor | None,
        image_mask: torch.Tensor | None,
        review_features: torch.Tensor | None,
        review_mask: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Encode a batch of feature sets.

        Args:
            image_features: (B, N, F) or None; image_mask: (B, N) true at real photos.
            review_features: (B, K, F) or None; review_mask: (B, K) true at real history reviews.

        Returns:
            `(states (B, S, D), mask (B, S) bool, positions)` where S = 1 + N + K and `positions` holds boolean
            (B, S) masks `"image"` and `"review"` selecting each modality's real slots.
        """
        parts, masks, kinds = [], [], []
        b = next(x.shape[0] for x in (image_features, review_features) if x is not None)
        device = self.modality.weight.device
        glob = self.modality.weight[self.GLOBAL].expand(b, 1, -1)  # (B, 1, D)
        parts.append(glob)
        masks.append(torch.ones(b, 1, dtype=torch.bool, device=device))
        kinds.append(torch.full((b, 1), self.GLOBAL, device=device))
        for feats, mask, proj, kind, mean, std in (
            (image_features, image_mask, self.w_v, self.IMAGE, self.image_mean, self.image_std),
            (review_features, review_mask, self.w_r, self.REVIEW, self.review_mean, self.review_std),
        ):
            if feats is None:
                continue
            if mask is None:
                mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)
            feats = (feats.to(proj.weight.dtype) - mean) / std  # (B, n, F)
            parts.append(proj(feats) + self.modality.weight[kind])  # (B, n, D)
            masks.append(mask.bool())
            kinds.append(torch.full(mask.shape, kind, device=device))
        x, mask, kind = torch.cat(parts, 1), torch.cat(masks, 1), torch.cat(kinds, 1)  # (B, S, D), (B, S)
        states = self.layers(x, src_key_padding_mask=~mask)
        positions = {"image": mask & (kind == self.IMAGE), "review": mask & (kind == self.REVIEW)}
        return states, mask, positions


def _build_decoder(config: GeneratorConfig):
    from transformers import GPT2Config, GPT2LMHeadModel

    if config.decoder_config is not None:
        return GPT2LMHeadModel(GPT2Config(**{**config.decoder_config, "add_cross_attention": True}))
    if config.decoder is not None:
        # cross-attention layers are new: they start random (transformers warns about them, as expected).
        # from_pretrained returns the model in eval mode; a decoder built to be trained starts in train mode, as
        # every freshly built nn.Module does (else GPT-2's dropout never runs when fine-tuning)
        return GPT2LMHeadModel.from_pretrained(config.decoder, add_cross_attention=True).train()
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=config.vocab_size, n_positions=config.n_positions, n_embd=config.n_embd, n_layer=config.n_layer,
        n_head=config.n_head, resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
        add_cross_attention=True, bos_token_id=config.vocab_size - 1, eos_token_id=config.vocab_size - 1,
    ))


class ExplanationGenerator(PretrainedMixin, nn.Module):
    """Multi-modal encoder + GPT-2 decoder with cross-attention (Eq. 2-4).

    Args:
        config: the architecture; `config.decoder_config` is filled in with the decoder's resolved config.
        tokenizer: a GPT-2 tokenizer; loaded from `config.tokenizer` on first use when not given.
    """

    config_class = GeneratorConfig

    def __init__(self, config: GeneratorConfig, tokenizer: Any = None):
        super().__init__()
        self.decoder = _build_decoder(config)
        dconf = self.decoder.config
        self.config = dataclasses.replace(config, decoder_config=dconf.to_diff_dict() | {
            "vocab_size": dconf.vocab_size, "n_embd": dconf.n_embd, "n_layer": dconf.n_layer, "n_head": dconf.n_head,
            "n_positions": dconf.n_positions})
        if config.max_length > dconf.n_positions:
            raise ValueError(f"max_length {config.max_length} exceeds the decoder's n_positions {dconf.n_positions}")
        self.encoder = MultimodalEncoder(config, dconf.n_embd, dconf.n_head)
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.config.tokenizer)
        return self._tokenizer

    @property
    def width(self) -> int:
        return self.decoder.config.n_embd

    def encode(self, image_features=None, image_mask=None, review_features=None, review_mask=None):
        """Run the multi-modal encoder; see `MultimodalEncoder.forward`."""
        return self.encoder(image_features, image_mask, review_features, review_mask)

    def decode(self, input_ids, attention_mask, encoder_states, encoder_mask, with_logits: bool = True):
        """Teacher-forced decoder pass.

        Returns:
            `(hidden (B, T, D), logits (B, T, V) or None)`; the LM head is skipped when `with_logits` is false
            (the entity-swapped targets of CCL need only hidden states).
        """
        out = self.decoder.transformer(
            input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=encoder_states,
            encoder_attention_mask=encoder_mask.long(), use_cache=False,
        )
        hidden = out.last_hidden_state  # (B, T, D)
        return hidden, (self.decoder.lm_head(hidden) if with_logits else None)

    @torch.no_grad()
    def generate_ids(
        self,
        image_features: torch.Tensor | None,
        image_mask: torch.Tensor | None,
        review_features: torch.Tensor | None,
        review_mask: torch.Tensor | None,
        num_beams: int = 2,
        max_new_tokens: int = 64,
        use_cache: bool = True,
        min_new_tokens: int = 0,
    ) -> torch.Tensor:
        """Beam search (greedy when `num_beams=1`) with the key/value cache; returns (B, T) ids without the BOS.

        Decoding is transformers' `generate` with the encoder states passed as `encoder_hidden_states` (beams are
        expanded and the cache reordered there); `min_new_tokens` forbids EOS before that length (benchmarks).
        """
        if num_beams < 1 or max_new_tokens < 1:
            raise ValueError(f"num_beams and max_new_tokens must be >= 1, got {num_beams}, {max_new_tokens}")
        was_training = self.training
        self.eval()
        states, mask, _ = self.encode(image_features, image_mask, review_features, review_mask)
        tok = self.tokenizer
        bos = torch.full((states.shape[0], 1), tok.bos_token_id, dtype=torch.long, device=states.device)
        max_new = min(max_new_tokens, self.decoder.config.n_positions - 1)
        out = self.decoder.generate(
            input_ids=bos, attention_mask=torch.ones_like(bos), encoder_hidden_states=states,
            encoder_attention_mask=mask.long(), num_beams=num_beams, do_sample=False, max_new_tokens=max_new,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, use_cache=use_cache,
            min_new_tokens=min(min_new_tokens, max_new), **({"early_stopping": True} if num_beams > 1 else {}),
        )
        self.train(was_training)
        return out[:, 1:]

    def generate(
        self,
        image_features: torch.Tensor | None,
        image_mask: torch.Tensor | None,
        review_features: torch.Tensor | None,
        review_mask: torch.Tensor | None,
        num_beams: int = 2,
        max_new_tokens: int = 64,
        use_cache: bool = True,
    ) -> list[str]:
        """Write one explanation per row of the batch.

        Args:
            image_features: (B, N, F) features of the photos to explain (None for text-only models).
            image_mask: (B, N) true at real photos (None: all real).
            review_features: (B, K, F) features of the user's history reviews (None for image-only models).
            review_mask: (B, K) true at real reviews (None: all real).
            num_beams: beam width (1 = greedy).
            max_new_tokens: length limit of the explanations in tokens.
            use_cache: reuse keys/values of earlier steps (same output, faster).

        Returns:
            B strings, stripped of special tokens.
        """
        ids = self.generate_ids(image_features, image_mask, review_features, review_mask, num_beams,
                                max_new_tokens, use_cache)
        return [t.strip() for t in self.tokenizer.batch_decode(ids, skip_special_tokens=True)]

    # --- files ----------------------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, **extra: Any) -> Path:
        """Write config, weights and the tokenizer (`tokenizer/`): the folder alone rebuilds the generator."""
        saved_decoder, self.config.decoder = self.config.decoder, None  # rebuild from decoder_config on reload
        try:
            folder = super().save_pretrained(folder, **extra)
        finally:
            self.config.decoder = saved_decoder
        self.tokenizer.save_pretrained(str(Path(folder) / TOKENIZER_DIR))
        return folder

    @classmethod
    def from_pretrained(cls, folder: str | Path, map_location: str | torch.device = "cpu") -> "ExplanationGenerator":
        """Load a folder written by `save_pretrained` (or `GeneratorModule.export`); nothing is downloaded."""
        config, payload = read_config(folder)
        if config.get("decoder_config") is None:
            raise UserError("missing 'decoder_config': not a generator folder", path=Path(folder) / CONFIG_NAME)
        config["decoder"] = None
        tok_dir = Path(folder) / TOKENIZER_DIR
        if tok_dir.is_dir():
            config["tokenizer"] = None
        config = config_from_dict(GeneratorConfig, config, Path(folder) / CONFIG_NAME, payload.get("class"))
        model = cls(config, load_tokenizer(tok_dir) if tok_dir.is_dir() else None)
        load_weights(model, folder, map_location)
        return model.eval()
