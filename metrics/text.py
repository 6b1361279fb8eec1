"""Stateful n-gram text metrics (BLEU, NIST, METEOR, Distinct, and the shared-tokenisation suite).

Each class has ``update(preds, refs)`` and ``compute()``; the definitions are those of the functional twins in
:mod:`metrics.functional.text`. BLEU keeps sacrebleu's summable sufficient statistics; NIST and Distinct keep tokens
(their corpus-level values need corpus-wide n-gram counts), concatenated over ranks under DDP.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from metrics.base import MeanMetric, Metric
from metrics.functional.text import (
    TEXT_METRICS,
    NGramCounts,
    Refs,
    bleu_from_stats,
    bleu_stats,
    distinct_from_counts,
    get_tokenizer,
    meteor_sentence_scores,
    nist_from_counts,
    normalize_refs,
    suite_from_counts,
    suite_order,
)


class _Tokenising(Metric):
    def __init__(self, tokenize: str = "13a", lowercase: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokenize, self.lowercase = tokenize, lowercase
        self._tok = get_tokenizer(tokenize, lowercase)

    def _tokens(self, preds: Sequence[str], refs: Optional[Sequence[Refs]]):
        groups = normalize_refs(preds, refs) if refs is not None else [[] for _ in preds]
        return [self._tok(p) for p in preds], [[self._tok(r) for r in g] for g in groups]


class BLEUScore(_Tokenising):
    """Corpus BLEU-``max_order`` in [0, 1]; see :func:`metrics.functional.bleu_score` (sacrebleu, 13a tokens).

    State: ``stats = [sys_len, ref_len, correct_1..N, total_1..N]``, summed over batches and ranks.
    """

    def __init__(self, max_order: int = 4, smooth_method: str = "exp", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_order, self.smooth_method = max_order, smooth_method
        self.add_state("stats", [0] * (2 + 2 * max_order), "sum")

    def update(self, preds: Sequence[str], refs: Sequence[Refs]) -> None:
        hyps, groups = self._tokens(preds, refs)
        new = bleu_stats(NGramCounts.from_tokens(hyps, groups, self.max_order), self.max_order)
        self.stats = [a + b for a, b in zip(self.stats, new)]

    def _compute(self) -> float:
        return bleu_from_stats(self.stats, self.max_order, self.smooth_method)


class _TokenStore(_Tokenising):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("hyps", [], "cat")
        self.add_state("refs", [], "cat")

    def update(self, preds: Sequence[str], refs: Sequence[Refs]) -> None:
        hyps, groups = self._tokens(preds, refs)
        self.hyps.extend(hyps)
        self.refs.extend(groups)


class NISTScore(_TokenStore):
    """Corpus NIST-``n`` (nltk ``corpus_nist``); see :func:`metrics.functional.nist_score`."""

    def __init__(self, n: int = 4, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.n = n

    def _compute(self) -> float:
        return nist_from_counts(NGramCounts.from_tokens(self.hyps, self.refs, self.n), self.n)


class DistinctN(_Tokenising):
    """Distinct-``n`` of the predictions, ``level`` ``"corpus"`` (default) or ``"sentence"``;
    see :func:`metrics.functional.distinct_n`. ``update(preds)`` takes predictions only."""

    def __init__(self, n: int = 1, level: str = "corpus", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if level not in ("corpus", "sentence"):
            raise ValueError(f"level must be 'corpus' or 'sentence', got {level!r}")
        self.n, self.level = n, level
        self.add_state("hyps", [], "cat")

    def update(self, preds: Sequence[str], refs: Optional[Sequence[Refs]] = None) -> None:
        self.hyps.extend(self._tokens(preds, None)[0])

    def _compute(self) -> float:
        counts = [NGramCounts.count(h, self.n) for h in self.hyps]
        return distinct_from_counts(counts, self.n, self.level)


class METEORScore(MeanMetric):
    """Mean sentence METEOR (nltk); see :func:`metrics.functional.meteor_score`. Needs WordNet."""

    def __init__(self, tokenize: str = "13a", lowercase: bool = False, wordnet: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._tok = get_tokenizer(tokenize, lowercase)
        self.wordnet = wordnet

    def _scores(self, preds: Sequence[str], refs: Sequence[Refs]):
        groups = normalize_refs(preds, refs)
        return meteor_sentence_scores([self._tok(p) for p in preds], [[self._tok(r) for r in g] for g in groups],
                                      self.wordnet)


class TextMetrics(_TokenStore):
    """Several n-gram metrics (``TEXT_METRICS`` names) on one tokenisation; ``compute()`` returns a dict.

    Same values as the single classes; tokens are kept once and n-grams counted once at ``compute``.
    """

    def __init__(self, metrics: Sequence[str] = TEXT_METRICS[:5], distinct_level: str = "corpus",
                 wordnet: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        suite_order(metrics)  # checks the names
        self.metrics, self.distinct_level, self.wordnet = tuple(metrics), distinct_level, wordnet

    def _compute(self) -> Dict[str, float]:
        counts = NGramCounts.from_tokens(self.hyps, self.refs, suite_order(self.metrics))
        return suite_from_counts(counts, self.metrics, self.distinct_level, self.wordnet)
