"""CLIP resolver, feature store, Lightning extraction (resume after kill -9, skipped photos) and `showcase features`."""
from __future__ import annotations

import json
import mmap
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from showcase.encoders import FeatureStore, extract_features, load_clip
from showcase.encoders.clip import open_rgb
from showcase.errors import UserError

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmaps-restaurant-reviews"


def _same_weights(a, b) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _write_images(folder: Path, n: int, seed: int = 0) -> dict[str, Path]:
    """`n` distinct 48x48 JPEGs (coloured squares on noise)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    photos = {}
    for i in range(n):
        arr = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        arr[8:40, 8:40] = rng.integers(0, 255, 3, dtype=np.uint8)
        path = folder / f"p{i:03d}.jpg"
        Image.fromarray(arr).save(path, quality=90)
        photos[path.stem] = path
    return photos


@pytest.fixture(scope="module")
def tiny():
    return load_clip("showcase-tiny", seed=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    return _write_images(tmp_path_factory.mktemp("images"), 20)


# --- resolver ---------------------------------------------------------------------------------------------------
def test_tiny_model_is_deterministic_and_leaves_global_rng_alone(tiny):
    state = torch.get_rng_state()
    again, other = load_clip("showcase-tiny", seed=0), load_clip("showcase-tiny", seed=1)
    assert torch.equal(state, torch.get_rng_state())
    assert _same_weights(tiny, again) and not _same_weights(tiny, other)
    assert tiny.dim == 64 and tiny.spec == {"model": "showcase-tiny", "pretrained": None, "seed": 0}
    assert not tiny.has_downloadable_weights


def test_encodings_are_unit_norm_batched_and_truncated(tiny, images):
    paths = list(images.values())[:5]
    feats = tiny.encode_images(paths, batch_size=2)
    assert feats.shape == (5, 64) and feats.dtype == torch.float32
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(5))
    pil = [Image.open(p) for p in paths[:2]]  # PIL images and paths give the same features
    torch.testing.assert_close(tiny.encode_images(pil), feats[:2], atol=1e-5, rtol=0)
    assert torch.cdist(feats, feats).triu(1).max() > 0.01  # distinct images, distinct features
    texts = ["The miso ramen was rich.", "word " * 500]  # far beyond the 32-token context
    tf = tiny.encode_texts(texts)
    assert tf.shape == (2, 64) and tiny.tokenize(texts).shape == (2, 32)
    torch.testing.assert_close(tf.norm(dim=1), torch.ones(2))
    with pytest.raises(TypeError, match="list of strings"):
        tiny.encode_texts("one string")


def test_local_folder_round_trip_is_exact(tiny, images, tmp_path):
    folder = tiny.save(tmp_path / "clip")
    assert (folder / "open_clip_config.json").exists()
    paths = list(images.values())[:4]
    for name in (str(folder), f"local-dir:{folder}"):
        back = load_clip(name)
        assert _same_weights(tiny, back) and back.spec == tiny.spec
        assert torch.equal(back.encode_images(paths), tiny.encode_images(paths))
        assert torch.equal(back.encode_texts(["a b"]), tiny.encode_texts(["a b"]))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_checkpoint_file(tiny, tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pt":
        torch.save(tiny.model.state_dict(), path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(path))
    enc = load_clip("showcase-tiny", pretrained=str(path), seed=123)  # seed is irrelevant: weights come from file
    assert _same_weights(tiny, enc)
    assert enc.spec["pretrained"] == str(path.resolve()) and not enc.has_downloadable_weights


def test_bad_names_give_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown CLIP model 'ViT-Nope'"):
        load_clip("ViT-Nope")
    with pytest.raises(ValueError, match="unknown pretrained tag 'nope'.*openai"):
        load_clip("ViT-B-32", pretrained="nope")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_clip("showcase-tiny", pretrained=str(tmp_path / "missing.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="open_clip_config.json"):
        load_clip(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="not found"):
        load_clip(f"local-dir:{tmp_path / 'nowhere'}")

    import open_clip

    def offline(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.raises(RuntimeError, match=r"ViT-B-32.*openai.*--pretrained PATH"):
        load_clip("ViT-B-32", pretrained="openai")


# --- store and extraction ---------------------------------------------------------------------------------------
def test_store_round_trip(tiny, images, tmp_path):
    texts = ["The miso ramen was rich.", "Parking was easy.", "The miso ramen was rich."]
    report = extract_features(tmp_path / "s", tiny, images, texts, batch_size=4, shard_size=8, progress=False)
    assert (report.images_encoded, report.texts_total, report.shards_written) == (20, 2, 3 + 1)
    store = FeatureStore.open(tmp_path / "s")
    assert store.dim == 64 and store.encoder_spec == tiny.spec and sorted(store.image_ids) == sorted(images)
    ids = ["p013", "p002", "p019", "p002"]  # any order, repeats allowed
    torch.testing.assert_close(store.image_features(ids), tiny.encode_images([images[i] for i in ids]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(store.text_features(texts[:2]), tiny.encode_texts(texts[:2]), atol=1e-5, rtol=0)
    assert store.has_image("p000") and not store.has_image("nope") and store.has_text("Parking was easy.")
    assert isinstance(store._images.array(0).base, mmap.mmap)  # memory-mapped, not read
    with pytest.raises(KeyError, match=r"2 of 3 photos.*'nope1', 'nope2'"):
        store.image_features(["p000", "nope1", "nope2"])
    with pytest.raises(KeyError, match="1 of 1 texts"):
        store.text_features(["never encoded"])
    assert store.image_features([]).shape == (0, 64)
    assert _same_weights(store.load_encoder(), tiny)  # random weights were saved in STORE/encoder
    with pytest.raises(ValueError, match="holds features of encoder"):
        extract_features(tmp_path / "s", load_clip("showcase-tiny", seed=5), images, progress=False)


def test_missing_and_corrupt_photos_are_skipped_and_listed(tiny, images, tmp_path):
    good = images["p000"].read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "text.jpg").write_text("not an image")
    photos = {"ok": images["p000"], "truncated": tmp_path / "truncated.jpg", "text": tmp_path / "text.jpg",
              "missing": tmp_path / "missing.jpg", "unknown": None}
    report = extract_features(tmp_path / "s", tiny, photos, batch_size=2, progress=False)
    assert report.images_encoded == 1 and set(report.images_skipped) == {"truncated", "text", "missing", "unknown"}
    assert "cannot decode" in report.images_skipped["truncated"] and "missing" in report.images_skipped["missing"]
    assert set(json.loads((tmp_path / "s" / "skipped.json").read_text())["images"]) == set(report.images_skipped)
    assert "truncated" in report.summary()
    assert FeatureStore.open(tmp_path / "s").image_ids == ["ok"]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import lightning as L
    from showcase.encoders import extract_features, load_clip

    store, folder = Path(sys.argv[1]), Path(sys.argv[2])
    photos = {p.stem: p for p in sorted(folder.glob("*.jpg"))}

    class KillAfterTwoShards(L.Callback):
        def on_predict_batch_end(self, *args, **kwargs):
            if len(list((store / "images").glob("shard-*.json"))) >= 2:
                os.kill(os.getpid(), signal.SIGKILL)

    extract_features(store, load_clip("showcase-tiny", seed=0), photos, batch_size=4, shard_size=8,
                     progress=False, trainer_kwargs={"callbacks": [KillAfterTwoShards()]})
""")


