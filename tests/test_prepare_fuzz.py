"""Seeded fuzzing of `prepare`: random byte and structure mutations of a valid small Gest file either prepare or
raise `UserError` — never another exception — and a failed run never touches the output folder."""
import json
import os
import random
import time
from pathlib import Path

import pytest

from showcase.data.prepare import prepare
from showcase.errors import UserError

RUNS = 300
SEED = int(os.environ.get("SHOWCASE_FUZZ_SEED", "1234"))  # explore other seeds by setting it
VALUES = [None, True, False, 0, -1, 5, 2.5, 1e308, "", " ", "x" * 300, "caf\u00e9 \u2603", [], {}, [1, [2]],
          {"url": []},
          {"url": ["https://x/p/P1=w1"]}, ["P1", "P2"], [["r1", "text"]], [["r1"]], "../../etc/passwd", "P1.jpg"]
FIELDS = ["review_id", "user_id", "business_id", "rating", "review_text", "pics", "history_reviews", "business_name"]


def _records(rng: random.Random) -> list[dict]:
    out = []
    for i in range(10):
        pics = [f"P{rng.randrange(12)}" for _ in range(rng.randint(1, 3))]
        if i % 2:
            pics = [{"url": [f"https://lh5.googleusercontent.com/p/{p}=w150-h150"]} for p in pics]
        out.append(dict(review_id=f"r{i}", user_id=f"u{i % 4}", business_id=f"b{i % 3}", rating=rng.choice([4, 5]),
                        review_text="The noodles were hot and the broth was rich.", pics=pics))
    return out


def _structure(rng: random.Random, records: list[dict]) -> list:
    records = [dict(r) for r in records]
    for _ in range(rng.randint(1, 3)):
        r = rng.choice([r for r in records if isinstance(r, dict)] or [{}])
        op = rng.randrange(5)
        if op == 0:
            r.pop(rng.choice(FIELDS), None)
        elif op == 1:
            r[rng.choice(FIELDS)] = rng.choice(VALUES)
        elif op == 2:
            records.append(dict(r))  # a duplicate review_id
        elif op == 3:
            records[rng.randrange(len(records))] = rng.choice(VALUES)
        else:
            r["rating"] = rng.choice([float("nan"), float("inf"), "5", True, None, 3])
    return records


def _benign(rng: random.Random, records: list[dict]) -> list[dict]:
    """Changes a valid file may have: unknown fields, no rating, a missing photo file, names, reordering."""
    records = [dict(r) for r in records]
    for r in records:
        op = rng.randrange(5)
        if op == 0:
            r["extra"] = rng.choice(VALUES)
        elif op == 1:
            r["rating"] = None
        elif op == 2:
            r["pics"] = r["pics"] + ["P11"]
        elif op == 3:
            r["business_name"] = rng.choice(["Golden Dragon", "caf\u00e9 \u2603", ""])
    rng.shuffle(records)
    return records


def _encode(rng: random.Random, records: list, split_file: bool) -> bytes:
    if split_file:
        return json.dumps({"train": records[:6], "val": records[6:8], "test": records[8:]}, indent=1).encode()
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _bytes(rng: random.Random, data: bytes) -> bytes:
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op, at = rng.randrange(5), rng.randrange(max(len(data), 1))
        if op == 0 and data:
            data[at] = rng.randrange(256)
        elif op == 1:
            del data[at: at + rng.randint(1, 20)]
        elif op == 2:
            data[at:at] = rng.choice([b"\xff", b"\x00", b"{", b'"', b"]", b"\n", b"\xc3", b"NaN", b"\xef\xbb\xbf"])
        elif op == 3:
            del data[at:]
        else:
            data[at:at] = bytes(data[at: at + rng.randint(1, 200)])
    return bytes(data)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    for i in range(10):  # P10, P11 are missing on purpose
        Image.new("RGB", (4, 4)).save(folder / f"P{i}.jpg")
    return folder


def test_fuzz_prepare(tmp_path, photos):
    rng = random.Random(SEED)
    outcomes = {"ok": 0, "user error": 0}
    start = time.perf_counter()
    for run in range(RUNS):
        split_file = run % 2 == 1
        records = _records(rng)
        kind = rng.randrange(4)
        if kind == 3:
            data = _encode(rng, _benign(rng, records), split_file)
        elif kind == 0:
            data = _bytes(rng, _encode(rng, records, split_file))
        elif kind == 1:
            data = _encode(rng, _structure(rng, records), split_file)
        else:
            data = _bytes(rng, _encode(rng, _structure(rng, records), split_file))
        run_dir = tmp_path / f"run{run}"
        run_dir.mkdir()
        (run_dir / "input.json").write_bytes(data)
        out = run_dir / "out"
        out.mkdir()
        (out / "keep.txt").write_text("an earlier dataset")
        before = _snapshot(out)
        try:
            prepare(run_dir / "input.json", photos, out)
            outcomes["ok"] += 1
        except UserError as e:
            outcomes["user error"] += 1
            assert str(run_dir / "input.json") in str(e), (run, str(e))
            assert _snapshot(out) == before, run
            assert sorted(p.name for p in run_dir.iterdir()) == ["input.json", "out"], run
        except Exception as e:  # noqa: BLE001 - the point of the test
            pytest.fail(f"run {run} (seed {SEED}): {type(e).__name__}: {e}")
    print(f"fuzz: {outcomes} in {time.perf_counter() - start:.1f} s")
    assert outcomes["ok"] > RUNS / 20 and outcomes["user error"] > RUNS / 4
