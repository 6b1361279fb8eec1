"""The previous, in-memory implementation of the dataset (before SQLite), kept as a reference for tests.

`reference_prepare` is the old `prepare` without writing: read everything, filter, split, copy histories.
`ReferenceDataset` answers the same lookups as `ShowcaseDataset` from plain lists and dicts.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from showcase.data.gest import RawReview, read_raw
from showcase.data.photos import PhotoStore
from showcase.data.prepare import FilterConfig, split_by_user
from showcase.data.records import SPLITS, HistoryItem, Review, UserProfile
from showcase.data.sentences import count_words, split_sentences


class ReferenceDataset:
    def __init__(self, reviews: list[Review]):
        self.reviews = reviews
        self._by_id = {r.review_id: r for r in reviews}
        self._pools: dict[str, list[str]] = {}
        self._by_user: dict[str, list[Review]] = {}
        for r in reviews:
            pool = self._pools.setdefault(r.business_id, [])
            pool.extend(p for p in r.photos if p not in pool)
            self._by_user.setdefault(r.user_id, []).append(r)

    def split(self, name):
        return [r for r in self.reviews if r.split == name]

    @property
    def businesses(self):
        return list(self._pools)

    @property
    def users(self):
        return list(self._by_user)

    def business_photos(self, business_id):
        return list(self._pools[business_id])

    def business_reviewers(self, business_id):
        return list(dict.fromkeys(r.user_id for r in self.reviews if r.business_id == business_id))

    def profile(self, review):
        texts, photos = [], []
        for item in review.history:
            if item.review_id == review.review_id:
                continue
            texts.append(item.text)
            known = self._by_id.get(item.review_id)
            photos.extend(item.photos or (known.photos if known else ()))
        return UserProfile(review.user_id, tuple(texts), tuple(dict.fromkeys(photos)))

    def user_profile(self, user_id, exclude_business=None):
        rs = [r for r in self._by_user.get(user_id, ()) if r.business_id != exclude_business]
        photos = [p for r in rs for p in r.photos]
        return UserProfile(user_id, tuple(r.text for r in rs), tuple(dict.fromkeys(photos)))

    def all_texts(self):
        seen: dict[str, None] = {}
        for r in self.reviews:
            seen[r.text] = None
            seen.update(dict.fromkeys(r.sentences))
            if r.explanation:
                seen.update(dict.fromkeys(r.explanation))
            seen.update(dict.fromkeys(h.text for h in r.history))
        return list(seen)

    def all_photos(self):
        return list(dict.fromkeys(p for r in self.reviews for p in r.photos))


def _filters(reviews: list[RawReview], config: FilterConfig, photos: PhotoStore) -> tuple[list[RawReview], Counter]:
    dropped: Counter = Counter()
    kept = []
    for r in reviews:
        if count_words(r.text) < config.min_words:
            dropped[f"reviews under {config.min_words} words"] += 1
        elif len(r.photos) > config.max_photos:
            dropped[f"reviews with more than {config.max_photos} photos"] += 1
        elif not r.photos:
            dropped["reviews without photos"] += 1
        else:
            kept.append(r)
    with_files = []
    for r in kept:
        present = [p for p in r.photos if photos.exists(p)]
        if len(r.photos) - len(present):
            dropped["photos missing or unsafe id"] += len(r.photos) - len(present)
        if present:
            r.photos = present
            with_files.append(r)
        else:
            dropped["reviews whose photos are all missing"] += 1
    per_user = Counter(r.user_id for r in with_files)
    return [r for r in with_files if per_user[r.user_id] >= config.min_user_reviews], dropped


def reference_prepare(raw_path, photos_dir, ratios=(0.8, 0.1, 0.1), seed=0, keep_split=True) -> ReferenceDataset:
    raw = read_raw(raw_path)
    kept, _ = _filters(raw, FilterConfig(), PhotoStore(photos_dir))
    has_split = keep_split and all(r.split in SPLITS for r in kept)
    split_of = None if has_split else split_by_user([r.user_id for r in kept], ratios, seed)
    by_user = defaultdict(list)
    for r in kept:
        by_user[r.user_id].append(r)
    photos_of = {r.review_id: tuple(r.photos) for r in kept}
    reviews = []
    for r in kept:
        if r.history is not None:
            pairs = [(rid, text) for rid, text in r.history if rid != r.review_id]
        else:
            pairs = [(o.review_id, o.text) for o in by_user[r.user_id] if o.review_id != r.review_id]
        history = tuple(HistoryItem(rid, text, photos_of.get(rid, ())) for rid, text in pairs)
        reviews.append(Review(r.review_id, r.user_id, r.business_id, r.text, tuple(r.photos), r.rating,
                              r.split if split_of is None else split_of[r.user_id],
                              tuple(split_sentences(r.text)), history))
    return ReferenceDataset(reviews)
