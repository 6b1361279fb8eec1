"""One warm request on a huge pool: the DPP's image tower in chunks (`POOL_CHUNK`) against the whole pool at once.

    python benchmarks/pool_scoring.py                     # pools of 1k, 10k and 74k photos (1M-review scale), d = 512
    python benchmarks/pool_scoring.py --photos 74000 --dim 512

Each (pool size, mode) runs `select_photos` once in a fresh process (an untrained DPP: speed and memory do not depend
on the weights) and prints the wall time and the peak RSS above the process before the request (`ru_maxrss`).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def one_request(photos: int, dim: int, chunk: int | None, out) -> None:
    import torch

    from showcase.selection import models
    from showcase.selection.inference import select_photos

    torch.set_num_threads(1)
    if chunk is None:
        models.POOL_CHUNK = 1 << 40  # the whole pool in one pass, as before chunking
    g = torch.Generator().manual_seed(0)
    selector = models.DPPSelector(models.DPPSelectorConfig(feature_dim=dim)).eval()
    pool = torch.nn.functional.normalize(torch.randn(photos, dim, generator=g), dim=-1)
    texts, images = torch.randn(10, dim, generator=g), torch.randn(30, dim, generator=g)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    selection = select_photos(selector, texts, images, pool, k=3)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.put((seconds, (peak - before) / 1024, selection.indices.tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, nargs="+", default=[1000, 10000, 74000], help="pool sizes")
    ap.add_argument("--dim", type=int, default=512, help="CLIP width (ViT-B/32: 512)")
    args = ap.parse_args()
    from showcase.selection.models import POOL_CHUNK

    ctx = mp.get_context("spawn")
    print(f"one warm request, DPP width {args.dim}, one thread; chunked = {POOL_CHUNK} photos per pass")
    print(f"{'photos':>8} {'whole s':>9} {'whole MB':>9} {'chunked s':>10} {'chunked MB':>11} {'MB ratio':>9}  "
          "same photos")
    for photos in args.photos:
        results = {}
        for mode, chunk in (("whole", None), ("chunked", POOL_CHUNK)):
            queue = ctx.Queue()
            proc = ctx.Process(target=one_request, args=(photos, args.dim, chunk, queue))
            proc.start()
            results[mode] = queue.get()
            proc.join()
        (ws, wm, wi), (cs, cm, ci) = results["whole"], results["chunked"]
        print(f"{photos:>8} {ws:>9.2f} {wm:>9.0f} {cs:>10.2f} {cm:>11.0f} {cm / max(wm, 1e-9):>9.2f}  {wi == ci}")


if __name__ == "__main__":
    main()
