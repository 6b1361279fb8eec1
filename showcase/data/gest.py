"""Streaming readers for the Google Local restaurant files (the paper's Gest) as published by the McAuley lab.

Two layouts are read, one record at a time (memory does not grow with the file):
- `filter_all_t.json`: one JSON object `{"train": [...], "val": [...], "test": [...]}`; each record has `user_id`,
  `business_id`, `rating`, `review_text`, `pics`, `history_reviews` (a list of `[review_id, text]`). Read with the
  incremental parser `ijson`.
- `image_review_all.json`: JSON lines with `business_id`, `user_id`, `rating`, `review_text`, `pics`.

`pics` is either a list of photo ids (`"AF1QipN…"`) or a list of `{"url": ["https://…/p/AF1Qip…=w150-h150…"]}`.
An optional `business_name` names the business. Every bad input raises `RecordError` (a `UserError`) naming the
file and the line or record: bytes that are not UTF-8, truncated or invalid JSON, missing fields, wrong types
(ratings must be finite numbers).
"""
from __future__ import annotations

import codecs
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import ijson

from showcase.data.records import SPLITS
from showcase.errors import UserError

_URL_ID = re.compile(r"/p/([A-Za-z0-9_\-]+)")
_SPLIT_OBJECT = re.compile(rb'^\s*\{\s*"(train|val|test)"')


@dataclass
class RawReview:
    """A review as read from a raw file, before filtering. `where` locates it for error messages."""

    review_id: str
    user_id: str
    business_id: str
    text: str
    photos: list[str]
    rating: float | None
    split: str | None
    history: list[tuple[str, str]] | None
    where: str = ""
    business_name: str | None = None


class RecordError(UserError):
    """A malformed input file or record: the message names the file, the line or record index, and the field."""


def photo_id_from(value: Any, where: str) -> str:
    """The photo id of one `pics` entry: an id string, a file name, a URL, or `{"url": [url, ...]}`."""
    if isinstance(value, dict):
        urls = value.get("url")
        if isinstance(urls, str):
            urls = [urls]
        if not urls or not isinstance(urls, list) or not isinstance(urls[0], str):
            raise RecordError(f"{where}: field 'pics': expected {{'url': [...]}} with a URL, got {value!r:.80}")
        value = urls[0]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{where}: field 'pics': expected a photo id or URL, got {value!r:.80}")
    value = value.strip()
    if "://" in value:
        m = _URL_ID.search(value)
        if not m:
            raise RecordError(f"{where}: field 'pics': cannot find a photo id in URL {value!r:.80}")
        return m.group(1)
    for ext in (".jpg", ".jpeg", ".png", ".webp"):
        if value.lower().endswith(ext):
            return value[: -len(ext)]
    return value


def _type_name(value: Any) -> str:
    return "null" if value is None else "boolean" if isinstance(value, bool) else type(value).__name__


