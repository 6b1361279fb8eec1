"""`showcase demo`: the whole pipeline on the test world, on CPU, resumable.

world → prepare → features → classifier Φ → distill → selector (+ baselines) → generator → test metrics →
pipeline → explained showcase cards → report page (`OUTPUT/index.html`).
Each finished step leaves a marker in `OUTPUT/.steps/` (with its wall and CPU seconds), so a second run skips it;
an interrupted step resumes (feature extraction and distillation from their own checkpoints, training from
`last.ckpt`). Each step prints "step n of N", the time since the start and an estimate of the time left.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from showcase.utils import atomic_write_text

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TEXT_METRICS = "bleu1,bleu4,meteor,nist,distinct1,distinct2,clip_score,clip_align"
WORLD_VOCABULARY = 512  # the test world's texts need few tokens; GPT-2's 50,257 would make the LM head 98% of the work
# Epochs per model in the default demo (`--full`: the configs' own). Chosen so `make demo` stays within 5 minutes
# on a quiet 2-core machine while each model still learns its task (see the report's tables).
DEMO_EPOCHS = {"classifier": 15, "selector": 15, "generator": 4}
LARGER = "showcase demo --full --size medium --showcases 12 --output runs/demo-medium"
# step: (what it does, typical seconds in the default demo (measured on a busy 2-core machine),
#        for the time-left estimate)
PLAN = {
    "world": ("render the test world", 20),
    "prepare": ("filter and split the reviews", 1),
    "features": ("CLIP features of every photo and text (tiny CLIP)", 40),
    "labels": ("sentence-photo labels from the world's ground truth", 1),
    "classifier": ("train the sentence-photo classifier Φ", 20),
    "distill": ("keep the sentences that describe a photo", 1),
    "selector": ("train the personalized DPP selector", 20),
    "baselines": ("test the random and centroid selectors (Table 3 rows)", 3),
    "tokenizer": ("a 512-token byte-level BPE of the world's training texts", 1),
    "generator": ("train the PC²L generator (tiny GPT-2)", 50),
    "metrics": ("BLEU, METEOR, NIST, Distinct, CLIP-Score, CLIP-Align; Fig. 6 plots", 30),
    "pipeline": ("gather the trained pipeline into one folder", 1),
    "showcases": ("explained showcase cards for test users", 3),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Run the whole pipeline on the built-in test world (CPU), then write explained showcase "
                          f"cards and a report page OUTPUT/index.html. Larger version: `{LARGER}`.")
    parser.add_argument("--output", default="runs/demo",
                        help="folder for everything the demo writes (default runs/demo)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the test world (default 0)")
    parser.add_argument("--size", choices=("small", "medium"), default="small",
                        help="test world size: small (40 businesses, ~600 reviews) or medium (about 4x)")
    parser.add_argument("--showcases", type=int, default=6, help="showcase cards to write for test users (default 6)")
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument("--quick", action="store_true",
                       help="one epoch per model: checks the plumbing in about a minute (the tests use it); "
                            "weak models")
    speed.add_argument("--full", action="store_true",
                       help="train each model for its config's epochs (classifier 60, selector 50, generator 12) "
                            "instead of the demo's shorter schedule; several times slower")
    parser.add_argument("--configs", default=str(CONFIGS), help="folder with the YAML configs (default: configs/)")


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Steps:
    """Runs named steps once, in `plan` order; markers in `folder/.steps` remember which finished.

    Prints "step n of N", the elapsed time, and an estimate of the time left: the plan's typical shares of the
    remaining steps, scaled by how fast the steps so far ran against their shares.
    """

    def __init__(self, folder: Path, plan: dict[str, tuple[str, float]] = PLAN):
        self.markers = folder / ".steps"
        self.markers.mkdir(parents=True, exist_ok=True)
        self.plan = plan
        self.timings: dict[str, float] = {}
        self.start = time.perf_counter()
        self._seen: list[str] = []

    def _left(self, name: str) -> str:
        done = [n for n in self.timings if self.plan[n][1] > 0]
        remaining = sum(share for n, (_, share) in self.plan.items() if n not in self._seen or n == name)
        if not done:
            return ""
        rate = sum(self.timings[n] for n in done) / sum(self.plan[n][1] for n in done)  # seconds per share unit
        return f", about {_clock(rate * remaining)} left"

    def __call__(self, name: str, fn: Callable[[], object]) -> None:
        description = self.plan[name][0]
        n = list(self.plan).index(name) + 1
        prefix = f"[demo] step {n} of {len(self.plan)} · {name}"
        marker = self.markers / f"{name}.done"
        if marker.exists():
            self._seen.append(name)
            print(f"{prefix}: done earlier, skipped ({marker})")
            return
        elapsed = time.perf_counter() - self.start
        print(f"{prefix}: {description} ... (elapsed {_clock(elapsed)}{self._left(name)})", flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        self.timings[name] = time.perf_counter() - start
        self._seen.append(name)
        cpu = time.process_time() - cpu
        marker.write_text(json.dumps({"seconds": round(self.timings[name], 2), "cpu_seconds": round(cpu, 2)}))
        print(f"{prefix}: finished in {self.timings[name]:.1f} s ({cpu:.1f} s CPU)", flush=True)


def _check(code: int, what: str) -> None:
    if code:
        raise SystemExit(f"[demo] {what} failed with exit code {code}")


def _logger_args(root: Path, name: str, version: str = "run") -> list[str]:
    return ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={root}",
            f"--trainer.logger.init_args.name={name}", f"--trainer.logger.init_args.version={version}"]


def _run_args(configs: list[Path], root: Path, name: str, data_args: list[str]) -> list[str]:
    """What every demo `fit`/`test` shares: the configs, the data, `<root>/<name>` as output, a quiet trainer."""
    return [*(arg for config in configs for arg in ("--config", str(config))), *data_args,
            f"--trainer.default_root_dir={root / name}",
            f"--trainer.enable_progress_bar={str(sys.stdout.isatty()).lower()}", "--trainer.enable_model_summary=false"]


def train(config: Path, root: Path, name: str, data_args: list[str], epochs: int | None) -> Path:
    """`showcase fit` (logs in `<root>/<name>/run`) then `showcase test` (logs in `<root>/<name>/test`, so each keeps
    its own `metrics.csv`) of one config; resumes from `last.ckpt`. Returns the fit's run folder.

    Args:
        epochs: `--trainer.max_epochs` (None: the config's).
    """
    from showcase.cli import main

    run_dir = root / name / "run"
    common = _run_args([config], root, name, data_args)
    if epochs is not None:
        common += [f"--trainer.max_epochs={epochs}"]
    fit = ["fit", *common, *_logger_args(root, name)]
    last = next(iter(sorted(run_dir.glob("checkpoints/last*.ckpt"))), None)
    if last is not None and not (run_dir / "model" / "config.json").exists():
        print(f"[demo] resuming {name} from {last}")
        fit += [f"--ckpt_path={last}"]
    if not (run_dir / "model" / "config.json").exists():
        _check(main(fit), f"showcase fit {config.name}")
    best = [p for p in sorted(run_dir.glob("checkpoints/*.ckpt")) if not p.name.startswith("last")]
    ckpt = best[0] if best else next(iter(sorted(run_dir.glob("checkpoints/last*.ckpt"))), None)
    _check(main(["test", *common, *_logger_args(root, name, "test"), *([f"--ckpt_path={ckpt}"] if ckpt else [])]),
           f"showcase test {config.name}")
    return run_dir


def train_world_tokenizer(dataset: Path, folder: Path, vocab_size: int = WORLD_VOCABULARY) -> Path:
    """A byte-level BPE (GPT-2's algorithm) with `vocab_size` tokens, learned from the training split's texts.

    GPT-2's own 50,257-token vocabulary makes the tiny generator's output layer the bulk of its training cost on
    CPU; the test world's reviews use a few hundred words. `<|endoftext|>` gets the last id, as in GPT-2.
    """
    from tokenizers import ByteLevelBPETokenizer

    from showcase.data import ShowcaseDataset
    from showcase.generation.tokenizer import END_OF_TEXT

    train = ShowcaseDataset.load(dataset).split("train")
    texts = [t for r in train for t in (r.text, *r.sentences, *(h.text for h in r.history))]
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[END_OF_TEXT],
                                  show_progress=False)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    end = vocab.pop(END_OF_TEXT)
    vocab = {token: i if i < end else i - 1 for token, i in vocab.items()}
    vocab[END_OF_TEXT] = len(vocab)
    atomic_write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    return folder


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _metrics_of(run_dir: Path) -> dict[str, float]:
    return {k.split("/", 1)[-1]: v for k, v in _read_json(run_dir / "test_metrics.json").items()}


def run(args: argparse.Namespace) -> int:
    import os

    from showcase.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the demo needs nothing from the Hub: never wait on it
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        # The demo's models are 64 wide: splitting their matrix products over threads costs more than it saves, and
        # on a busy machine spinning threads multiplied the CPU time by 10 (classifier: 69 s CPU with 2 threads,
        # 5 s with one, same load). Set OMP_NUM_THREADS to choose otherwise.
        torch.set_num_threads(1)

    out = Path(args.output).resolve()
    configs = Path(args.configs)
    steps = Steps(out)
    world, dataset, store = out / "world", out / "dataset", out / "store"
    labels, distilled, models = out / "labels.jsonl", out / "dataset-s2", out / "models"

    def epochs(name: str) -> int | None:
        return 1 if args.quick else None if args.full else DEMO_EPOCHS[name]

    steps("world", lambda: _check(
        main(["world", "--output", str(world), "--seed", str(args.seed), "--size", args.size]), "world"))
    steps("prepare", lambda: _check(
        main(["prepare", "--input", str(world / "filter_all_t.json"), "--photos", str(world / "photos"),
              "--output", str(dataset)]), "prepare"))
    steps("features", lambda: _check(
        main(["features", "--dataset", str(dataset), "--model", "showcase-tiny", "--output", str(store)]), "features"))
    steps("labels", lambda: _check(
        main(["pairs", "--world", str(world), "--dataset", str(dataset), "--output", str(labels)]), "pairs"))
    data = ["--data.dataset", str(dataset), "--data.store", str(store)]
    steps("classifier", lambda: train(
        configs / "classifier.yaml", models, "classifier", [*data, "--data.labels", str(labels)], epochs("classifier")))
    classifier = models / "classifier" / "run" / "model"
    steps("distill", lambda: _check(
        main(["distill", "--dataset", str(dataset), "--store", str(store), "--classifier", str(classifier),
              "--output", str(distilled)]), "distill"))
    steps("selector", lambda: train(configs / "selector.yaml", models, "selector", data, epochs("selector")))

    def baselines() -> None:
        """Table 3's untrained rows (random, ELVis centroid) tested on the same split as the trained DPP."""
        from showcase.cli import main

        rows = {}
        for row, config in (("random", "selector_random"), ("centroid (ELVis)", "selector_centroid")):
            name = f"baseline-{config.split('_', 1)[1]}"
            common = _run_args([configs / "selector.yaml", configs / f"{config}.yaml"], models, name, data)
            _check(main(["test", *common, *_logger_args(models, name)]), f"showcase test {config}")
            rows[row] = _metrics_of(models / name / "run")
        rows["img+text DPP (ours)"] = _metrics_of(models / "selector" / "test")
        atomic_write_text(out / "selection_rows.json", json.dumps(rows, indent=2))

    steps("baselines", baselines)
    tokenizer = out / "tokenizer"
    steps("tokenizer", lambda: train_world_tokenizer(distilled, tokenizer))

    def vocabulary() -> list[str]:  # --full keeps the config's tokenizer (GPT-2's)
        return [] if args.full else ["--data.tokenizer", str(tokenizer)]  # the generator's follow (linked)

    steps("generator", lambda: train(
        configs / "generator_tiny.yaml", models, "generator", ["--data.dataset", str(distilled), "--data.store",
                                                               str(store), *vocabulary()], epochs("generator")))
    generated = models / "generator" / "test"  # the test run's predictions.jsonl

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
            plot = ["--plot", str(out / "figures")] if row == "generated" else []
            with contextlib.redirect_stdout(buffer):
                _check(metrics_main([
                    "--predictions", str(generated / predictions), "--references", str(generated / "references.jsonl"),
                    "--metrics", names, "--clip", str(store / "encoder"), "--classifier", str(classifier),
                    "--images", str(world / "photos"), "--json", *plot]), "python -m metrics")
            table[row] = json.loads(buffer.getvalue().strip().splitlines()[-1])
        atomic_write_text(out / "text_metrics.json", json.dumps(table, indent=2))

    steps("metrics", text_metrics)
    pipeline = out / "pipeline"

    def assemble() -> None:
        from showcase.api import assemble_pipeline

        assemble_pipeline(pipeline, distilled, store, models / "selector" / "run" / "model",
                          models / "generator" / "run" / "model", classifier=classifier)

    steps("pipeline", assemble)

    def showcases() -> None:
        from showcase.api import Explainer, Showcaser
        from showcase.data import ShowcaseDataset

        showcaser = Showcaser.load(pipeline)
        explainer = Explainer.load(pipeline, showcaser)
        test = ShowcaseDataset.load(distilled).split("test")
        pairs = list(dict.fromkeys((r.user_id, r.business_id) for r in test))[: max(args.showcases - 1, 1)]
        results = showcaser.generate_showcases(pairs)
        if test and args.showcases > 1:  # one card for a visitor without history: what a cold start looks like
            results += showcaser.generate_showcases([("new-visitor", test[0].business_id)])
        pages = []
        for r in results:
            explainer.explain(r)
            name = f"showcases/{r.user_id}-{r.business_id}.html"
            r.save(out / name)
            r.save((out / name).with_suffix(".png"))
            pages.append((name, r.user_id, r.business_id, r.business_name))
            photo_ids = [p.photo_id for p in r.photos]
            print(f"  {r.user_id} at {r.business_name or r.business_id}: {photo_ids} -> {r.text!r}")
        atomic_write_text(out / "showcases.json", json.dumps(pages))

    steps("showcases", showcases)
    from showcase.demo_report import write_report

    index = write_report(out, {name: description for name, (description, _) in PLAN.items()}, LARGER)
    _print_summary(out, models)
    total = sum(_read_json(out / ".steps" / f"{name}.done").get("seconds", 0.0) for name in PLAN)
    print(f"\n[demo] done: the steps took {_clock(total)} in all. Open {index}")
    print(f"[demo] see it live: showcase serve --pipeline {pipeline}")
    print(f"[demo] Python: Showcaser.load({str(pipeline)!r}).generate_showcase(user_id, business_id)")
    if not args.full:
        print(f"[demo] the larger version (longer training, 4x the world): {LARGER}")
    return 0


def _print_summary(out: Path, models: Path) -> None:
    """The report's figures in the terminal, with the same units."""
    from showcase.demo_report import SELECTION_COLUMNS, TEXT_COLUMNS

    phi = _metrics_of(models / "classifier" / "test")
    if phi:
        print(f"\n[demo] classifier Φ on test pairs: AUC {phi.get('auc', 0):.3f}, F1 {phi.get('f1', 0):.3f}")
    rows = _read_json(out / "selection_rows.json")
    if rows:
        print("[demo] Table 3, selection (%)   " + "".join(f"{h:>10}" for _, h in SELECTION_COLUMNS))
        for name, m in rows.items():
            print(f"  {name:<22}" + "".join(f"{100 * m.get(k, float('nan')):>10.2f}" for k, _ in SELECTION_COLUMNS))
    text = _read_json(out / "text_metrics.json")
    if text:
        present = [c for c in TEXT_COLUMNS if any(c[0] in row for row in text.values())]
        print("[demo] Table 2, text (% except NIST, a score):")
        print(f"  {'':<14}" + "".join(f"{h:>12}" for _, h, _, _ in present))
        for row, values in text.items():
            print(f"  {row:<14}"
                  + "".join(f"{values.get(k, float('nan')) * scale:>12.2f}" for k, _, _, scale in present))
