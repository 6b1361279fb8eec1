"""The `showcase` command as users type it: help, unknown commands, and every YAML under configs/ parses."""
import subprocess
import sys
from pathlib import Path

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
