"""Functional twins of the metrics: plain functions on whole corpora (values as fractions)."""
from metrics.functional.analysis import keyword_coverage, length_distribution, load_spacy
from metrics.functional.bert import bert_score
from metrics.functional.clip import (
                                     clip_align,
                                     clip_align_from_scores,
                                     clip_score,
                                     clip_score_from_features,
                                     split_sentences,
)
from metrics.functional.ranking import div_at_k, f1_at_k, percentile_rank, precision_at_k, recall_at_k, top_n_accuracy
from metrics.functional.text import (
                                     TEXT_METRICS,
                                     bleu_score,
                                     distinct_n,
                                     get_tokenizer,
                                     meteor_score,
                                     ngram_suite,
                                     nist_score,
)

__all__ = ["bleu_score", "nist_score", "meteor_score", "distinct_n", "ngram_suite", "get_tokenizer", "TEXT_METRICS",
           "clip_score", "clip_score_from_features", "clip_align", "clip_align_from_scores", "split_sentences",
           "bert_score", "precision_at_k", "recall_at_k", "f1_at_k", "div_at_k", "top_n_accuracy",
           "percentile_rank", "length_distribution", "keyword_coverage", "load_spacy"]
