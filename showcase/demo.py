"""`showcase demo`: the whole pipeline on the test world, on CPU, resumable.

world → prepare → features → classifier Φ → distill → selector → generator → test metrics → pipeline → showcases.
Each finished step leaves a marker in `OUTPUT/.steps/`, so a second run skips it; an interrupted step resumes
(feature extraction and distillation from their own checkpoints, training from `last.ckpt`).
"""
from __future__ import annotations

import argparse
import html
import json
import time
from pathlib import Path
from typing import Callable

from showcase.utils import atomic_write_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEXT_METRICS = "bleu1,bleu4,meteor,nist,distinct1,distinct2,clip_score,clip_align"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="runs/demo", help="folder for everything the demo writes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test world")
    parser.add_argument("--size", choices=("small", "medium"), default="small")
    parser.add_argument("--showcases", type=int, default=6, help="showcase pages to write for test users")
    parser.add_argument("--quick", action="store_true", help="one epoch per model (for tests; weak models)")
    parser.add_argument("--configs", default=str(CONFIGS), help="folder with the YAML configs")


class Steps:
    """Runs named steps once; markers in `folder/.steps` remember which finished."""

    def __init__(self, folder: Path):
        self.markers = folder / ".steps"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def __call__(self, name: str, description: str, fn: Callable[[], object]) -> None:
        marker = self.markers / f"{name}.done"
        if marker.exists():
            print(f"[demo] {name}: done earlier, skipped ({marker})")
            return
        print(f"[demo] {name}: {description} ...", flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        self.timings[name] = time.perf_counter() - start
        cpu = time.process_time() - cpu
        marker.write_text(json.dumps({"seconds": round(self.timings[name], 2), "cpu_seconds": round(cpu, 2)}))
        print(f"[demo] {name}: finished in {self.timings[name]:.1f} s ({cpu:.1f} s CPU)", flush=True)


def _check(code: int, what: str) -> None:
    if code:
        raise SystemExit(f"[demo] {what} failed with exit code {code}")


def _logger_args(root: Path, name: str) -> list[str]:
    return ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={root}",
            f"--trainer.logger.init_args.name={name}", "--trainer.logger.init_args.version=run"]


def train(config: Path, root: Path, name: str, data_args: list[str], quick: bool) -> Path:
    """`showcase fit` then `showcase test` of one config; resumes from `last.ckpt`. Returns the run folder."""
    from showcase.cli import main

    run_dir = root / name / "run"
    common = ["--config", str(config), *data_args, *_logger_args(root, name), f"--trainer.default_root_dir={root / name}",
              "--trainer.enable_progress_bar=false"]
    if quick:
        common += ["--trainer.max_epochs=1"]
    fit = ["fit", *common]
    last = next(iter(sorted(run_dir.glob("checkpoints/last*.ckpt"))), None)
    if last is not None and not (run_dir / "model" / "config.json").exists():
        print(f"[demo] resuming {name} from {last}")
        fit += [f"--ckpt_path={last}"]
    if not (run_dir / "model" / "config.json").exists():
        _check(main(fit), f"showcase fit {config.name}")
    best = [p for p in sorted(run_dir.glob("checkpoints/*.ckpt")) if not p.name.startswith("last")]
    ckpt = best[0] if best else next(iter(sorted(run_dir.glob("checkpoints/last*.ckpt"))), None)
    _check(main(["test", *common, *([f"--ckpt_path={ckpt}"] if ckpt else [])]), f"showcase test {config.name}")
    return run_dir


