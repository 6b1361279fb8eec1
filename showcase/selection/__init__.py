"""Personalized image-set selection: a learned DPP with fast greedy MAP inference, and its baselines."""
from showcase.selection.dpp import build_kernel, dpp_log_likelihood, greedy_map

__all__ = ["build_kernel", "dpp_log_likelihood", "greedy_map"]
