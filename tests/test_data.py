"""Data layer: readers (both files, both `pics` shapes), errors naming the line, filters, user split, photos."""
import json
from pathlib import Path

import pytest

from showcase.cli import main
from showcase.data import ShowcaseDataset
from showcase.data.gest import RecordError, photo_id_from, read_raw
from showcase.data.photos import PhotoStore
from showcase.data.prepare import FilterConfig, prepare, split_by_user
from showcase.data.sentences import split_sentences

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmaps-restaurant-reviews"


def _record(user="u1", business="b1", text="The spicy ramen was really good here.", pics=("AF1QipA",), **kw):
    return dict(user_id=user, business_id=business, rating=5, review_text=text, pics=list(pics), **kw)


def _photos(folder: Path, ids) -> Path:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for pid in ids:
        Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / f"{pid}.jpg")
    return folder


def test_pics_both_shapes():
    url = "https://lh5.googleusercontent.com/p/AF1QipN_x-Y=w150-h150-k-no-p"
    assert photo_id_from("AF1QipN_x-Y", "here") == "AF1QipN_x-Y"
    assert photo_id_from({"url": [url]}, "here") == "AF1QipN_x-Y"
    assert photo_id_from("AF1QipN_x-Y.jpg", "here") == "AF1QipN_x-Y"
    with pytest.raises(RecordError, match="here: field 'pics'"):
        photo_id_from({"url": []}, "here")


def test_jsonl_reader_and_error_names_line(tmp_path):
    good = _record(pics=[{"url": ["https://x/p/AF1QipA=w1"]}])
    path = tmp_path / "image_review_all.json"
    path.write_text(json.dumps(good) + "\n" + json.dumps(_record(user="u2")) + "\n")
    reviews = read_raw(path)
    assert [r.photos for r in reviews] == [["AF1QipA"], ["AF1QipA"]]
    bad = dict(good)
    del bad["business_id"]
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError, match=r"image_review_all.json:3: missing field 'business_id'"):
        read_raw(path)
    path.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(RecordError, match=r":2: invalid JSON"):
        read_raw(path)


def test_filter_all_t_reader_keeps_split_and_history(tmp_path):
    data = {
        "train": [_record(review_id="r1", history_reviews=[["r2", "Other review text here."]])],
        "test": [_record(user="u2", review_id="r2", pics=[{"url": ["https://x/p/AF1QipB=w150"]}])],
    }
    path = tmp_path / "filter_all_t.json"
    path.write_text(json.dumps(data))
    reviews = read_raw(path)
    assert [(r.review_id, r.split) for r in reviews] == [("r1", "train"), ("r2", "test")]
    assert reviews[0].history == [("r2", "Other review text here.")]
    data["test"][0]["rating"] = "five"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError, match=r"record test\[0\]: field 'rating'"):
        read_raw(path)


def test_filters_and_split_by_user(tmp_path):
    photos = _photos(tmp_path / "photos", [f"P{i}" for i in range(40)] + ["PX"])
    records = []
    for u in range(20):  # 20 users with 2 reviews each
        for k in range(2):
            records.append(_record(user=f"u{u}", business=f"b{k}", pics=[f"P{2 * u + k}"]))
    records.append(_record(user="u0", text="Too short.", pics=["PX"]))
    records.append(_record(user="u1", pics=[f"P{i}" for i in range(11)]))
    records.append(_record(user="lonely", pics=["PX"]))
    records.append(_record(user="u2", pics=["GONE"]))
    records.append(_record(user="u3", pics=["../../etc/passwd"]))
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(r) + "\n" for r in records))
    ds, report = prepare(raw, photos, tmp_path / "ds", FilterConfig(), seed=3)
    assert len(ds) == 40
    assert report.dropped["reviews under 5 words"] == 1
    assert report.dropped["reviews with more than 10 photos"] == 1
    assert report.dropped["users with fewer than 2 reviews"] == 1
    assert report.dropped["reviews whose photos are all missing"] == 2
    splits = {s: {r.user_id for r in ds.split(s)} for s in ("train", "val", "test")}
    assert not (splits["train"] & splits["val"]) and not (splits["train"] & splits["test"])
    assert not (splits["val"] & splits["test"])
    assert [len(splits[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    # the saved folder round-trips, histories default to the user's other reviews
    again = ShowcaseDataset.load(tmp_path / "ds")
    assert again.reviews == ds.reviews
    assert all(len(r.history) == 1 and r.history[0].photos for r in again)
    assert again.meta["statistics"]["kept"]["reviews"] == 40


def test_split_is_seeded():
    users = [f"u{i}" for i in range(100)]
    assert split_by_user(users, seed=1) == split_by_user(users, seed=1)
    assert split_by_user(users, seed=1) != split_by_user(users, seed=2)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "..", "", "a\\b", ".hidden"])
def test_photo_store_refuses_escape(tmp_path, bad):
    with pytest.raises(ValueError, match="unsafe photo id"):
        PhotoStore(tmp_path).path(bad)


def test_photo_store_refuses_symlink_outside(tmp_path):
    (tmp_path / "outside.jpg").write_bytes(b"x")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "P1.jpg").symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(ValueError, match="outside"):
        PhotoStore(tmp_path / "photos").path("P1")


def test_sentences():
    assert split_sentences("Great pho! The rolls were fresh... Dr. Lee liked it.\nCome back") == [
        "Great pho!", "The rolls were fresh...", "Dr. Lee liked it.", "Come back"]
    assert split_sentences("  ") == []


def test_world_is_deterministic_and_learnable_structure(tmp_path):
    a = main(["world", "--output", str(tmp_path / "a"), "--seed", "5"])
    main(["world", "--output", str(tmp_path / "b"), "--seed", "5"])
    assert a == 0
    assert (tmp_path / "a" / "filter_all_t.json").read_bytes() == (tmp_path / "b" / "filter_all_t.json").read_bytes()
    truth = json.loads((tmp_path / "a" / "world.json").read_text())
    raw = json.loads((tmp_path / "a" / "filter_all_t.json").read_text())
    records = [r for split in raw.values() for r in split]
    # every dish sentence of a review names a dish that one of its photos shows
    for r in records:
        shown = {truth["photos"].get(p if isinstance(p, str) else p["url"][0].split("/p/")[1].split("=")[0])
                 for p in r["pics"]}
        for s in truth["sentences"].get(r["review_id"], []):
            assert s["dish"] is None or (s["dish"] in shown and s["dish"] in s["text"])
    assert main(["prepare", "--input", str(tmp_path / "a" / "filter_all_t.json"), "--photos",
                 str(tmp_path / "a" / "photos"), "--output", str(tmp_path / "ds")]) == 0
    ds = ShowcaseDataset.load(tmp_path / "ds")
    pools = [len(ds.business_photos(b)) for b in ds.businesses]
    assert sum(pools) / len(pools) > 15  # pools come from many users


@pytest.mark.skipif(not REAL.exists(), reason="../shared/data/gmaps-restaurant-reviews is absent")
def test_real_reviews_split_into_sentences():
    lines = (REAL / "reviews.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) > 1000
    for line in lines:
        text = json.loads(line)["text"]
        sentences = split_sentences(text)
        assert sentences, text
        assert " ".join(sentences).split() == text.split()  # nothing lost, nothing invented