def write_index(folder: Path, pages: list[tuple[str, str, str]], summary: dict) -> Path:
    rows = "".join(f'<li><a href="{html.escape(href)}">{html.escape(user)} at {html.escape(business)}</a></li>'
                   for href, user, business in pages)
    metrics = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                      for k, v in summary.items())
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>showcase demo</title>'
            f"<style>body{{font-family:system-ui,sans-serif;margin:2rem}}td{{padding:2px 12px}}</style></head><body>"
            f"<h1>Personalized showcases on the test world</h1><h2>Showcases</h2><ul>{rows}</ul>"
            f"<h2>Metrics</h2><table>{metrics}</table></body></html>")
    atomic_write_text(folder / "index.html", page)
    return folder / "index.html"


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def run(args: argparse.Namespace) -> int:
    import os

    from showcase.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo needs nothing from the Hub: never wait on it

    out = Path(args.output).resolve()
    configs = Path(args.configs)
    steps = Steps(out)
    world, dataset, store = out / "world", out / "dataset", out / "store"
    labels, distilled, models = out / "labels.jsonl", out / "dataset-s2", out / "models"
    start = time.perf_counter()

    steps("world", "render the test world", lambda: _check(
        main(["world", "--output", str(world), "--seed", str(args.seed), "--size", args.size]), "world"))
    steps("prepare", "filter and split the reviews", lambda: _check(
        main(["prepare", "--input", str(world / "filter_all_t.json"), "--photos", str(world / "photos"),
              "--output", str(dataset)]), "prepare"))
    steps("features", "CLIP features of every photo and text (tiny CLIP)", lambda: _check(
        main(["features", "--dataset", str(dataset), "--model", "showcase-tiny", "--output", str(store)]), "features"))
    steps("labels", "sentence-photo labels from the world's ground truth", lambda: _check(
        main(["pairs", "--world", str(world), "--dataset", str(dataset), "--output", str(labels)]), "pairs"))
    data = ["--data.dataset", str(dataset), "--data.store", str(store)]
    steps("classifier", "train the sentence-photo classifier", lambda: train(
        configs / "classifier.yaml", models, "classifier", [*data, "--data.labels", str(labels)], args.quick))
    classifier = models / "classifier" / "run" / "model"
    steps("distill", "keep the sentences that describe a photo", lambda: _check(
        main(["distill", "--dataset", str(dataset), "--store", str(store), "--classifier", str(classifier),
              "--output", str(distilled)]), "distill"))
    steps("selector", "train the personalized DPP selector", lambda: train(
        configs / "selector.yaml", models, "selector", data, args.quick))
    steps("generator", "train the PC2L generator (tiny GPT-2)", lambda: train(
        configs / "generator_tiny.yaml", models, "generator", ["--data.dataset", str(distilled), "--data.store",
                                                               str(store)], args.quick))
    generated = models / "generator" / "run"

    def text_metrics() -> None:
        """Table 2's metrics of the test predictions, and of the ground truth itself (the paper's GT row)."""
        import contextlib
        import io

        from metrics.cli import main as metrics_main
        from metrics.wordnet import wordnet_available

        names = TEXT_METRICS
        if not wordnet_available():
            names = names.replace("meteor,", "")
            print("[demo] METEOR skipped: WordNet is not installed (apt-get install wordnet-base wordnet-sense-index)")
        table = {}
        for row, predictions in (("generated", "predictions.jsonl"), ("ground truth", "references.jsonl")):
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                _check(metrics_main([
                    "--predictions", str(generated / predictions), "--references", str(generated / "references.jsonl"),
                    "--metrics", names, "--clip", str(store / "encoder"), "--classifier", str(classifier),
                    "--images", str(world / "photos"), "--json"]), "python -m metrics")
            table[row] = json.loads(buffer.getvalue())
        atomic_write_text(out / "text_metrics.json", json.dumps(table, indent=2))

    steps("metrics", "BLEU, METEOR, NIST, Distinct, CLIP-Score, CLIP-Align of the test predictions", text_metrics)
    pipeline = out / "pipeline"

    def assemble() -> None:
        from showcase.api import assemble_pipeline

        assemble_pipeline(pipeline, distilled, store, models / "selector" / "run" / "model",
                          models / "generator" / "run" / "model", classifier=classifier)

    steps("pipeline", "gather the trained pipeline into one folder", assemble)

    def showcases() -> None:
        from showcase.api import Showcaser
        from showcase.data import ShowcaseDataset

        showcaser = Showcaser.load(pipeline)
        test = ShowcaseDataset.load(distilled).split("test")[: args.showcases]
        results = showcaser.generate_showcases([(r.user_id, r.business_id) for r in test])
        pages = []
        for r in results:
            name = f"showcases/{r.user_id}-{r.business_id}.html"
            r.save(out / name)
            pages.append((name, r.user_id, r.business_id))
            print(f"  {r.user_id} at {r.business_id}: {[p.photo_id for p in r.photos]} -> {r.text!r}")
        atomic_write_text(out / "showcases.json", json.dumps(pages))

    steps("showcases", "showcase pages for test users", showcases)
    summary = {}
    for name in ("classifier", "selector", "generator"):
        for key, value in _read_json(models / name / "run" / "test_metrics.json").items():
            summary[f"{name} {key}"] = value
    for row, values in _read_json(out / "text_metrics.json").items():
        for key, value in values.items():
            summary[f"text ({row}) {key} %"] = round(value, 2)
    pages = [tuple(p) for p in json.loads((out / "showcases.json").read_text())]
    index = write_index(out, pages, summary)
    print("\n[demo] test metrics (fractions; text metrics in percent)")
    for key, value in summary.items():
        print(f"  {key:<40} {value}")
    print(f"\n[demo] done in {time.perf_counter() - start:.0f} s. Open {index}")
    print(f"[demo] Python: Showcaser.load({str(pipeline)!r}).generate_showcase(user_id, business_id)")
    return 0
