"""Scale benchmark: synthetic Gest-shaped input at N raw reviews, then time, CPU and peak RSS of each step.

    python benchmarks/scale.py --n 100000 --workdir /tmp/scale-100k             # generate + every step
    python benchmarks/scale.py --n 1000000 --workdir /tmp/scale-1m --format split  # filter_all_t.json input
    python benchmarks/scale.py --n 100000 --workdir /tmp/scale-100k --steps open lookups   # reuse the files

The generator is the benchmark's own (no real data): Zipf reviews per user (a = 3: ~1.7 reviews per user, a few
users with hundreds) and per business (~27 reviews per business, a few with thousands), 0–10 photos per review
(mean ~2.5), review texts of lognormal length (median ~45 words) from a 3,000-word vocabulary; `pics` in both
shapes (ids and `{"url": [...]}`); `--format split` writes `filter_all_t.json` with `history_reviews` (the user's
other reviews, at most `--history-cap`). `--photo-files` writes every photo as a tiny JPEG (else `prepare` runs
without the photo-file filter).

Every step runs in its own subprocess so its peak RSS (`resource.getrusage`) is its own; `rss_start_mb` is the
interpreter with its imports before the step's work. Steps are named functions in `STEPS`: add one by writing
`def step_name(ctx) -> dict` (return extra figures) and listing it. `--pythonpath` runs the steps against another
source tree (e.g. a `git archive` of an older commit) for before/after figures.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (180, 90, 40)).save(buf, format="JPEG")
    return buf.getvalue()


# --- the generator ---------------------------------------------------------------------------------------------------
def _zipf_counts(rng: random.Random, total: int, a: float, cap: int) -> list[int]:
    """Per-entity counts drawn from a Zipf(a) law (capped) until they sum to `total`."""
    counts, left = [], total
    while left > 0:
        u = 1.0 - rng.random()
        k = min(int(u ** (-1.0 / (a - 1.0))), cap, left)  # inverse CDF of a Pareto, floored: a discrete power law
        counts.append(k)
        left -= k
    return counts


def _weighted_picker(rng: random.Random, n: int, exponent: float) -> Callable[[], int]:
    import bisect
    import itertools

    cumulative = list(itertools.accumulate(1.0 / (k + 1) ** exponent for k in range(n)))
    top = cumulative[-1]
    return lambda: min(bisect.bisect(cumulative, rng.random() * top), n - 1)


def generate(n: int, folder: Path, fmt: str = "jsonl", photo_files: bool = False, seed: int = 0,
             history_cap: int = 10) -> dict[str, Any]:
    """Write `n` synthetic raw reviews to `folder` (`image_review_all.json` or `filter_all_t.json`, `photos/`)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    vocab = ["".join(rng.choice("abcdefghijklmnoprstuvwy") for _ in range(rng.randint(2, 9))) for _ in range(3000)]
    per_user = _zipf_counts(rng, n, 3.0, 1000)
    businesses = max(n // 27, 1)
    pick_business = _weighted_picker(rng, businesses, 0.9)
    photo_count_weights = [10, 30, 20, 12, 8, 6, 5, 3, 3, 2, 1]  # 0..10 photos; mean ~2.5
    photo_seq = 0
    jpeg = _tiny_jpeg() if photo_files else b""

    def text() -> str:
        words = max(3, min(int(rng.lognormvariate(3.8, 0.6)), 800))
        out, left = [], words
        while left > 0:
            k = min(rng.randint(6, 16), left)
            sentence = " ".join(rng.choice(vocab) for _ in range(k))
            out.append(sentence[0].upper() + sentence[1:] + rng.choice(".!."))
            left -= k
        return " ".join(out)

    paths = {s: folder / f".{s}.part" for s in ("train", "val", "test")} if fmt == "split" else {}
    out_path = folder / ("filter_all_t.json" if fmt == "split" else "image_review_all.json")
    sinks = {s: p.open("w", encoding="utf-8") for s, p in paths.items()} if fmt == "split" else \
        {"all": out_path.open("w", encoding="utf-8")}
    first = {s: True for s in sinks}
    n_photos = 0
    for u, count in enumerate(per_user):
        user = f"U{u:08d}"
        split = "all" if fmt != "split" else rng.choices(("train", "val", "test"), (8, 1, 1))[0]
        records = []
        for k in range(count):
            pics = []
            for _ in range(rng.choices(range(11), photo_count_weights)[0]):
                photo_seq += 1
                pid = f"AF1QipS{photo_seq:010d}"
                pics.append(pid if photo_seq % 2 else {"url": [f"https://lh5.googleusercontent.com/p/{pid}=w150-h150"]})
                if photo_files:
                    (photos / f"{pid}.jpg").write_bytes(jpeg)
            n_photos += len(pics)
            records.append(dict(review_id=f"R{u:08d}_{k}", user_id=user, business_id=f"B{pick_business():07d}",
                                rating=rng.randint(1, 5), review_text=text(), pics=pics))
        for r in records:
            if fmt == "split":
                r["history_reviews"] = [[o["review_id"], o["review_text"]] for o in records if o is not r][:history_cap]
            f = sinks[split]
            f.write(("" if first[split] else ",\n") + json.dumps(r) if fmt == "split" else json.dumps(r) + "\n")
            first[split] = False
    for f in sinks.values():
        f.close()
    if fmt == "split":
        with out_path.open("w", encoding="utf-8") as out:
            for i, s in enumerate(("train", "val", "test")):
                out.write(("{" if i == 0 else ",\n") + f'"{s}": [\n')
                with paths[s].open(encoding="utf-8") as part:
                    while block := part.read(1 << 20):
                        out.write(block)
                out.write("\n]")
                paths[s].unlink()
            out.write("}\n")
    return {"input": str(out_path), "reviews": n, "users": len(per_user), "businesses": businesses,
            "photos": n_photos, "max_reviews_per_user": max(per_user), "input_mb": out_path.stat().st_size / 2**20}


# --- steps ----------------------------------------------------------------------------------------------------------
def step_generate(ctx: dict) -> dict:
    return generate(ctx["n"], Path(ctx["workdir"]), ctx["format"], ctx["photo_files"], ctx["seed"])


def _input(ctx: dict) -> Path:
    name = "filter_all_t.json" if ctx["format"] == "split" else "image_review_all.json"
    return Path(ctx["workdir"]) / name


def step_prepare(ctx: dict) -> dict:
    import shutil

    from showcase.data.prepare import FilterConfig, prepare

    out = Path(ctx["workdir"]) / "dataset"
    shutil.rmtree(out, ignore_errors=True)
    dataset, _ = prepare(_input(ctx), Path(ctx["workdir"]) / "photos", out,
                         FilterConfig(require_photo_files=ctx["photo_files"]))
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    return {"reviews_kept": len(dataset), "output_mb": round(size, 1)}


def step_open(ctx: dict) -> dict:
    from showcase.data import ShowcaseDataset

    start = time.perf_counter()
    dataset = ShowcaseDataset.load(Path(ctx["workdir"]) / "dataset")
    n = len(dataset)
    return {"open_s": round(time.perf_counter() - start, 4), "reviews": n}


def step_lookups(ctx: dict) -> dict:
    """1,000 random user_profile (leaving one of their businesses out), business_photos, business_reviewers."""
    from showcase.data import ShowcaseDataset

    dataset = ShowcaseDataset.load(Path(ctx["workdir"]) / "dataset")
    rng = random.Random(ctx["seed"])
    reviews = [dataset.reviews[rng.randrange(len(dataset))] for _ in range(1000)]  # setup, not timed
    out = {}
    calls = [("user_profile", lambda r: dataset.user_profile(r.user_id, exclude_business=r.business_id)),
             ("business_photos", lambda r: dataset.business_photos(r.business_id))]
    if hasattr(dataset, "business_reviewers"):
        calls.append(("business_reviewers", lambda r: dataset.business_reviewers(r.business_id)))
    for name, call in calls:
        start = time.perf_counter()
        for r in reviews:
            call(r)
        out[f"{name}_ms_per_1000"] = round(1000 * (time.perf_counter() - start), 1)
    return out


def step_store_build(ctx: dict) -> dict:
    """A feature store of every photo with random unit features, written with the store's own write functions."""
    import shutil

    import numpy as np

    from showcase.data import ShowcaseDataset
    from showcase.encoders.store import ENCODER_JSON, shard_name, write_index, write_shard

    folder = Path(ctx["workdir"]) / "store"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    dim, shard = ctx["dim"], 100_000
    (folder / ENCODER_JSON).write_text(json.dumps({"spec": {"model": "synthetic"}, "dim": dim, "weights": None}))
    ids = ShowcaseDataset.load(Path(ctx["workdir"]) / "dataset").all_photos()
    rng = np.random.default_rng(ctx["seed"])
    for k, start in enumerate(range(0, len(ids), shard)):
        chunk = ids[start:start + shard]
        features = rng.standard_normal((len(chunk), dim), dtype=np.float32)
        features /= np.linalg.norm(features, axis=1, keepdims=True)
        write_shard(folder / "images", shard_name(k), chunk, features, {})
    write_index(folder, dim)
    return {"photos": len(ids), "store_mb": round(sum(p.stat().st_size for p in folder.rglob("*")) / 2**20, 1)}


def step_store_open(ctx: dict) -> dict:
    from showcase.encoders.store import FeatureStore

    start = time.perf_counter()
    store = FeatureStore.open(Path(ctx["workdir"]) / "store")
    opened = time.perf_counter() - start
    ids = json.loads((Path(ctx["workdir"]) / "store" / "images" / "shard-00000.json").read_text())["ids"]
    sample = random.Random(ctx["seed"]).sample(ids, min(1000, len(ids)))
    start = time.perf_counter()
    for pid in sample:
        store.image_features([pid])
    return {"open_s": round(opened, 3), "first_1000_lookups_s": round(time.perf_counter() - start, 3)}


class _HashTextEncoder:
    """Stands in for CLIP's text tower (the synthetic store holds photos only): a fixed random unit vector per text.

    Encoding cost does not grow with the dataset, so leaving it out keeps the figures about what does."""

    def __init__(self, dim: int):
        self.dim = dim

    def encode_texts(self, texts):
        import zlib

        import torch

        rows = []
        for text in texts:
            g = torch.Generator().manual_seed(zlib.crc32(text.encode("utf-8", "surrogatepass")))
            rows.append(torch.nn.functional.normalize(torch.randn(self.dim, generator=g), dim=0))
        return torch.stack(rows) if rows else torch.zeros(0, self.dim)


def step_requests(ctx: dict) -> dict:
    """1,000 warm requests (test-split pairs, in batches of 50) and 100 cold ones (new users at businesses drawn
    per review, so big businesses come up as often as they are reviewed), through `Showcaser` with untrained tiny
    models: selection over the whole pool (top-M DPP), cold-start group ranking, 8 greedy tokens."""
    import statistics

    from showcase.api.showcaser import Showcaser
    from showcase.data import ShowcaseDataset
    from showcase.encoders.store import FeatureStore
    from showcase.generation.model import ExplanationGenerator, GeneratorConfig
    from showcase.inputs import FeatureLookup
    from showcase.selection.models import DPPSelector, DPPSelectorConfig

    dataset = ShowcaseDataset.load(Path(ctx["workdir"]) / "dataset")
    store = FeatureStore.open(Path(ctx["workdir"]) / "store")
    dim = store.dim
    selector = DPPSelector(DPPSelectorConfig(feature_dim=dim)).eval()
    generator = ExplanationGenerator(GeneratorConfig.tiny(feature_dim=dim, max_length=32)).eval()
    showcaser = Showcaser(dataset, store, selector, generator, num_beams=1, max_new_tokens=8)
    showcaser.features = FeatureLookup(store, encoder=_HashTextEncoder(dim))
    rng = random.Random(ctx["seed"])
    test = dataset.split("test")
    warm = [(r.user_id, r.business_id) for r in (test[rng.randrange(len(test))] for _ in range(1000))]
    cold = [(f"new-visitor-{i}", dataset.reviews[rng.randrange(len(dataset))].business_id) for i in range(100)]
    start = time.perf_counter()
    for i in range(0, len(warm), 50):
        showcaser.generate_showcases(warm[i:i + 50])
    warm_s = time.perf_counter() - start
    latencies, pools, reviewers = [], [], []
    for user, business in cold:
        start = time.perf_counter()
        showcaser.generate_showcase(user, business)
        latencies.append(time.perf_counter() - start)
        pools.append(len(dataset.business_photos(business)))
        reviewers.append(len(dataset.business_reviewers(business)))
    latencies.sort()
    return {"warm_per_s": round(len(warm) / warm_s, 1), "cold_p50_s": round(statistics.median(latencies), 3),
            "cold_p95_s": round(latencies[94], 3), "cold_max_s": round(latencies[-1], 3),
            "cold_max_pool": max(pools), "cold_max_reviewers": max(reviewers)}


STEPS: list[tuple[str, Callable[[dict], dict]]] = [
    ("generate", step_generate),
    ("prepare", step_prepare),
    ("open", step_open),
    ("lookups", step_lookups),
    ("store_build", step_store_build),
    ("store_open", step_store_open),
    ("requests", step_requests),
]


# --- running --------------------------------------------------------------------------------------------------------
def _usage() -> tuple[float, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_maxrss / 1024  # CPU seconds, peak RSS in MB (Linux: KB)


def run_step_here(name: str, ctx: dict) -> dict:
    """Run one step in this process; returns wall, CPU, peak RSS and the step's own figures."""
    step = dict(STEPS)[name]
    cpu0, rss0 = _usage()
    start = time.perf_counter()
    extra = step(ctx)
    wall = time.perf_counter() - start
    cpu1, rss1 = _usage()
    return {"step": name, "wall_s": round(wall, 2), "cpu_s": round(cpu1 - cpu0, 2), "peak_rss_mb": round(rss1),
            "rss_start_mb": round(rss0), **extra}


def run_step(name: str, ctx: dict, pythonpath: str | None = None) -> dict:
    """Run one step in a fresh interpreter (so the peak RSS is that step's)."""
    env = dict(os.environ, PYTHONPATH=pythonpath or str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, __file__, "--run-step", name, "--ctx", json.dumps(ctx)], env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return {"step": name, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="raw reviews to generate")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/showcase-scale"), help="where input and outputs go")
    parser.add_argument("--format", choices=("jsonl", "split"), default="jsonl",
                        help="image_review_all.json (JSON lines) or filter_all_t.json (one object with splits)")
    parser.add_argument("--photo-files", action="store_true", help="write every photo as a tiny JPEG")
    parser.add_argument("--steps", nargs="+", default=[name for name, _ in STEPS], choices=[n for n, _ in STEPS],
                        help="steps to run, in order (generate writes the input; later steps reuse it)")
    parser.add_argument("--dim", type=int, default=512, help="feature size of the synthetic store")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pythonpath", help="source tree to import showcase from (default: this checkout)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--run-step", help=argparse.SUPPRESS)
    parser.add_argument("--ctx", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_step:
        print(json.dumps(run_step_here(args.run_step, json.loads(args.ctx))))
        return 0
    ctx = {"n": args.n, "workdir": str(args.workdir), "format": args.format, "photo_files": args.photo_files,
           "seed": args.seed, "dim": args.dim}
    print(f"# scale benchmark: N={args.n:,} format={args.format} photo_files={args.photo_files} "
          f"cpus={os.cpu_count()} tree={args.pythonpath or ROOT}")
    results = []
    for name in args.steps:
        result = run_step(name, ctx, args.pythonpath)
        results.append(result)
        figures = " ".join(f"{k}={v}" for k, v in result.items() if k != "step")
        print(f"{name:<12} {figures}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"ctx": ctx, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
