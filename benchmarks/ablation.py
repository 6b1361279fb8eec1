"""Ablations of the generator on the test world: Table 4 (contrastive losses) and Table 2 (input modalities).

    python benchmarks/ablation.py                      # all rows, 3 seeds, 12 epochs (~1-2 h on 2 busy cores)
    python benchmarks/ablation.py --quick              # CE and PC²L, 1 seed, 4 epochs (a few minutes)
    python benchmarks/ablation.py --rows ce,pc2l --seeds 0,1,2   # a subset; finished runs are reused
    python benchmarks/ablation.py --size medium --rows ce,pc2l  # 4x the world (n = 186 test reviews), ~90 s a run

Rows: Table 4's five (ce, cl_cl, ccl_cl, cl_pcl, pc2l), Table 2's inputs (img, text; img+text is pc2l) and
pc2l_token (PC²L with CE averaged per token instead of summed per sequence: the λ-against-CE ablation) and pc2l_raw
(Eq. 10 on raw instead of standardised history features).

The data is the demo's (`showcase demo` steps world → prepare → features → labels → classifier Φ → distill →
tokenizer, seed 0, size small; the generator uses the demo's world tokenizer, not GPT-2's 50k vocabulary): every
row trains `configs/generator_tiny.yaml` + its overlay on the distilled dataset for the same epochs, is tested on the
test split (beam search, best val-CE checkpoint) and scored with BLEU-1/4, Distinct-1/2,
CLIP-Align (Φ), CLIP-Score, and "names a pictured dish": the share of explanations naming the dish of one of their
input photos, with its chance level (the same texts paired with shuffled photos). Table rows print mean ± std
(population std over seeds) in percent. Every run writes `OUT/<row>/seed<k>/result.json`; a rerun skips finished runs
(a run that died leaves `claimed` without `result.json`: delete that folder to rerun it). `--probe` adds the image-
text probe of each run (`showcase.generation.probe`), `--negatives` the dish-only share of CCL's hard negatives.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# row name -> (label, overlay configs after generator_tiny.yaml)
ROWS = {
    "ce": ("CE only (Baseline)", ["generator_baseline.yaml"]),
    "cl_cl": ("img CL + text CL", ["generator_cl_cl.yaml"]),
    "ccl_cl": ("CCL + text CL", ["generator_ccl_cl.yaml"]),
    "cl_pcl": ("img CL + PCL", ["generator_cl_pcl.yaml"]),
    "pc2l": ("PC²L (img+text)", ["generator_pc2l.yaml"]),
    "pc2l_token": ("PC²L, CE per token", ["generator_pc2l_token.yaml"]),
    "pc2l_raw": ("PC²L, raw history features", ["generator_pc2l_raw.yaml"]),
    "img": ("PC²L, img only", ["generator_img.yaml"]),
    "text": ("PC²L, text only", ["generator_text.yaml"]),
    "pc2l_before": ("PC²L, issue-12 readings", ["generator_pc2l_before.yaml"]),
}
METRICS = "bleu1,bleu4,distinct1,distinct2,clip_align,clip_score"
COLUMNS = [("bleu1", "BLEU-1"), ("bleu4", "BLEU-4"), ("distinct1", "Dist-1"), ("distinct2", "Dist-2"),
           ("clip_align", "CLIP-Align"), ("clip_score", "CLIP-Score"), ("dish", "dish"), ("dish_chance", "chance")]


def prepare_data(out: Path, size: str = "small") -> dict[str, Path]:
    """The demo's first steps (each run once, markers in `out/.steps`): world, dataset, store, Φ, distilled data."""
    from showcase.cli import main
    from showcase.demo import Steps, _check, train, train_world_tokenizer

    configs = ROOT / "configs"
    steps = Steps(out)
    world, dataset, store = out / "world", out / "dataset", out / "store"
    labels, distilled, models = out / "labels.jsonl", out / "dataset-s2", out / "models"
    steps("world", lambda: _check(
        main(["world", "--output", str(world), "--seed", "0", "--size", size]), "world"))
    steps("prepare", lambda: _check(main([
        "prepare", "--input", str(world / "filter_all_t.json"), "--photos", str(world / "photos"),
        "--output", str(dataset)]), "prepare"))
    steps("features", lambda: _check(main([
        "features", "--dataset", str(dataset), "--model", "showcase-tiny", "--output", str(store)]), "features"))
    steps("labels", lambda: _check(main([
        "pairs", "--world", str(world), "--dataset", str(dataset), "--output", str(labels)]), "pairs"))
    steps("classifier", lambda: train(
        configs / "classifier.yaml", models, "classifier",
        ["--data.dataset", str(dataset), "--data.store", str(store), "--data.labels", str(labels)], None))
    classifier = models / "classifier" / "run" / "model"
    steps("distill", lambda: _check(main([
        "distill", "--dataset", str(dataset), "--store", str(store), "--classifier", str(classifier),
        "--output", str(distilled)]), "distill"))
    tokenizer = out / "tokenizer"
    steps("tokenizer", lambda: train_world_tokenizer(distilled, tokenizer))
    return {"world": world, "store": store, "classifier": classifier, "distilled": distilled, "tokenizer": tokenizer}


