"""The `showcase` command: `main(args=None)` runs exactly what users type.

`fit`, `validate` and `test` come from LightningCLI (YAML configs under `configs/`); the other
subcommands are plain argparse programs registered in `SUBCOMMANDS`.
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

from showcase.errors import ArgumentParser, debug_requested, run_reporting_errors
from showcase.utils import atomic_write_text, quiet_lightning

LIGHTNING_COMMANDS = {
    "fit": "train a model from a YAML config (configs/*.yaml)",
    "validate": "evaluate a model on the validation split",
    "test": "evaluate a model on the test split",
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
    "predict": ("showcase.api.predict", "add_arguments", "run", "showcases for many pairs (JSON lines), batched"),
    "metrics": ("metrics.cli", "add_arguments", "run",
                "text/CLIP/BERT metrics of prediction files (python -m metrics)"),
    "demo": ("showcase.demo", "add_arguments", "run", "run the whole pipeline on the test world"),
    "serve": ("showcase.api.server", "add_arguments", "run", "a local web viewer of a pipeline, and a JSON API"),
}


def store_width(store: str | None) -> int | None:
    """The feature width recorded in a store folder (None when there is no store there yet: the missing path is
    reported by `check_data_paths`, before anything is built)."""
    from showcase.encoders.store import read_encoder_meta

    meta = read_encoder_meta(store) if store else None
    return None if meta is None else int(meta["dim"])


def tokenizer_size(tokenizer: str | None) -> int:
    """The number of tokens of the datamodule's tokenizer (None: GPT-2's): the generator's `vocab_size`."""
    from showcase.generation.tokenizer import load_tokenizer

    try:
        return len(load_tokenizer(tokenizer))
    except Exception as error:  # jsonargparse prints this after the link's name
        raise ValueError(f"--data.tokenizer: cannot load {tokenizer!r} (a tokenizer folder or a Hub name): "
                         f"{error}") from error


def needs_entity_swap(image_loss: str) -> bool:
    """CCL's hard negatives need the datamodule's spaCy entity swapper; the other losses do not."""
    return image_loss == "ccl"


def links() -> list[tuple[str, str, Callable[[Any], Any] | None]]:
    """`(source, target, compute_fn)` of the fields two classes share, each set once, on the side that owns it. A link
    whose source or target the chosen classes lack is skipped, so one table serves all three model families."""
    from showcase.generation.module import LINKED_FROM_DATA

    return [
        ("data.init_args.store", "model.init_args.classifier.dim", store_width),
        ("data.init_args.store", "model.init_args.dpp.feature_dim", store_width),
        ("data.init_args.store", "model.init_args.authorship.feature_dim", store_width),
        ("data.init_args.store", "model.init_args.generator.feature_dim", store_width),
        *((f"data.init_args.{name}", f"model.init_args.generator.{name}", None) for name in LINKED_FROM_DATA),
        ("data.init_args.tokenizer", "model.init_args.generator.vocab_size", tokenizer_size),
        ("model.init_args.loss.image_loss", "data.init_args.entity_swap", needs_entity_swap),
    ]


