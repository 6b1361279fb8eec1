"""The SQLite dataset answers exactly what the previous in-memory implementation answered; writes are atomic."""
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from reference_dataset import reference_prepare

from showcase.data import ShowcaseDataset
from showcase.data.prepare import prepare
from showcase.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pair(world_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "dataset"
    ds, _ = prepare(world_dir / "filter_all_t.json", world_dir / "photos", out)
    return ds, reference_prepare(world_dir / "filter_all_t.json", world_dir / "photos")


def _same_lookups(ds, ref):
    assert len(ds) == len(ref.reviews) > 100
    assert list(ds) == ref.reviews
    assert ds.businesses == ref.businesses and ds.users == ref.users
    for s in ("train", "val", "test"):
        assert [r.review_id for r in ds.split(s)] == [r.review_id for r in ref.split(s)]
    for b in ref.businesses:
        assert ds.business_photos(b) == ref.business_photos(b)
        assert ds.business_reviewers(b) == ref.business_reviewers(b)
    for r in ref.reviews:
        assert ds.profile(ds.review(r.review_id)) == ref.profile(r)
        assert ds.profile(r) == ref.profile(r)
    for u in ref.users:
        for b in [None, "nowhere"] + [r.business_id for r in ref.reviews if r.user_id == u]:
            assert ds.user_profile(u, exclude_business=b) == ref.user_profile(u, exclude_business=b)
    assert ds.user_profile("nobody") == ref.user_profile("nobody")
    assert ds.all_texts() == ref.all_texts()
    assert ds.all_photos() == ref.all_photos()


def test_lookups_equal_the_previous_implementation(pair):
    ds, ref = pair
    _same_lookups(ds, ref)
    assert any(len(r.history) > len([o for o in ref.reviews if o.user_id == r.user_id]) - 1 for r in ref.reviews)
    with pytest.raises(KeyError, match="unknown business"):
        ds.business_photos("nowhere")
    with pytest.raises(KeyError, match="unknown business"):
        ds.business_reviewers("nowhere")
    with pytest.raises(KeyError):
        ds.review("no such review")


def test_reopened_and_rewritten_datasets_answer_the_same(pair, tmp_path):
    ds, ref = pair
    _same_lookups(ShowcaseDataset.load(ds.path.parent), ref)
    copy = ds.with_reviews(list(ds)).save(tmp_path / "copy")
    _same_lookups(ShowcaseDataset.load(copy), ref)
    conn = sqlite3.connect(copy / "dataset.sqlite")  # histories that are "the user's other reviews" stay references
    (stored,) = conn.execute("SELECT COUNT(*) FROM history WHERE text IS NOT NULL").fetchone()
    (explicit,) = conn.execute("SELECT COUNT(*) FROM history").fetchone()
    conn.close()
    assert stored < explicit / 4  # the world's listed histories hold texts only for reviews the filters dropped


def test_business_names_and_a_subset_keep_their_history(pair, tmp_path):
    ds, ref = pair
    assert ds.business_name("B000") == "Golden Dragon Noodle House"
    assert ds.business_name("nowhere") is None
    train = ds.with_reviews(ds.split("train"))
    assert train.business_name("B000") == "Golden Dragon Noodle House"
    assert len(train) == len(ref.split("train"))
    for r in ref.split("train")[:40]:
        assert train.profile(train.review(r.review_id)) == ref.profile(r)
    # distilled records: explanations and fewer photos survive a save, histories keep the copied texts
    kept = [replace(r, photos=r.photos[:1], explanation=r.sentences[:1]) for r in ds.reviews[::2]]
    out = ds.with_reviews(kept).save(tmp_path / "distilled", distill={"threshold": 0.5})
    again = ShowcaseDataset.load(out)
    assert [(r.review_id, r.photos, r.explanation, r.text) for r in again] == \
           [(r.review_id, r.photos, r.explanation, r.text) for r in kept]
    assert [[h.text for h in r.history] for r in again] == [[h.text for h in r.history] for r in kept]
    assert again.meta["distill"] == {"threshold": 0.5} and json.loads((out / "dataset.json").read_text())["distill"]


def test_in_memory_dataset_from_records():
    from showcase.data.records import HistoryItem, Review

    reviews = [Review("r1", "u", "b", "First text here.", ("p1",), history=(HistoryItem("r2", "Second text."),)),
               Review("r2", "u", "c", "Second text.", ("p2", "p3"), split="test",
                      history=(HistoryItem("r1", "First text here."),))]
    ds = ShowcaseDataset(reviews)
    assert ds.profile(ds.review("r1")).photos == ("p2", "p3")
    assert ds.review("r1").history[0].photos == ("p2", "p3")
    assert [r.review_id for r in ds.split("test")] == ["r2"]
    assert ds.user_profile("u", exclude_business="b").texts == ("Second text.",)
    with pytest.raises(ValueError, match="share a review_id"):
        ShowcaseDataset(reviews + reviews[:1])


def _jsonl(records, path):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_both_input_formats_give_the_same_dataset(world_dir, tmp_path):
    data = json.loads((world_dir / "filter_all_t.json").read_text())
    records = [dict(r) for s in ("train", "val", "test") for r in data[s]]
    for r in records:
        r.pop("history_reviews")
    by_split = {s: [r for r in records if any(r["review_id"] == o["review_id"] for o in data[s])] for s in data}
    (tmp_path / "filter_all_t.json").write_text(json.dumps(by_split, indent=1))
    _jsonl(records, tmp_path / "image_review_all.json")
    a, _ = prepare(tmp_path / "filter_all_t.json", world_dir / "photos", tmp_path / "a", keep_split=False, seed=4)
    b, _ = prepare(tmp_path / "image_review_all.json", world_dir / "photos", tmp_path / "b", seed=4)
    assert len(a) > 100 and list(a) == list(b)
    assert a.meta["statistics"] == b.meta["statistics"]
    assert a.business_name("B001") == b.business_name("B001") == "Little Dragon Kitchen"


def test_old_format_folder_says_rerun_prepare(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "reviews.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="old reviews.jsonl format: rerun `showcase prepare`"):
        ShowcaseDataset.load(tmp_path / "old")
    with pytest.raises(UserError, match="dataset folder"):
        ShowcaseDataset.load(tmp_path / "missing")


_KILL = textwrap.dedent("""
    import os, signal, sys
    from showcase.data import database, prepare as p
    where = sys.argv[4]
    if where == "finish":
        database.DatasetWriter.finish = lambda self, meta: os.kill(os.getpid(), signal.SIGKILL)
    else:
        real = os.replace
        def replace(a, b):
            if str(b) == os.path.join(sys.argv[3], where):
                os.kill(os.getpid(), signal.SIGKILL)
            real(a, b)
        p.os.replace = replace
    p.prepare(sys.argv[1], sys.argv[2], sys.argv[3])
""")


@pytest.mark.parametrize("where", ["finish", "dataset.sqlite", "dataset.json"])
def test_killed_prepare_leaves_nothing_loadable(world_dir, tmp_path, where):
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", _KILL, str(world_dir / "filter_all_t.json"),
                           str(world_dir / "photos"), str(out), where], env=env, capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    if where == "dataset.json":  # killed after the dataset file was moved in: it is complete
        assert len(ShowcaseDataset.load(out)) > 100
    else:
        assert not (out / "dataset.sqlite").exists()
        with pytest.raises(UserError):
            ShowcaseDataset.load(out)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".out.prepare-")]
    assert leftovers  # the killed run's work folder: never read as a dataset
    unfinished = next(leftovers[0].glob("*.sqlite"), None)
    if unfinished is not None and where == "finish":
        (tmp_path / "copy").mkdir()
        os.replace(leftovers[0] / "dataset.sqlite", tmp_path / "copy" / "dataset.sqlite")
        with pytest.raises(UserError, match="unfinished dataset file"):
            ShowcaseDataset.load(tmp_path / "copy")