def dish_hits(preds: list[dict], photo_dish: dict[str, str], order: list[int] | None = None) -> float:
    """Share of predictions naming a dish of their input photos; `order` pairs text i with photos order[i]."""
    order = order or list(range(len(preds)))
    hits = [any(photo_dish[p] in preds[i]["text"] for p in preds[j]["photos"] if p in photo_dish)
            for i, j in enumerate(order)]
    return sum(hits) / max(len(hits), 1)


def dish_scores(preds: list[dict], photo_dish: dict[str, str], shuffles: int = 50) -> tuple[float, float]:
    """(names a pictured dish, its chance with shuffled photos), both fractions."""
    rng = random.Random(0)
    chance = []
    for _ in range(shuffles):
        order = list(range(len(preds)))
        rng.shuffle(order)
        chance.append(dish_hits(preds, photo_dish, order))
    return dish_hits(preds, photo_dish), sum(chance) / len(chance)


def run_one(row: str, seed: int, epochs: int, data: dict[str, Path], out: Path) -> dict[str, float] | None:
    """Train, test and score one (row, seed); cached in `result.json`. None when another worker claimed it."""
    from metrics.cli import main as metrics_main
    from showcase.cli import main

    folder = out / row / f"seed{seed}"
    result_file = folder / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    try:  # a claim, so that several workers (`--jobs`, or processes started by hand) share the runs
        (folder / "claimed").open("x").close()
    except FileExistsError:
        return None
    configs = [a for c in ["generator_tiny.yaml", *ROWS[row][1]] for a in ("--config", str(ROOT / "configs" / c))]
    common = [*configs, "--data.dataset", str(data["distilled"]), "--data.store", str(data["store"]),
              "--data.tokenizer", str(data["tokenizer"]),  # the generator's tokenizer and vocab_size follow (linked)
              f"--trainer.default_root_dir={folder}", "--trainer.enable_progress_bar=false",
              "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
              f"--trainer.logger.init_args.save_dir={folder}", "--trainer.logger.init_args.name=log",
              "--trainer.logger.init_args.version=run", f"--seed_everything={seed}", f"--data.seed={seed}",
              f"--trainer.max_epochs={epochs}"]
    start = time.perf_counter()
    run_dir = folder / "log" / "run"
    # each step is skipped when an earlier attempt finished it (a run that died resumes from its last checkpoint)
    if not (run_dir / "model" / "config.json").exists():
        last = run_dir / "checkpoints" / "last.ckpt"
        if main(["fit", *common, *([f"--ckpt_path={last}"] if last.exists() else [])]) != 0:
            raise SystemExit(f"fit failed: {row} seed {seed}")
    best = [p for p in sorted(run_dir.glob("checkpoints/*.ckpt")) if not p.name.startswith("last")]
    val_ce = _best_val_ce(best[0])
    if not (run_dir / "predictions.jsonl").exists() and main(["test", *common, f"--ckpt_path={best[0]}"]) != 0:
        raise SystemExit(f"test failed: {row} seed {seed}")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = metrics_main(["--predictions", str(run_dir / "predictions.jsonl"), "--references",
                             str(run_dir / "references.jsonl"), "--metrics", METRICS, "--clip",
                             str(data["store"] / "encoder"), "--classifier", str(data["classifier"]),
                             "--images", str(data["world"] / "photos"), "--json"])
    if code:
        raise SystemExit(f"metrics failed: {row} seed {seed}")
    result = json.loads(buffer.getvalue().strip().splitlines()[-1])
    preds = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    photo_dish = json.loads((data["world"] / "world.json").read_text())["photos"]
    dish, chance = dish_scores(preds, photo_dish)
    result.update(dish=100 * dish, dish_chance=100 * chance, best_val_ce=val_ce, n=len(preds),
                  seconds=round(time.perf_counter() - start, 1), epochs=epochs, **probe_figures(run_dir, data))
    result_file.write_text(json.dumps(result, indent=2))
    return result


