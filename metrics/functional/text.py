"""N-gram text metrics (BLEU, NIST, Distinct, METEOR) on one shared tokenisation.

Every function takes raw strings, tokenises them once with a sacrebleu tokenizer (``"13a"`` by default, the WMT
standard, case kept unless ``lowercase=True``), counts the n-grams of each order once (:class:`NGramCounts`) and
derives all requested metrics from those counts. :func:`ngram_suite` computes several metrics on one pass, which is
what makes the suite cheap next to sacrebleu's BLEU alone (``benchmarks/metrics.py``).

All values are fractions (BLEU in [0, 1], not sacrebleu's 0-100); the CLI prints them in percent as the paper does.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Sequence, Union

from sacrebleu.metrics.bleu import BLEU

Refs = Union[str, Sequence[str]]
Tokens = List[str]
TEXT_METRICS = ("bleu1", "bleu4", "nist", "distinct1", "distinct2", "meteor")


@lru_cache(maxsize=None)
def get_tokenizer(name: str = "13a", lowercase: bool = False) -> Callable[[str], Tokens]:
    """A function ``str -> list of tokens``: any sacrebleu tokenizer name (``13a``, ``intl``, ``char``, ``none``...)
    or ``"whitespace"`` (``str.split``); ``lowercase`` lowercases before tokenising (as sacrebleu's ``-lc``)."""
    if name == "whitespace":
        base: Callable[[str], str] = lambda s: s  # noqa: E731
    else:
        try:
            base = BLEU(tokenize=name).tokenizer
        except Exception as exc:  # sacrebleu raises a bare Exception/RuntimeError for unknown names
            raise ValueError(f"unknown tokenizer {name!r} (use a sacrebleu tokenizer name or 'whitespace')") from exc
    if lowercase:
        return lambda s: base(s.lower()).split()
    return lambda s: base(s).split()


def normalize_refs(preds: Sequence[str], refs: Sequence[Refs]) -> List[List[str]]:
    """Check shapes and turn each reference entry into a non-empty list of strings."""
    if isinstance(preds, str):
        raise TypeError("preds must be a sequence of strings, not one string")
    if len(preds) != len(refs):
        raise ValueError(f"got {len(preds)} predictions but {len(refs)} reference entries")
    out = []
    for i, r in enumerate(refs):
        group = [r] if isinstance(r, str) else list(r)
        if not group:
            raise ValueError(f"prediction {i} has no reference")
        out.append(group)
    return out


@dataclass
class NGramCounts:
    """Tokens and per-order n-gram ``Counter``s of a corpus, shared by every n-gram metric.

    Attributes:
        hyps: tokens of each prediction.
        refs: tokens of each reference of each prediction.
        hyp_counts: ``hyp_counts[j][n - 1]`` counts the n-grams of prediction ``j``.
        ref_counts: ``ref_counts[j][k][n - 1]`` counts the n-grams of reference ``k`` of prediction ``j``.
        max_order: the highest order counted.
    """

    hyps: List[Tokens]
    refs: List[List[Tokens]]
    hyp_counts: List[List[Counter]]
    ref_counts: List[List[List[Counter]]]
    max_order: int

    @staticmethod
    def count(tokens: Tokens, max_order: int) -> List[Counter]:
        return [Counter(zip(*[tokens[k:] for k in range(n)])) for n in range(1, max_order + 1)]

    @classmethod
    def from_tokens(cls, hyps: List[Tokens], refs: List[List[Tokens]], max_order: int) -> "NGramCounts":
        count = cls.count
        return cls(hyps, refs, [count(h, max_order) for h in hyps],
                   [[count(r, max_order) for r in group] for group in refs], max_order)

    @classmethod
    def from_text(cls, preds: Sequence[str], refs: Optional[Sequence[Refs]], max_order: int = 4,
                  tokenize: str = "13a", lowercase: bool = False) -> "NGramCounts":
        """Tokenise ``preds`` (and ``refs``, when given) once and count their n-grams up to ``max_order``."""
        tok = get_tokenizer(tokenize, lowercase)
        groups = normalize_refs(preds, refs) if refs is not None else [[] for _ in preds]
        return cls.from_tokens([tok(p) for p in preds], [[tok(r) for r in g] for g in groups], max_order)

    def need(self, order: int) -> None:
        if order > self.max_order:
            raise ValueError(f"n-grams were counted up to order {self.max_order}, {order} needed")


def _closest_ref_len(hyp_len: int, ref_lens: List[int]) -> int:
    """sacrebleu's rule: the reference length closest to the hypothesis length, the shorter on ties."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def bleu_stats(c: NGramCounts, max_order: int) -> List[float]:
    """Corpus sufficient statistics ``[sys_len, ref_len, correct_1..N, total_1..N]`` (sacrebleu's layout).

    Clipping uses, for each n-gram, the maximum count over the prediction's references, and ``ref_len`` the closest
    reference length (shorter on ties), exactly as ``sacrebleu.metrics.BLEU``.
    """
    c.need(max_order)
    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for hyp, hyp_counts, refs, ref_counts in zip(c.hyps, c.hyp_counts, c.refs, c.ref_counts):
        sys_len += len(hyp)
        ref_len += _closest_ref_len(len(hyp), [len(r) for r in refs])
        for n in range(max_order):
            hc = hyp_counts[n]
            if len(ref_counts) == 1:
                rc = ref_counts[0][n]
            else:
                rc = Counter()
                for counts in ref_counts:
                    rc |= counts[n]  # element-wise max
            total[n] += sum(hc.values())
            correct[n] += sum(min(k, rc[g]) for g, k in hc.items() if g in rc)
    return [sys_len, ref_len] + correct + total


def bleu_from_stats(stats: Sequence[float], max_order: int, smooth_method: str = "exp") -> float:
    """BLEU in [0, 1] from :func:`bleu_stats`, with sacrebleu's ``BLEU.compute_bleu`` (its smoothing rules)."""
    sys_len, ref_len = stats[0], stats[1]
    correct = [int(x) for x in stats[2:2 + max_order]]
    total = [int(x) for x in stats[2 + max_order:2 + 2 * max_order]]
    score = BLEU.compute_bleu(correct, total, int(sys_len), int(ref_len), smooth_method=smooth_method,
                              max_ngram_order=max_order)
    return score.score / 100.0


def nist_from_counts(c: NGramCounts, n: int = 4) -> float:
    """NIST exactly as ``nltk.translate.nist_score.corpus_nist(refs, hyps, n)`` (Doddington 2002).

    Information weights ``log2(count(w1..wk-1) / count(w1..wk))`` come from all references of the corpus (the
    numerator is the total reference word count for unigrams); for each order the reference with the best
    (precision, numerator, denominator, length) is used, as nltk does; the length penalty is nltk's
    ``exp(beta * log(min(sys/ref, 1))**2)`` with beta set so that a 2/3 length ratio gives 0.5. Unlike nltk, an
    order with no hypothesis n-gram at all contributes 0 instead of raising ``ZeroDivisionError``.
    """
    c.need(n)
    freq = [Counter() for _ in range(n)]
    total_ref_words = 0
    for refs in c.refs:
        for ref in refs:
            total_ref_words += len(ref)
            for i in range(n):  # counting an iterable runs in C, merging Counters would not
                freq[i].update(zip(*[ref[k:] for k in range(i + 1)]))
    info: Dict[tuple, float] = {}

    def weight(g: tuple) -> float:
        w = info.get(g)
        if w is None:
            num = freq[len(g) - 2][g[:-1]] if len(g) > 1 else total_ref_words
            w = info[g] = math.log2(num / freq[len(g) - 1][g])
        return w

    numer, denom = [0.0] * n, [0] * n
    l_ref = l_sys = 0
    for hyp, hyp_counts, refs, ref_counts in zip(c.hyps, c.hyp_counts, c.refs, c.ref_counts):
        for i in range(n):
            hc = hyp_counts[i]
            den = max(len(hyp) - i, 0)
            best = max(
                ((num / den if den else 0), num, den, len(ref))
                for ref, counts in zip(refs, ref_counts)
                for num in [sum(weight(g) * min(k, counts[i][g]) for g, k in hc.items() if g in counts[i])]
            )
            numer[i] += best[1]
            denom[i] += den
            l_ref += best[3]
            l_sys += len(hyp)
    precision = sum(numer[i] / denom[i] for i in range(n) if denom[i])
    return precision * _nist_length_penalty(l_ref, l_sys)


def _nist_length_penalty(ref_len: int, hyp_len: int) -> float:
    if ref_len == 0:
        return 0.0
    ratio = hyp_len / ref_len
    if 0 < ratio < 1:
        beta = math.log(0.5) / math.log(1.5) ** 2
        return math.exp(beta * math.log(ratio) ** 2)
    return max(min(ratio, 1.0), 0.0)


def distinct_from_counts(hyp_counts: Sequence[Sequence[Counter]], n: int, level: str = "corpus") -> float:
    """Distinct-n (Li et al. 2016) from per-prediction n-gram counts.

    * ``level="corpus"`` (default): distinct n-grams over all predictions / all n-grams over all predictions;
    * ``level="sentence"``: the mean over predictions of (distinct n-grams / n-grams) within each prediction,
      predictions with no n-gram of that order (shorter than n tokens) left out.

    Returns 0.0 when there is no n-gram at all.
    """
    if level == "corpus":
        seen: set = set()
        total = 0
        for counts in hyp_counts:
            seen.update(counts[n - 1])
            total += sum(counts[n - 1].values())
        return len(seen) / total if total else 0.0
    if level == "sentence":
        ratios = [len(cnt) / sum(cnt.values()) for cnt in (counts[n - 1] for counts in hyp_counts) if cnt]
        return sum(ratios) / len(ratios) if ratios else 0.0
    raise ValueError(f"level must be 'corpus' or 'sentence', got {level!r}")


# ------------------------------------------------------------------ public functional API
def bleu_score(preds: Sequence[str], refs: Sequence[Refs], max_order: int = 4, tokenize: str = "13a",
               lowercase: bool = False, smooth_method: str = "exp") -> float:
    """Corpus BLEU in [0, 1]: sacrebleu's ``corpus_bleu`` with ``max_ngram_order=max_order`` / 100.

    BLEU-1 is ``max_order=1`` and BLEU-4 ``max_order=4``: geometric mean of clipped n-gram precisions up to the
    order, times the brevity penalty ``exp(1 - r / c)`` when ``c < r`` (corpus lengths, closest reference length per
    sentence). Tokenizer ``tokenize`` (sacrebleu ``13a`` by default), case-sensitive unless ``lowercase``, smoothing
    ``smooth_method`` (sacrebleu's default ``exp``, which only matters when some order has no match).

    Args:
        preds: one string per prediction.
        refs: per prediction, one reference string or a list of reference strings.
    """
    counts = NGramCounts.from_text(preds, refs, max_order, tokenize, lowercase)
    return bleu_from_stats(bleu_stats(counts, max_order), max_order, smooth_method)


def nist_score(preds: Sequence[str], refs: Sequence[Refs], n: int = 4, tokenize: str = "13a",
               lowercase: bool = False) -> float:
    """Corpus NIST (nltk's ``corpus_nist`` with order ``n``, see :func:`nist_from_counts`) on sacrebleu tokens."""
    return nist_from_counts(NGramCounts.from_text(preds, refs, n, tokenize, lowercase), n)


def distinct_n(preds: Sequence[str], n: int = 1, level: str = "corpus", tokenize: str = "13a",
               lowercase: bool = False) -> float:
    """Distinct-n of the predictions on sacrebleu tokens (see :func:`distinct_from_counts` for both levels)."""
    counts = NGramCounts.from_text(preds, None, n, tokenize, lowercase)
    return distinct_from_counts(counts.hyp_counts, n, level)


def meteor_score(preds: Sequence[str], refs: Sequence[Refs], tokenize: str = "13a", lowercase: bool = False,
                 wordnet=None, alpha: float = 0.9, beta: float = 3.0, gamma: float = 0.5) -> float:
    """METEOR: the mean over predictions of ``nltk.translate.meteor_score.meteor_score`` (METEOR 1.0 of Banerjee
    & Lavie with nltk's defaults: exact, Porter-stem and WordNet-synonym matching, lowercased, alpha 0.9, beta 3,
    gamma 0.5; best score over the references), on sacrebleu tokens. A prediction or reference with no token
    scores 0.

    Args:
        wordnet: a loaded nltk WordNet reader; ``None`` loads one with :func:`metrics.wordnet.load_wordnet`, which
            raises :class:`metrics.wordnet.WordNetUnavailableError` (with install instructions) when there is none.
    """
    tok = get_tokenizer(tokenize, lowercase)
    groups = normalize_refs(preds, refs)
    scores = meteor_sentence_scores([tok(p) for p in preds], [[tok(r) for r in g] for g in groups], wordnet,
                                    alpha, beta, gamma)
    return sum(scores) / len(scores) if scores else 0.0


def meteor_sentence_scores(hyps: List[Tokens], refs: List[List[Tokens]], wordnet=None, alpha: float = 0.9,
                           beta: float = 3.0, gamma: float = 0.5) -> List[float]:
    """nltk METEOR of each tokenised prediction against its tokenised references."""
    from nltk.translate.meteor_score import meteor_score as nltk_meteor

    from metrics.wordnet import load_wordnet

    wn = wordnet if wordnet is not None else load_wordnet()
    out = []
    for hyp, group in zip(hyps, refs):
        group = [r for r in group if r]
        out.append(nltk_meteor(group, hyp, wordnet=wn, alpha=alpha, beta=beta, gamma=gamma)
                   if hyp and group else 0.0)
    return out


def ngram_suite(preds: Sequence[str], refs: Sequence[Refs], metrics: Sequence[str] = TEXT_METRICS[:5],
                tokenize: str = "13a", lowercase: bool = False, distinct_level: str = "corpus",
                wordnet=None) -> Dict[str, float]:
    """Several n-gram metrics (names from ``TEXT_METRICS``) on one tokenisation and one n-gram count.

    Returns ``{name: value}`` with the same values as the single functions above.
    """
    counts = NGramCounts.from_text(preds, refs, suite_order(metrics), tokenize, lowercase)
    return suite_from_counts(counts, metrics, distinct_level, wordnet)


def suite_order(metrics: Sequence[str]) -> int:
    """The highest n-gram order the named metrics need (checks the names)."""
    unknown = set(metrics) - set(TEXT_METRICS)
    if unknown:
        raise ValueError(f"unknown text metrics {sorted(unknown)}; known: {', '.join(TEXT_METRICS)}")
    return max([4 if m in ("bleu4", "nist") else 2 if m == "distinct2" else 1 for m in metrics], default=1)


def suite_from_counts(counts: NGramCounts, metrics: Sequence[str], distinct_level: str = "corpus",
                      wordnet=None) -> Dict[str, float]:
    """The named metrics from one :class:`NGramCounts` (BLEU-1 reuses BLEU-4's order-1 statistics)."""
    counts.need(suite_order(metrics))
    out: Dict[str, float] = {}
    top = 4 if "bleu4" in metrics else 1
    stats = bleu_stats(counts, top) if ("bleu1" in metrics or "bleu4" in metrics) else []
    for m in metrics:
        if m in ("bleu1", "bleu4"):
            order = int(m[-1])
            sub = stats[:2] + stats[2:2 + order] + stats[2 + top:2 + top + order]
            out[m] = bleu_from_stats(sub, order)
        elif m == "nist":
            out[m] = nist_from_counts(counts, 4)
        elif m.startswith("distinct"):
            out[m] = distinct_from_counts(counts.hyp_counts, int(m[-1]), distinct_level)
        elif m == "meteor":
            scores = meteor_sentence_scores(counts.hyps, counts.refs, wordnet)
            out[m] = sum(scores) / len(scores) if scores else 0.0
    return out
