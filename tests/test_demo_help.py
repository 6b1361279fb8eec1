"""Every option of every `showcase` command has help text, and `fit --help` names the three model classes."""
import argparse
import importlib

import pytest

from showcase.cli import SUBCOMMANDS, main


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_every_option_has_help(command):
    module_name, add_name, _, _ = SUBCOMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"showcase {command}")
    getattr(importlib.import_module(module_name), add_name)(parser)
    missing = [a.option_strings or a.dest for a in parser._actions
               if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]
    assert not missing, f"showcase {command}: options without help: {missing}"


def test_fit_help_names_the_model_classes(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("ClassifierModule", "SelectionModule", "GeneratorModule"):
        assert "showcase." in out and name in out
