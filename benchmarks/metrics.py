"""Time the n-gram metric suite against sacrebleu's BLEU alone on 100,000 prediction/reference pairs.

Texts are real review sentences (../shared/data/gmaps-restaurant-reviews when present, else the committed
tests/data/metrics_corpus.jsonl), recombined at random into texts of 1-4 sentences, i.e. review length.

    python benchmarks/metrics.py [--pairs 100000] [--separate]

Prints: sacrebleu corpus BLEU-4 alone; our suite (BLEU-1, BLEU-4, NIST-4, Distinct-1, Distinct-2 on one shared
13a tokenisation and one n-gram count); with ``--separate`` also the same five values computed by independent calls
(sacrebleu BLEU-1 + BLEU-4, nltk corpus_nist, our distinct_n twice); and the ratios.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from metrics.functional.text import distinct_n, get_tokenizer, ngram_suite  # noqa: E402

SOURCES = [ROOT.parent / "shared" / "data" / "gmaps-restaurant-reviews" / "reviews.jsonl",
           ROOT / "tests" / "data" / "metrics_corpus.jsonl"]


def make_pairs(n: int, seed: int = 0):
    source = next(p for p in SOURCES if p.is_file())
    sentences = []
    for line in source.open(encoding="utf-8"):
        if line.strip():
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if s.strip()]
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(sentences, k=rng.randint(1, 4))) for _ in range(2 * n)]
    return texts[:n], texts[n:], source, len(sentences)


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--separate", action="store_true", help="also time independent per-metric calls")
    args = parser.parse_args()
    import sacrebleu

    preds, refs, source, n_sent = make_pairs(args.pairs)
    words = sum(len(t.split()) for t in preds) / len(preds)
    print(f"{args.pairs:,} pairs from {n_sent:,} sentences of {source.name}; {words:.1f} words per prediction")
    bleu, t_bleu = timed(lambda: sacrebleu.corpus_bleu(preds, [refs]))
    print(f"sacrebleu corpus_bleu (BLEU-4 alone): {t_bleu:7.2f} s   BLEU-4 = {bleu.score:.4f}")
    suite, t_suite = timed(lambda: ngram_suite(preds, refs, ["bleu1", "bleu4", "nist", "distinct1", "distinct2"]))
    print(f"metrics.ngram_suite (5 metrics)     : {t_suite:7.2f} s   "
          + "  ".join(f"{k}={100 * v:.4f}" for k, v in suite.items()))
    assert abs(100 * suite["bleu4"] - bleu.score) < 1e-9, "suite BLEU-4 differs from sacrebleu"
    print(f"ratio suite / sacrebleu BLEU alone  : {t_suite / t_bleu:7.2f}x")
    if args.separate:
        from nltk.translate.nist_score import corpus_nist

        def separate():
            tok = get_tokenizer()
            b1 = sacrebleu.BLEU(max_ngram_order=1).corpus_score(preds, [refs]).score
            b4 = sacrebleu.corpus_bleu(preds, [refs]).score
            nist = corpus_nist([[tok(r)] for r in refs], [tok(p) for p in preds], 4)
            return b1, b4, nist, distinct_n(preds, 1), distinct_n(preds, 2)

        vals, t_sep = timed(separate)
        assert abs(vals[2] - suite["nist"]) < 1e-9, "suite NIST differs from nltk"
        print(f"separate calls (sacrebleu x2, nltk NIST, distinct x2): {t_sep:7.2f} s   "
              f"ratio to suite {t_sep / t_suite:.2f}x")


if __name__ == "__main__":
    main()
