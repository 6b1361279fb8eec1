"""The dataset file: one SQLite database (`dataset.sqlite`) with reviews, photos, histories by reference and businesses.

Schema::

    meta(key, value)                      JSON values: photos_dir, statistics, filters, ...; "complete" written last
    reviews(pos, review_id, user_id, business_id, text, rating, split, sentences, explanation, history)
        pos is dense 0..n-1 (dataset order); sentences/explanation are JSON lists; history is "user" (the user's
        other reviews in the dataset, in dataset order: nothing stored) or "listed" (rows in `history`)
    photos(review_pos, rank, photo_id, business_id)    a review's photos in order (with its business, so a
                                          business's pool is one index range)
    history(review_pos, rank, ref_id, text, photos)
        a listed history item refers to a review id; `text` / `photos` are NULL when they are those of the review
        `ref_id` in this dataset (stored only for reviews outside it, or when they differ)
    businesses(business_id, name)         every reviewed business; `name` when the input gave one

Indexes on reviews by review_id, (user_id, pos), (business_id, pos) and (split, pos), and on photos by business,
answer every lookup without reading the whole file. `DatasetWriter` streams rows in and builds the indexes at the end.
"""
from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any, Iterable, Sequence

FILE_NAME = "dataset.sqlite"
META_NAME = "dataset.json"
SCHEMA_VERSION = 1
HISTORY_USER = "user"
HISTORY_LISTED = "listed"

_SCHEMA = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE reviews(
    pos INTEGER PRIMARY KEY, review_id TEXT NOT NULL, user_id TEXT NOT NULL, business_id TEXT NOT NULL,
    text TEXT NOT NULL, rating REAL, split TEXT NOT NULL, sentences TEXT NOT NULL, explanation TEXT,
    history TEXT NOT NULL);
CREATE TABLE photos(review_pos INTEGER NOT NULL, rank INTEGER NOT NULL, photo_id TEXT NOT NULL,
    business_id TEXT NOT NULL, PRIMARY KEY(review_pos, rank)) WITHOUT ROWID;
CREATE TABLE history(review_pos INTEGER NOT NULL, rank INTEGER NOT NULL, ref_id TEXT NOT NULL, text TEXT,
    photos TEXT, PRIMARY KEY(review_pos, rank)) WITHOUT ROWID;
CREATE TABLE businesses(business_id TEXT PRIMARY KEY, name TEXT) WITHOUT ROWID;
"""
_INDEXES = """
CREATE UNIQUE INDEX reviews_by_id ON reviews(review_id);
CREATE INDEX reviews_by_user ON reviews(user_id, pos);
CREATE INDEX reviews_by_business ON reviews(business_id, pos, user_id);
CREATE INDEX photos_by_business ON photos(business_id, review_pos, rank, photo_id);
CREATE INDEX reviews_by_split ON reviews(split, pos);
"""


def connect_readonly(path: str | os.PathLike) -> sqlite3.Connection:
    """A read-only connection (usable from the thread that opens it)."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    conn.execute("PRAGMA query_only = ON")
    return conn


class DatasetWriter:
    """Streams reviews into a new `dataset.sqlite`; `finish` builds the indexes and marks the file complete.

    Args:
        path: the database file to create (must not exist).
        batch: rows buffered before each `executemany`.
    """

    def __init__(self, path: str | os.PathLike, batch: int = 5000):
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists")
        self.conn = sqlite3.connect(self.path)
        self.conn.executescript("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;" + _SCHEMA)
        self.batch = batch
        self.count = 0
        self._reviews: list[tuple] = []
        self._photos: list[tuple] = []
        self._history: list[tuple] = []

    def add(self, review_id: str, user_id: str, business_id: str, text: str, photos: Sequence[str],
            rating: float | None, split: str, sentences: Sequence[str], explanation: Sequence[str] | None,
            history: str | Iterable[tuple[str, str | None, Sequence[str] | None]]) -> int:
        """Append one review; `history` is `HISTORY_USER` or `(ref_id, text_or_None, photos_or_None)` items."""
        pos = self.count
        listed = history != HISTORY_USER
        self._reviews.append((pos, review_id, user_id, business_id, text, rating, split,
                              json.dumps(list(sentences), ensure_ascii=False),
                              None if explanation is None else json.dumps(list(explanation), ensure_ascii=False),
                              HISTORY_LISTED if listed else HISTORY_USER))
        self._photos.extend((pos, k, p, business_id) for k, p in enumerate(photos))
        if listed:
            self._history.extend(
                (pos, k, ref, text_, None if ph is None else json.dumps(list(ph)))
                for k, (ref, text_, ph) in enumerate(history))
        self.count += 1
        if len(self._reviews) >= self.batch or len(self._history) >= 10 * self.batch:
            self.flush()
        return pos

    def name_business(self, business_id: str, name: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO businesses VALUES (?, ?)", (business_id, name))

    def flush(self) -> None:
        self.conn.executemany("INSERT INTO reviews VALUES (?,?,?,?,?,?,?,?,?,?)", self._reviews)
        self.conn.executemany("INSERT INTO photos VALUES (?,?,?,?)", self._photos)
        self.conn.executemany("INSERT INTO history VALUES (?,?,?,?,?)", self._history)
        self._reviews, self._photos, self._history = [], [], []

    def finish(self, meta: dict[str, Any]) -> Path:
        """Build the indexes, store `meta`, drop names of businesses without reviews, close; returns the path.

        Raises:
            sqlite3.IntegrityError: when two reviews share a review id.
        """
        self.flush()
        self.conn.executescript(_INDEXES)
        self.conn.execute("DELETE FROM businesses WHERE business_id NOT IN (SELECT business_id FROM reviews)")
        self.conn.execute("INSERT OR IGNORE INTO businesses SELECT DISTINCT business_id, NULL FROM reviews")
        rows = [(k, json.dumps(v, default=str)) for k, v in meta.items()]
        rows += [("schema_version", json.dumps(SCHEMA_VERSION)), ("complete", "true")]
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)
        self.conn.commit()
        self.conn.execute("ANALYZE")
        self.conn.commit()
        self.conn.close()
        return self.path

    def abort(self) -> None:
        self.conn.close()
        self.path.unlink(missing_ok=True)


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM meta")}


def update_meta(path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Set keys of the `meta` table of a finished database."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                         [(k, json.dumps(v, default=str)) for k, v in meta.items()])
    conn.close()
