"""Readers for the Google Local restaurant files (the paper's Gest) as published by the McAuley lab.

Two layouts are read:
- `filter_all_t.json`: one JSON object `{"train": [...], "val": [...], "test": [...]}`; each record has `user_id`,
  `business_id`, `rating`, `review_text`, `pics`, `history_reviews` (a list of `[review_id, text]`).
- `image_review_all.json`: JSON lines with `business_id`, `user_id`, `rating`, `review_text`, `pics`.

`pics` is either a list of photo ids (`"AF1QipN…"`) or a list of `{"url": ["https://…/p/AF1Qip…=w150-h150…"]}`.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from showcase.data.records import SPLITS

_URL_ID = re.compile(r"/p/([A-Za-z0-9_\-]+)")


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
    extra: dict[str, Any] = field(default_factory=dict)


class RecordError(ValueError):
    """A malformed record: the message names the file, the line or record index, and the field."""


def photo_id_from(value: Any, where: str) -> str:
    """The photo id of one `pics` entry: an id string, a file name, a URL, or `{"url": [url, ...]}`."""
    if isinstance(value, dict):
        urls = value.get("url")
        if isinstance(urls, str):
            urls = [urls]
        if not urls or not isinstance(urls, list) or not isinstance(urls[0], str):
            raise RecordError(f"{where}: field 'pics': expected {{'url': [...]}} with a URL, got {value!r}")
        value = urls[0]
    if not isinstance(value, str) or not value.strip():
        raise RecordError(f"{where}: field 'pics': expected a photo id or URL, got {value!r}")
    value = value.strip()
    if "://" in value:
        m = _URL_ID.search(value)
        if not m:
            raise RecordError(f"{where}: field 'pics': cannot find a photo id in URL {value!r}")
        return m.group(1)
    for ext in (".jpg", ".jpeg", ".png", ".webp"):
        if value.lower().endswith(ext):
            return value[: -len(ext)]
    return value


def _require(record: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(record, dict):
        raise RecordError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if name not in record or record[name] is None:
        raise RecordError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(f"{where}: field {name!r}: expected {expected}, got {type(value).__name__}")
    return value


def parse_record(record: Any, where: str, split: str | None = None, index: int = 0) -> RawReview:
    """Validate one raw record and turn it into a `RawReview` (errors name `where` and the field)."""
    user_id = str(_require(record, "user_id", (str, int), where))
    business_id = str(_require(record, "business_id", (str, int), where))
    text = _require(record, "review_text", str, where)
    pics = _require(record, "pics", list, where)
    rating = record.get("rating")
    if rating is not None and not isinstance(rating, (int, float)):
        raise RecordError(f"{where}: field 'rating': expected a number, got {type(rating).__name__}")
    history = None
    if "history_reviews" in record and record["history_reviews"] is not None:
        history = []
        for k, item in enumerate(_require(record, "history_reviews", list, where)):
            if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], str)):
                raise RecordError(f"{where}: field 'history_reviews[{k}]': expected [review_id, text], got {item!r}")
            history.append((str(item[0]), item[1]))
    review_id = str(record.get("review_id") or f"{user_id}|{business_id}|{index}")
    return RawReview(
        review_id=review_id,
        user_id=user_id,
        business_id=business_id,
        text=text,
        photos=[photo_id_from(p, where) for p in pics],
        rating=float(rating) if rating is not None else None,
        split=split,
        history=history,
        where=where,
    )


def read_filter_all_t(path: str | Path) -> list[RawReview]:
    """Read `filter_all_t.json` (`{"train": [...], "val": [...], "test": [...]}`); keeps each record's split."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(data, dict) or not any(s in data for s in SPLITS):
        raise RecordError(f"{path}: expected an object with keys {SPLITS}")
    reviews = []
    for split in SPLITS:
        records = data.get(split, [])
        if not isinstance(records, list):
            raise RecordError(f"{path}: field {split!r}: expected a list of records")
        for i, record in enumerate(records):
            reviews.append(parse_record(record, f"{path}: record {split}[{i}]", split, i))
    return reviews


def iter_image_review_jsonl(path: str | Path) -> Iterator[RawReview]:
    """Read `image_review_all.json` (JSON lines); errors name the line."""
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{where}: invalid JSON ({e.msg})") from e
            yield parse_record(record, where, None, lineno)


def read_raw(path: str | Path) -> list[RawReview]:
    """Read either layout, chosen by content: a JSON object with splits, or JSON lines."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    with path.open(encoding="utf-8") as f:
        head = f.read(4096).lstrip()
    if head.startswith("{") and re.match(r'\{\s*"(train|val|test)"', head):
        return read_filter_all_t(path)
    return list(iter_image_review_jsonl(path))