def _require(record: dict, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in record or record[name] is None:
        raise RecordError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(f"{where}: field {name!r}: expected {expected}, got {_type_name(value)}")
    return value


def _identifier(record: dict, name: str, where: str) -> str:
    value = str(_require(record, name, (str, int), where))
    if not value.strip():
        raise RecordError(f"{where}: field {name!r}: empty")
    return value


def parse_record(record: Any, where: str, split: str | None = None, index: int = 0) -> RawReview:
    """Validate one raw record and turn it into a `RawReview` (errors name `where` and the field)."""
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object (a review record), got {_type_name(record)}")
    user_id = _identifier(record, "user_id", where)
    business_id = _identifier(record, "business_id", where)
    text = _require(record, "review_text", str, where)
    pics = _require(record, "pics", list, where)
    rating = record.get("rating")
    if rating is not None:
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not math.isfinite(rating):
            raise RecordError(f"{where}: field 'rating': expected a finite number, got {rating!r:.40}")
        rating = float(rating)
    history = None
    if record.get("history_reviews") is not None:
        history = []
        for k, item in enumerate(_require(record, "history_reviews", list, where)):
            if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], str)
                    and isinstance(item[0], (str, int)) and not isinstance(item[0], bool)):
                raise RecordError(f"{where}: field 'history_reviews[{k}]': expected [review_id, text], "
                                  f"got {item!r:.80}")
            history.append((str(item[0]), item[1]))
    review_id = record.get("review_id")
    if review_id is None or review_id == "":
        review_id = f"{user_id}|{business_id}|{index}"
    elif isinstance(review_id, bool) or not isinstance(review_id, (str, int)):
        raise RecordError(f"{where}: field 'review_id': expected str/int, got {_type_name(review_id)}")
    name = record.get("business_name")
    if name is not None and not isinstance(name, str):
        raise RecordError(f"{where}: field 'business_name': expected str, got {_type_name(name)}")
    return RawReview(
        review_id=str(review_id),
        user_id=user_id,
        business_id=business_id,
        text=text,
        photos=[photo_id_from(p, where) for p in pics],
        rating=rating,
        split=split,
        history=history,
        where=where,
        business_name=name or None,
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def iter_image_review_jsonl(path: str | Path) -> Iterator[RawReview]:
    """Read `image_review_all.json` (JSON lines) record by record; errors name the line."""
    for lineno, record in _json_lines(Path(path)):
        yield parse_record(record, f"{path}:{lineno}", None, lineno)


class _Utf8Reader:
    """A binary file checked as UTF-8 while it is read; counts lines so errors can name one."""

    def __init__(self, f: BinaryIO, path: Path):
        self.f, self.path = f, path
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.lines = 1

    def read(self, n: int = -1) -> bytes:
        chunk = self.f.read(n)
        try:
            self.decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as e:
            line = self.lines + chunk[: max(e.start, 0)].count(b"\n")
            raise RecordError("not valid UTF-8: save the file as UTF-8", path=self.path, line=line) from None
        self.lines += chunk.count(b"\n")
        return chunk


def _syntax_error_line(path: Path) -> int | None:
    """The line of the first JSON syntax error of `path` (pure-Python parse; used on the error path only)."""
    from ijson.backends import python as slow

    with path.open("rb") as f:
        try:
            for _ in slow.parse(f):
                pass
        except (ijson.JSONError, ValueError) as e:  # the pure-Python backend also raises json's own errors
            m = re.search(r" at (\d+)$", str(e))
            if m is None:
                return None
            offset, line = int(m.group(1)), 1
            with path.open(encoding="utf-8", errors="replace") as text:
                while offset > 0:
                    block = text.read(min(offset, 1 << 20))
                    if not block:
                        break
                    line += block.count("\n")
                    offset -= len(block)
            return line
    return None


def iter_filter_all_t(path: str | Path) -> Iterator[RawReview]:
    """Read `filter_all_t.json` (`{"train": [...], "val": [...], "test": [...]}`) record by record, keeping splits."""
    path = Path(path)
    count = {s: 0 for s in SPLITS}
    current = "the top level"
    with path.open("rb") as f:
        reader = _Utf8Reader(f, path)
        try:
            builder, depth, split = None, 0, None
            for prefix, event, value in ijson.parse(reader, use_float=True):
                if builder is not None:
                    builder.event(event, value)
                    if event in ("start_map", "start_array"):
                        depth += 1
                    elif event in ("end_map", "end_array"):
                        depth -= 1
                    if depth == 0:
                        yield parse_record(builder.value, f"{path}: record {current}", split, count[split] - 1)
                        builder = None
                    continue
                if prefix == "" and event not in ("start_map", "map_key", "end_map"):
                    raise RecordError(f"expected an object with keys {SPLITS}, got {event.replace('start_', '')}",
                                      path=path, line=1)
                if prefix in SPLITS and event not in ("start_array", "end_array"):
                    raise RecordError(f"field {prefix!r}: expected a list of records", path=path, line=reader.lines)
                split = prefix[: -len(".item")] if prefix.endswith(".item") else None
                if split in SPLITS and prefix == f"{split}.item":
                    current = f"{split}[{count[split]}]"
                    count[split] += 1
                    if event in ("start_map", "start_array"):
                        builder, depth = ijson.ObjectBuilder(), 1
                        builder.event(event, value)
                    else:
                        yield parse_record(value, f"{path}: record {current}", split, count[split] - 1)
        except ijson.JSONError as e:
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            if "premature EOF" in message or isinstance(e, ijson.IncompleteJSONError) and "EOF" in message:
                raise RecordError(f"truncated JSON (the file ends inside record {current})", path=path,
                                  line=reader.lines) from None
            line = _syntax_error_line(path)
            raise RecordError(f"invalid JSON near record {current} ({message})", path=path,
                              line=line if line is not None else f"near line {reader.lines}") from None
    if not any(count.values()):
        raise RecordError(f"no records: expected an object with keys {SPLITS} holding lists of reviews",
                          path=path, line=1)


def iter_raw(path: str | Path) -> Iterator[RawReview]:
    """Read either layout record by record, chosen by content: a JSON object with splits, or JSON lines.

    Raises:
        RecordError: for any bad input (naming the file and the line or record), including an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise RecordError("input file not found", path=path)
    with path.open("rb") as f:
        head = f.read(4096)
    if not head.strip():
        raise RecordError("empty input file: expected JSON lines or a filter_all_t.json object", path=path)
    if _SPLIT_OBJECT.match(head.removeprefix(codecs.BOM_UTF8)):
        return iter_filter_all_t(path)
    return iter_image_review_jsonl(path)


def read_raw(path: str | Path) -> list[RawReview]:
    """Every record of either layout as a list (small files and tests; `prepare` streams with `iter_raw`)."""
    return list(iter_raw(path))


def iter_business_names(path: str | Path) -> Iterator[tuple[str, str]]:
    """(business id, name) pairs from Google Local metadata (JSON lines with `gmap_id` or `business_id`, `name`)."""
    for record in _json_lines(Path(path)):
        lineno, data = record
        where = f"{path}:{lineno}"
        if not isinstance(data, dict):
            raise RecordError(f"{where}: expected a JSON object, got {_type_name(data)}")
        key = "business_id" if "business_id" in data else "gmap_id"
        business_id = _identifier(data, key, where)
        name = data.get("name")
        if name is not None:
            if not isinstance(name, str):
                raise RecordError(f"{where}: field 'name': expected str, got {_type_name(name)}")
            yield business_id, name


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                if line.strip():
                    yield lineno, json.loads(line, parse_constant=_reject_constant)
            except UnicodeDecodeError:
                raise RecordError("not valid UTF-8: save the file as UTF-8", path=path, line=lineno) from None
            except RecursionError:
                raise RecordError("invalid JSON (nested too deeply)", path=path, line=lineno) from None
            except ValueError as e:
                raise RecordError(f"invalid JSON ({e})", path=path, line=lineno) from None
