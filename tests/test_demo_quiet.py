"""Quiet output: the harmless Lightning messages are silenced by name, and the actionable ones still show."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import logging, sys, warnings
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
from showcase.utils import quiet_lightning
quiet_lightning()
warnings.warn("LightningCLI's args parameter is intended to run from within Python like if it were ...")
warnings.warn("The number of training batches (23) is smaller than the logging interval Trainer(log_every_n_steps=50).")
warnings.warn("Starting from v1.9.0, `tensorboardX` has been removed as a dependency of the "
              "`lightning.pytorch` package")
logging.getLogger("lightning.pytorch.utilities.rank_zero").info("💡 Tip: try installing [litmodels](https://pypi.org)")
warnings.warn("Found 2 module(s) in eval mode at the start of training. This may lead to unexpected behavior.")
warnings.warn("The 'train_dataloader' does not have many workers which may be a bottleneck.")
logging.getLogger("lightning.pytorch.utilities.rank_zero").info("GPU available: False, used: False")
"""


def test_harmless_messages_go_and_actionable_ones_stay():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    err = done.stderr
    for gone in ("args parameter", "number of training batches", "tensorboardX", "litmodels"):
        assert gone not in err
    for kept in ("in eval mode", "may be a bottleneck", "GPU available"):
        assert kept in err
