"""Bounded requests: a cold-start and a warm request on a big business, wall time and memory above the pipeline.

    python benchmarks/requests.py                                # 1,000 reviewers, 5,000 photos, tiny models
    python benchmarks/requests.py --reviewers 1000 --photos 5000 --max-reviewers 100 --max-candidates 64

One business with `--reviewers` reviewers sharing `--photos` photos; every reviewer has `--history` reviews of other
businesses (with photos). Features come from a random in-memory store of the tiny CLIP width (64); the selector
(tiny DPP) and generator (tiny GPT-2) have random weights: speed does not depend on what they learned.

Prints, per request kind, the wall time and the peak RSS above the loaded pipeline (`resource.getrusage`'s
`ru_maxrss`, so each kind runs in its own fresh process). Targets (issue 10): a cold request ≤ 5 s and ≤ 500 MB.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402


def build_dataset(reviewers: int, photos: int, history: int):
    from showcase.data.records import HistoryItem, Review, ShowcaseDataset

    reviews = []
    per_review = max(1, photos // reviewers)
    for u in range(reviewers):
        user = f"U{u:05d}"
        own = [f"P{u * per_review + j:06d}" for j in range(per_review)]
        others = [Review(f"R{u:05d}-{h}", user, f"B{(u + h) % 200 + 1:04d}", f"history {u} {h}: the noodles were good.",
                         (f"H{u:05d}-{h}",)) for h in range(history)]
        items = tuple(HistoryItem(r.review_id, r.text, r.photos) for r in others)
        reviews += [*others, Review(f"R{u:05d}", user, "B0000", f"review {u}", tuple(own), history=items)]
    return ShowcaseDataset(reviews)


def build_showcaser(dataset, max_reviewers, max_candidates):
    from api import RandomStore

    from showcase.api import Showcaser
    from showcase.generation.model import ExplanationGenerator, GeneratorConfig
    from showcase.selection import DPPSelector, DPPSelectorConfig

    torch.manual_seed(0)
    generator = ExplanationGenerator(GeneratorConfig.tiny(feature_dim=64)).eval()
    selector = DPPSelector(DPPSelectorConfig(feature_dim=64)).eval()
    return Showcaser(dataset, RandomStore(dataset, 64), selector, generator, max_reviewers=max_reviewers,
                     max_candidates=max_candidates, max_new_tokens=20)


def measure(kind: str, args: argparse.Namespace, queue) -> None:
    torch.set_num_threads(args.threads)
    dataset = build_dataset(args.reviewers, args.photos, args.history)
    showcaser = build_showcaser(dataset, args.max_reviewers, args.max_candidates)
    user = "nobody" if kind == "cold" else "U00000"
    showcaser.generate_showcase("U00001", "B0001")  # warm up (first calls allocate)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = showcaser.generate_showcase(user, "B0000", k=3)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    queue.put({"kind": kind, "seconds": seconds, "above_mb": (peak - base) / 1024, "pipeline_mb": base / 1024,
               "pool": len(showcaser.dataset.business_photos("B0000")), "cold_start": result.cold_start,
               "photos": [p.photo_id for p in result.photos]})


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reviewers", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--history", type=int, default=3, help="other reviews per reviewer")
    parser.add_argument("--max-reviewers", type=int, default=100, help="cold-start reviewer cap (None: -1)")
    parser.add_argument("--max-candidates", type=int, default=64, help="photos the DPP sees (None: -1)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.max_reviewers = None if args.max_reviewers < 0 else args.max_reviewers
    args.max_candidates = None if args.max_candidates < 0 else args.max_candidates
    context = mp.get_context("spawn")
    rows = []
    for kind in ("cold", "warm"):
        queue = context.Queue()
        process = context.Process(target=measure, args=(kind, args, queue))
        process.start()
        rows.append(queue.get())
        process.join()
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"business: {args.reviewers} reviewers, {rows[0]['pool']} photos; cap {args.max_reviewers} reviewers, "
          f"DPP on the top {args.max_candidates}; {args.threads} thread(s)")
    print(f"{'request':<8}{'seconds':>9}{'MB above':>10}{'pipeline MB':>13}")
    for row in rows:
        print(f"{row['kind']:<8}{row['seconds']:>9.2f}{row['above_mb']:>10.1f}{row['pipeline_mb']:>13.1f}")


if __name__ == "__main__":
    main()