def _datamodule(data: dict[str, Path], **kwargs):
    from showcase.generation.data import GeneratorDataModule

    dm = GeneratorDataModule(dataset=str(data["distilled"]), store=str(data["store"]), tokenizer=str(data["tokenizer"]),
                             **kwargs)
    dm.setup("test")
    return dm


def probe_figures(run_dir: Path, data: dict[str, Path]) -> dict[str, float]:
    """`image_text_probe` of a run's best checkpoint over the test split (batches of 16; only with an image loss),
    and the 5/50/95 % quantiles of Eq. 10's weights over its first batch (only with PCL)."""
    import torch

    from showcase.generation.module import GeneratorModule
    from showcase.generation.probe import image_text_probe, pcl_weight_quantiles

    best = [p for p in sorted(run_dir.glob("checkpoints/*.ckpt")) if not p.name.startswith("last")]
    module = GeneratorModule.load_from_checkpoint(best[0], map_location="cpu", weights_only=True).eval()
    dm = _datamodule(data, batch_size=16, entity_swap=False)
    figures: dict[str, float] = {}
    if module.loss_config.text_loss == "pcl":
        first = next(iter(dm.test_dataloader()))
        figures.update({f"pcl_weight_{k}": v for k, v in pcl_weight_quantiles(module, first).items()})
    if module.heads.phi_v is None:
        return figures
    sums, n = {"own_text": 0.0, "own_images": 0.0, "chance": 0.0}, 0
    with torch.no_grad():
        for i, batch in enumerate(dm.test_dataloader()):
            if len(batch["ids"]) < 2 or not batch["image_mask"].any(1).all():
                continue
            for k, v in image_text_probe(module, batch, seed=i).items():
                sums[k] += v * len(batch["ids"])
            n += len(batch["ids"])
    return {**figures, **{f"probe_{k}": 100 * v / max(n, 1) for k, v in sums.items()}}


def negatives_report(data: dict[str, Path]) -> str:
    """How CCL's hard negatives differ from their targets on the training split: the share whose only change is the
    dish (world dish names blanked out, the rest identical) and the share of targets that get a negative."""
    import re

    dm = _datamodule(data, entity_swap=True)
    swapper = dm.entity_swapper()
    names = sorted({d["name"] for d in json.loads((data["world"] / "world.json").read_text())["dishes"]}, key=len,
                   reverse=True)

    def blank(text: str) -> str:
        for name in names:
            text = re.sub(re.escape(name), "<dish>", text, flags=re.IGNORECASE)
        return text

    rng = random.Random(0)
    targets = [e.review.target_text for e in dm.splits["train"].examples]
    pairs = [(t, swapper.swap(t, rng)) for t in targets]
    swapped = [(t, s) for t, s in pairs if s is not None]
    dish_only = sum(blank(t) == blank(s) and "<dish>" in blank(s) for t, s in swapped)
    return (f"hard negatives (train split): {len(swapped)}/{len(targets)} targets get one "
            f"({100 * len(swapped) / max(len(targets), 1):.1f}%); {100 * dish_only / max(len(swapped), 1):.1f}% of "
            f"them differ from their target in the dish names alone")


def _best_val_ce(checkpoint: Path) -> float:
    """The best monitored val/ce, from the ModelCheckpoint state saved in a checkpoint."""
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=False).get("callbacks", {})
    scores = [v.get("best_model_score") for k, v in state.items() if k.startswith("ModelCheckpoint")]
    return float(scores[0]) if scores and scores[0] is not None else float("nan")


