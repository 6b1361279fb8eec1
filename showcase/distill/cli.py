"""`showcase pairs`, `showcase distill` and `showcase analyze`: argument builders and runners for `showcase.cli`."""
from showcase.distill.distillation import add_arguments as add_distill_arguments
from showcase.distill.distillation import run as run_distill
from showcase.distill.diversity import add_arguments as add_analyze_arguments
from showcase.distill.diversity import run as run_analyze
from showcase.distill.pairs import add_arguments as add_pairs_arguments
from showcase.distill.pairs import run as run_pairs

__all__ = ["add_analyze_arguments", "add_distill_arguments", "add_pairs_arguments", "run_analyze", "run_distill",
           "run_pairs"]
