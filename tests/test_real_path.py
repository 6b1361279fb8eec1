"""The real user's path at the paper's size, end to end through `showcase.cli.main`: CLIP ViT-B/32 and GPT-2 small
(random weights, written by open_clip's and transformers' own save functions in their usual formats, since real
weights cannot be downloaded here), the paper-size configs (`classifier.yaml`, `selector.yaml`, `generator.yaml`)
overriding only paths, steps and batch sizes, on the tiny test world.

Slow (several minutes on CPU): `pytest -m slow tests/test_real_path.py -s` or `make test-all`.
"""
import json
import time
import warnings
from pathlib import Path

import pytest
import torch

from showcase.cli import main

CLIP_WIDTH, GPT2_WIDTH = 512, 768  # ViT-B/32's embedding, GPT-2 small's hidden size
EVAL_MODE_WARNING = "module(s) in eval mode at the start of training"


def write_vit_b32(folder: Path) -> Path:
    """A ViT-B/32 checkpoint as open_clip publishes them: its state dict in `open_clip_model.safetensors` (what
    `open_clip.push_to_hf_hub.save_for_hf` writes)."""
    import open_clip
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / HF_SAFE_WEIGHTS_NAME))
    return folder / HF_SAFE_WEIGHTS_NAME


def write_gpt2_small(folder: Path) -> Path:
    """GPT-2 small (the `gpt2` architecture: 768 wide, 12 layers, 12 heads) written by `save_pretrained`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)
    return folder


class Run:
    """Runs `showcase` commands as a user types them, timing each step and keeping Lightning's warnings."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.warnings: dict[str, list[str]] = {}

    def __call__(self, step: str, *args: str) -> None:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert main([str(a) for a in args]) == 0, step
        self.seconds[step] = time.perf_counter() - start
        self.warnings[step] = sorted({f"{w.category.__name__}: {str(w.message)[:120]}" for w in caught})


def probe(path: Path) -> str:
    spec = {"class_path": "mode_probe.ModeProbe", "init_args": {"path": str(path)}}
    return f"--trainer.callbacks+={json.dumps(spec)}"


def fit_and_test(run: Run, name: str, config: str, out: Path, data: list, fit: list, test: list,
                 checkpoint: str) -> dict:
    """`showcase fit` then `showcase test` (on `checkpoint`, a glob under `out/checkpoints`); returns the modes the
    probe recorded."""
    common = ["--config", f"configs/{config}", *data, f"--trainer.default_root_dir={out}", "--trainer.logger=false",
              "--trainer.enable_progress_bar=false", probe(out / "modes.json")]
    run(f"fit {name}", "fit", *common, *fit)
    assert (out / "model" / "config.json").is_file() and (out / "model" / "model.safetensors").is_file()
    ckpt = sorted((out / "checkpoints").glob(checkpoint))
    assert ckpt, f"no checkpoint {checkpoint} in {out / 'checkpoints'}"
    run(f"test {name}", "test", *common, *test, "--ckpt_path", ckpt[0])
    modes = json.loads((out / "modes.json").read_text())
    assert modes["train"] == [], f"{name}: {len(modes['train'])} modules in eval mode at the first training batch"
    assert modes["validate"] == [] and modes["test"] == [], f"{name}: modules in train mode during evaluation"
    return modes


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_real_users_path_at_paper_size(tmp_path, capsys):
    from showcase.api import Showcaser, assemble_pipeline
    from showcase.data import ShowcaseDataset
    from showcase.encoders import FeatureStore
    from showcase.generation.model import ExplanationGenerator

    start = time.perf_counter()
    run = Run()
    clip_file = write_vit_b32(tmp_path / "vit-b-32")
    gpt2 = write_gpt2_small(tmp_path / "gpt2")
    run.seconds["write weights"] = time.perf_counter() - start
    world, dataset, store = tmp_path / "world", tmp_path / "dataset", tmp_path / "store"
    labels, distilled, models = tmp_path / "labels.jsonl", tmp_path / "dataset-s2", tmp_path / "models"

    run("world", "world", "--output", world, "--size", "tiny")
    run("prepare", "prepare", "--input", world / "filter_all_t.json", "--photos", world / "photos",
        "--output", dataset)
    run("features", "features", "--dataset", dataset, "--model", "ViT-B-32", "--pretrained", clip_file,
        "--output", store, "--batch-size", 16, "--no-progress")
    features = FeatureStore.open(store)
    photos = {p for r in ShowcaseDataset.load(dataset) for p in r.photos}
    assert features.dim == CLIP_WIDTH and photos <= set(features.image_ids)
    run("pairs", "pairs", "--world", world, "--dataset", dataset, "--output", labels)

    data = ["--data.dataset", dataset, "--data.store", store]
    fit_and_test(run, "classifier", "classifier.yaml", models / "classifier", [*data, "--data.labels", labels],
                 ["--trainer.max_epochs=1", "--data.batch_size=32"], [], "epoch=*.ckpt")
    classifier = models / "classifier" / "model"
    assert json.loads((classifier / "config.json").read_text())["config"]["dim"] == CLIP_WIDTH

    run("distill", "distill", "--dataset", dataset, "--store", store, "--classifier", classifier,
        "--output", distilled)
    fit_and_test(run, "selector", "selector.yaml", models / "selector", data,
                 ["--trainer.max_epochs=1", "--data.batch_size=8"], ["--data.batch_size=8"], "best-*.ckpt")

    gen_dir = models / "generator"
    gen_data = ["--data.dataset", distilled, "--data.store", store, "--model.init_args.generator.decoder", gpt2,
                "--data.batch_size=2"]
    modes = fit_and_test(run, "generator", "generator.yaml", gen_dir, gen_data,
                         ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"],
                         ["--trainer.limit_test_batches=1"], "last.ckpt")
    first, second = modes["train_losses"]
    assert abs(first - second) > 1e-4, "GPT-2 fine-tuned without dropout"
    for step in ("fit classifier", "fit selector", "fit generator"):
        assert not [w for w in run.warnings[step] if EVAL_MODE_WARNING in w], step
    predictions = [json.loads(line) for line in (gen_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 2 and all(p["text"].strip() for p in predictions)
    exported = ExplanationGenerator.from_pretrained(gen_dir / "model")
    assert exported.width == GPT2_WIDTH and exported.config.feature_dim == CLIP_WIDTH
    assert exported.config.decoder_config["n_layer"] == 12 and not exported.training

    start_api = time.perf_counter()
    pipeline = assemble_pipeline(tmp_path / "pipeline", distilled, store, models / "selector" / "model",
                                 gen_dir / "model", classifier=classifier, copy=False)
    test_review = ShowcaseDataset.load(distilled).split("test")[0]
    showcase = Showcaser.load(pipeline).generate_showcase(test_review.user_id, test_review.business_id)
    pool = set(ShowcaseDataset.load(distilled).business_photos(test_review.business_id))
    assert 1 <= len(showcase.photos) <= 3 and {p.photo_id for p in showcase.photos} <= pool
    assert showcase.text.strip()
    run.seconds["pipeline + generate_showcase"] = time.perf_counter() - start_api

    with capsys.disabled():
        print(f"\nreal path at paper size, {len(photos)} photos: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in run.seconds.items())
              + f"; total {time.perf_counter() - start:.0f} s")
        for step, messages in run.warnings.items():
            for message in messages:
                print(f"  warning in {step}: {message}")
