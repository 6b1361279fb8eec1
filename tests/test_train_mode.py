"""Every trained module is in train mode when fitting starts, whatever built it, and in eval mode for validation and
test. Lightning 2.x keeps each module's mode at the start of fit (it never calls `.train()`), and
`GPT2LMHeadModel.from_pretrained` returns a model in eval mode: without a guard, a pretrained decoder would
fine-tune with its dropout off."""
import json
import warnings
from pathlib import Path

import pytest
import torch

from showcase.cli import main
from showcase.utils import quiet_lightning

EVAL_MODE_WARNING = "module(s) in eval mode at the start of training"


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory) -> Path:
    """A tiny GPT-2 (GPT-2's vocabulary, default dropout 0.1) written by transformers' `save_pretrained`."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("gpt2-tiny")
    GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128)).save_pretrained(folder)
    return folder


def test_generator_with_pretrained_decoder_is_built_in_train_mode(gpt2_folder):
    from showcase.generation.model import ExplanationGenerator, GeneratorConfig

    gen = ExplanationGenerator(GeneratorConfig(feature_dim=16, decoder=str(gpt2_folder), max_length=16))
    assert [name for name, m in gen.named_modules() if not m.training] == []


def probe_args(path: Path, eval_before_fit: bool = False) -> list[str]:
    probe = {"class_path": "mode_probe.ModeProbe", "init_args": {"path": str(path), "eval_before_fit": eval_before_fit}}
    return [f"--trainer.callbacks+={json.dumps(probe)}"]


def run(args: list[str]) -> list[str]:
    """`showcase.cli.main(args)`; returns the messages of the warnings it raised (all of them, filters aside from
    those `main` itself installs)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(args) == 0
    return [str(w.message) for w in caught]


def test_pretrained_decoder_trains_with_dropout(gpt2_folder, dataset_dir, store_dir, tmp_path, one_thread):
    common = ["--config", "configs/generator_tiny.yaml", "--model.init_args.generator.decoder", str(gpt2_folder),
              "--data.dataset", str(dataset_dir), "--data.store", str(store_dir),
              f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
              "--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1",
              "--trainer.limit_test_batches=1", *probe_args(tmp_path / "modes.json")]
    messages = run(["fit", *common])
    run(["test", *common, "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt")])
    modes = json.loads((tmp_path / "modes.json").read_text())
    assert modes["train"] == [], f"{len(modes['train'])} modules in eval mode at the first training batch"
    first, second = modes["train_losses"]
    assert abs(first - second) > 1e-4, "same batch, same weights, same loss: dropout did not run"
    assert modes["validate"] == [] and modes["test"] == []
    assert not [m for m in messages if EVAL_MODE_WARNING in m]


@pytest.mark.parametrize("config", ["classifier.yaml", "selector.yaml", "generator_tiny.yaml"])
def test_every_module_trains_in_train_mode(config, dataset_dir, store_dir, tmp_path, one_thread):
    """Whatever left the modules in eval mode (a loaded checkpoint, a frozen part, an exported folder), each
    LightningModule's own `on_fit_start` puts them back in train mode; validation still runs in eval mode."""
    args = ["fit", "--config", f"configs/{config}", "--data.dataset", str(dataset_dir), "--data.store",
            str(store_dir), f"--trainer.default_root_dir={tmp_path}", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false", "--trainer.max_epochs=1", "--trainer.limit_train_batches=1",
            "--trainer.limit_val_batches=1",
            *probe_args(tmp_path / "modes.json", eval_before_fit=True)]
    messages = run(args)
    modes = json.loads((tmp_path / "modes.json").read_text())
    assert modes["train"] == [] and modes["validate"] == []
    assert not [m for m in messages if EVAL_MODE_WARNING in m]


def test_quiet_lightning_keeps_warnings_of_real_problems():
    """The CLI's filters silence harmless warnings by name; Lightning's warnings about modules in eval mode and
    about a dataloader bottleneck point at real problems and must stay visible."""
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    real_problems = [  # (module that raises it, message), as Lightning 2.6 words them
        ("lightning.pytorch.loops.fit_loop",
         ("Found 248 module(s) in eval mode at the start of training. This may lead to unexpected behavior during "
          "training. If this is intentional, you can ignore this warning.")),
        ("lightning.pytorch.trainer.connectors.data_connector",
         ("The 'train_dataloader' does not have many workers which may be a bottleneck. Consider increasing the "
          "value of the `num_workers` argument` to `num_workers=15` in the `DataLoader` to improve performance.")),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_lightning()
        for module, message in real_problems:
            warnings.warn_explicit(message, PossibleUserWarning, f"{module.replace('.', '/')}.py", 1, module=module)
    assert [str(w.message) for w in caught] == [message for _, message in real_problems]