def test_business_names_from_google_local_metadata(tmp_path):
    from PIL import Image

    (tmp_path / "photos").mkdir()
    records = []
    for i in range(4):
        Image.new("RGB", (4, 4)).save(tmp_path / "photos" / f"P{i}.jpg")
        records.append(dict(review_id=f"r{i}", user_id=f"u{i // 2}", business_id=f"g{i % 2}", rating=4,
                            review_text="The dumplings were juicy and hot.", pics=[f"P{i}"]))
    _jsonl(records, tmp_path / "reviews.json")
    meta = [{"gmap_id": "g0", "name": "Golden Dragon Noodle House"}, {"gmap_id": "elsewhere", "name": "Unreviewed"},
            {"gmap_id": "g1"}]
    _jsonl(meta, tmp_path / "meta.json")
    ds, _ = prepare(tmp_path / "reviews.json", tmp_path / "photos", tmp_path / "ds", businesses=tmp_path / "meta.json")
    assert ds.business_name("g0") == "Golden Dragon Noodle House"
    assert ds.business_name("g1") is None and ds.business_name("elsewhere") is None
    (tmp_path / "bad.json").write_bytes(b'{"gmap_id": "g0", "name": 5}\n')
    with pytest.raises(UserError, match=r"bad.json:1: field 'name'"):
        prepare(tmp_path / "reviews.json", tmp_path / "photos", tmp_path / "ds2", businesses=tmp_path / "bad.json")
