"""The feature store: CLIP features of photos and texts, computed once and memory-mapped for reading.

Layout of a store folder::

    STORE/encoder.json          {"spec": {...}, "dim": d, "weights": "encoder" | null}
    STORE/encoder/              the encoder's own weights, when they cannot be fetched by name (random init,
                                local file or folder): `FeatureStore.load_encoder()` rebuilds the exact model
    STORE/images/shard-00000.npy    float32 (rows, d), unit-normalised
    STORE/images/shard-00000.json   {"ids": [...], "skipped": {id: reason}}; written last: marks the shard done
    STORE/images/index.sqlite       id -> (shard, row), see `showcase.encoders.index` (stores written before it
                                    have `index.json`, converted on open)
    STORE/images/plan.json          how the last extraction cut its keys into shards (so a rerun resumes the same cut)
    STORE/texts/...                 the same, keyed by the exact text
    STORE/skipped.json              {"images": {id: reason}, "texts": {}}

Every file is written to a temporary name and renamed, so a killed extraction leaves only whole shards.
"""
from __future__ import annotations

import json
import mmap
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch

from showcase.encoders.index import INDEX_SQLITE, KeyIndex, build_index
from showcase.errors import UserError
from showcase.utils import atomic_write_text, mkstemp_like_open

if TYPE_CHECKING:
    from showcase.encoders.clip import ClipEncoder

NAMESPACES = ("images", "texts")
ENCODER_JSON = "encoder.json"
ENCODER_DIR = "encoder"
INDEX_JSON = "index.json"
SKIPPED_JSON = "skipped.json"
SHARD_PREFIX = "shard-"


