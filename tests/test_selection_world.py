"""The learned DPP on the test world, trained and tested through the user's path (`showcase fit` / `showcase test`).

The world's users photograph the ~3 of 12 dish types they like, on their own table tint; a business's pool holds
~30 photos of ~15 reviewers. Random selection hits the user's own photos with P@3 ~ 0.06 there.
"""
import json
from pathlib import Path

import pytest

from showcase.cli import main
from showcase.data.records import ShowcaseDataset
from showcase.encoders import FeatureStore
from showcase.selection import DPPSelector, load_selector, select_photos
from showcase.selection.data import build_examples

FAST = ["--data.batch_size=64", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
        "--trainer.num_sanity_val_steps=0"]


def run(command: str, config: str, dataset_dir, store_dir, root: Path, *extra: str) -> Path:
    """Run `showcase <command> --config configs/<config>.yaml` on the world; return its log dir."""
    configs = ["--config", "configs/selector.yaml"]
    configs += ["--config", f"configs/{config}.yaml"] if config != "selector" else []
    args = [command, *configs, "--data.dataset", str(dataset_dir),
            "--data.store", str(store_dir), "--trainer.default_root_dir", str(root), *FAST, *extra]
    assert main(args) == 0
    return max(root.glob("lightning_logs/version_*"), key=lambda p: int(p.name.split("_")[1]))


def fit_and_test(config: str, dataset_dir, store_dir, root: Path, *options: str) -> tuple[dict, Path]:
    """Fit (by default 15 epochs, early stopping on val P@3), export, then test the best checkpoint.

    Returns the test metrics and the exported model folder.
    """
    fit_dir = run("fit", config, dataset_dir, store_dir, root / "fit", "--trainer.max_epochs=15",
                  "--model.patience=5", *options)
    best = next((fit_dir / "checkpoints").glob("best-*.ckpt"))
    test_dir = run("test", config, dataset_dir, store_dir, root / "test", "--ckpt_path", str(best))
    return json.loads((test_dir / "selection_test.json").read_text())["metrics"], fit_dir / "model"


def random_precision(dataset_dir, store_dir, k: int = 3) -> float:
    """Expected P@k of uniformly random selection on the test pools: E[hits] / k = min(k, N) |Y| / N / k."""
    examples = build_examples(ShowcaseDataset.load(dataset_dir), FeatureStore.open(store_dir), splits=("test",))
    rows = [min(k, len(e.pool)) * len(e.target) / len(e.pool) / k for e in examples["test"].examples]
    return sum(rows) / len(rows)


pytestmark = pytest.mark.usefixtures("one_thread")


def test_dpp_beats_random_and_diversifies_on_the_world(dataset_dir, store_dir, tmp_path):
    dpp, exported = fit_and_test("selector", dataset_dir, store_dir, tmp_path / "dpp")
    topk, _ = fit_and_test("selector_topk", dataset_dir, store_dir, tmp_path / "topk")
    random = random_precision(dataset_dir, store_dir)
    assert 0.02 < random < 0.15, random
    assert dpp["Prec@3"] >= 2 * random, (dpp, random)
    assert topk["Prec@3"] >= 2 * random, (topk, random)
    assert dpp["Div@3"] > topk["Div@3"], (dpp, topk)
    assert dpp["PercentileRank"] < 0.25, dpp  # the true photos rank in the top quarter of the pool

    # the exported model (best weights, feature statistics included) selects the same as the tested checkpoint
    model = load_selector(exported)
    assert isinstance(model, DPPSelector) and model.norm.image_std.ne(1).any()
    dataset, store = ShowcaseDataset.load(dataset_dir), FeatureStore.open(store_dir)
    test = build_examples(dataset, store, splits=("test",))["test"]
    hits = 0
    for e in test.examples:
        sel = select_photos(exported if e is test.examples[0] else model, test.texts[list(e.texts)],
                            test.images[list(e.history)], test.images[list(e.pool)], k=3, user_ids=[e.user_id])
        assert sel.indices.shape == (3,) and sel.relevance.shape == (len(e.pool),)
        hits += len(set(sel.indices.tolist()) & set(e.target))
    assert hits / (3 * len(test)) == pytest.approx(dpp["Prec@3"], abs=1e-6)


def test_towers_alone_learn_from_scratch_on_the_world(dataset_dir, store_dir, tmp_path):
    # without the cosine skip term the relevance starts constant (user tower's output layer is zero): every bit
    # of personalisation above random must come from training the towers
    towers, _ = fit_and_test("selector_img", dataset_dir, store_dir, tmp_path, "--model.dpp={skip_init: null}",
                             "--model.lr=0.003", "--model.patience=null", "--trainer.max_epochs=20")
    assert towers["Prec@3"] >= 2 * random_precision(dataset_dir, store_dir), towers
    assert towers["PercentileRank"] < 0.25, towers
