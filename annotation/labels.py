"""Hand labels of (sentence, photo) pairs: the pairs to label, the annotator's append-only label log, its lock.

File formats (JSON lines, UTF-8):

* **Pairs** (`--pairs`): the labelled-pairs format of `showcase.distill.pairs` (read with its `read_pairs`), one
  pair per line, `{"review_id", "sentence", "photo_id", ...}`; labels in it are ignored. A pair is identified by
  the triple `(review_id, sentence, photo_id)`.
* **Labels** (`--labels`): one file per annotator, an append-only event log in the same format, one event a line::

      {"review_id": ..., "sentence": ..., "photo_id": ..., "label": 1 | 0 | null, "annotator": "alice",
       "event": "label" | "skip" | "undo", "time": "2024-01-01T12:00:00+00:00"}

  A `label` event carries 1 (the sentence describes the photo) or 0 (it does not); a `skip` or `undo` event carries
  `label: null`. The **effective label of a pair is its latest event**: a skip leaves it skipped (seen, not usable),
  an undo leaves it unlabelled (shown again). `showcase.distill.pairs.read_pairs` reads these files as they are
  (null = no label); `labeled_pairs` gives the effective yes/no labels as `LabeledPair`s. A legacy `"label": "skip"`
  is accepted on read.

Every event is appended and `fsync`ed before the server answers, so a crash or a closed tab loses nothing. A
process killed mid-write can leave a torn last line: readers ignore it (with a warning) and the writer truncates
it before its next append. A torn line anywhere else is real corruption and raises, naming file and line.

A label file is written by one server at a time: `LabelLog.open` takes `<labels>.lock` with `O_CREAT | O_EXCL`
and refuses to start when another live process holds it; a file holding another annotator's events is refused too.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

if TYPE_CHECKING:
    from showcase.distill.pairs import LabeledPair

YES, NO, SKIP = 1, 0, "skip"
_LABEL_NAMES = {"yes": YES, "no": NO, "skip": SKIP}


class PairKey(NamedTuple):
    """Identity of a (sentence, photo) pair."""

    review_id: str
    sentence: str
    photo_id: str


def _key(record: dict[str, Any], where: str) -> PairKey:
    missing = [f for f in PairKey._fields if not isinstance(record.get(f), str)]
    if missing:
        raise ValueError(f"{where}: missing or non-string field(s) {', '.join(missing)}")
    return PairKey(record["review_id"], record["sentence"], record["photo_id"])


def normalise_label(value: Any, where: str = "label") -> int | str | None:
    """Map a stored or submitted label to 1, 0, "skip" or None (withdrawn).

    Accepts 1/0, true/false, "yes"/"no"/"skip" and null.

    Raises:
        ValueError: for anything else, naming `where`.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.lower() in _LABEL_NAMES:
        return _LABEL_NAMES[value.lower()]
    raise ValueError(f"{where}: label must be 1, 0, 'skip' or null, got {value!r}")


