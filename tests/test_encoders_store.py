"""The feature store's SQLite key index: exact lookups (hash collisions included), old `index.json` stores, corrupt
indexes, and a size check (opening does not read the index; lookups stay fast)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from showcase.encoders import FeatureStore
from showcase.encoders import index as ix
from showcase.encoders import store as st
from showcase.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def make_store(folder: Path, namespaces: dict[str, list[str]], dim: int = 4, shard: int = 3) -> dict[str, np.ndarray]:
    """A store whose features are random; returns key -> feature row."""
    folder.mkdir(parents=True)
    (folder / st.ENCODER_JSON).write_text(json.dumps({"spec": {"model": "synthetic"}, "dim": dim, "weights": None}))
    rng, truth = np.random.default_rng(0), {}
    for ns, keys in namespaces.items():
        for number, start in enumerate(range(0, len(keys), shard)):
            chunk = keys[start : start + shard]
            feats = rng.standard_normal((len(chunk), dim)).astype(np.float32)
            st.write_shard(folder / ns, st.shard_name(number), chunk, feats, {})
            truth.update(zip(chunk, feats))
    st.write_index(folder, dim)
    return truth


TEXTS = ["The miso ramen was rich.", "word " * 2000, "naïve café — 拉麺 🍜", "lone surrogate \udc80 kept", ""]


def test_lookups_are_exact_in_any_order(tmp_path):
    ids = [f"p{i}" for i in range(10)]
    truth = make_store(tmp_path / "s", {"images": ids, "texts": TEXTS})
    store = FeatureStore.open(tmp_path / "s")
    assert store.image_ids == ids and store.texts == TEXTS  # extraction order
    query = ["p7", "p0", "p7", "p9"]
    assert torch.equal(store.image_features(query), torch.from_numpy(np.stack([truth[k] for k in query])))
    assert torch.equal(store.text_features(TEXTS[::-1]), torch.from_numpy(np.stack([truth[t] for t in TEXTS[::-1]])))
    assert all(store.has_text(t) for t in TEXTS) and not store.has_text("word " * 1999)
    assert store.has_image("p3") and not store.has_image("p10") and not store.has_text("p3")
    assert store.has_images(["p3", "p10", "p3"]) == [True, False, True] and store.has_texts(TEXTS[:2]) == [True] * 2
    with pytest.raises(KeyError, match="1 of 2 photos"):
        store.image_features(["p1", "missing"])
    assert repr(store).endswith("images=10, texts=5)")


def test_hash_collisions_never_return_the_wrong_row(tmp_path, monkeypatch):
    monkeypatch.setattr(ix, "key_hash", lambda raw: len(raw) % 2)  # every key collides with half the others
    ids = [f"p{i}" for i in range(1200)]  # more than one `IN (...)` chunk
    truth = make_store(tmp_path / "s", {"images": ids}, shard=100)
    store = FeatureStore.open(tmp_path / "s")
    query = ids[::-7] + ["p5"]
    assert torch.equal(store.image_features(query), torch.from_numpy(np.stack([truth[k] for k in query])))
    assert store.has_image("p1199") and not store.has_image("p1200")


def test_old_json_index_is_converted_on_open(tmp_path):
    truth = make_store(tmp_path / "s", {"images": ["a", "b", "c", "d"], "texts": TEXTS})
    for ns, keys in (("images", ["a", "b", "c", "d"]), ("texts", TEXTS)):  # rewrite as the old format
        ns_dir = tmp_path / "s" / ns
        (ns_dir / ix.INDEX_SQLITE).unlink()
        shards = [{"file": f"{st.shard_name(n)}.npy", "ids": keys[3 * n : 3 * n + 3]} for n in range(2)]
        (ns_dir / st.INDEX_JSON).write_text(json.dumps({"dim": 4, "count": len(keys), "shards": shards}))
    store = FeatureStore.open(tmp_path / "s")
    assert store.image_ids == ["a", "b", "c", "d"] and store.texts == TEXTS
    assert torch.equal(store.text_features(TEXTS[1:2]), torch.from_numpy(truth[TEXTS[1]][None]))
    assert (tmp_path / "s" / "images" / ix.INDEX_SQLITE).exists()
    assert not (tmp_path / "s" / "images" / st.INDEX_JSON).exists()  # converted once


def test_old_index_that_cannot_be_converted_says_what_to_run(tmp_path, monkeypatch):
    make_store(tmp_path / "s", {"images": ["a"]})
    ns_dir = tmp_path / "s" / "images"
    (ns_dir / ix.INDEX_SQLITE).unlink()
    (ns_dir / st.INDEX_JSON).write_text(json.dumps({"dim": 4, "count": 1, "shards": [
        {"file": "shard-00000.npy", "ids": ["a"]}]}))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(st, "build_index", read_only)
    with pytest.raises(UserError, match=r"index.json: .*older store.*Permission denied.*showcase features"):
        FeatureStore.open(tmp_path / "s")
    monkeypatch.undo()
    (ns_dir / st.INDEX_JSON).write_text('{"dim": 4, "shards": [')
    with pytest.raises(UserError, match=r"index.json: unreadable feature index"):
        FeatureStore.open(tmp_path / "s")


def test_corrupt_index_gives_one_clear_error(tmp_path):
    make_store(tmp_path / "s", {"images": ["a"]})
    (tmp_path / "s" / "images" / ix.INDEX_SQLITE).write_bytes(b"not a database" * 100)
    with pytest.raises(UserError, match=r"index.sqlite: corrupt feature index.*showcase features"):
        FeatureStore.open(tmp_path / "s")


def test_missing_or_truncated_shard_names_the_file(tmp_path):
    make_store(tmp_path / "s", {"images": ["a", "b", "c", "d"]})
    shard = tmp_path / "s" / "images" / "shard-00001.npy"
    shard.write_bytes(shard.read_bytes()[:-4])
    store = FeatureStore.open(tmp_path / "s")
    assert store.image_features(["a", "c"]).shape == (2, 4)  # other shards still read
    with pytest.raises(UserError, match=r"shard-00001.npy: missing or corrupt feature shard.*showcase features"):
        store.image_features(["d"])
    shard.unlink()
    with pytest.raises(UserError, match=r"shard-00001.npy: missing or corrupt feature shard"):
        FeatureStore.open(tmp_path / "s").image_features(["d"])


def test_store_survives_pickling_fork_and_threads(tmp_path):
    import multiprocessing as mp
    import pickle

    truth = make_store(tmp_path / "s", {"images": ["a", "b"]})
    store = FeatureStore.open(tmp_path / "s")
    store.image_features(["a"])  # open the connection before forking
    again = pickle.loads(pickle.dumps(store))
    assert torch.equal(again.image_features(["b"]), torch.from_numpy(truth["b"][None]))
    with mp.get_context("fork").Pool(1) as pool:
        assert pool.apply(_has_b, (store,)) is True
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as threads:  # one connection, shared by threads
        rows = list(threads.map(lambda k: store.image_features([k]), ["a", "b"] * 200))
    assert all(torch.equal(r, torch.from_numpy(truth["ab"[i % 2]][None])) for i, r in enumerate(rows))


def _has_b(store) -> bool:
    return store.has_image("b")


SIZE_PROBE = textwrap.dedent("""
    import json, random, sys, time
    from pathlib import Path
    from showcase.encoders import FeatureStore

    def rss_mb():
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    folder, n = sys.argv[1], int(sys.argv[2])
    keys = [f"AF1Qip-{i:07d}" for i in random.Random(0).sample(range(n), 1000)]
    base, t0 = rss_mb(), time.perf_counter()
    store = FeatureStore.open(folder)
    open_s, open_mb = time.perf_counter() - t0, rss_mb() - base
    t0 = time.perf_counter()
    for key in keys:
        store.image_features([key])
    print(json.dumps({"open_s": open_s, "open_mb": open_mb, "lookups_s": time.perf_counter() - t0}))
