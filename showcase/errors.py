"""The one error type for bad user input.

A `UserError` is something the user can fix (a bad file, an unknown id, a wrong option). The CLI prints it as one
line, `showcase <command>: error: <where>: <what is wrong, and what to do>`, and exits 2; any other exception is a
bug and keeps its traceback. Readers raise it with the file and the line (or record) they were reading.
"""
from __future__ import annotations

import os


class UserError(Exception):
    """Bad input the user can fix.

    Args:
        message: what is wrong, and what to do about it.
        path: the file (or folder) at fault, when there is one.
        line: the line number (1-based) or a record label (e.g. ``"record 12"``) inside `path`.

    Example:
        >>> str(UserError("rating must be a finite number, got NaN", path="in.json", line=3))
        'in.json:3: rating must be a finite number, got NaN'
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None, line: int | str | None = None):
        self.message = message
        self.path = None if path is None else os.fspath(path)
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else str(self.line)
        return f"{where}: {self.message}" if where else self.message
