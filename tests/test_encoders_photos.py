"""Bad photos are skipped with a reason, never fatal: decompression bombs (cheap headers claiming 20000x20000),
links out of the photo folder, empty, unreadable, truncated and non-image files, in both `features` modes."""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from showcase.encoders import FeatureStore
from showcase.encoders.decode import DEFAULT_MAX_PIXELS, PhotoSkipped, decode_photo


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A PNG whose header claims `width` x `height` RGB pixels, with one tiny compressed row: ~100 bytes on disk;
    decoding it would allocate width * height * 3 bytes (1.2 GB)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def bomb_jpeg(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A small real JPEG whose frame header is rewritten to claim `width` x `height`."""
    Image.new("RGB", (16, 16), (200, 30, 30)).save(path, quality=80)
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")  # baseline frame: length (2), precision (1), height (2), width (2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))
    return path


def small_jpeg(path: Path, seed: int = 0, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, quality=90)
    return path


# --- decode_photo -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [bomb_png, bomb_jpeg])
def test_decompression_bombs_are_refused_from_the_header(tmp_path, make, monkeypatch):
    path = make(tmp_path / "bomb.jpg")  # the name does not matter to PIL: the content does
    with pytest.raises(Image.DecompressionBombError):  # what used to abort the whole run
        Image.open(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert Image.open(path).size == (20000, 20000) and path.stat().st_size < 2000
    monkeypatch.undo()
    with pytest.raises(PhotoSkipped, match=r"claims 20000x20000 = 400,000,000 pixels, over the limit of 89,478,485"):
        decode_photo(path)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # PIL's global limit is restored


def test_pixel_limit_is_configurable(tmp_path):
    path = small_jpeg(tmp_path / "p.jpg", size=100)
    assert decode_photo(path).size == (100, 100)
    with pytest.raises(PhotoSkipped, match="100x100 = 10,000 pixels, over the limit of 9,999"):
        decode_photo(path, max_pixels=9_999)
    assert decode_photo(path, max_pixels=10_000).size == (100, 100)


def test_every_kind_of_bad_file_has_its_reason(tmp_path, monkeypatch):
    good = small_jpeg(tmp_path / "good.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "truncated.jpg").write_bytes(good.read_bytes()[:300])
    (tmp_path / "text.jpg").write_text("not an image")
    (tmp_path / "folder.jpg").mkdir()
    os.mkfifo(tmp_path / "fifo.jpg")  # opening it would block forever
    cases = {None: "no file for this photo id", tmp_path / "missing.jpg": "missing file",
             tmp_path / "empty.jpg": "empty file", tmp_path / "truncated.jpg": "cannot decode",
             tmp_path / "text.jpg": "cannot decode", tmp_path / "folder.jpg": "not a regular file",
             tmp_path / "fifo.jpg": "not a regular file"}
    for path, reason in cases.items():
        with pytest.raises(PhotoSkipped, match=reason):
            decode_photo(path)
    real_open = Image.open

    def denied(fp, *args, **kwargs):  # tests run as root, where chmod 000 does not stop reading
        if Path(fp).name == "good.jpg":
            raise PermissionError(13, "Permission denied", str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(PhotoSkipped, match="cannot read .*good.jpg: Permission denied"):
        decode_photo(good)


def test_links_must_stay_in_the_photo_folder(tmp_path):
    photos, outside = tmp_path / "photos", tmp_path / "secret"
    photos.mkdir(), outside.mkdir()
    small_jpeg(outside / "s.jpg")
    small_jpeg(photos / "inside.jpg")
    (photos / "in.jpg").symlink_to(photos / "inside.jpg")
    (photos / "out.jpg").symlink_to(outside / "s.jpg")
    assert decode_photo(photos / "in.jpg", root=photos).size == (48, 48)
    with pytest.raises(PhotoSkipped, match="out.jpg points outside the photo folder"):
        decode_photo(photos / "out.jpg", root=photos)
    assert decode_photo(photos / "out.jpg").size == (48, 48)  # no root: no check


# --- both `features` modes --------------------------------------------------------------------------------------
def _spoil(folder: Path, outside: Path, names: list[str]) -> dict[str, str]:
    """Turn the photos `names` (stems) of `folder` into bad ones; returns stem -> expected reason."""
    kinds = {"bomb": "over the limit", "link": "points outside the photo folder", "empty": "empty file",
             "truncated": "cannot decode", "text": "cannot decode"}
    expected = {}
    for stem, (kind, reason) in zip(names, kinds.items()):
        path = next(folder.glob(f"{stem}.*"))
        data = path.read_bytes()
        path.unlink()
        if kind == "bomb":
            bomb_png(path)
        elif kind == "link":
            small_jpeg(outside / path.name)
            path.symlink_to(outside / path.name)
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            path.write_bytes(data[: len(data) // 3])
        else:
            path.write_text("not an image")
        expected[stem] = reason
    return expected


def _check_store(store_dir: Path, expected: dict[str, str], encoded: int, summary: str) -> None:
    skipped = json.loads((store_dir / "skipped.json").read_text())["images"]
    assert set(skipped) == set(expected)
    for stem, reason in expected.items():
        assert reason in skipped[stem], (stem, skipped[stem])
    store = FeatureStore.open(store_dir)
    assert len(store.image_ids) == encoded and not set(expected) & set(store.image_ids)
    assert f"{len(expected)} skipped" in summary


def test_features_photos_mode_skips_bad_photos(tmp_path, capsys):
    from showcase.encoders.cli import main

    folder, outside = tmp_path / "photos", tmp_path / "outside"
    folder.mkdir(), outside.mkdir()
    for i in range(12):
        small_jpeg(folder / f"p{i:02d}.jpg", seed=i)
    expected = _spoil(folder, outside, ["p01", "p03", "p05", "p07", "p09"])
    args = ["--photos", str(folder), "--output", str(tmp_path / "s"), "--batch-size", "4", "--no-progress",
            "--workers", "1"]
    assert main(args) == 0
    _check_store(tmp_path / "s", expected, 7, capsys.readouterr().out)
    args[3] = str(tmp_path / "small")  # 48x48 = 2,304 pixels: over a limit of 2,000
    assert main([*args, "--max-pixels", "2000", "--workers", "0"]) == 0
    assert "0/12 encoded, 12 skipped" in capsys.readouterr().out
    assert "over the limit of 2,000" in FeatureStore.open(tmp_path / "small").skipped["images"]["p00"]


def test_features_dataset_mode_skips_bad_photos(dataset_dir, world_dir, tmp_path, capsys):
    from showcase.data import ShowcaseDataset
    from showcase.encoders.cli import main

    folder, outside = tmp_path / "photos", tmp_path / "outside"
    shutil.copytree(world_dir / "photos", folder)
    outside.mkdir()
    ids = sorted(ShowcaseDataset.load(dataset_dir).all_photos())
    expected = _spoil(folder, outside, ids[:5])
    args = ["--dataset", str(dataset_dir), "--photos", str(folder), "--output", str(tmp_path / "s"),
            "--batch-size", "64", "--no-progress", "--workers", "0"]
    assert main(args) == 0
    _check_store(tmp_path / "s", expected, len(ids) - 5, capsys.readouterr().out)


def test_threads_decoding_at_once_leave_pils_limit_as_it_was(tmp_path):
    """The pixel limit is lifted around each open; interleaved threads must not leave it lifted for good."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    path = tmp_path / "small.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(path)
    limit = Image.MAX_IMAGE_PIXELS
    with ThreadPoolExecutor(8) as pool:
        sizes = list(pool.map(lambda _: decode_photo(path).size, range(800)))
    assert sizes == [(8, 8)] * 800 and Image.MAX_IMAGE_PIXELS == limit
