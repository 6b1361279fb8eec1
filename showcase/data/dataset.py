"""`ShowcaseDataset`: the processed dataset, read from its SQLite file on demand (see `showcase.data.database`)."""
from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Iterable, Iterator

from showcase.data.database import (
    FILE_NAME,
    HISTORY_USER,
    META_NAME,
    DatasetWriter,
    connect_readonly,
    read_meta,
    update_meta,
)
from showcase.data.records import SPLITS, HistoryItem, Review, UserProfile
from showcase.errors import UserError

_COLUMNS = "pos, review_id, user_id, business_id, text, rating, split, sentences, explanation, history"
_CHUNK = 500  # positions per query


class _History(Sequence):
    """A review's history, resolved from the dataset's references on first use (then kept)."""

    def __init__(self, dataset: "ShowcaseDataset", pos: int, user_id: str, kind: str):
        self._args = (dataset, pos, user_id, kind)
        self._items: tuple[HistoryItem, ...] | None = None

    def _resolve(self) -> tuple[HistoryItem, ...]:
        if self._items is None:
            self._items = self._args[0]._resolve_history(*self._args[1:])
        return self._items

    def __len__(self) -> int:
        return len(self._resolve())

    def __getitem__(self, i):
        return self._resolve()[i]

    def __iter__(self):
        return iter(self._resolve())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    def __hash__(self) -> int:
        return hash(self._resolve())

    def __repr__(self) -> str:
        return repr(self._resolve())

    def __reduce__(self):  # pickled or deep-copied as the plain tuple it resolves to
        return tuple, (self._resolve(),)


class ReviewList(Sequence):
    """Reviews at given dataset positions, fetched on access (a list-like view; slicing returns a list)."""

    def __init__(self, dataset: "ShowcaseDataset", positions: Sequence[int]):
        self._dataset, self._positions = dataset, positions

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._dataset._fetch(self._positions[i])
        return self._dataset._fetch([self._positions[i]])[0]

    def __iter__(self) -> Iterator[Review]:
        for start in range(0, len(self._positions), _CHUNK):
            yield from self._dataset._fetch(self._positions[start:start + _CHUNK])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ReviewList({len(self)} reviews)"


