"""Small helpers shared across the package: atomic writes, JSON lines, seeding."""
from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator

from showcase.errors import UserError


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename, so readers never see half a file.

    The file gets the permissions a plain `open(path, "w")` would give (0666 less the umask), not mkstemp's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = mkstemp_like_open(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process's umask (read without changing it where /proc allows; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def mkstemp_like_open(**kwargs: Any) -> tuple[int, str]:
    """`tempfile.mkstemp(**kwargs)`, then chmod to 0666 & ~umask: the file ends up as `open(..., "w")` makes it."""
    fd, tmp = tempfile.mkstemp(**kwargs)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for each non-empty line.

    Raises:
        UserError: naming the file and line of a line that is not UTF-8, not JSON, or not a JSON object.
    """
    path = Path(path)
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise UserError(f"not UTF-8 text (byte {raw[e.start]:#04x} at column {e.start + 1}); save the file "
                                "as UTF-8", path=path, line=lineno) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"invalid JSON ({e.msg})", path=path, line=lineno) from None
            if not isinstance(record, dict):
                raise UserError(f"expected a JSON object, got {type(record).__name__}", path=path, line=lineno)
            yield lineno, record


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Lightning messages that carry no information in our CLI runs, by the start of their text. Not here on purpose (they
# say something actionable): the warning about modules left in eval mode, and the one about few dataloader workers.
HARMLESS_WARNINGS = {
    "LightningCLI's args parameter is intended": "main(args) is how the showcase CLI calls LightningCLI",
    "The number of training batches": "tiny datasets have fewer batches than log_every_n_steps",
    "Starting from v1.9.0, `tensorboardX` has been removed": "we log with CSVLogger on purpose",
    "Experiment logs directory": "`test` after `fit` writes into the run's own folder",
    "isinstance(treespec, LeafSpec)": "a deprecation raised inside Lightning itself",
}
HARMLESS_LOGS = {
    "litlogger": "advertising tip",
    "litmodels": "advertising tip",
    "will override existing callbacks passed to Trainer": "our modules add their checkpoint callback on purpose",
}


def quiet_lightning() -> None:
    """Silence the Lightning messages listed in `HARMLESS_WARNINGS` and `HARMLESS_LOGS`, by name, and only those."""
    import logging
    import re
    import warnings

    class _Harmless(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = record.getMessage()
            return not any(text in message for text in HARMLESS_LOGS)

    for name in ("lightning.pytorch", "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Harmless) for f in logger.filters):
            logger.addFilter(_Harmless())
    for text in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=rf".*{re.escape(text)}")