def table(results: dict[str, list[dict]]) -> str:
    """Markdown table of mean ± std over seeds (percent), one line per row."""
    head = "| method | seeds | " + " | ".join(c for _, c in COLUMNS) + " | best val CE |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for row, runs in results.items():
        if not runs:
            continue
        cells = []
        for key, _ in COLUMNS + [("best_val_ce", "")]:
            xs = [r[key] for r in runs]
            mean, std = statistics.fmean(xs), statistics.pstdev(xs) if len(xs) > 1 else 0.0
            cells.append(f"{mean:.3f} ± {std:.3f}" if key == "best_val_ce" else f"{mean:.1f} ± {std:.1f}")
        lines.append(f"| {ROWS[row][0]} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _work(jobs: list[tuple[str, int]], epochs: int, data: dict[str, Path], out: Path, workers: int) -> None:
    """Run the jobs here (workers = 1) or in that many child processes sharing them through claims."""
    if workers > 1:
        import subprocess

        argv = [*sys.argv[1:], "--jobs=1"]  # the last --jobs wins
        children = [subprocess.Popen([sys.executable, __file__, *argv]) for _ in range(workers)]
        if any(c.wait() for c in children):
            raise SystemExit("a worker failed")
        return
    for row, seed in jobs:
        result = run_one(row, seed, epochs, data, out)
        if result is not None:
            print(f"[ablation] {row} seed {seed}: " + json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "ablation", help="folder for data and runs")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from {','.join(ROWS)}")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (the world is always seed 0)")
    ap.add_argument("--epochs", type=int, default=12, help="training epochs of every row")
    ap.add_argument("--quick", action="store_true", help="rows ce,pc2l, seed 0, 4 epochs, in OUT/quick")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes sharing the runs (1 torch thread each "
                    "is best on a small machine: OMP_NUM_THREADS=1)")
    ap.add_argument("--report", action="store_true", help="only print the table of the runs finished so far")
    ap.add_argument("--probe", action="store_true", help="print the image-text probe of every finished run")
    ap.add_argument("--negatives", action="store_true", help="print how the hard negatives differ from targets")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--size", default="small", choices=("small", "medium"),
                    help="test world size (medium: 4x the reviews, in OUT/medium; runs take ~4x longer)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    rows, seeds, epochs, out = args.rows.split(","), [int(s) for s in args.seeds.split(",")], args.epochs, args.out
    if args.quick:
        rows, seeds, epochs = ["ce", "pc2l"], [0], 4
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        ap.error(f"unknown rows {unknown}; choose from {list(ROWS)}")
    out = out.resolve() / ("" if args.size == "small" else args.size)
    data = prepare_data(out, args.size)
    runs_out = out / ("quick" if args.quick else f"e{epochs}")
    # the first two rows (the acceptance pair) get every seed first; then the other rows, seed by seed
    jobs = [(r, s) for r in rows[:2] for s in seeds] + [(r, s) for s in seeds for r in rows[2:]]
    if not args.report:
        _work(jobs, epochs, data, runs_out, args.jobs)
    results: dict[str, list[dict]] = {r: [] for r in rows}
    for row, seed in jobs:
        file = runs_out / row / f"seed{seed}" / "result.json"
        if file.exists():
            results[row].append(json.loads(file.read_text()))
    n = next((rs[0]["n"] for rs in results.values() if rs), 0)
    print(f"\n{epochs} epochs, test split (n = {n}), mean ± std over the seeds done of {seeds}, %:")
    print(table(results))
    if args.probe:
        print("\nprobe (test split, batches of 16): target j decoded on example perm(j)'s encoder states; the share "
              "of images whose best target is their own text / the text decoded on their own images (%); with PCL, "
              "the quantiles of Eq. 10's off-diagonal weights α^(1 − cos) over one test batch:")
        for row, seed in jobs:
            folder = runs_out / row / f"seed{seed}"
            if (folder / "result.json").exists():
                figures = probe_figures(folder / "log" / "run", data)
                line = (f"own text {figures['probe_own_text']:.1f}, own images {figures['probe_own_images']:.1f} "
                        f"(chance {figures['probe_chance']:.1f})" if "probe_chance" in figures else "")
                if "pcl_weight_q50" in figures:
                    line += "; Eq. 10 weights 5/50/95 %: " + "/".join(
                        f"{figures[f'pcl_weight_q{q}']:.2f}" for q in (5, 50, 95))
                if line:
                    print(f"  {row} seed {seed}: {line}")
    if args.negatives:
        print(negatives_report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
