"""The feature store: CLIP features of photos and texts, computed once and memory-mapped for reading.

Layout of a store folder::

    STORE/encoder.json          {"spec": {...}, "dim": d, "weights": "encoder" | null}
    STORE/encoder/              the encoder's own weights, when they cannot be fetched by name (random init,
                                local file or folder): `FeatureStore.load_encoder()` rebuilds the exact model
    STORE/images/shard-00000.npy    float32 (rows, d), unit-normalised
    STORE/images/shard-00000.json   {"ids": [...], "skipped": {id: reason}}; written last: marks the shard done
    STORE/images/index.json         {"dim": d, "count": n, "shards": [{"file": ..., "ids": [...]}]}
    STORE/texts/...                 the same, keyed by the exact text
    STORE/skipped.json              {"images": {id: reason}, "texts": {}}

Every file is written to a temporary name and renamed, so a killed extraction leaves only whole shards.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

import numpy as np
import torch

from showcase.utils import atomic_write_text

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
    """Read side of one namespace (`images` or `texts`): id -> (shard, row), shards memory-mapped lazily."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: list[str] = []
        self.loc: dict[str, tuple[int, int]] = {}
        self.dim: int | None = None
        self._arrays: dict[int, np.ndarray] = {}
        index_path = folder / INDEX_JSON
        done = sorted(p.name for p in folder.glob(f"{SHARD_PREFIX}*.json")) if folder.is_dir() else []
        if not index_path.exists():
            if done:
                raise RuntimeError(
                    f"{folder}: extraction unfinished ({len(done)} shards, no {INDEX_JSON}); run `showcase features` "
                    f"again with the same arguments to resume"
                )
            return
        index = json.loads(index_path.read_text())
        self.dim = int(index["dim"])
        for i, shard in enumerate(index["shards"]):
            self.files.append(shard["file"])
            self.loc.update((key, (i, row)) for row, key in enumerate(shard["ids"]))

    def array(self, i: int) -> np.ndarray:
        if i not in self._arrays:
            self._arrays[i] = np.load(self.folder / self.files[i], mmap_mode="r")
        return self._arrays[i]

    def gather(self, keys: Sequence[str], kind: str) -> torch.Tensor:
        missing = [k for k in keys if k not in self.loc]
        if missing:
            raise _missing_error(kind, missing, len(keys))
        out = np.empty((len(keys), self.dim or 0), dtype=np.float32)
        if keys:
            shard, row = np.array([self.loc[k] for k in keys], dtype=np.int64).T
            for s in np.unique(shard):
                mask = shard == s
                out[mask] = self.array(int(s))[row[mask]]
        return torch.from_numpy(out)


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

        Raises:
            FileNotFoundError: when `folder` has no `encoder.json` (not a store).
            RuntimeError: when an extraction into it was interrupted and not resumed.
        """
        folder = Path(folder)
        meta_path = folder / ENCODER_JSON
        if not meta_path.exists():
            raise FileNotFoundError(f"{meta_path} not found: is {folder} a feature store (showcase features)?")
        meta = json.loads(meta_path.read_text())
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
        return list(self._images.loc)

    @property
    def texts(self) -> list[str]:
        return list(self._texts.loc)

    @property
    def skipped(self) -> dict[str, dict[str, str]]:
        """Photos (and texts) that could not be encoded, with the reason: `{"images": {id: reason}, ...}`."""
        path = self.folder / SKIPPED_JSON
        return json.loads(path.read_text()) if path.exists() else {ns: {} for ns in NAMESPACES}

    def has_image(self, photo_id: str) -> bool:
        return photo_id in self._images.loc

    def has_text(self, text: str) -> bool:
        return text in self._texts.loc

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
                f"images={len(self._images.loc)}, texts={len(self._texts.loc)})")


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
    fd, tmp = tempfile.mkstemp(dir=ns_dir, prefix=f".{name}.", suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, np.ascontiguousarray(features, dtype=np.float32))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, ns_dir / f"{name}.npy")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_text(ns_dir / f"{name}.json", json.dumps({"ids": ids, "skipped": skipped}, ensure_ascii=False))


def write_index(folder: Path, dim: int) -> dict[str, dict[str, str]]:
    """Consolidate the finished shards of every namespace into `index.json`, and `skipped.json`; returns skipped."""
    skipped_all: dict[str, dict[str, str]] = {}
    for ns in NAMESPACES:
        ns_dir = folder / ns
        shards = done_shards(ns_dir)
        skipped_all[ns] = {k: v for s in shards.values() for k, v in s["skipped"].items()}
        if not shards:
            continue
        entries = [{"file": f"{name}.npy", "ids": s["ids"]} for name, s in shards.items()]
        index = {"dim": dim, "count": sum(len(e["ids"]) for e in entries), "shards": entries}
        atomic_write_text(ns_dir / INDEX_JSON, json.dumps(index, ensure_ascii=False))
    atomic_write_text(folder / SKIPPED_JSON, json.dumps(skipped_all, indent=1, ensure_ascii=False))
    return skipped_all