def _missing_error(kind: str, missing: list[str], total: int) -> KeyError:
    shown = ", ".join(repr(m if len(m) < 60 else m[:57] + "...") for m in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return KeyError(f"{len(missing)} of {total} {kind} not in the feature store: {shown}{more}")


class _Namespace:
    """Read side of one namespace (`images` or `texts`): its `KeyIndex`, shards memory-mapped lazily."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.index: KeyIndex | None = None
        self._arrays: dict[int, np.ndarray] = {}
        sqlite_path, json_path = folder / INDEX_SQLITE, folder / INDEX_JSON
        if not sqlite_path.exists() and json_path.exists():
            _convert_json_index(folder)
        if sqlite_path.exists():
            try:
                self.index = KeyIndex(sqlite_path)
            except sqlite3.DatabaseError as e:
                raise UserError(f"corrupt feature index ({e}): delete it and run `showcase features` again with "
                                f"the same arguments (it rebuilds the index from the shards)",
                                path=sqlite_path) from None
        elif folder.is_dir() and next(folder.glob(f"{SHARD_PREFIX}*.json"), None) is not None:
            raise UserError(f"extraction unfinished (shards but no {INDEX_SQLITE}): run `showcase features` again "
                            f"with the same arguments to resume", path=folder)

    @property
    def dim(self) -> int | None:
        return None if self.index is None else self.index.dim

    def __len__(self) -> int:
        return 0 if self.index is None else self.index.count

    def locate(self, keys: Sequence[str]) -> list[tuple[int, int] | None]:
        """`(shard, row)` of each key, `None` when absent."""
        return self.index.locate(keys) if self.index is not None and keys else [None] * len(keys)

    def keys(self) -> list[str]:
        return [] if self.index is None else list(self.index.keys())

    def array(self, i: int) -> np.ndarray:
        if i not in self._arrays:
            assert self.index is not None
            self._arrays[i] = map_shard(self.folder / self.index.files[i], self.index.rows[i], self.index.dim)
        return self._arrays[i]

    def gather(self, keys: Sequence[str], kind: str) -> torch.Tensor:
        locs = self.locate(keys)
        missing = [k for k, loc in zip(keys, locs) if loc is None]
        if missing:
            raise _missing_error(kind, missing, len(keys))
        out = np.empty((len(keys), self.dim or 0), dtype=np.float32)
        by_shard: dict[int, tuple[list[int], list[int]]] = {}
        for i, (shard, row) in enumerate(locs):
            at, rows = by_shard.setdefault(shard, ([], []))
            at.append(i)
            rows.append(row)
        for shard, (at, rows) in by_shard.items():
            out[at] = self.array(shard)[rows]
        return torch.from_numpy(out)


def map_shard(path: Path, rows: int, dim: int) -> np.ndarray:
    """Memory-map a shard array `(rows, dim)` float32 as written by `write_shard` (read-only).

    Faster than `np.load(mmap_mode="r")` (which parses the header with `ast` and builds an `np.memmap`): a lookup
    in a million-id store may touch a new shard at every call.

    Raises:
        UserError: when the file is missing, truncated or not such an array.
    """
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header_len = int.from_bytes(f.read(2 if version == (1, 0) else 4), "little")
            header = f.read(header_len).decode("latin1")
            offset = f.tell()
            expected = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}"
            if header.strip() != expected or os.fstat(f.fileno()).st_size != offset + 4 * rows * dim:
                raise ValueError(f"expected a float32 array of shape ({rows}, {dim})")
            if rows == 0:
                return np.empty((0, dim), dtype=np.float32)
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError) as e:
        raise UserError(f"missing or corrupt feature shard ({e}): delete it and its .json, then run `showcase "
                        f"features` again with the same arguments to recompute it", path=path) from None
    return np.ndarray((rows, dim), dtype="<f4", buffer=mapped, offset=offset)


def _convert_json_index(folder: Path) -> None:
    """Turn an `index.json` of an older store into `index.sqlite` (once; the json is removed afterwards)."""
    json_path = folder / INDEX_JSON
    try:
        index = json.loads(json_path.read_text(encoding="utf-8"))
        build_index(folder / INDEX_SQLITE, int(index["dim"]), ((s["file"], s["ids"]) for s in index["shards"]))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"unreadable feature index ({e}): delete it and run `showcase features` again with the "
                        f"same arguments (it rebuilds the index from the shards)", path=json_path) from None
    except OSError as e:
        raise UserError(f"an index of an older store, which must be converted once to {INDEX_SQLITE} but cannot be "
                        f"here ({e.strerror or e}): run `showcase features` again with the same arguments on a "
                        f"writable copy of the store (nothing is re-encoded)", path=json_path) from None
    json_path.unlink(missing_ok=True)


def read_encoder_meta(folder: str | os.PathLike) -> dict[str, Any] | None:
    """A store folder's `encoder.json` (the encoder's spec, the feature width `dim`, its fingerprint); None when the
    folder holds none (not a store). Reads nothing else."""
    path = Path(folder) / ENCODER_JSON
    return json.loads(path.read_text()) if path.is_file() else None


class FeatureStore:
    """Read access to a store folder written by `extract_features` / `showcase features`.

    Example:
        >>> store = FeatureStore.open("runs/demo/features")          # doctest: +SKIP
        >>> store.image_features(["p1", "p2"]).shape                  # doctest: +SKIP
        torch.Size([2, 64])
        >>> store.text_features(["The miso ramen was rich."])        # doctest: +SKIP
    """

    def __init__(self, folder: Path, meta: dict[str, Any], images: _Namespace, texts: _Namespace):
        self.folder = folder
        self._meta = meta
        self._images = images
        self._texts = texts

    @classmethod
    def open(cls, folder: str | os.PathLike) -> "FeatureStore":
        """Open a store folder.

        Opening reads two small tables of each namespace's `index.sqlite`, whatever the number of ids; a store
        written before the SQLite index (`index.json`) is converted once, in place.

        Raises:
            FileNotFoundError: when `folder` has no `encoder.json` (not a store).
            UserError: when an extraction into it was interrupted and not resumed, or its index is unreadable.
        """
        folder = Path(folder)
        meta = read_encoder_meta(folder)
        if meta is None:
            raise FileNotFoundError(f"{folder / ENCODER_JSON} not found: is {folder} a feature store (showcase "
                                    "features)?")
        return cls(folder, meta, _Namespace(folder / "images"), _Namespace(folder / "texts"))

    # --- lookup -------------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Feature size."""
        return int(self._meta["dim"])

    @property
    def encoder_spec(self) -> dict[str, Any]:
        """The spec of the encoder that computed the features (`load_clip_from_spec(spec)` rebuilds it)."""
        return dict(self._meta["spec"])

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Which encoder computed these features (`showcase.fingerprint`); derived from the spec for older stores."""
        from showcase.fingerprint import fingerprint_from_spec

        return dict(self._meta.get("fingerprint") or fingerprint_from_spec(self.encoder_spec, self.dim))

    @property
    def image_ids(self) -> list[str]:
        """Every stored photo id, in extraction order (read from disk: O(n) at each call)."""
        return self._images.keys()

    @property
    def texts(self) -> list[str]:
        """Every stored text, in extraction order (read from disk: O(n) at each call)."""
        return self._texts.keys()

    @property
    def skipped(self) -> dict[str, dict[str, str]]:
        """Photos (and texts) that could not be encoded, with the reason: `{"images": {id: reason}, ...}`."""
        path = self.folder / SKIPPED_JSON
        return json.loads(path.read_text()) if path.exists() else {ns: {} for ns in NAMESPACES}

    def has_image(self, photo_id: str) -> bool:
        return self._images.locate([photo_id])[0] is not None

    def has_text(self, text: str) -> bool:
        return self._texts.locate([text])[0] is not None

    def has_images(self, photo_ids: Iterable[str]) -> list[bool]:
        """`has_image` of many ids in a few queries (faster than one call each for thousands of ids)."""
        return [loc is not None for loc in self._images.locate(list(photo_ids))]

    def has_texts(self, texts: Iterable[str]) -> list[bool]:
        """`has_text` of many texts in a few queries."""
        return [loc is not None for loc in self._texts.locate(list(texts))]

    def image_features(self, photo_ids: Iterable[str]) -> torch.Tensor:
        """Features `(n, dim)` of photos, in the given order.

        Raises:
            KeyError: naming the first few ids that are not in the store.
        """
        return self._images.gather(list(photo_ids), "photos")

    def text_features(self, texts: Iterable[str]) -> torch.Tensor:
        """Features `(n, dim)` of texts (keyed by the exact string), in the given order.

        Raises:
            KeyError: naming the first few texts that are not in the store.
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        return self._texts.gather(texts, "texts")

    def load_encoder(self, device: str | torch.device = "cpu") -> "ClipEncoder":
        """The exact encoder that computed these features (its saved copy, or rebuilt from its pretrained tag)."""
        from showcase.encoders.clip import load_clip, load_clip_from_spec

        if self._meta.get("weights"):
            return load_clip(str(self.folder / self._meta["weights"]), device=device)
        return load_clip_from_spec(self.encoder_spec, device=device)

    def __repr__(self) -> str:
        return (f"FeatureStore({str(self.folder)!r}, model={self.encoder_spec.get('model')!r}, dim={self.dim}, "
                f"images={len(self._images)}, texts={len(self._texts)})")


