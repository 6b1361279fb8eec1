"""Turn raw Google Local files into a dataset folder: filters (Appendix A), user split, sentences — streamed.

`prepare` reads the input one record at a time into a staging SQLite file (pass 1: validation, the review- and
photo-level filters), counts reviews per user in SQL (pass 2: the user filter and the split), then streams the kept
reviews into the dataset file (pass 3). Memory holds only per-user ids (for a random split); histories are stored by
reference. Everything is written in a temporary folder beside the output and moved in at the end, so a failed or
killed run leaves the output folder as it was.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from showcase.data.database import FILE_NAME, HISTORY_USER, META_NAME, DatasetWriter, update_meta
from showcase.data.gest import RawReview, RecordError, iter_business_names, iter_raw
from showcase.data.photos import PhotoStore
from showcase.data.records import SPLITS, ShowcaseDataset
from showcase.data.sentences import count_words, split_sentences
from showcase.errors import UserError
from showcase.utils import atomic_write_text


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


def split_by_user(user_ids: list[str], ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0) -> dict[str, str]:
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


def format_statistics(rows: dict[str, dict[str, float]]) -> str:
    """Render `{name: statistics}` as a Table 1-style text table."""
    head = f"{'':<10}{'#Photo':>9}{'#Review':>9}{'#User':>8}{'#Bus.':>8}{'Avg.R.Len':>11}"
    lines = [head]
    for name, s in rows.items():
        lines.append(
            f"{name:<10}{s['photos']:>9}{s['reviews']:>9}{s['users']:>8}{s['businesses']:>8}{s['avg_review_words']:>11.2f}"
        )
    return "\n".join(lines)


_STAGING = """
PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;
CREATE TABLE raw(pos INTEGER PRIMARY KEY, review_id TEXT NOT NULL UNIQUE, place TEXT NOT NULL, user_id TEXT NOT NULL,
    business_id TEXT NOT NULL, text TEXT NOT NULL, rating REAL, split TEXT, photos TEXT NOT NULL, words INTEGER,
    kept INTEGER NOT NULL, listed INTEGER NOT NULL);
CREATE TABLE raw_history(pos INTEGER NOT NULL, rank INTEGER NOT NULL, ref_id TEXT NOT NULL, text TEXT NOT NULL,
    PRIMARY KEY(pos, rank)) WITHOUT ROWID;
