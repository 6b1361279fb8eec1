"""Every bad input to `prepare` raises one `UserError` naming the file and the line or record.

The output is untouched.
"""
import json
import re
from pathlib import Path

import pytest

from showcase.data.prepare import prepare
from showcase.errors import UserError

TEXT = "The spicy ramen was really good here."


def _record(i, user=None, **kw):
    rec = dict(review_id=f"r{i}", user_id=user or f"u{i // 2}", business_id=f"b{i % 3}", rating=5, review_text=TEXT,
               pics=[f"P{i}"])
    rec.update(kw)
    return rec


def _lines(*records) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in records)


GOOD = [_record(i) for i in range(4)]


def _split_file(train, indent=1) -> bytes:
    return json.dumps({"train": train, "val": [], "test": []}, indent=indent).encode()


def _line_of(data: bytes, needle: bytes) -> int:
    return data[: data.index(needle)].count(b"\n") + 1


PRETTY = _split_file([_record(i) for i in range(4)])

# (name, file name, content, expected location, expected message)
CASES = [
    ("non-UTF-8 byte", "in.jsonl", _lines(GOOD[0], b'{"user_id": "u\xff"}', *GOOD[2:]), ":2", "not valid UTF-8"),
    ("truncated line", "in.jsonl", _lines(*GOOD[:2]) + b'{"user_id": "u1", "busin', ":3", "invalid JSON"),
    ("missing field", "in.jsonl", _lines(GOOD[0], {k: v for k, v in GOOD[1].items() if k != "business_id"}),
     ":2", "missing field 'business_id'"),
    ("rating NaN", "in.jsonl", _lines(GOOD[0], b'{"user_id": "u", "business_id": "b", "rating": NaN}'), ":2",
     "invalid JSON"),
    ("rating true", "in.jsonl", _lines(GOOD[0], _record(1, rating=True)), ":2", "'rating': expected a finite number"),
    ("rating string", "in.jsonl", _lines(_record(0, rating="5")), ":1", "'rating': expected a finite number"),
    ("rating overflow", "in.jsonl", _lines(GOOD[0], json.dumps(_record(1)).replace('"rating": 5', '"rating": 1e999')
                                          .encode()), ":2", "'rating': expected a finite number"),
    ("duplicate review_id", "in.jsonl", _lines(*GOOD[:3], _record(3, review_id="r1")), ":4",
     r"duplicate review_id 'r1' \(first at .*in.jsonl:2\)"),
    ("empty object", "in.jsonl", _lines(GOOD[0], {}), ":2", "missing field 'user_id'"),
    ("not an object", "in.jsonl", _lines(GOOD[0], [1, 2]), ":2", "expected a JSON object"),
    ("deep nesting", "in.jsonl", _lines(GOOD[0], b"[" * 100000 + b"]" * 100000), ":2", "invalid JSON"),
    ("null id", "in.jsonl", _lines(_record(0, user_id=None)), ":1", "missing field 'user_id'"),
    ("empty id", "in.jsonl", _lines(_record(0, business_id=" ")), ":1", "'business_id': empty"),
    ("pics not a list", "in.jsonl", _lines(_record(0, pics="P0")), ":1", "'pics': expected list"),
    ("bad pics entry", "in.jsonl", _lines(_record(0, pics=[{"url": []}])), ":1", "field 'pics'"),
    ("bad history", "in.jsonl", _lines(_record(0, history_reviews=[["r1"]])), ":1", r"history_reviews\[0\]"),
    ("review_id object", "in.jsonl", _lines(_record(0, review_id={"a": 1})), ":1", "'review_id': expected"),
    ("empty file", "in.jsonl", b"", "", "empty input file"),
    ("blank file", "in.jsonl", b"\n  \n", "", "empty input file"),
    ("nothing left", "in.jsonl", _lines(*[_record(i, review_text="Too short.") for i in range(4)]), "",
     r"no review left after the filters \(4 reviews under 5 words\)"),
    ("split file: non-UTF-8", "filter_all_t.json", PRETTY.replace(b'"r2"', b'"r\xff2"'),
     f":{_line_of(PRETTY, b'r2')}", "not valid UTF-8"),
    ("split file: truncated", "filter_all_t.json", PRETTY[: len(PRETTY) // 2], ":", "truncated JSON"),
    ("split file: syntax", "filter_all_t.json", PRETTY.replace(b'"b1",', b'"b1" oops', 1),
     f":{_line_of(PRETTY, b'b1')}", "invalid JSON"),
    ("split file: NaN", "filter_all_t.json", PRETTY.replace(b'"rating": 5', b'"rating": NaN', 1),
     f":{_line_of(PRETTY, b'rating')}", "invalid JSON"),
    ("split file: not a list", "filter_all_t.json", b'{"train": 5}', ":1", "'train': expected a list of records"),
    ("split file: empty record", "filter_all_t.json", b'{"train": [{}]}', r": record train\[0\]",
     "missing field 'user_id'"),
    ("split file: scalar record", "filter_all_t.json", b'{"train": [1]}', r": record train\[0\]",
     "expected a JSON object"),
    ("split file: no records", "filter_all_t.json", b'{"train": [], "test": []}', ":1", "no records"),
    ("split file: rating true", "filter_all_t.json", _split_file([_record(0), _record(1, rating=True)]),
     r": record train\[1\]", "'rating': expected a finite number"),
]


@pytest.fixture
def photos(tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        Image.new("RGB", (4, 4)).save(folder / f"P{i}.jpg")
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run_expecting_error(tmp_path: Path, photos: Path, name: str, content: bytes) -> UserError:
    """Run prepare on `content`; it must raise UserError and leave an existing output folder as it was."""
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "keep.txt").write_text("an earlier dataset")
    before, siblings = _snapshot(out), sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UserError) as info:
        prepare(path, photos, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == siblings  # no work folder left behind
    return info.value


@pytest.mark.parametrize("name, file, content, where, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_file_and_line(tmp_path, photos, name, file, content, where, message):
    error = run_expecting_error(tmp_path, photos, file, content)
    text = str(error)
    assert "\n" not in text.strip() or "invalid JSON" in text  # one line (JSON parsers may quote context)
    assert re.search(re.escape(str(tmp_path / file)) + where, text), text
    assert re.search(message, text), text


def test_good_input_passes(tmp_path, photos):
    ds, _ = prepare(tmp_path.joinpath("in.jsonl").write_bytes(_lines(*GOOD)) and tmp_path / "in.jsonl", photos,
                    tmp_path / "out")
    assert len(ds) == 4
    ds, _ = prepare(tmp_path.joinpath("s.json").write_bytes(PRETTY) and tmp_path / "s.json", photos, tmp_path / "o2")
    assert len(ds) == 4


def test_missing_input_and_photo_folder(tmp_path, photos):
    with pytest.raises(UserError, match="input file not found"):
        prepare(tmp_path / "nope.json", photos, tmp_path / "out")
    (tmp_path / "in.jsonl").write_bytes(_lines(*GOOD))
    with pytest.raises(UserError, match="photo folder not found"):
        prepare(tmp_path / "in.jsonl", tmp_path / "no-photos", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "out").write_text("a file")
    with pytest.raises(UserError, match="not a folder"):
        prepare(tmp_path / "in.jsonl", photos, tmp_path / "out")
