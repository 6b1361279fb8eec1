"""`generate_showcase` latency on a warm pipeline, batched `generate_showcases` against single calls, and the
latency of `showcase serve`'s JSON endpoint under concurrent clients.

    python benchmarks/api.py                         # tiny config and full-size architecture, CPU
    python benchmarks/api.py --sizes tiny --pairs 256
    python benchmarks/api.py --serve --sizes tiny --clients 1,4,8 --requests 64   # p50/p95 of GET /api/showcase
    python benchmarks/api.py --serve --pipeline runs/demo/pipeline               # the same on the demo's models

Runs on the test world (generated into a temporary folder). The models have random weights: speed does not depend
on what they learned. Text is decoded to its full length budget (`max_new_tokens`), which is the worst case.
"tiny" = the package's tiny CLIP width (64) with the tiny generator; "full" = ViT-B/32 width (512) with the paper's
selector towers and GPT-2 small (124M) as decoder. Features come from a random in-memory store of that width.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from showcase.api import Showcaser  # noqa: E402
from showcase.data.prepare import prepare  # noqa: E402
from showcase.data.world import generate_world  # noqa: E402
from showcase.generation.model import ExplanationGenerator, GeneratorConfig  # noqa: E402
from showcase.selection import DPPSelector, DPPSelectorConfig  # noqa: E402


class RandomStore:
    """The part of `FeatureStore` the API reads, with fixed random unit features of width `dim`."""

    def __init__(self, dataset, dim: int, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        keys = dataset.all_photos()
        self._images = dict(zip(keys, torch.nn.functional.normalize(torch.randn(len(keys), dim, generator=g), dim=-1)))
        texts = dataset.all_texts()
        self._texts = dict(zip(texts, torch.nn.functional.normalize(torch.randn(len(texts), dim, generator=g), dim=-1)))
        self.dim = dim

    def has_image(self, pid):
        return pid in self._images

    def has_text(self, text):
        return text in self._texts

    def image_features(self, ids):
        return torch.stack([self._images[i] for i in ids])

    def text_features(self, texts):
        return torch.stack([self._texts[t] for t in texts])

    def load_encoder(self):
        """Generated sentences are new text: random unit features of the same width (speed does not depend on them)."""
        dim = self.dim

        class _Encoder:
            def encode_texts(self, texts):
                return torch.nn.functional.normalize(torch.randn(len(texts), dim), dim=-1)

        return _Encoder()


def build(size: str, dataset) -> Showcaser:
    dim = 64 if size == "tiny" else 512
    gen_config = GeneratorConfig.tiny(feature_dim=dim) if size == "tiny" else GeneratorConfig(feature_dim=dim)
    torch.manual_seed(0)
    generator = ExplanationGenerator(gen_config).eval()
    selector = DPPSelector(DPPSelectorConfig(feature_dim=dim)).eval()
    return Showcaser(dataset, RandomStore(dataset, dim), selector, generator)


def serve_latency(showcaser, pairs, clients: list[int], requests: int, explainer=None) -> None:
    """GET /api/showcase (explained, k = 3) from `c` concurrent clients on 127.0.0.1: p50/p95 latency, answers/s."""
    import json
    import threading
    import urllib.error
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from showcase.api.explain import Explainer
    from showcase.api.server import ShowcaseServer, ShowcaseService

    service = ShowcaseService(showcaser, explainer or Explainer(showcaser), max_waiting=max(clients))
    server = ShowcaseServer(service, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def one(pair) -> tuple[float, int]:
        start = time.perf_counter()
        url = f"{server.url}api/showcase?user={pair[0]}&business={pair[1]}&k=3"
        try:
            with urllib.request.urlopen(url, timeout=300) as response:
                json.loads(response.read())
                status = response.status
        except urllib.error.HTTPError as e:
            status = e.code
        return (time.perf_counter() - start) * 1000, status

    try:
        one(pairs[0])  # warm up (loads the text encoder once)
        print(f"\nshowcase serve, GET /api/showcase (k = 3, explained), {requests} requests per row")
        print(f"{'clients':>8}{'p50 ms':>9}{'p95 ms':>9}{'answers/s':>11}{'503s':>6}")
        for c in clients:
            work = (pairs * (requests // len(pairs) + 1))[:requests]
            start = time.perf_counter()
            with ThreadPoolExecutor(c) as pool:
                results = list(pool.map(one, work))
            wall = time.perf_counter() - start
            latencies = [ms for ms, status in results if status == 200]
            p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
            print(f"{c:>8}{statistics.median(latencies):>9.1f}{p95:>9.1f}{len(latencies) / wall:>11.2f}"
                  f"{sum(status == 503 for _, status in results):>6}")
    finally:
        server.shutdown()
        server.server_close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--pairs", type=int, default=256, help="pairs for the batch/single comparison (tiny)")
    parser.add_argument("--full-pairs", type=int, default=16, help="pairs for the full size on CPU (slow)")
    parser.add_argument("--latency-calls", type=int, default=30)
    parser.add_argument("--serve", action="store_true", help="measure `showcase serve`'s JSON endpoint instead")
    parser.add_argument("--clients", default="1,4,8", help="concurrent clients per row (--serve)")
    parser.add_argument("--requests", type=int, default=64, help="requests per row (--serve)")
    parser.add_argument("--pipeline",
                        help="--serve a trained pipeline folder (its test pairs) instead of random models")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    if args.serve and args.pipeline:
        showcaser = Showcaser.load(args.pipeline)
        pairs = list(dict.fromkeys((r.user_id, r.business_id) for r in showcaser.dataset.split("test")))
        print(f"pipeline {args.pipeline}")
        from showcase.api.explain import Explainer

        serve_latency(showcaser, pairs, clients, args.requests, Explainer.load(args.pipeline, showcaser))
        return
    with tempfile.TemporaryDirectory() as tmp:
        generate_world(f"{tmp}/world", seed=0)
        dataset, _ = prepare(f"{tmp}/world/filter_all_t.json", f"{tmp}/world/photos", f"{tmp}/dataset")
        pairs_all = [(r.user_id, r.business_id) for r in dataset]
        if args.serve:
            for size in args.sizes.split(","):
                print(f"size {size}")
                serve_latency(build(size, dataset), pairs_all, clients, args.requests)
            return
        print(f"{'size':<6}{'p50 ms':>9}{'p95 ms':>9}{'pairs':>7}{'single/s':>10}{'batch/s':>10}{'ratio':>8}")
        for size in args.sizes.split(","):
            showcaser = build(size, dataset)
            n_pairs = args.pairs if size == "tiny" else args.full_pairs
            pairs = (pairs_all * (n_pairs // len(pairs_all) + 1))[:n_pairs]
            showcaser.generate_showcase(*pairs[0])  # warm up
            latencies = []
            for u, b in pairs[: args.latency_calls if size == "tiny" else min(args.latency_calls, n_pairs)]:
                start = time.perf_counter()
                showcaser.generate_showcase(u, b)
                latencies.append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            single = [showcaser.generate_showcase(u, b) for u, b in pairs]
            single_rate = len(pairs) / (time.perf_counter() - start)
            start = time.perf_counter()
            batch = showcaser.generate_showcases(pairs, batch_size=64)
            batch_rate = len(pairs) / (time.perf_counter() - start)
            same = sum(a.text == b.text for a, b in zip(single, batch)) / len(pairs)
            p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) >= 2 else latencies[0]
            print(f"{size:<6}{statistics.median(latencies):>9.1f}{p95:>9.1f}{len(pairs):>7}{single_rate:>10.2f}"
                  f"{batch_rate:>10.2f}{batch_rate / single_rate:>7.1f}x   (batch text == single text: {same:.0%})")


if __name__ == "__main__":
    main()
