"""Opening a feature store and looking ids up at scale: the SQLite index against the old whole-`index.json` dict.

    python benchmarks/store.py --ids 1000000            # the issue's figure (targets: open <= 1 s, <= 100 MB,
                                                        # first 1,000 random lookups <= 0.5 s)
    python benchmarks/store.py --ids 100000 --texts     # keys are review-length texts (~300 characters)

Builds a synthetic store (`--ids` keys in shards of 1,024 rows of `--dim` random features, with the same writer
as `showcase features`), then measures in a fresh process each: the wall time and the RSS growth of
`FeatureStore.open`, of the first 1,000 random one-key lookups (cold: each may touch a new shard), and of one
1,000-key batch; the same open done the old way (`json.loads` of an `index.json` into a dict); and the one-time
conversion of an older store's `index.json` on its first open.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from showcase.encoders import FeatureStore  # noqa: E402 (needs the sys.path line above)
from showcase.encoders import store as st  # noqa: E402

SHARD = 1024


def make_key(i: int, texts: bool) -> str:
    """The `i`-th synthetic key: a photo-id-like string, or a review-length text."""
    digest = hashlib.sha1(str(i).encode()).hexdigest()
    if texts:
        return f"Review {i}: " + " ".join(digest[j : j + 6] for j in range(0, 36, 3)) * 4
    return f"AF1Qip{digest}"


def build(folder: Path, n: int, dim: int, texts: bool) -> float:
    """Write a store of `n` keys; returns seconds spent indexing. Also writes the old `index.json`."""
    (folder / "images").mkdir(parents=True)
    (folder / st.ENCODER_JSON).write_text(json.dumps({"spec": {"model": "synthetic"}, "dim": dim, "weights": None}))
    rng = np.random.default_rng(0)
    shards = []
    for number, start in enumerate(range(0, n, SHARD)):
        keys = [make_key(i, texts) for i in range(start, min(n, start + SHARD))]
        st.write_shard(folder / "images", st.shard_name(number), keys,
                       rng.standard_normal((len(keys), dim), dtype=np.float32), {})
        shards.append({"file": f"{st.shard_name(number)}.npy", "ids": keys})
    t0 = time.perf_counter()
    st.write_index(folder, dim)
    seconds = time.perf_counter() - t0
    old = {"dim": dim, "count": n, "shards": shards}
    (folder / "old-index.json").write_text(json.dumps(old, ensure_ascii=False))
    return seconds


PROBE = r"""
import json, random, sys, time
sys.path.insert(0, sys.argv[1])
from benchmarks.store import make_key, rss_mb
from showcase.encoders import FeatureStore
folder, n, texts, old = sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
keys = [make_key(i, texts) for i in random.Random(0).sample(range(n), 1000)]
batch = [make_key(i, texts) for i in random.Random(1).sample(range(n), 1000)]
base = rss_mb()
t0 = time.perf_counter()
if old:  # what FeatureStore.open did before the SQLite index
    index = json.loads(open(folder + "/old-index.json", encoding="utf-8").read())
    loc = {}
    for i, shard in enumerate(index["shards"]):
        loc.update((key, (i, row)) for row, key in enumerate(shard["ids"]))
    del index
    out = {"open_s": time.perf_counter() - t0, "open_mb": rss_mb() - base}
else:
    store = FeatureStore.open(folder)
    out = {"open_s": time.perf_counter() - t0, "open_mb": rss_mb() - base}
    t0 = time.perf_counter()
    for key in keys:
        store.image_features([key])
    out["lookups_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert store.image_features(batch).shape[0] == 1000
    out["batch_s"] = time.perf_counter() - t0
    out["total_mb"] = rss_mb() - base
print(json.dumps(out))
"""


def rss_mb() -> float:
    """Resident set size of this process, MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe(folder: Path, n: int, texts: bool, old: bool) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(ROOT), str(folder), str(n), str(int(texts)),
                          str(int(old))], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ids", type=int, default=1_000_000, help="number of keys in the store")
    parser.add_argument("--dim", type=int, default=16, help="feature size (the index cost does not depend on it)")
    parser.add_argument("--texts", action="store_true", help="keys are ~300-character texts instead of photo ids")
    parser.add_argument("--folder", type=Path, default=None, help="where to build (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.folder) as tmp:
        folder = Path(tmp) / "store"
        t0 = time.perf_counter()
        index_s = build(folder, args.ids, args.dim, args.texts)
        print(f"{args.ids:,} {'texts' if args.texts else 'photo ids'}: built in {time.perf_counter() - t0:.1f} s "
              f"(index {index_s:.1f} s, {(folder / 'images' / 'index.sqlite').stat().st_size / 2**20:.0f} MB)")
        new, old = probe(folder, args.ids, args.texts, False), probe(folder, args.ids, args.texts, True)
        (folder / "images" / "index.sqlite").unlink()  # an older store: index.json only, converted on first open
        (folder / "old-index.json").rename(folder / "images" / st.INDEX_JSON)
        t0 = time.perf_counter()
        FeatureStore.open(folder)
        convert_s = time.perf_counter() - t0
    print(f"{'':<34}{'sqlite':>10}{'old json':>10}{'ratio':>8}")
    print(f"{'open, s':<34}{new['open_s']:>10.3f}{old['open_s']:>10.2f}{old['open_s'] / new['open_s']:>7.0f}x")
    print(f"{'open, RSS growth MB':<34}{new['open_mb']:>10.1f}{old['open_mb']:>10.1f}")
    print(f"{'first 1,000 random lookups, s':<34}{new['lookups_s']:>10.3f}")
    print(f"{'one 1,000-key batch, s':<34}{new['batch_s']:>10.3f}")
    print(f"{'RSS growth after all, MB':<34}{new['total_mb']:>10.1f}")
    print(f"{'first open of an old store, s':<34}{convert_s:>10.1f}   (converts index.json once)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
