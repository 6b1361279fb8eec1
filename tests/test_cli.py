"""The `showcase` command as users type it: help, unknown commands, and every YAML under configs/ parses."""
import json
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import yaml

from showcase.cli import LIGHTNING_COMMANDS, SUBCOMMANDS, main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in [*LIGHTNING_COMMANDS, *SUBCOMMANDS])


def test_unknown_command(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0 and "usage: showcase " + name in capsys.readouterr().out


def test_python_dash_m_and_console_script():
    out = subprocess.run([sys.executable, "-m", "showcase", "--help"], capture_output=True, text=True, check=True)
    assert "fit" in out.stdout and "demo" in out.stdout


def test_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"classifier", "selector", "generator", "generator_tiny"} <= names


@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_parses(config, capsys):
    """`showcase fit --config X --print_config` resolves every class path and argument of the YAML.

    An overlay (a YAML without `data`, e.g. a Table 4 row) is layered after its family's base config.
    """
    args = ["--config", str(config)]
    if "data" not in yaml.safe_load(config.read_text()):
        args = ["--config", str(config.with_name(config.stem.split("_")[0] + ".yaml")), *args]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args, "--print_config"])
    assert exit_.value.code in (0, None)
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["model"]["class_path"] and resolved["data"]["class_path"]


def _exported_config(folder: Path) -> dict:
    return json.loads((next(folder.rglob("model/config.json"))).read_text())


def test_linked_fields_follow_the_data(dataset_dir, store_dir, world_dir, tmp_path):
    """One value, set on the side that owns it: the models' width comes from the store, the generator's tokenizer,
    vocabulary and limits from `--data.*`; a field of the authorship model is settable from the command line."""
    from showcase.encoders import FeatureStore
    from showcase.generation.tokenizer import load_tokenizer

    width = FeatureStore.open(store_dir).dim
    fast = ["--data.dataset", str(dataset_dir), "--data.store", str(store_dir), "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false"]
    runs = {
        "generator": ["--config", "configs/generator_tiny.yaml", "--data.max_length=20", "--data.max_images=3"],
        "selector": ["--config", "configs/selector.yaml", "--config", "configs/selector_elvis.yaml",
                     "--model.authorship.dropout=0.5"],
        "classifier": ["--config", "configs/classifier.yaml", "--data.world", str(world_dir)],
    }
    for name, args in runs.items():
        assert main(["fit", *args, *fast, f"--trainer.default_root_dir={tmp_path / name}"]) == 0, name
    generator = _exported_config(tmp_path / "generator")["config"]
    assert (generator["feature_dim"], generator["max_length"], generator["max_images"]) == (width, 20, 3)
    assert generator["vocab_size"] == len(load_tokenizer(None))
    selector = _exported_config(tmp_path / "selector")["config"]
    assert (selector["feature_dim"], selector["dropout"]) == (width, 0.5) and selector["users"]
    assert _exported_config(tmp_path / "classifier")["config"]["dim"] == width


def test_a_width_the_store_lacks_is_refused_by_name():
    from showcase.distill import ClassifierConfig, ClassifierModule
    from showcase.selection.module import SelectionModule

    class Store64(L.LightningDataModule):
        feature_dim = dim = 64

    for module, field in ((ClassifierModule(ClassifierConfig(dim=32)), "classifier.dim"),
                          (SelectionModule(), "dpp.feature_dim")):
        trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
        with pytest.raises(ValueError, match=rf"{field} = (32|512) but the feature store is 64 wide: set {field}"):
            trainer.fit(module, datamodule=Store64())
