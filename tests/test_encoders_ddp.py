"""Extraction on several ranks: each rank encodes and writes whole shards of its own (disjoint), and the merged
store equals a one-process store bit for bit. The fast test runs the ranks one after the other in separate folders
(as on machines without a shared file system) and merges them as documented; the slow one runs 2 gloo processes."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning as L
import pytest
import torch

from showcase.encoders import FeatureStore, extract_features, load_clip
from tests.test_encoders import _write_images

TEXTS = [f"review number {i}: the ramen was {'rich' if i % 2 else 'thin'}" for i in range(30)]
ARGS = {"batch_size": 4, "shard_size": 8, "progress": False}


@pytest.fixture(scope="module")
def tiny():
    return load_clip("showcase-tiny", seed=0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    return _write_images(tmp_path_factory.mktemp("photos"), 20)


@pytest.fixture(scope="module")
def one_process(tiny, photos, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("single") / "store"
    extract_features(folder, tiny, photos, TEXTS, **ARGS)
    return folder


def assert_same_store(a: Path, b: Path) -> None:
    """Same shard files (bytes), same ids in the same order, same features."""
    for ns in ("images", "texts"):
        names = sorted(p.name for p in (a / ns).glob("shard-*"))
        assert names == sorted(p.name for p in (b / ns).glob("shard-*")) and names
        for name in names:
            assert (a / ns / name).read_bytes() == (b / ns / name).read_bytes(), name
    sa, sb = FeatureStore.open(a), FeatureStore.open(b)
    assert sa.image_ids == sb.image_ids and sa.texts == sb.texts
    assert torch.equal(sa.image_features(sa.image_ids), sb.image_features(sb.image_ids))
    assert torch.equal(sa.text_features(sa.texts), sb.text_features(sb.texts))


def _as_rank(monkeypatch, rank: int, world: int) -> None:
    monkeypatch.setattr(L.Trainer, "global_rank", property(lambda self: rank))
    monkeypatch.setattr(L.Trainer, "world_size", property(lambda self: world))


def test_ranks_write_disjoint_shards_that_merge_into_the_one_process_store(tiny, photos, one_process, tmp_path,
                                                                           monkeypatch):
    written = {}
    for rank in range(3):  # three "machines", each with its own folder
        _as_rank(monkeypatch, rank, 3)
        extract_features(tmp_path / f"rank{rank}", tiny, photos, TEXTS, **ARGS)
        written[rank] = {f"{p.parent.name}/{p.stem}" for p in (tmp_path / f"rank{rank}").glob("*/shard-*.npy")}
    monkeypatch.undo()
    assert all(written.values()) and sum(map(len, written.values())) == len(set().union(*written.values()))
    assert written[1] == {"images/shard-00001", "texts/shard-00001"}  # every 3rd shard: 1, 4, ...

    merged = tmp_path / "rank0"  # the merge: copy every rank's shards into one store, run the same call again
    for rank in (1, 2):
        for path in (tmp_path / f"rank{rank}").glob("*/shard-*"):
            shutil.copy2(path, merged / path.parent.name / path.name)
    report = extract_features(merged, tiny, photos, TEXTS, **ARGS)
    assert report.shards_written == 0 and report.images_encoded == 20 and report.texts_encoded == 30
    assert_same_store(merged, one_process)


def test_a_killed_rank_resumes_to_the_one_process_store(tiny, photos, one_process, tmp_path, monkeypatch):
    """Rank 0 of 2 finished its shards (0, 2, ...) and rank 1 none: the finished shards are not a prefix. One
    process resumes the same call: it cuts the missing shards exactly as planned, so the store is the same."""
    _as_rank(monkeypatch, 0, 2)
    extract_features(tmp_path / "s", tiny, photos, TEXTS, **ARGS)
    monkeypatch.undo()
    assert {p.stem for p in (tmp_path / "s" / "images").glob("shard-*.npy")} == {"shard-00000", "shard-00002"}
    report = extract_features(tmp_path / "s", tiny, photos, TEXTS, **ARGS)
    assert (report.shards_reused, report.shards_written) == (2 + 2, 1 + 2)
    assert_same_store(tmp_path / "s", one_process)
    more = {**photos, "extra": next(iter(photos.values()))}  # other keys: new shards after the last
    report = extract_features(tmp_path / "s", tiny, more, TEXTS, **ARGS)
    assert report.shards_written == 1 and FeatureStore.open(tmp_path / "s").has_image("extra")
    assert (tmp_path / "s" / "images" / "shard-00003.npy").exists()


RANKS = textwrap.dedent("""
    import sys
    from pathlib import Path
    import lightning as L
    from showcase.encoders import extract_features, load_clip

    store, folder, texts = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split("|")
    photos = {p.stem: p for p in sorted(folder.glob("*.jpg"))}

    class WhoEncodes(L.Callback):
        def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
            with open(store.parent / f"rank{trainer.global_rank}.txt", "a") as f:
                f.write(f"{batch['kind']}/{batch['shard']}\\n")

    extract_features(store, load_clip("showcase-tiny", seed=0), photos, texts, batch_size=4, shard_size=8,
                     progress=False, trainer_kwargs={"accelerator": "cpu", "devices": 2, "strategy": "ddp",
                                                     "callbacks": [WhoEncodes()]})
""")


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process(photos, one_process, tmp_path):
    script = tmp_path / "ranks.py"  # Lightning's DDP launcher re-runs the script for rank 1: it must be a file
    script.write_text(RANKS)
    folder = next(iter(photos.values())).parent
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "store"), str(folder), "|".join(TEXTS)],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "distributed_backend=gloo" in run.stdout + run.stderr
    shards = {rank: set((tmp_path / f"rank{rank}.txt").read_text().split()) for rank in (0, 1)}
    assert shards[0] and shards[1] and not shards[0] & shards[1]  # disjoint, both ranks worked
    assert shards[0] | shards[1] == {f"{p.parent.name}/{p.stem}" for p in (tmp_path / "store").glob("*/shard-*.npy")}
    assert_same_store(tmp_path / "store", one_process)
