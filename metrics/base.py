"""A minimal torchmetrics-style ``Metric`` base: named states, ``update``/``compute``/``reset``, DDP sync.

States are plain Python values (numbers, tensors, lists of anything, including strings), so text metrics can keep
tokens. Each state has a reduction (``dist_reduce_fx``) used when ranks are merged:

* ``"sum"``: values are added (numbers, tensors, lists of numbers element-wise);
* ``"cat"``: lists are concatenated in rank order.

When ``torch.distributed`` is initialised with more than one rank, :meth:`Metric.compute` gathers every state with
``torch.distributed.all_gather_object`` (works with the gloo and nccl backends), reduces it, computes on the merged
states and restores the local ones, so ``update`` may be called again afterwards (torchmetrics' ``sync_on_compute``).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional

import torch

REDUCTIONS = ("sum", "cat")
GatherFn = Callable[[Any], List[Any]]


def _all_gather_object(value: Any, group: Any = None) -> List[Any]:
    world = torch.distributed.get_world_size(group)
    out: List[Any] = [None] * world
    torch.distributed.all_gather_object(out, value, group=group)
    return out


def _reduce(values: List[Any], how: str) -> Any:
    if how == "cat":
        merged: List[Any] = []
        for v in values:
            merged.extend(v)
        return merged
    total = values[0]
    for v in values[1:]:
        if isinstance(total, list):
            total = [a + b for a, b in zip(total, v)]
        else:
            total = total + v
    return total


class Metric:
    """Base class: subclasses call :meth:`add_state` in ``__init__``, implement ``update`` and ``_compute``.

    Args:
        process_group: the ``torch.distributed`` group to sync over (default: the world).
        dist_sync_fn: replaces ``all_gather_object`` (a function ``value -> list of every rank's value``); tests and
            custom launchers use it. When given, it is used even without an initialised process group.
    """

    def __init__(self, process_group: Any = None, dist_sync_fn: Optional[GatherFn] = None) -> None:
        self._defaults: dict = {}
        self._reductions: dict = {}
        self.process_group = process_group
        self.dist_sync_fn = dist_sync_fn

    # ---------------------------------------------------------------- states
    def add_state(self, name: str, default: Any, dist_reduce_fx: str) -> None:
        """Register a state ``name`` with its initial value and its reduction (``"sum"`` or ``"cat"``)."""
        if dist_reduce_fx not in REDUCTIONS:
            raise ValueError(f"dist_reduce_fx must be one of {REDUCTIONS}, got {dist_reduce_fx!r}")
        if dist_reduce_fx == "cat" and not isinstance(default, list):
            raise ValueError(f"state {name!r}: a 'cat' state must default to a list")
        self._defaults[name] = default
        self._reductions[name] = dist_reduce_fx
        setattr(self, name, copy.deepcopy(default))

    def reset(self) -> None:
        """Return every state to its default."""
        for name, default in self._defaults.items():
            setattr(self, name, copy.deepcopy(default))

    def state_dict(self) -> dict:
        """The current (local) states by name."""
        return {name: getattr(self, name) for name in self._defaults}

    # ---------------------------------------------------------------- API
    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> Any:
        """Merge the states of every rank (when distributed) and compute the metric on them."""
        with self.synced():
            return self._compute()

    # ---------------------------------------------------------------- DDP
    def _gather_fn(self) -> Optional[GatherFn]:
        if self.dist_sync_fn is not None:
            return self.dist_sync_fn
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size(self.process_group) > 1:
            return lambda value: _all_gather_object(value, self.process_group)
        return None

    def sync(self) -> dict:
        """Return the states merged over every rank (the local states when not distributed)."""
        local = self.state_dict()
        gather = self._gather_fn()
        if gather is None:
            return local
        return {name: _reduce(gather(value), self._reductions[name]) for name, value in local.items()}

    @contextmanager
    def synced(self) -> Iterator[None]:
        """Temporarily replace the local states with the merged ones."""
        local = self.state_dict()
        merged = self.sync()
        for name, value in merged.items():
            setattr(self, name, value)
        try:
            yield
        finally:
            for name, value in local.items():
                setattr(self, name, value)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanMetric(Metric):
    """A metric that is the mean of per-sample scores: states ``total`` and ``count`` (both summed over ranks).

    Subclasses implement ``_scores(*args, **kwargs) -> list of floats`` (one score per sample of the batch).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("total", 0.0, "sum")
        self.add_state("count", 0, "sum")

    def _scores(self, *args: Any, **kwargs: Any) -> List[float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Score a batch of samples and add them to the running mean."""
        scores = [float(s) for s in self._scores(*args, **kwargs)]
        self.total += sum(scores)
        self.count += len(scores)

    def _compute(self) -> float:
        return self.total / self.count if self.count else 0.0
