"""Data layer: typed records, Google Local readers, filters, user split, sentences, photos, the test world."""
from showcase.data.records import SPLITS, HistoryItem, Review, ShowcaseDataset, UserProfile

__all__ = ["SPLITS", "HistoryItem", "Review", "ShowcaseDataset", "UserProfile"]
