"""The `showcase` command: `main(args=None)` runs exactly what users type.

`fit`, `validate`, `test` and `predict` come from LightningCLI (YAML configs under `configs/`); the other
subcommands are plain argparse programs registered in `SUBCOMMANDS`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from showcase.utils import atomic_write_text, quiet_lightning

LIGHTNING_COMMANDS = {
    "fit": "train a model from a YAML config (configs/*.yaml)",
    "validate": "evaluate a model on the validation split",
    "test": "evaluate a model on the test split",
    "predict": "run a model's predict step",
}
MODEL_CLASSES = (
    "Models (--model, or class_path in configs/*.yaml): showcase.distill.module.ClassifierModule (sentence-photo "
    "classifier Φ, configs/classifier.yaml), showcase.selection.module.SelectionModule (DPP image-set selector and "
    "baselines, configs/selector*.yaml), showcase.generation.module.GeneratorModule (PC²L generator, "
    "configs/generator*.yaml); their data modules: showcase.distill.datamodule.PairDataModule, "
    "showcase.selection.data.SelectionDataModule, showcase.generation.data.GeneratorDataModule. "
    "`--model.help ClassifierModule` lists one model's options.")
# name: (module, add-arguments function, run function, help)
SUBCOMMANDS = {
    "world": ("showcase.data.cli", "add_world_arguments", "run_world", "generate the test world (rendered dishes)"),
    "prepare": ("showcase.data.cli", "add_prepare_arguments", "run_prepare", "filter and split raw Google Local files"),
    "features": ("showcase.encoders.cli", "add_arguments", "run", "compute and cache CLIP features"),
    "pairs": ("showcase.distill.cli", "add_pairs_arguments", "run_pairs", "write sentence-photo pairs to label"),
    "distill": ("showcase.distill.cli", "add_distill_arguments", "run_distill", "keep sentences that describe a photo"),
    "analyze": ("showcase.distill.cli", "add_analyze_arguments", "run_analyze", "visual diversity of a dataset"),
    "annotate": ("annotation.cli", "add_arguments", "run", "label sentence-photo pairs in a browser; agreement"),
    "generate": ("showcase.api.cli", "add_arguments", "run", "the showcase of a (user, business) pair"),
    "metrics": ("metrics.cli", "add_arguments", "run", "text/CLIP/BERT metrics of prediction files (python -m metrics)"),
    "demo": ("showcase.demo", "add_arguments", "run", "run the whole pipeline on the test world"),
    "serve": ("showcase.api.server", "add_arguments", "run", "a local web viewer of a pipeline, and a JSON API"),
}


def _usage() -> str:
    width = max(map(len, [*LIGHTNING_COMMANDS, *SUBCOMMANDS])) + 2
    lines = ["usage: showcase <command> [options]", "", "training and evaluation (LightningCLI):"]
    lines += [f"  {name:<{width}}{text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += ["", "pipeline steps:"]
    lines += [f"  {name:<{width}}{spec[3]}" for name, spec in SUBCOMMANDS.items()]
    lines += ["", "`showcase <command> --help` describes a command's options."]
    return "\n".join(lines)


def run_lightning(args: list[str]) -> int:
    import torch
    from lightning.pytorch.cli import LightningCLI

    quiet_lightning()

    class ShowcaseCLI(LightningCLI):
        def after_fit(self) -> None:
            export = getattr(self.model, "export", None)
            if export is None:
                return
            best = getattr(self.trainer.checkpoint_callback, "best_model_path", "")
            if best:
                state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
                self.model.load_state_dict(state)
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "model"
            if self.trainer.is_global_zero:
                export(folder)
                print(f"exported the trained model to {folder}")

        def after_test(self) -> None:
            # every test run leaves its metrics beside its logs (the demo's summary reads them)
            metrics = {k: round(float(v), 6) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            if self.trainer.is_global_zero and metrics:
                atomic_write_text(folder / "test_metrics.json", json.dumps(metrics, indent=2))

    ShowcaseCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        args=args,
        auto_configure_optimizers=False,
        parser_kwargs={name: {"description": MODEL_CLASSES} for name in LIGHTNING_COMMANDS},
    )
    return 0


def main(args: list[str] | None = None) -> int:
    """Entry point of the `showcase` console script (and `python -m showcase`)."""
    args = list(sys.argv[1:] if args is None else args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command in LIGHTNING_COMMANDS:
        return run_lightning(args)
    if command not in SUBCOMMANDS:
        print(f"showcase: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, add_name, run_name, text = SUBCOMMANDS[command]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"showcase {command}", description=text)
    getattr(module, add_name)(parser)
    return int(getattr(module, run_name)(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
