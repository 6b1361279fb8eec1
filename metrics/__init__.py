"""Evaluation metrics of Personalized Showcases, usable on their own (``python -m metrics``).

Text: BLEU-1/4, NIST, METEOR, Distinct-1/2 (:mod:`metrics.text`), BERT-Score (:mod:`metrics.bert`);
CLIP-based: CLIP-Score, CLIP-Align (:mod:`metrics.clip`); ranking: P/R/F1/Div@K, top-n accuracy, percentile rank
(:mod:`metrics.ranking`); analyses: length distribution, keyword coverage (:mod:`metrics.analysis`).
Each class has ``update``/``compute`` (DDP-aware, :mod:`metrics.base`); functional twins live in
:mod:`metrics.functional`. Heavy dependencies (nltk WordNet, bert-score, spaCy) load only when used.
"""
from metrics.analysis import KeywordCoverage, LengthDistribution
from metrics.base import MeanMetric, Metric
from metrics.bert import BERTScore
from metrics.clip import CLIPAlign, CLIPScore
from metrics.ranking import DivAtK, F1AtK, PercentileRank, PrecisionAtK, RecallAtK, TopNAccuracy
from metrics.text import BLEUScore, DistinctN, METEORScore, NISTScore, TextMetrics
from metrics.wordnet import WordNetUnavailableError, load_wordnet, wordnet_available

__all__ = ["Metric", "MeanMetric", "BLEUScore", "NISTScore", "METEORScore", "DistinctN", "TextMetrics", "BERTScore",
           "CLIPScore", "CLIPAlign", "PrecisionAtK", "RecallAtK", "F1AtK", "DivAtK", "TopNAccuracy",
           "PercentileRank", "LengthDistribution", "KeywordCoverage", "WordNetUnavailableError", "load_wordnet",
           "wordnet_available"]
