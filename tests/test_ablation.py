"""`benchmarks/ablation.py` (Tables 2 and 4 on the test world) runs on the demo's data: one short run per row."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _ablation():
    spec = importlib.util.spec_from_file_location("ablation", ROOT / "benchmarks" / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dish_scores_pair_texts_with_photos():
    ablation = _ablation()
    preds = [{"text": "The ramen was rich.", "photos": ["a"]}, {"text": "Great taco.", "photos": ["b"]}]
    dishes = {"a": "ramen", "b": "taco"}
    assert ablation.dish_hits(preds, dishes) == 1.0
    assert ablation.dish_hits(preds, dishes, order=[1, 0]) == 0.0  # each text with the other's photos
    rate, chance = ablation.dish_scores(preds, dishes, shuffles=20)
    assert rate == 1.0 and 0.0 < chance < 1.0


def test_rows_train_test_and_score_on_the_demo_data(demo_dir, capsys):
    """The demo's folder already holds the ablation's inputs (same layout): every preparation step is skipped."""
    assert _ablation().main(["--out", str(demo_dir), "--rows", "ce,pc2l", "--seeds", "0", "--epochs", "1",
                             "--probe"]) == 0
    out = capsys.readouterr().out
    assert "| CE only (Baseline) | 1 |" in out and "| PC²L (img+text) | 1 |" in out
    assert "pc2l seed 0: own text" in out and "Eq. 10 weights" in out
    ce, pc2l = (json.loads((demo_dir / "e1" / row / "seed0" / "result.json").read_text()) for row in ("ce", "pc2l"))
    for result in (ce, pc2l):
        assert result["n"] > 0 and 0 <= result["dish"] <= 100 and 0 < result["dish_chance"] < 100
        assert 0 <= result["clip_align"] <= 100 and result["best_val_ce"] > 0
    assert "probe_own_text" in pc2l and "probe_own_text" not in ce  # CE has no image loss to probe
    assert pc2l["pcl_weight_q5"] <= pc2l["pcl_weight_q50"] <= pc2l["pcl_weight_q95"]