class ShowcaseDataset:
    """A processed dataset: `dataset.sqlite` (reviews, photos, histories by reference, businesses) in a folder.

    Opening reads only the `meta` table; every lookup is an indexed query. `ShowcaseDataset(reviews)` builds a
    dataset from records in a private temporary file (tests, `with_reviews`).

    Args:
        reviews: records to hold (ignored when opening a file).
        photos_dir: folder of the photo files.
        meta: statistics and provenance (`dataset.json`).
        names: business names by business id.

    Example:
        >>> ds = ShowcaseDataset.load("runs/demo/dataset")        # doctest: +SKIP
        >>> test = ds.split("test")                               # doctest: +SKIP
        >>> pool = ds.business_photos(test[0].business_id)        # doctest: +SKIP
    """

    def __init__(self, reviews: Iterable[Review] = (), photos_dir: str | Path | None = None,
                 meta: dict[str, Any] | None = None, *, names: dict[str, str] | None = None,
                 _file: str | Path | None = None):
        self.photos_dir = Path(photos_dir) if photos_dir is not None else None
        self._temp: tempfile.TemporaryDirectory | None = None
        if _file is None:
            self._temp = tempfile.TemporaryDirectory(prefix="showcase-dataset-")
            _file = write_reviews(Path(self._temp.name) / FILE_NAME, list(reviews), dict(meta or {}), names)
        self.path = Path(_file)
        self._local = threading.local()
        self.meta: dict[str, Any] = read_meta(self._conn())
        for key in ("complete", "schema_version"):
            self.meta.pop(key, None)
        if meta is not None:
            self.meta.update(meta)
        (n,) = self._conn().execute("SELECT COALESCE(MAX(pos) + 1, 0) FROM reviews").fetchone()
        self._n = n

    # --- connection ---------------------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        """This thread's (and process's) read-only connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = connect_readonly(self.path)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "photos_dir": self.photos_dir, "meta": self.meta, "n": self._n}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self.photos_dir, self.meta, self._n = state["path"], state["photos_dir"], state["meta"], state["n"]
        self._temp, self._local = None, threading.local()

    # --- access -------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Review]:
        return iter(self.reviews)

    @property
    def reviews(self) -> ReviewList:
        """Every review in dataset order (fetched on access)."""
        return ReviewList(self, range(self._n))

    def split(self, name: str) -> ReviewList:
        """Reviews of one split ("train", "val" or "test")."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        rows = self._conn().execute("SELECT pos FROM reviews WHERE split = ? ORDER BY pos", (name,))
        return ReviewList(self, array("q", (p for (p,) in rows)))

    def review(self, review_id: str) -> Review:
        """The review with this id.

        Raises:
            KeyError: when the dataset has no such review.
        """
        row = self._conn().execute("SELECT pos FROM reviews WHERE review_id = ?", (review_id,)).fetchone()
        if row is None:
            raise KeyError(review_id)
        return self._fetch([row[0]])[0]

    @property
    def businesses(self) -> list[str]:
        """Business ids in order of their first review."""
        rows = self._conn().execute("SELECT business_id FROM reviews GROUP BY business_id ORDER BY MIN(pos)")
        return [b for (b,) in rows]

    @property
    def users(self) -> list[str]:
        """User ids in order of their first review."""
        rows = self._conn().execute("SELECT user_id FROM reviews GROUP BY user_id ORDER BY MIN(pos)")
        return [u for (u,) in rows]

    def user_reviews(self, user_id: str) -> list[Review]:
        rows = self._conn().execute("SELECT pos FROM reviews WHERE user_id = ? ORDER BY pos", (user_id,))
        return self._fetch([p for (p,) in rows])

    def business_photos(self, business_id: str) -> list[str]:
        """The business's photo pool: every photo of every review of it, in first-seen order.

        Raises:
            KeyError: naming the business when it has no review in the dataset.
        """
        rows = self._conn().execute(
            "SELECT photo_id FROM photos WHERE business_id = ? ORDER BY review_pos, rank", (business_id,)).fetchall()
        if not rows:
            self._check_business(business_id)
        return list(dict.fromkeys(p for (p,) in rows))

    def business_reviewers(self, business_id: str) -> list[str]:
        """Users who reviewed the business, in order of their first review of it.

        Raises:
            KeyError: naming the business when it has no review in the dataset.
        """
        rows = self._conn().execute("SELECT user_id FROM reviews WHERE business_id = ? ORDER BY pos", (business_id,))
        users = list(dict.fromkeys(u for (u,) in rows))
        if not users:
            self._check_business(business_id)
        return users

    def business_name(self, business_id: str) -> str | None:
        """The business's name when the input gave one (Google Local metadata, the test world), else None."""
        row = self._conn().execute("SELECT name FROM businesses WHERE business_id = ?", (business_id,)).fetchone()
        return row[0] if row else None

    def has_business(self, business_id: str) -> bool:
        """Whether the business has a review in the dataset (one indexed lookup)."""
        return self._conn().execute("SELECT 1 FROM reviews WHERE business_id = ? LIMIT 1", (business_id,)).fetchone() \
            is not None

    def has_user(self, user_id: str) -> bool:
        """Whether the user wrote a review in the dataset (one indexed lookup)."""
        row = self._conn().execute("SELECT 1 FROM reviews WHERE user_id = ? LIMIT 1", (user_id,)).fetchone()
        return row is not None

    def _check_business(self, business_id: str) -> None:
        if not self.has_business(business_id):
            raise KeyError(f"unknown business {business_id!r}")

    def profile(self, review: Review) -> UserProfile:
        """The author's profile for `review`: texts and photos of their history (never the review itself)."""
        items = [item for item in review.history if item.review_id != review.review_id]
        need = [item.review_id for item in items if not item.photos]
        known = self._photos_by_review_id(need) if need else {}
        photos: list[str] = []
        for item in items:
            photos.extend(item.photos or known.get(item.review_id, ()))
        return UserProfile(review.user_id, tuple(item.text for item in items), tuple(dict.fromkeys(photos)))

    def user_profile(self, user_id: str, exclude_business: str | None = None) -> UserProfile:
        """Profile of a user from all their reviews in the dataset (optionally leaving one business out)."""
        rows = self._conn().execute(
            "SELECT pos, text FROM reviews WHERE user_id = ? AND business_id IS NOT ? ORDER BY pos",
            (user_id, exclude_business)).fetchall()
        photos = self._photos_of([p for p, _ in rows])
        ordered = (ph for p, _ in rows for ph in photos.get(p, ()))
        return UserProfile(user_id, tuple(t for _, t in rows), tuple(dict.fromkeys(ordered)))

    def all_texts(self) -> list[str]:
        """Every distinct text a model may need features for: reviews, sentences, explanations, histories."""
        seen: dict[str, None] = {}
        users_done: set[str] = set()
        for r in self.reviews:
            seen[r.text] = None
            seen.update(dict.fromkeys(r.sentences))
            if r.explanation:
                seen.update(dict.fromkeys(r.explanation))
            history = r.history
            if isinstance(history, _History) and history._args[3] == HISTORY_USER:
                if r.user_id in users_done:  # the user's texts were all added with their first review
                    continue
                users_done.add(r.user_id)
            seen.update(dict.fromkeys(h.text for h in history))
        return list(seen)

    def all_photos(self) -> list[str]:
        rows = self._conn().execute("SELECT photo_id FROM photos ORDER BY review_pos, rank")
        return list(dict.fromkeys(p for (p,) in rows))

    def photo_path(self, photo_id: str) -> Path:
        from showcase.data.photos import PhotoStore

        if self.photos_dir is None:
            raise ValueError("this dataset has no photos_dir")
        return PhotoStore(self.photos_dir).path(photo_id)

    # --- queries ------------------------------------------------------------------------------------------------
    def _photos_of(self, positions: Sequence[int]) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        conn = self._conn()
        for start in range(0, len(positions), _CHUNK):
            chunk = list(positions[start:start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            for pos, photo in conn.execute(f"SELECT review_pos, photo_id FROM photos WHERE review_pos IN ({marks}) "
                                           "ORDER BY review_pos, rank", chunk):
                out.setdefault(pos, []).append(photo)
        return {p: tuple(v) for p, v in out.items()}

    def _photos_by_review_id(self, review_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        pos_of: dict[int, str] = {}
        conn = self._conn()
        for start in range(0, len(review_ids), _CHUNK):
            chunk = list(review_ids[start:start + _CHUNK])
            marks = ",".join("?" * len(chunk))
            pos_of.update(conn.execute(f"SELECT pos, review_id FROM reviews WHERE review_id IN ({marks})", chunk))
        photos = self._photos_of(list(pos_of))
        return {rid: photos.get(pos, ()) for pos, rid in pos_of.items()}

    def _fetch(self, positions: Sequence[int]) -> list[Review]:
        """Reviews at `positions`, in that order."""
        positions = list(positions)
        rows: dict[int, tuple] = {}
        conn = self._conn()
        for start in range(0, len(positions), _CHUNK):
            chunk = positions[start:start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows.update((row[0], row) for row in conn.execute(f"SELECT {_COLUMNS} FROM reviews WHERE pos IN ({marks})",
                                                              chunk))
        photos = self._photos_of(positions)
        out = []
        for pos in positions:
            if pos not in rows:
                raise IndexError(f"no review at position {pos}")
            _, rid, uid, bid, text, rating, split, sentences, explanation, history = rows[pos]
            out.append(Review(rid, uid, bid, text, photos.get(pos, ()), rating, split, tuple(json.loads(sentences)),
                              _History(self, pos, uid, history),
                              None if explanation is None else tuple(json.loads(explanation))))
        return out

    def _resolve_history(self, pos: int, user_id: str, kind: str) -> tuple[HistoryItem, ...]:
        conn = self._conn()
        if kind == HISTORY_USER:
            rows = conn.execute("SELECT pos, review_id, text FROM reviews WHERE user_id = ? AND pos != ? ORDER BY pos",
                                (user_id, pos)).fetchall()
            photos = self._photos_of([p for p, _, _ in rows])
            return tuple(HistoryItem(rid, text, photos.get(p, ())) for p, rid, text in rows)
        rows = conn.execute(
            "SELECT h.ref_id, h.text, h.photos, r.pos, r.text FROM history h LEFT JOIN reviews r "
            "ON r.review_id = h.ref_id WHERE h.review_pos = ? ORDER BY h.rank", (pos,)).fetchall()
        photos = self._photos_of([p for *_, p, _ in rows if p is not None])
        return tuple(
            HistoryItem(ref, own_text if own_text is not None else ref_text,
                        tuple(json.loads(own_photos)) if own_photos is not None else photos.get(ref_pos, ()))
            for ref, own_text, own_photos, ref_pos, ref_text in rows)

    # --- files --------------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: str | Path) -> "ShowcaseDataset":
        """Open a dataset folder written by `showcase prepare` or `save` (reads only its `meta` table).

        Raises:
            UserError: when the folder holds no complete dataset, or one in the old `reviews.jsonl` format.
        """
        folder = Path(folder)
        path = folder / FILE_NAME
        if not path.is_file():
            if (folder / "reviews.jsonl").exists():
                raise UserError("a dataset in the old reviews.jsonl format: rerun `showcase prepare` to rebuild it",
                                path=folder)
            raise UserError(f"no {FILE_NAME} here: is this a dataset folder (showcase prepare)?", path=folder)
        try:
            conn = connect_readonly(path)
            complete = conn.execute("SELECT value FROM meta WHERE key = 'complete'").fetchone()
            conn.close()
        except sqlite3.DatabaseError as e:
            raise UserError(f"not a readable dataset file ({e}): rerun `showcase prepare`", path=path) from e
        if complete is None:
            raise UserError("unfinished dataset file: rerun `showcase prepare`", path=path)
        dataset = cls(_file=path)
        photos_dir = dataset.meta.get("photos_dir")
        if photos_dir is not None:
            dataset.photos_dir = folder / photos_dir  # an absolute photos_dir replaces the prefix
        return dataset

    def save(self, folder: str | Path, **meta: Any) -> Path:
        """Write `dataset.sqlite` and `dataset.json` into `folder`, each through a temporary name and a rename."""
        from showcase.utils import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.meta.update(meta)
        if self.photos_dir is not None:
            self.meta["photos_dir"] = str(Path(self.photos_dir).resolve())
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{FILE_NAME}.", suffix=".tmp")
        os.close(fd)
        try:
            target = sqlite3.connect(tmp)
            with target:
                self._conn().backup(target)
            target.close()
            update_meta(tmp, self.meta)
            os.replace(tmp, folder / FILE_NAME)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        atomic_write_text(folder / META_NAME, json.dumps(self.meta, indent=2, default=str))
        (folder / "reviews.jsonl").unlink(missing_ok=True)  # an old-format file would only mislead
        return folder

    def with_reviews(self, reviews: Iterable[Review]) -> "ShowcaseDataset":
        """A new dataset holding `reviews` (e.g. one split, or distilled records) with this one's photos and meta."""
        names = dict(self._conn().execute("SELECT business_id, name FROM businesses WHERE name IS NOT NULL"))
        return ShowcaseDataset(list(reviews), self.photos_dir, dict(self.meta), names=names)


def write_reviews(path: Path, reviews: list[Review], meta: dict[str, Any],
                  names: dict[str, str] | None = None) -> Path:
    """Write records to a new database file; a history equal to "the user's other reviews" is stored as such."""
    by_id = {r.review_id: r for r in reviews}
    by_user: dict[str, list[Review]] = {}
    for r in reviews:
        by_user.setdefault(r.user_id, []).append(r)
    writer = DatasetWriter(path)
    try:
        for r in reviews:
            history = list(r.history)
            others = [o for o in by_user[r.user_id] if o.review_id != r.review_id]
            if len(history) == len(others) and all(
                    h.review_id == o.review_id and h.text == o.text and (not h.photos or tuple(h.photos) == o.photos)
                    for h, o in zip(history, others)):
                stored: Any = HISTORY_USER
            else:
                stored = []
                for h in history:
                    ref = by_id.get(h.review_id)
                    same_text = ref is not None and ref.text == h.text
                    same_photos = not h.photos or (ref is not None and tuple(h.photos) == ref.photos)
                    stored.append((h.review_id, None if same_text else h.text, None if same_photos else h.photos))
            writer.add(r.review_id, r.user_id, r.business_id, r.text, r.photos, r.rating, r.split, r.sentences,
                       r.explanation, stored)
        for business_id, name in (names or {}).items():
            writer.name_business(business_id, name)
        return writer.finish(meta)
    except sqlite3.IntegrityError as e:
        writer.abort()
        raise ValueError(f"two reviews share a review_id ({e})") from e
    except BaseException:
        writer.abort()
        raise