def test_resume_after_kill_equals_uninterrupted_run(tiny, images, tmp_path):
    folder = next(iter(images.values())).parent
    killed = subprocess.run([sys.executable, "-c", KILLER, str(tmp_path / "resumed"), str(folder)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = sorted((tmp_path / "resumed" / "images").glob("shard-*.json"))
    assert len(done) == 2 and not (tmp_path / "resumed" / "images" / "index.sqlite").exists()
    with pytest.raises(UserError, match="unfinished"):
        FeatureStore.open(tmp_path / "resumed")
    mtimes = {p: p.stat().st_mtime_ns for p in done for p in (p, p.with_suffix(".npy"))}

    resumed = extract_features(tmp_path / "resumed", tiny, images, batch_size=4, shard_size=8, progress=False)
    full = extract_features(tmp_path / "full", tiny, images, batch_size=4, shard_size=8, progress=False)
    assert (resumed.shards_reused, resumed.shards_written) == (2, 1) and full.shards_written == 3
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # finished shards were not recomputed
    a, b = FeatureStore.open(tmp_path / "resumed"), FeatureStore.open(tmp_path / "full")
    ids = sorted(images)
    assert sorted(a.image_ids) == ids
    assert torch.equal(a.image_features(ids), b.image_features(ids))
    again = extract_features(tmp_path / "resumed", tiny, images, batch_size=4, shard_size=8, progress=False)
    assert again.shards_written == 0  # nothing left to do


# --- CLI --------------------------------------------------------------------------------------------------------
def test_cli_photos_folder(images, tmp_path, capsys):
    from showcase.encoders.cli import main

    folder = next(iter(images.values())).parent
    assert main(["--photos", str(folder), "--output", str(tmp_path / "s"), "--batch-size", "8", "--no-progress"]) == 0
    assert "20/20 encoded" in capsys.readouterr().out
    assert sorted(FeatureStore.open(tmp_path / "s").image_ids) == sorted(images)
    assert main(["--photos", str(folder), "--model", "ViT-Nope", "--output", str(tmp_path / "x")]) == 2
    assert "unknown CLIP model" in capsys.readouterr().err
    assert main(["--output", str(tmp_path / "x")]) == 2


def test_cli_dataset_on_test_world(world_dir, dataset_dir, store_dir):
    """`showcase features --dataset` (the shared `store_dir` fixture) stores every photo and text of the prepared
    world, in the right rows: photos of the same dish are nearest each other (a row mix-up would destroy this)."""
    from showcase.data import ShowcaseDataset

    ds, store = ShowcaseDataset.load(dataset_dir), FeatureStore.open(store_dir)
    assert store.encoder_spec["model"] == "showcase-tiny"
    assert set(ds.all_photos()) <= set(store.image_ids) and all(store.has_text(t) for t in ds.all_texts())
    dish = json.loads((world_dir / "world.json").read_text())["photos"]
    ids = sorted(store.image_ids)[:400]
    feats = store.image_features(ids)
    nearest = (feats @ feats.T - 2 * torch.eye(len(ids))).argmax(dim=1).tolist()
    accuracy = np.mean([dish[ids[i]] == dish[ids[j]] for i, j in enumerate(nearest)])
    assert accuracy > 0.5, accuracy  # 12 dishes: chance is about 0.1 (0.12 with rows shuffled)


# --- real photos (optional) -------------------------------------------------------------------------------------
def _real_photos() -> list[Path]:
    if not (REAL_DATA / "photos").is_dir():
        pytest.skip(f"{REAL_DATA} not present")
    return sorted((REAL_DATA / "photos").iterdir())


def test_real_photos_decode_and_a_sample_encodes(tiny, tmp_path):
    photos = _real_photos()
    for path in photos:
        assert open_rgb(path).size[0] > 0
    sample = {p.stem: p for p in photos[:: max(1, len(photos) // 128)]}
    report = extract_features(tmp_path / "s", tiny, sample, batch_size=64, progress=False)
    assert report.images_encoded == len(sample) and not report.images_skipped


@pytest.mark.slow
def test_every_real_photo_encodes(tiny, tmp_path):
    photos = {p.stem: p for p in _real_photos()}
    report = extract_features(tmp_path / "s", tiny, photos, batch_size=128, progress=False)
    assert report.images_encoded == len(photos) and not report.images_skipped