""")


def test_opening_does_not_read_the_index(tmp_path):
    """At 60k ids the old dict index cost ~15 MB and 0.1 s to open; the SQLite index costs neither (the 1M-id
    figures: `python benchmarks/store.py --ids 1000000`)."""
    n, folder = 60_000, tmp_path / "s"
    (folder / "images").mkdir(parents=True)
    (folder / st.ENCODER_JSON).write_text(json.dumps({"spec": {}, "dim": 2, "weights": None}))
    keys = [f"AF1Qip-{i:07d}" for i in range(n)]
    for number, start in enumerate(range(0, n, 1024)):
        chunk = keys[start : start + 1024]
        np.save(folder / "images" / f"{st.shard_name(number)}.npy", np.zeros((len(chunk), 2), np.float32))
        (folder / "images" / f"{st.shard_name(number)}.json").write_text(json.dumps({"ids": chunk, "skipped": {}}))
    st.write_index(folder, 2)
    out = subprocess.run([sys.executable, "-c", SIZE_PROBE, str(folder), str(n)], capture_output=True, text=True,
                         check=False, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["open_s"] < 0.2 and figures["open_mb"] < 5, figures
    assert figures["lookups_s"] < 1.0, figures  # 0.5 s is the target on a quiet machine; shared cores are noisy