def _iter_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """`(line_number, record)` per non-empty line, tolerating only a torn (unparsable, unterminated) last line."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        lineno, is_last = i + 1, i == len(lines) - 1  # the last piece has no trailing newline
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if is_last:
                warnings.warn(f"{path}:{lineno}: ignoring a torn last line (interrupted write)", stacklevel=3)
                return
            raise ValueError(f"{path}:{lineno}: invalid JSON line ({e})") from e
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def read_pairs(path: str | Path) -> list[PairKey]:
    """The pairs of a pairs file (`showcase.distill.pairs` format), in file order, without duplicates.

    Raises:
        FileNotFoundError: when the file does not exist.
        ValueError: on a malformed line (naming file, line and field) or an empty file.
    """
    from showcase.distill.pairs import read_pairs as read_pair_records  # the format's owner

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} not found")
    pairs = list(dict.fromkeys(PairKey(*p.key) for p in read_pair_records(path)))
    if not pairs:
        raise ValueError(f"{path}: no pairs to label")
    return pairs


@dataclass(frozen=True)
class LabelEvent:
    """One line of a label log; `label` is 1, 0, "skip", or None (an undo: the pair is unlabelled again)."""

    key: PairKey
    label: int | str | None
    annotator: str
    time: str = ""

    @property
    def event(self) -> str:
        return "undo" if self.label is None else "skip" if self.label == SKIP else "label"

    def to_json(self) -> dict[str, Any]:
        return {**self.key._asdict(), "label": self.label if self.event == "label" else None,
                "annotator": self.annotator, "event": self.event, "time": self.time}


def read_events(path: str | Path) -> list[LabelEvent]:
    """Every event of a label log in file order (a missing file has none; a torn last line is ignored)."""
    path = Path(path)
    if not path.exists():
        return []
    events = []
    for lineno, record in _iter_lines(path):
        where = f"{path}:{lineno}"
        event = record.get("event", "label")
        if event not in ("label", "skip", "undo"):
            raise ValueError(f"{where}: event must be 'label', 'skip' or 'undo', got {event!r}")
        if event == "label":
            label = normalise_label(record.get("label"), where)  # null: a pair not labelled (pairs-file style)
        else:
            label = SKIP if event == "skip" else None
        events.append(LabelEvent(_key(record, where), label, str(record.get("annotator") or ""),
                                 str(record.get("time") or "")))
    return events


def effective_labels(events: Iterable[LabelEvent]) -> dict[PairKey, int | str]:
    """Label of each labelled pair (1, 0 or "skip"): its latest event.

    Pairs whose latest event is an undo are absent.
    """
    latest: dict[PairKey, LabelEvent] = {}
    for e in events:
        latest[e.key] = e
    return {k: e.label for k, e in latest.items() if e.label is not None}


def read_labels(path: str | Path) -> tuple[str, dict[PairKey, int | str]]:
    """`(annotator, effective labels)` of one annotator's label file.

    Raises:
        ValueError: when the file holds events of several annotators.
    """
    events = read_events(path)
    names = {e.annotator for e in events}
    if len(names) > 1:
        raise ValueError(f"{path}: holds labels of several annotators {sorted(names)}; use one file per annotator")
    return (names.pop() if names else "") or Path(path).stem, effective_labels(events)


def labeled_pairs(path: str | Path) -> list["LabeledPair"]:
    """The effective yes/no labels of a label file as `showcase.distill.pairs.LabeledPair`s (skips left out).

    Feed several annotators' lists to `showcase.distill.pairs.aggregate_labels` for a majority vote.
    """
    from showcase.distill.pairs import LabeledPair

    annotator, labels = read_labels(path)
    return [LabeledPair(*k, label=v, annotator=annotator) for k, v in labels.items() if v in (YES, NO)]


class LabelFileLocked(RuntimeError):
    """Another live process is writing this label file."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Lock:
    """`<path>.lock`, created with O_EXCL; a lock left by a dead process on this host is taken over."""

    def __init__(self, path: Path, annotator: str):
        self.path = path.with_name(path.name + ".lock")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "annotator": annotator,
                "since": _now()}
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                stale = (holder.get("host") == info["host"] and isinstance(holder.get("pid"), int)
                         and not _pid_alive(holder["pid"]))
                if attempt == 0 and stale:
                    self.path.unlink(missing_ok=True)
                    continue
                raise LabelFileLocked(
                    f"{path} is already being labelled (lock {self.path} held by "
                    f"{holder.get('annotator', '?')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')} "
                    f"since {holder.get('since', '?')}). Stop that server, or delete the lock file if it is "
                    "stale. Each annotator needs their own --labels file.") from None
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
            return

    def _holder(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class LabelLog:
    """One annotator's label file, opened for appending (use `LabelLog.open`, and `close` or a `with` block).

    Keeps the replayed state in memory: `labels` (effective label per pair) and the undo stack (labelled pairs in
    the order their surviving labels were given).
    """

    def __init__(self, path: Path, annotator: str, events: list[LabelEvent], lock: _Lock):
        self.path, self.annotator, self._lock = path, annotator, lock
        self.labels: dict[PairKey, int | str] = {}
        self._stack: list[PairKey] = []
        for e in events:
            self._apply(e)
        self._file = path.open("ab")

    @classmethod
    def open(cls, path: str | Path, annotator: str) -> "LabelLog":
        """Lock `path` for `annotator`, replay its events and repair a torn last line.

        Raises:
            LabelFileLocked: another live server writes this file.
            ValueError: empty annotator name, corrupt file, or the file holds another annotator's labels.
        """
        path = Path(path)
        if not annotator or not annotator.strip():
            raise ValueError("an annotator name is required (--annotator NAME)")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _Lock(path, annotator)
        try:
            events = read_events(path)
            others = sorted({e.annotator for e in events} - {annotator})
            if others:
                raise ValueError(f"{path} holds labels of {others}, not {annotator!r}: two annotators never share "
                                 "a label file; give each their own --labels file")
            _repair_tail(path)
            return cls(path, annotator, events, lock)
        except BaseException:
            lock.release()
            raise

    def _apply(self, e: LabelEvent) -> None:
        if e.key in self.labels:
            self._stack.remove(e.key)
            del self.labels[e.key]
        if e.label is not None:
            self.labels[e.key] = e.label
            self._stack.append(e.key)

    def _append(self, e: LabelEvent) -> None:
        self._file.write((json.dumps(e.to_json(), ensure_ascii=False) + "\n").encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._apply(e)

    def label(self, key: PairKey, label: Any) -> None:
        """Append (and fsync) a label event: 1/"yes", 0/"no" or "skip"."""
        value = normalise_label(label)
        if value is None:
            raise ValueError("use undo() to withdraw a label")
        self._append(LabelEvent(key, value, self.annotator, _now()))

    def undo(self) -> PairKey | None:
        """Withdraw the most recent surviving label (appends an undo event); returns its pair, or None if none."""
        if not self._stack:
            return None
        key = self._stack[-1]
        self._append(LabelEvent(key, None, self.annotator, _now()))
        return key

    @property
    def last(self) -> PairKey | None:
        """The pair `undo` would withdraw."""
        return self._stack[-1] if self._stack else None

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            self._lock.release()

    def __enter__(self) -> "LabelLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _repair_tail(path: Path) -> None:
    """Make the file end with a newline: drop a torn (unparsable) last line, terminate a complete one."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    try:
        json.loads(data[cut:].decode("utf-8"))
        tail_ok = True
    except (UnicodeDecodeError, json.JSONDecodeError):
        tail_ok = False
    with path.open("r+b") as f:
        if tail_ok:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        else:
            f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
