"""Table 3 of Personalized Showcases on the test world: every selector trained and tested through `showcase fit/test`.

    python benchmarks/selection_table.py                     # builds the world + tiny-CLIP features in a temp dir
    python benchmarks/selection_table.py --dataset D --store S --output runs/selection_table

Trainable methods are fitted with early stopping on val Prec@3 and tested with their best checkpoint; random and
centroid are only tested. Prints Prec/Recall/F1/Div@3 in percent, the expected P@3 of random selection on the same
test pools, and each method's P@3 as a ratio to it.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `python benchmarks/selection_table.py` puts benchmarks/ first on the path, where metrics.py would shadow the
# `metrics` package; the repository root goes first instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
METHODS = {  # table row: (config, trained)
    "random": ("selector_random", False),
    "centroid (ELVis)": ("selector_centroid", False),
    "ELVis authorship": ("selector_elvis", True),
    "relevance top-K": ("selector_topk", True),
    "img DPP": ("selector_img", True),
    "text DPP": ("selector_text", True),
    "img+text DPP": ("selector", True),
}


def build_world(folder: Path) -> tuple[Path, Path]:
    """The small test world (seed 0), prepared and encoded with tiny CLIP, as the tests' fixtures build it."""
    from showcase.cli import main
    from showcase.data.world import generate_world

    world = generate_world(folder / "world", seed=0, size="small")
    dataset, store = folder / "dataset", folder / "store"
    assert main(["prepare", "--input", str(world / "filter_all_t.json"), "--photos", str(world / "photos"),
                 "--output", str(dataset)]) == 0
    assert main(["features", "--dataset", str(dataset), "--model", "showcase-tiny", "--output", str(store)]) == 0
    return dataset, store


def run_method(config: str, trained: bool, dataset: Path, store: Path, root: Path, args) -> dict[str, float]:
    """`showcase fit` (if trained) then `showcase test` with the best checkpoint; the test's metrics."""
    from showcase.cli import main

    overlay = ["--config", str(ROOT / "configs" / f"{config}.yaml")] if config != "selector" else []
    common = ["--config", str(ROOT / "configs" / "selector.yaml"), *overlay, "--data.dataset", str(dataset),
              "--data.store", str(store), f"--data.batch_size={args.batch_size}",
              "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
              "--trainer.num_sanity_val_steps=0", f"--seed_everything={args.seed}"]
    extra: list[str] = []
    if trained:
        fit_root = root / "fit"
        assert main(["fit", *common, "--trainer.default_root_dir", str(fit_root),
                     f"--trainer.max_epochs={args.epochs}", f"--model.patience={args.patience}"]) == 0
        extra = ["--ckpt_path", str(next(fit_root.rglob("best-*.ckpt")))]
    assert main(["test", *common, "--trainer.default_root_dir", str(root / "test"), *extra]) == 0
    return json.loads(next((root / "test").rglob("selection_test.json")).read_text())["metrics"]


def random_precision(dataset: Path, store: Path, k: int = 3) -> float:
    """Expected P@k of uniformly random selection on the test pools."""
    from showcase.data.records import ShowcaseDataset
    from showcase.encoders import FeatureStore
    from showcase.selection.data import build_examples

    test = build_examples(ShowcaseDataset.load(dataset), FeatureStore.open(store), splits=("test",))["test"]
    return sum(min(k, len(e.pool)) * len(e.target) / len(e.pool) / k for e in test.examples) / len(test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=Path, help="prepared dataset folder (default: build the test world)")
    parser.add_argument("--store", type=Path, help="feature store folder of --dataset")
    parser.add_argument("--output", type=Path, help="where runs go (default: a temp dir)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", choices=list(METHODS), default=list(METHODS))
    args = parser.parse_args(argv)
    if (args.dataset is None) != (args.store is None):
        parser.error("give both --dataset and --store, or neither")

    import torch

    from showcase.selection.module import format_table

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        output = args.output or Path(tmp)
        dataset, store = (args.dataset, args.store) if args.dataset else build_world(output)
        rows, seconds = {}, {}
        for name in args.methods:
            config, trained = METHODS[name]
            start = time.perf_counter()
            rows[name] = run_method(config, trained, dataset, store, output / config, args)
            seconds[name] = time.perf_counter() - start
        chance = random_precision(dataset, store)
    print("\nTable 3 on the test world (K = 3, %)")
    print(format_table(rows))
    print(f"\nexpected P@3 of random selection on these test pools: {100 * chance:.2f}%")
    for name, m in rows.items():
        print(f"{name:<22} P@3 / random {m['Prec@3'] / chance:5.2f}x   percentile rank {m['PercentileRank']:.3f}"
              f"   {seconds[name]:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
