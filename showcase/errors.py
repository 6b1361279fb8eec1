"""The one error type for bad user input.

A `UserError` is something the user can fix (a bad file, an unknown id, a wrong option). The CLI prints it as one
line, `showcase <command>: error: <where>: <what is wrong, and what to do>`, and exits 2; any other exception is a
bug and keeps its traceback. Readers raise it with the file and the line (or record) they were reading.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Any, Callable, NoReturn


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


# --- reporting at the command line's entry ------------------------------------------------------------------------
# OS errors about a file the user named (a missing input, an unwritable output folder) are user errors too; any
# other exception is a bug and keeps its traceback.
_USER_OS_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)
_USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG}
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # showcase/, annotation/ and metrics/ live here


def user_message(exc: BaseException) -> str | None:
    """The one-line message of a user error, or None when `exc` is a bug (to be shown with its traceback)."""
    if isinstance(exc, UserError):
        message = str(exc)
    elif isinstance(exc, OSError) and (isinstance(exc, _USER_OS_ERRORS) or exc.errno in _USER_ERRNOS):
        reason = (exc.strerror or type(exc).__name__).lower()
        if exc.filename is not None:
            if _inside_package(exc.filename):  # a file of the package itself: a broken install or a bug
                return None
            message = f"{exc.filename}: {reason}" + (f" (-> {exc.filename2})" if exc.filename2 else "")
        elif exc.errno in _USER_ERRNOS:  # a full or read-only disk while writing
            message = reason
        elif exc.errno is None:  # raised by hand with a message (`FileNotFoundError("x not found")`)
            message = str(exc)
        else:
            return None
    else:
        return None
    return " ".join(part.strip() for part in message.splitlines() if part.strip())


def _inside_package(filename: Any) -> bool:
    try:
        path = Path(os.fsdecode(filename)).resolve()
    except (TypeError, ValueError, OSError):
        return False
    return any(path.is_relative_to(_PACKAGE_ROOT / name) for name in ("showcase", "annotation", "metrics"))


def debug_requested(args: list[str]) -> bool:
    """Remove every `--debug` from `args` (in place); True if there was one or `SHOWCASE_DEBUG=1` is set."""
    found = "--debug" in args
    args[:] = [a for a in args if a != "--debug"]
    return found or os.environ.get("SHOWCASE_DEBUG", "") not in ("", "0")


def run_reporting_errors(prog: str, command: Callable[[], int | None], debug: bool = False) -> int:
    """Run `command()` and return its exit status; a user error is printed as one line and gives 2.

    `prog: error: <where>: <what>` goes to stderr for a `UserError` (or an OS error naming a file); Ctrl-C prints
    `prog: interrupted` and gives 130. With `debug`, both are re-raised with their traceback. Any other exception
    is a bug and propagates untouched.
    """
    try:
        return int(command() or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = user_message(exc)
        if message is None or debug:
            raise
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


class ArgumentParser(argparse.ArgumentParser):
    """`argparse.ArgumentParser` whose errors are `UserError`s: one line, no usage block, exit 2 at the entry."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value
