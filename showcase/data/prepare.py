"""Turn raw Google Local files into a processed dataset folder: filters (Appendix A), user split, sentences."""
from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from showcase.data.gest import RawReview, read_raw
from showcase.data.photos import PhotoStore
from showcase.data.records import SPLITS, HistoryItem, Review, ShowcaseDataset
from showcase.data.sentences import count_words, split_sentences


@dataclass
class FilterConfig:
    """The paper's filters (Appendix A).

    Attributes:
        min_words: drop reviews shorter than this many words.
        max_photos: drop reviews with more photos than this.
        min_user_reviews: drop users with fewer reviews than this (after the review filters).
        require_photo_files: drop photos whose file is missing (expired URLs), then reviews left with no photo.
    """

    min_words: int = 5
    max_photos: int = 10
    min_user_reviews: int = 2
    require_photo_files: bool = True


@dataclass
class FilterReport:
    dropped: Counter = field(default_factory=Counter)

    def count(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n


def apply_filters(
    reviews: list[RawReview], config: FilterConfig, photos: PhotoStore | None = None
) -> tuple[list[RawReview], FilterReport]:
    """Apply the review-, photo- and user-level filters in the paper's order; count what was dropped and why."""
    report = FilterReport()
    kept = []
    for r in reviews:
        if count_words(r.text) < config.min_words:
            report.count(f"reviews under {config.min_words} words")
        elif len(r.photos) > config.max_photos:
            report.count(f"reviews with more than {config.max_photos} photos")
        elif not r.photos:
            report.count("reviews without photos")
        else:
            kept.append(r)
    if config.require_photo_files and photos is not None:
        with_files = []
        for r in kept:
            present = [p for p in r.photos if photos.exists(p)]
            report.count("photos missing or unsafe id", len(r.photos) - len(present))
            if present:
                r.photos = present
                with_files.append(r)
            else:
                report.count("reviews whose photos are all missing")
        kept = with_files
    per_user = Counter(r.user_id for r in kept)
    few = [r for r in kept if per_user[r.user_id] < config.min_user_reviews]
    report.count(f"reviews of users with fewer than {config.min_user_reviews} reviews", len(few))
    report.count(
        f"users with fewer than {config.min_user_reviews} reviews",
        sum(1 for n in per_user.values() if n < config.min_user_reviews),
    )
    kept = [r for r in kept if per_user[r.user_id] >= config.min_user_reviews]
    return kept, report


def split_by_user(user_ids: list[str], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, str]:
    """Assign each user to one split (train/val/test) at random with the given ratios; deterministic per seed."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {ratios}")
    users = sorted(set(user_ids))
    random.Random(seed).shuffle(users)
    total = sum(ratios)
    n_train = round(len(users) * ratios[0] / total)
    n_val = round(len(users) * ratios[1] / total)
    assignment = {}
    for i, u in enumerate(users):
        assignment[u] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return assignment


def build_reviews(raw: list[RawReview], split_of: dict[str, str] | None) -> list[Review]:
    """Records with sentences and histories; a missing `history_reviews` becomes the user's other reviews."""
    by_user: dict[str, list[RawReview]] = defaultdict(list)
    for r in raw:
        by_user[r.user_id].append(r)
    photos_of = {r.review_id: tuple(r.photos) for r in raw}
    reviews = []
    for r in raw:
        if r.history is not None:
            pairs = [(rid, text) for rid, text in r.history if rid != r.review_id]
        else:
            pairs = [(o.review_id, o.text) for o in by_user[r.user_id] if o.review_id != r.review_id]
        history = tuple(HistoryItem(rid, text, photos_of.get(rid, ())) for rid, text in pairs)
        split = r.split if split_of is None else split_of[r.user_id]
        reviews.append(
            Review(
                review_id=r.review_id,
                user_id=r.user_id,
                business_id=r.business_id,
                text=r.text,
                photos=tuple(r.photos),
                rating=r.rating,
                split=split,
                sentences=tuple(split_sentences(r.text)),
                history=history,
            )
        )
    return reviews


def statistics(reviews: list[Review] | list[RawReview]) -> dict[str, float]:
    """Table 1-style statistics: #photos, #reviews, #users, #businesses, average review length (words)."""
    return {
        "photos": len({p for r in reviews for p in r.photos}),
        "reviews": len(reviews),
        "users": len({r.user_id for r in reviews}),
        "businesses": len({r.business_id for r in reviews}),
        "avg_review_words": round(sum(count_words(r.text) for r in reviews) / max(len(reviews), 1), 2),
    }


def format_statistics(rows: dict[str, dict[str, float]]) -> str:
    """Render `{name: statistics}` as a Table 1-style text table."""
    head = f"{'':<10}{'#Photo':>9}{'#Review':>9}{'#User':>8}{'#Bus.':>8}{'Avg.R.Len':>11}"
    lines = [head]
    for name, s in rows.items():
        lines.append(
            f"{name:<10}{s['photos']:>9}{s['reviews']:>9}{s['users']:>8}{s['businesses']:>8}{s['avg_review_words']:>11.2f}"
        )
    return "\n".join(lines)


def prepare(
    raw_path: str | Path,
    photos_dir: str | Path,
    output: str | Path,
    filters: FilterConfig | None = None,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_split: bool = True,
) -> tuple[ShowcaseDataset, FilterReport]:
    """Read, filter, split and write a dataset folder; returns the dataset and what was dropped.

    A split given by the file (`filter_all_t.json`) is kept when `keep_split`; otherwise users are split at random
    with `ratios` and `seed`.
    """
    filters = filters or FilterConfig()
    raw = read_raw(raw_path)
    seen: set[str] = set()
    for r in raw:
        if r.review_id in seen:
            raise ValueError(f"{r.where}: duplicate review_id {r.review_id!r}")
        seen.add(r.review_id)
    raw_stats = statistics(raw)
    kept, report = apply_filters(raw, filters, PhotoStore(photos_dir))
    has_split = keep_split and all(r.split in SPLITS for r in kept)
    split_of = None if has_split else split_by_user([r.user_id for r in kept], ratios, seed)
    reviews = build_reviews(kept, split_of)
    dataset = ShowcaseDataset(reviews, Path(photos_dir))
    stats = {"raw": raw_stats, "kept": statistics(reviews)}
    stats.update({s: statistics(dataset.split(s)) for s in SPLITS})
    dataset.save(
        output,
        source=str(Path(raw_path).resolve()),
        statistics=stats,
        dropped=dict(report.dropped),
        split="given" if has_split else {"ratios": list(ratios), "seed": seed},
        filters=filters.__dict__,
    )
    return dataset, report
