"""Feature extraction into a `FeatureStore` through Lightning's `predict`.

The work is cut into shards (`shard_size` items, a whole number of batches). One dataset item is one batch, so a
batch never spans two shards; the `ShardWriter` callback writes a shard as soon as its last batch is encoded.
Photos are decoded and resized in DataLoader workers (`num_workers`), bad ones skipped with a reason.

On several devices or machines (Lightning DDP, e.g. `trainer_kwargs={"devices": 4, "strategy": "ddp"}` or
`num_nodes`), every rank plans the same shards from the same disk state and encodes every `world_size`-th one, so
ranks write disjoint shards; rank 0 indexes them all once every rank is done. Without a shared file system, copy
each machine's `images/shard-*` and `texts/shard-*` into one store and run the same extraction there once more: it
finds every shard done, encodes nothing and writes the index. Either way the store equals a one-process store.

A killed run leaves whole shards only (temporary file + rename); the next run skips every finished shard and cuts
the rest exactly as before, so its result equals an uninterrupted run's, bit for bit.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import BasePredictionWriter
from torch.utils.data import DataLoader, Dataset

from showcase.encoders import store as st
from showcase.encoders.clip import ClipEncoder, load_clip, load_clip_from_spec
from showcase.encoders.decode import DEFAULT_MAX_PIXELS, load_photos
from showcase.utils import atomic_write_text

Batch = tuple[str, list[str]]  # (shard name, keys)


@dataclass
class ExtractionReport:
    """What an extraction did. Counts are over the items asked for in this call."""

    store: str
    images_total: int = 0
    images_encoded: int = 0
    images_skipped: dict[str, str] = field(default_factory=dict)  # photo id -> reason
    texts_total: int = 0
    texts_encoded: int = 0
    shards_written: int = 0
    shards_reused: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"feature store {self.store}",
            f"  photos: {self.images_encoded}/{self.images_total} encoded, {len(self.images_skipped)} skipped",
            f"  texts:  {self.texts_encoded}/{self.texts_total} encoded",
            f"  shards: {self.shards_written} written, {self.shards_reused} reused from an earlier run",
            f"  time:   {self.seconds:.1f} s",
        ]
        for pid, reason in list(self.images_skipped.items())[:10]:
            lines.append(f"  skipped {pid}: {reason}")
        if len(self.images_skipped) > 10:
            lines.append(f"  ... {len(self.images_skipped) - 10} more in {Path(self.store) / st.SKIPPED_JSON}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- data -------------------------------------------------------------------------------------------------------
@dataclass
class PhotoOptions:
    """Where the photos are and which to refuse (see `showcase.encoders.decode`)."""

    paths: Mapping[str, Any]
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    root: str | os.PathLike | None = None


class _BatchDataset(Dataset):
    """Item `i` is a whole batch: decoded and preprocessed in a worker, skipping bad photos with a reason."""

    def __init__(self, kind: str, batches: list[Batch], photos: PhotoOptions | None, encoder: ClipEncoder):
        self.kind, self.batches, self.photos = kind, batches, photos
        self.transform, self.tokenizer = encoder.preprocess, encoder.tokenizer

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, Any]:
        shard, keys = self.batches[i]
        if self.kind == "images":
            opts = self.photos or PhotoOptions({})
            inputs, kept, skipped = load_photos(keys, opts.paths, self.transform, opts.max_pixels, opts.root)
        else:
            inputs, kept, skipped = self.tokenizer(keys), keys, {}
        return {"kind": self.kind, "shard": shard, "keys": kept, "skipped": skipped, "inputs": inputs}


class _ShardData(L.LightningDataModule):
    """Hands each rank every `world_size`-th shard (no distributed sampler: shards stay whole on one rank)."""

    def __init__(self, dataset_args: tuple, shard_order: list[str], num_workers: int):
        super().__init__()
        self.dataset_args, self.shard_order, self.num_workers = dataset_args, shard_order, num_workers

    def predict_dataloader(self) -> DataLoader:
        kind, batches, photos, encoder = self.dataset_args
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        mine = set(self.shard_order[rank::world])
        dataset = _BatchDataset(kind, [b for b in batches if b[0] in mine], photos, encoder)
        return DataLoader(dataset, batch_size=None, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=False)


# --- model and writer -------------------------------------------------------------------------------------------
class ClipPredictor(L.LightningModule):
    """Thin Lightning wrapper: encodes a batch of pixels or token ids with the CLIP model."""

    def __init__(self, encoder: ClipEncoder):
        super().__init__()
        self.model = encoder.model
        self.dim = encoder.dim

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        x = batch["inputs"]
        if not batch["keys"]:
            feats = torch.empty(0, self.dim)
        elif batch["kind"] == "images":
            feats = self.model.encode_image(x)  # (B, D)
        else:
            feats = self.model.encode_text(x)  # (B, D)
        feats = F.normalize(feats.float(), dim=-1).cpu()
        return {k: batch[k] for k in ("kind", "shard", "keys", "skipped")} | {"features": feats}


class ShardWriter(BasePredictionWriter):
    """Collects the batches of each shard and writes the shard atomically once all of them are in."""

    def __init__(self, folder: Path, expected: dict[tuple[str, str], int]):
        super().__init__(write_interval="batch")
        self.folder, self.expected = folder, expected
        self.pending: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.written = 0

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        key = (prediction["kind"], prediction["shard"])
        parts = self.pending.setdefault(key, [])
        parts.append(prediction)
        if len(parts) < self.expected[key]:
            return
        del self.pending[key]
        ids = [k for p in parts for k in p["keys"]]
        feats = torch.cat([p["features"] for p in parts]).numpy().astype(np.float32, copy=False)
        skipped = {k: v for p in parts for k, v in p["skipped"].items()}
        st.write_shard(self.folder / key[0], key[1], ids, feats, skipped)
        self.written += 1


# --- planning ---------------------------------------------------------------------------------------------------
def _plan(ns_dir: Path, keys: Sequence[str], shard_size: int, batch_size: int) -> tuple[list[Batch], int]:
    """Batches still to encode (each tagged with its shard's name) and the number of finished shards.

    The keys left when a run starts are cut into shards `first, first + 1, ...`, and `PLAN_JSON` records the cut.
    A rerun with the same keys finds the record and cuts them the same way again, encoding only the shards not
    done: so a killed run resumes to the same store even when the finished shards are not a prefix (DDP ranks
    finish shards in any order). With other keys, the keys not yet stored are cut into new shards after the last.
    """
    st.remove_partial(ns_dir)
    done = st.done_shards(ns_dir)
    number = {name: int(name[len(st.SHARD_PREFIX):]) for name in done}
    keys = list(dict.fromkeys(keys))
    record = _read_plan(ns_dir)
    if record is not None and record.get("shard_size") == shard_size:
        first = int(record["first"])
        earlier = {k for name, s in done.items() if number[name] < first for k in (*s["ids"], *s["skipped"])}
        todo = [k for k in keys if k not in earlier]
        if _digest(todo) == record.get("digest"):
            return _cut(todo, first, shard_size, batch_size, skip=set(done)), len(done)
    finished = {k for s in done.values() for k in (*s["ids"], *s["skipped"])}
    todo = [k for k in keys if k not in finished]
    first = max(number.values(), default=-1) + 1
    if todo:
        record = {"first": first, "shard_size": shard_size, "count": len(todo), "digest": _digest(todo)}
        atomic_write_text(ns_dir / PLAN_JSON, json.dumps(record))
    return _cut(todo, first, shard_size, batch_size, skip=set()), len(done)


PLAN_JSON = "plan.json"


def _read_plan(ns_dir: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((ns_dir / PLAN_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("first"), int) else None


def _digest(keys: Sequence[str]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key in keys:
        h.update(key.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()


def _cut(todo: list[str], first: int, shard_size: int, batch_size: int, skip: set[str]) -> list[Batch]:
    """Shards `first, first + 1, ...` of `shard_size` keys each (but those in `skip`), in batches."""
    batches = []
    for s, start in enumerate(range(0, len(todo), shard_size)):
        name = st.shard_name(first + s)
        if name in skip:
            continue
        shard_keys = todo[start : start + shard_size]
        batches += [(name, shard_keys[b : b + batch_size]) for b in range(0, len(shard_keys), batch_size)]
    return batches


def _resolve_encoder(encoder_or_spec: ClipEncoder | Mapping[str, Any] | str) -> ClipEncoder:
    if isinstance(encoder_or_spec, ClipEncoder):
        return encoder_or_spec
    if isinstance(encoder_or_spec, Mapping):
        return load_clip_from_spec(dict(encoder_or_spec))
    return load_clip(str(encoder_or_spec))


def extract_features(
    store_dir: str | os.PathLike,
    encoder_or_spec: ClipEncoder | Mapping[str, Any] | str,
    photos: Mapping[str, str | os.PathLike | None] | None = None,
    texts: Sequence[str] | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    progress: bool = True,
    trainer_kwargs: dict[str, Any] | None = None,
    shard_size: int = 1024,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    photo_root: str | os.PathLike | None = None,
) -> ExtractionReport:
    """Encode photos and texts into the feature store at `store_dir`, resuming an interrupted run.

    Args:
        store_dir: the store folder (created if needed; an existing one must hold the same encoder's features).
        encoder_or_spec: a `ClipEncoder`, its `spec` dict, or a model name / folder for `load_clip`.
        photos: photo id -> image file. Bad photos (no file, empty, unreadable, truncated, not an image, over
            `max_pixels`, outside `photo_root`) are skipped and listed with the reason in the report and in
            `STORE/skipped.json`; they never stop the run.
        texts: texts to encode (keyed by the exact string; duplicates are encoded once).
        batch_size: items per forward pass.
        num_workers: DataLoader worker processes decoding and resizing photos (0: in the main process; the
            `showcase features` default is one per core but one).
        progress: show Lightning's progress bar.
        trainer_kwargs: extra `lightning.Trainer` arguments, e.g. `{"accelerator": "gpu", "devices": 4,
            "strategy": "ddp", "precision": "16-mixed"}`.
        shard_size: items per shard (rounded up to a whole number of batches): the unit of resumption.
        max_pixels: photos whose header claims more pixels are skipped as decompression bombs (None: no limit).
        photo_root: when given, photo files (links followed) must lie inside this folder.

    Returns:
        An `ExtractionReport` (the same on every rank; only rank 0 writes the index files).
    """
    t0 = time.perf_counter()
    store_dir = Path(store_dir)
    encoder = _resolve_encoder(encoder_or_spec)
    st.init_store(store_dir, encoder)
    shard_size = math.ceil(max(shard_size, 1) / batch_size) * batch_size
    photos = dict(photos or {})
    texts = list(dict.fromkeys(texts or ()))
    jobs = {"images": (list(photos), PhotoOptions(photos, max_pixels, photo_root)), "texts": (texts, None)}
    plans = {ns: _plan(store_dir / ns, keys, shard_size, batch_size) for ns, (keys, _) in jobs.items()}
    expected: dict[tuple[str, str], int] = {}
    for ns, (batches, _) in plans.items():
        for shard, _ in batches:
            expected[(ns, shard)] = expected.get((ns, shard), 0) + 1
    writer = ShardWriter(store_dir, expected)
    kwargs = {"accelerator": "auto", "devices": 1, "logger": False, "enable_checkpointing": False,
              "enable_model_summary": False, "enable_progress_bar": progress, "use_distributed_sampler": False}
    kwargs.update(trainer_kwargs or {})
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), writer]
    from showcase.utils import quiet_lightning

    quiet_lightning()
    trainer = L.Trainer(**kwargs)
    module = ClipPredictor(encoder)
    for ns, (batches, _) in plans.items():
        if batches:
            order = list(dict.fromkeys(shard for shard, _ in batches))
            data = _ShardData((ns, batches, jobs[ns][1], encoder), order, num_workers)
            with warnings.catch_warnings():  # one item is a whole batch: there are no per-item indices to infer
                warnings.filterwarnings("ignore", message=".*infer the batch indices")
                trainer.predict(module, datamodule=data, return_predictions=False)
    trainer.strategy.barrier()
    if trainer.is_global_zero:
        st.write_index(store_dir, encoder.dim)
    trainer.strategy.barrier()
    return _report(store_dir, photos, texts, plans, writer.written, time.perf_counter() - t0)


def _report(store_dir: Path, photos: Mapping, texts: list[str], plans: dict, written: int, seconds: float):
    store = st.FeatureStore.open(store_dir)
    skipped = store.skipped.get("images", {})
    return ExtractionReport(
        store=str(store_dir),
        images_total=len(photos),
        images_encoded=sum(store.has_images(photos)),
        images_skipped={p: skipped[p] for p in photos if p in skipped},
        texts_total=len(texts),
        texts_encoded=sum(store.has_texts(texts)),
        shards_written=written,
        shards_reused=sum(reused for _, reused in plans.values()),
        seconds=seconds,
    )
