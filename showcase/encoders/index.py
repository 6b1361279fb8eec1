"""The key index of one feature-store namespace: key (photo id or exact text) -> (shard, row), in SQLite.

`NS/index.sqlite` holds::

    meta(name, value)                 dim, count, format
    shards(shard, file, rows)         shard number -> array file name and its number of rows
    entries(hash, key, shard, row)    one row per stored key, in extraction order; indexed on `hash`

`hash` is the first 8 bytes of the key's BLAKE2b digest: the index on it stays small even when keys are whole
review texts, and a lookup compares the stored key itself, so a hash collision can never return the wrong row.
Opening reads two tiny tables (whatever the number of keys); a lookup reads a few pages. The file is built under a
temporary name and renamed into place, and never modified afterwards (so readers open it `immutable`).
"""
from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from showcase.utils import mkstemp_like_open

INDEX_SQLITE = "index.sqlite"
FORMAT = "showcase-feature-index-1"
_CHUNK = 500  # keys per `IN (...)` query


def key_bytes(key: str) -> bytes:
    """The stored form of a key (UTF-8; lone surrogates kept, so any Python string round-trips)."""
    return key.encode("utf-8", "surrogatepass")


def key_hash(raw: bytes) -> int:
    """Signed 64-bit hash of a stored key (SQLite's INTEGER)."""
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little", signed=True)


def build_index(path: Path, dim: int, shards: Iterable[tuple[str, Sequence[str]]]) -> int:
    """Write the index of `shards` (`(array file name, keys in row order)`, consumed one at a time) to `path`.

    Built in a temporary file beside `path` and renamed over it, so a reader sees the old index or the new one,
    never half of one. Returns the number of keys.
    """
    fd, tmp = mkstemp_like_open(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    count = 0
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript(
                "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;"
                "CREATE TABLE meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                "CREATE TABLE shards(shard INTEGER PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL);"
                "CREATE TABLE entries(hash INTEGER NOT NULL, key BLOB NOT NULL, shard INTEGER NOT NULL,"
                " row INTEGER NOT NULL);"
            )
            for number, (file, keys) in enumerate(shards):
                raw = [key_bytes(k) for k in keys]
                con.execute("INSERT INTO shards VALUES (?, ?, ?)", (number, file, len(raw)))
                con.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)",
                                ((key_hash(b), b, number, row) for row, b in enumerate(raw)))
                count += len(raw)
            con.execute("CREATE INDEX entries_hash ON entries(hash)")
            con.executemany("INSERT INTO meta VALUES (?, ?)",
                            [("format", FORMAT), ("dim", str(dim)), ("count", str(count))])
            con.commit()
        finally:
            con.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


class KeyIndex:
    """Read side of `index.sqlite`: opens in constant time, answers lookups from disk.

    The connection is opened again after a fork (DataLoader workers), dropped when pickled, and shared by threads
    one query at a time.
    """

    def __init__(self, path: Path):
        self.path = path
        self._con: sqlite3.Connection | None = None
        self._pid = -1
        self._lock = threading.Lock()
        con = self._connection()
        meta = dict(con.execute("SELECT name, value FROM meta"))
        if meta.get("format") != FORMAT:
            raise sqlite3.DatabaseError(f"unknown index format {meta.get('format')!r}")
        self.dim, self.count = int(meta["dim"]), int(meta["count"])
        shards = con.execute("SELECT file, rows FROM shards ORDER BY shard").fetchall()
        self.files = [file for file, _ in shards]
        self.rows = [rows for _, rows in shards]

    def _connection(self) -> sqlite3.Connection:
        if self._con is None or self._pid != os.getpid():
            uri = f"{self.path.resolve().as_uri()}?mode=ro&immutable=1"
            self._con = sqlite3.connect(uri, uri=True, check_same_thread=False)
            self._pid = os.getpid()
        return self._con

    def _guard(self) -> threading.Lock:
        if self._pid != os.getpid():  # a forked child: the parent's lock may have been held by another thread
            self._lock = threading.Lock()
        return self._lock

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_con": None, "_pid": -1, "_lock": None}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock())

    def locate(self, keys: Sequence[str]) -> list[tuple[int, int] | None]:
        """`(shard, row)` of each key, `None` for keys not in the index."""
        raw = [key_bytes(k) for k in keys]
        found: dict[bytes, tuple[int, int]] = {}
        unique = list(dict.fromkeys(raw))
        with self._guard():
            con = self._connection()
            for start in range(0, len(unique), _CHUNK):
                hashes = [key_hash(b) for b in unique[start : start + _CHUNK]]
                query = ("SELECT key, shard, row FROM entries WHERE hash = ?" if len(hashes) == 1 else
                         f"SELECT key, shard, row FROM entries WHERE hash IN ({','.join('?' * len(hashes))})")
                found.update((k, (s, r)) for k, s, r in con.execute(query, hashes))
        return [found.get(b) for b in raw]

    def keys(self) -> Iterator[str]:
        """Every key, in extraction order."""
        with self._guard():
            rows = self._connection().execute("SELECT key FROM entries ORDER BY rowid").fetchall()
        for (raw,) in rows:
            yield raw.decode("utf-8", "surrogatepass")