# --- write side (used by extract_features) ----------------------------------------------------------------------
def init_store(folder: str | os.PathLike, encoder: "ClipEncoder") -> Path:
    """Create `folder` for `encoder`'s features, or check that an existing store was made by the same encoder.

    Weights that cannot be fetched by name are saved in `folder/encoder/` before `encoder.json` is written, so
    `encoder.json`'s presence means the store can always rebuild its encoder.
    """
    folder = Path(folder)
    meta_path = folder / ENCODER_JSON
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("spec") != encoder.spec:
            raise ValueError(
                f"{folder} holds features of encoder {meta.get('spec')}, not {encoder.spec}: "
                f"choose another output folder (or delete this one)"
            )
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    weights = None
    if not encoder.has_downloadable_weights:
        encoder.save(folder / ENCODER_DIR)
        weights = ENCODER_DIR
    from showcase.fingerprint import fingerprint_from_spec

    meta = {"spec": encoder.spec, "dim": encoder.dim, "weights": weights,
            "fingerprint": fingerprint_from_spec(encoder.spec, encoder.dim)}
    atomic_write_text(meta_path, json.dumps(meta, indent=2))
    return folder


def shard_name(number: int) -> str:
    return f"{SHARD_PREFIX}{number:05d}"


def done_shards(ns_dir: Path) -> dict[str, dict[str, Any]]:
    """Finished shards of a namespace: `{name: {"ids": [...], "skipped": {...}}}` (a shard is done once its json
    exists; the json is written after the array)."""
    out = {}
    for path in sorted(ns_dir.glob(f"{SHARD_PREFIX}*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


def remove_partial(ns_dir: Path) -> None:
    """Delete leftovers of a killed run: temporary files and arrays whose shard json was never written."""
    if not ns_dir.is_dir():
        return
    for path in ns_dir.iterdir():
        if path.name.endswith(".tmp") or (path.suffix == ".npy" and not path.with_suffix(".json").exists()):
            path.unlink(missing_ok=True)


def write_shard(ns_dir: Path, name: str, ids: list[str], features: np.ndarray, skipped: dict[str, str]) -> None:
    """Atomically write one shard: the array first, then its json (which marks it done)."""
    if features.shape[0] != len(ids):
        raise ValueError(f"shard {name}: {len(ids)} ids but {features.shape[0]} feature rows")
    ns_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_like_open(dir=ns_dir, prefix=f".{name}.", suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.ascontiguousarray(features, dtype=np.float32))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ns_dir / f"{name}.npy")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_text(ns_dir / f"{name}.json", json.dumps({"ids": ids, "skipped": skipped}))


def write_index(folder: Path, dim: int) -> dict[str, dict[str, str]]:
    """Index the finished shards of every namespace (`index.sqlite`) and write `skipped.json`; returns skipped.

    Shard files are read one at a time, so memory does not grow with the number of shards.
    """
    skipped_all: dict[str, dict[str, str]] = {}
    for ns in NAMESPACES:
        ns_dir = folder / ns
        skipped_all[ns] = skipped = {}
        paths = sorted(ns_dir.glob(f"{SHARD_PREFIX}*.json")) if ns_dir.is_dir() else []
        if not paths:
            continue

        def shards(paths=paths, skipped=skipped):
            for path in paths:
                shard = json.loads(path.read_text(encoding="utf-8"))
                skipped.update(shard["skipped"])
                yield f"{path.stem}.npy", shard["ids"]

        build_index(ns_dir / INDEX_SQLITE, dim, shards())
        (ns_dir / INDEX_JSON).unlink(missing_ok=True)  # an older store's index, superseded
    atomic_write_text(folder / SKIPPED_JSON, json.dumps(skipped_all, indent=1))
    return skipped_all