CREATE TABLE raw_photos(photo_id TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE names(business_id TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
"""


def _review_filter(r: RawReview, config: FilterConfig, photos: PhotoStore, report: FilterReport) -> list[str] | None:
    """The photos kept of one review, or None when the review is dropped (the reason counted in `report`)."""
    if count_words(r.text) < config.min_words:
        report.count(f"reviews under {config.min_words} words")
    elif len(r.photos) > config.max_photos:
        report.count(f"reviews with more than {config.max_photos} photos")
    elif not r.photos:
        report.count("reviews without photos")
    elif not config.require_photo_files:
        return r.photos
    else:
        present = [p for p in r.photos if photos.exists(p)]
        report.count("photos missing or unsafe id", len(r.photos) - len(present))
        if present:
            return present
        report.count("reviews whose photos are all missing")
    return None


def _stage(raw_path: Path, photos: PhotoStore, config: FilterConfig, db: sqlite3.Connection,
           report: FilterReport) -> dict[str, float]:
    """Pass 1: validate every record and store it with its filter result; returns the raw statistics."""
    n = words = 0
    batch_history: list[tuple] = []
    for pos, r in enumerate(iter_raw(raw_path)):
        kept = _review_filter(r, config, photos, report)
        n_words = count_words(r.text)
        try:
            db.execute("INSERT INTO raw VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                       (pos, r.review_id, r.where, r.user_id, r.business_id, r.text, r.rating, r.split,
                        json.dumps(kept or []), n_words, kept is not None, r.history is not None))
        except sqlite3.IntegrityError:
            (first,) = db.execute("SELECT place FROM raw WHERE review_id = ?", (r.review_id,)).fetchone()
            raise RecordError(f"{r.where}: duplicate review_id {r.review_id!r} (first at {first})") from None
        if r.history is not None:
            batch_history.extend((pos, k, rid, text) for k, (rid, text) in enumerate(r.history) if rid != r.review_id)
            if len(batch_history) > 20000:
                db.executemany("INSERT INTO raw_history VALUES (?,?,?,?)", batch_history)
                batch_history = []
        db.executemany("INSERT OR IGNORE INTO raw_photos VALUES (?)", ((p,) for p in r.photos))
        if r.business_name:
            db.execute("INSERT OR IGNORE INTO names VALUES (?, ?)", (r.business_id, r.business_name))
        n += 1
        words += n_words
    db.executemany("INSERT INTO raw_history VALUES (?,?,?,?)", batch_history)
    if n == 0:
        raise RecordError("no review records in the input", path=raw_path)
    (n_photos,) = db.execute("SELECT COUNT(*) FROM raw_photos").fetchone()
    users, businesses = db.execute("SELECT COUNT(DISTINCT user_id), COUNT(DISTINCT business_id) FROM raw").fetchone()
    return {"photos": n_photos, "reviews": n, "users": users, "businesses": businesses,
            "avg_review_words": round(words / n, 2)}


def _user_filter(db: sqlite3.Connection, config: FilterConfig, report: FilterReport) -> None:
    """Pass 2: count kept reviews per user; users under the minimum are dropped with their reviews."""
    db.execute("CREATE TABLE users(user_id TEXT PRIMARY KEY, n INTEGER NOT NULL, split TEXT) WITHOUT ROWID")
    db.execute("INSERT INTO users SELECT user_id, COUNT(*), NULL FROM raw WHERE kept GROUP BY user_id")
    few_users, few_reviews = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(n), 0) FROM users WHERE n < ?", (config.min_user_reviews,)).fetchone()
    report.count(f"reviews of users with fewer than {config.min_user_reviews} reviews", few_reviews)
    report.count(f"users with fewer than {config.min_user_reviews} reviews", few_users)
    db.execute("DELETE FROM users WHERE n < ?", (config.min_user_reviews,))


def _assign_splits(db: sqlite3.Connection, keep_split: bool, ratios: tuple[float, float, float], seed: int) -> bool:
    """The split of every kept user: the file's own when `keep_split` and every kept record has one; else random.

    Returns whether the file's split was kept.
    """
    missing = db.execute("SELECT 1 FROM raw r JOIN users USING(user_id) "
                         "WHERE r.kept AND r.split IS NULL LIMIT 1").fetchone()
    if keep_split and missing is None:
        return True
    assignment = split_by_user([u for (u,) in db.execute("SELECT user_id FROM users")], ratios, seed)
    db.executemany("UPDATE users SET split = ? WHERE user_id = ?", ((s, u) for u, s in assignment.items()))
    return False


def _write_dataset(db: sqlite3.Connection, path: Path) -> dict[str, int]:
    """Pass 3: stream the kept reviews (dataset order = input order) into the dataset file; words per split."""
    writer = DatasetWriter(path)
    words = Counter()
    history = db.cursor()
    rows = db.execute(
        "SELECT r.pos, r.review_id, r.user_id, r.business_id, r.text, r.rating, COALESCE(u.split, r.split), "
        "r.photos, r.words, r.listed FROM raw r JOIN users u USING(user_id) WHERE r.kept ORDER BY r.pos")
    for pos, rid, uid, bid, text, rating, split, photos, n_words, listed in rows:
        stored = HISTORY_USER
        if listed:  # the file's own history list: by reference when the text is that of a kept review
            stored = history.execute(
                "SELECT h.ref_id, CASE WHEN o.text = h.text AND o.kept AND uo.n IS NOT NULL THEN NULL "
                "ELSE h.text END, NULL FROM raw_history h LEFT JOIN raw o ON o.review_id = h.ref_id "
                "LEFT JOIN users uo ON uo.user_id = o.user_id WHERE h.pos = ? ORDER BY h.rank", (pos,)).fetchall()
        writer.add(rid, uid, bid, text, json.loads(photos), rating, split, split_sentences(text), None, stored)
        words[split] += n_words
        words["kept"] += n_words
    for business_id, name in db.execute("SELECT business_id, name FROM names"):
        writer.name_business(business_id, name)
    writer.finish({})
    return words


def _dataset_statistics(path: Path, words: dict[str, int]) -> dict[str, dict[str, float]]:
    conn = sqlite3.connect(path)
    stats = {}
    for name, where, args in [("kept", "", ())] + [(s, "WHERE r.split = ?", (s,)) for s in SPLITS]:
        reviews, users, businesses = conn.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT user_id), COUNT(DISTINCT business_id) FROM reviews r {where}",
            args).fetchone()
        (photos,) = conn.execute(
            f"SELECT COUNT(DISTINCT p.photo_id) FROM photos p JOIN reviews r ON r.pos = p.review_pos {where}",
            args).fetchone()
        stats[name] = {"photos": photos, "reviews": reviews, "users": users, "businesses": businesses,
                       "avg_review_words": round(words.get(name, 0) / max(reviews, 1), 2)}
    conn.close()
    return stats


def _summary(report: FilterReport) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in report.dropped.items()) or "no record passed"


def prepare(
    raw_path: str | Path,
    photos_dir: str | Path,
    output: str | Path,
    filters: FilterConfig | None = None,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    keep_split: bool = True,
    businesses: str | Path | None = None,
) -> tuple[ShowcaseDataset, FilterReport]:
    """Read, filter, split and write a dataset folder; returns the dataset and what was dropped.

    A split given by the file (`filter_all_t.json`) is kept when `keep_split`; otherwise users are split at random
    with `ratios` and `seed`.

    Args:
        raw_path: `filter_all_t.json` or `image_review_all.json` (JSON lines).
        photos_dir: folder of the photo files.
        output: the dataset folder (created or replaced only when everything succeeded).
        filters: the paper's filters.
        ratios: train/val/test shares of users for a random split.
        seed: seed of the random split.
        keep_split: keep the file's own split when it has one.
        businesses: optional Google Local metadata (JSON lines with `gmap_id` or `business_id`, and `name`).

    Raises:
        UserError: naming the file and line/record of a bad input, or when no review is left after the filters.
    """
    filters = filters or FilterConfig()
    raw_path, output = Path(raw_path), Path(output)
    if not Path(photos_dir).is_dir():
        raise UserError("photo folder not found", path=photos_dir)
    if output.exists() and not output.is_dir():
        raise UserError("the output exists and is not a folder: choose a dataset folder", path=output)
    output.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.prepare-"))
    report = FilterReport()
    db = sqlite3.connect(work / "staging.sqlite")
    try:
        db.executescript(_STAGING)
        raw_stats = _stage(raw_path, PhotoStore(photos_dir), filters, db, report)
        if businesses is not None:
            db.executemany("INSERT OR REPLACE INTO names VALUES (?, ?)", iter_business_names(businesses))
        _user_filter(db, filters, report)
        if db.execute("SELECT 1 FROM users LIMIT 1").fetchone() is None:
            raise UserError(f"no review left after the filters ({_summary(report)}); check --photos and the "
                            f"filter options", path=raw_path)
        has_split = _assign_splits(db, keep_split, ratios, seed)
        words = _write_dataset(db, work / FILE_NAME)
        stats = {"raw": raw_stats, **_dataset_statistics(work / FILE_NAME, words)}
        meta = dict(source=str(raw_path.resolve()), statistics=stats, dropped=dict(report.dropped),
                    split="given" if has_split else {"ratios": list(ratios), "seed": seed},
                    filters=filters.__dict__, photos_dir=str(Path(photos_dir).resolve()))
        update_meta(work / FILE_NAME, meta)
        atomic_write_text(work / META_NAME, json.dumps(meta, indent=2, default=str))
        output.mkdir(exist_ok=True)
        os.replace(work / FILE_NAME, output / FILE_NAME)
        os.replace(work / META_NAME, output / META_NAME)
        (output / "reviews.jsonl").unlink(missing_ok=True)  # an old-format file would only mislead
    finally:
        db.close()
        shutil.rmtree(work, ignore_errors=True)
    return ShowcaseDataset.load(output), report