def _usage() -> str:
    width = max(map(len, [*LIGHTNING_COMMANDS, *SUBCOMMANDS])) + 2
    lines = ["usage: showcase <command> [options]", "", "training and evaluation (LightningCLI):"]
    lines += [f"  {name:<{width}}{text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += ["", "pipeline steps:"]
    lines += [f"  {name:<{width}}{spec[3]}" for name, spec in SUBCOMMANDS.items()]
    lines += ["", "`showcase <command> --help` describes a command's options."]
    return "\n".join(lines)


def run_lightning(args: list[str]) -> int:
    """`fit`/`validate`/`test` through LightningCLI, plus what the package adds around them.

    * Fields two classes share are linked (`links()`): the models' feature width comes from `--data.store`, the
      generator's tokenizer, vocabulary size and input limits from `--data.*`, the entity swap from the image loss.
    * `--ckpt_path last` resumes from the newest `last.ckpt` of any earlier run under the same output folder
      (`trainer.default_root_dir`, or the logger's folder).
    * Fitting from a checkpoint refuses a feature store of another encoder than the checkpoint's (one line naming
      both); `--allow-encoder-mismatch` overrides.
    * After `fit`, the best checkpoint (the checkpoint callback's) is restored and the model exported to
      `<log dir>/model`; after `test`, the metrics go to `test_metrics.json` and the tested export's model card.
    """
    import torch
    from lightning.pytorch.cli import LightningCLI

    from showcase.fingerprint import OVERRIDE_FLAG, check_encoder
    from showcase.training import (
        LastCheckpoint,
        ResumeState,
        best_checkpoint,
        checkpoint_fingerprint,
        find_last_checkpoint,
    )

    quiet_lightning()
    allow_mismatch = OVERRIDE_FLAG in args
    args = [a for a in args if a != OVERRIDE_FLAG]

    class ShowcaseCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for source, target, compute in links():
                parser.link_arguments(source, target, compute_fn=compute, apply_on="parse")

        def before_instantiate_classes(self) -> None:
            check_data_paths(self.config.get(self.subcommand, self.config))

        def before_fit(self) -> None:
            self.trainer.callbacks.extend([ResumeState(), LastCheckpoint()])
            ckpt = self.config_init["fit"].get("ckpt_path")
            if ckpt == "last":
                logger = self.trainer.logger
                found = find_last_checkpoint(getattr(logger, "root_dir", None), self.trainer.default_root_dir)
                if found is None:
                    from showcase.errors import UserError

                    raise UserError("--ckpt_path last: no last.ckpt under this run's output folder to resume "
                                    "from; drop --ckpt_path to start afresh",
                                    path=getattr(logger, "root_dir", None) or self.trainer.default_root_dir)
                print(f"resuming from {found}")
                self.config_init["fit"]["ckpt_path"] = ckpt = str(found)
            if ckpt and Path(ckpt).is_file():
                from showcase.pretrained import training_extras

                store = training_extras(self.datamodule).get("encoder")
                expected = checkpoint_fingerprint(ckpt)
                if store and expected:
                    check_encoder(expected, _Fingerprinted(store, self.datamodule), f"the checkpoint {ckpt}",
                                  allow=allow_mismatch, path=ckpt)

        def after_fit(self) -> None:
            # the one place that chooses the exported weights: the checkpoint callback's best, else the last ones
            export = getattr(self.model, "export", None)
            if export is None:
                return
            best = best_checkpoint(self.trainer)
            if best:
                checkpoint = torch.load(best, map_location="cpu", weights_only=True)
                self.model.load_state_dict(checkpoint["state_dict"])
                self.model.on_load_checkpoint(checkpoint)  # e.g. Φ's threshold chosen on validation
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "model"
            if self.trainer.is_global_zero:
                export(folder)
                print(f"exported the trained model to {folder}")

        def after_test(self) -> None:
            # every test run leaves its metrics beside its logs (the demo's summary reads them), and in the
            # model card of the export it tested when that is beside it
            from showcase.pretrained import CONFIG_NAME, write_model_card

            metrics = {k: round(float(v), 6) for k, v in self.trainer.callback_metrics.items() if v.numel() == 1}
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            if self.trainer.is_global_zero and metrics:
                atomic_write_text(folder / "test_metrics.json", json.dumps(metrics, indent=2))
                ckpt = Path(str(self.config.get("test.ckpt_path") or ""))
                exported = ckpt.parent.parent / "model" if ckpt.name else None
                if exported is not None and (exported / CONFIG_NAME).exists():
                    write_model_card(exported, metrics)

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


class _Fingerprinted:
    """A stand-in store for `check_encoder`: a fingerprint and the folder it came from."""

    def __init__(self, fingerprint: dict, datamodule) -> None:
        self.fingerprint, self.folder = fingerprint, getattr(datamodule, "hparams", {}).get("store", "")


DATA_PATHS = {"dataset": "a dataset folder (showcase prepare)", "store": "a feature store folder (showcase features)",
              "labels": "a label file (showcase annotate)", "world": "a test world folder (showcase world)"}


def check_data_paths(config) -> None:
    """Refuse a missing `--data.dataset/store/labels/world` before anything is built or written (no empty log
    folder is left behind)."""
    from showcase.errors import UserError

    data = config.get("data") if hasattr(config, "get") else None
    init_args = data.get("init_args") if hasattr(data, "get") else None
    if not hasattr(init_args, "get"):
        return
    for key, what in DATA_PATHS.items():
        values = init_args.get(key)
        for value in values if isinstance(values, list) else [values]:
            if isinstance(value, str) and value and not Path(value).exists():
                raise UserError(f"not found: --data.{key} must be {what}", path=value)


def main(args: list[str] | None = None) -> int:
    """Entry point of the `showcase` console script (and `python -m showcase`).

    A user error (bad input, an unknown id, a missing file) is printed as one line,
    `showcase <command>: error: <where>: <what>`, and gives exit status 2; `--debug` (anywhere) or `SHOWCASE_DEBUG=1`
    shows its traceback instead. Ctrl-C gives 130.
    """
    args = list(sys.argv[1:] if args is None else args)
    debug = debug_requested(args)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = args[0], args[1:]
    if command in LIGHTNING_COMMANDS:
        return run_reporting_errors(f"showcase {command}", lambda: run_lightning(args), debug)
    if command not in SUBCOMMANDS:
        print(f"showcase: error: unknown command {command!r} (see `showcase --help`)", file=sys.stderr)
        return 2
    return run_reporting_errors(f"showcase {command}", lambda: _run_subcommand(command, rest), debug)


def _run_subcommand(command: str, rest: list[str]) -> int:
    module_name, add_name, run_name, text = SUBCOMMANDS[command]
    module = importlib.import_module(module_name)
    parser = ArgumentParser(prog=f"showcase {command}", description=text)
    getattr(module, add_name)(parser)
    return int(getattr(module, run_name)(parser.parse_args(rest)) or 0)


if __name__ == "__main__":
    sys.exit(main())
