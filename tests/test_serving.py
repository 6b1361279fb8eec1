"""Serving joins: bounded selection equals the exact one on small pools.

Also encoder fingerprints, resume, the input layer.
"""
import json

import pytest
import torch

from showcase.cli import main
from showcase.inputs import InputLimits, limit_history, pad_rows
from showcase.selection import build_kernel, build_selector, greedy_map, select_photos
from showcase.selection.inference import group_relevance, select_by_quality

pytestmark = pytest.mark.usefixtures("one_thread")


# --- the input layer -----------------------------------------------------------------------------------------------
def test_history_keeps_the_most_recent_items_with_features():
    texts = [f"t{i}" for i in range(6)]
    photos = ["p0", "gone", "p1", "p2", "p3"]
    history = limit_history(texts, photos, lambda p: p != "gone", InputLimits(history_texts=2, history_photos=3))
    assert history.texts == ["t4", "t5"]  # the last two, oldest first
    assert history.photos == ["p1", "p2", "p3"]  # photos without features are dropped before the limit
    assert limit_history(texts, photos, lambda p: True, InputLimits(history_texts=0, history_photos=0)).empty
    feats, mask = pad_rows([torch.ones(2, 3), torch.zeros(0, 3)], 3)
    assert feats.shape == (2, 2, 3) and mask.tolist() == [[True, True], [False, False]]


# --- bounded requests ------------------------------------------------------------------------------------------------
def _requests(d: int, pool_sizes, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n = len(pool_sizes)
    return ([torch.randn(3, d, generator=g) for _ in range(n)], [torch.randn(4, d, generator=g) for _ in range(n)],
            [torch.randn(p, d, generator=g) for p in pool_sizes])


@pytest.mark.parametrize("name", ["dpp", "centroid"])
def test_capped_selection_equals_exact_when_the_pool_fits(name):
    torch.manual_seed(0)
    selector = build_selector(name, feature_dim=16).eval()
    texts, images, pools = _requests(16, [5, 30, 12])
    exact = select_photos(selector, texts, images, pools, k=3, max_candidates=None)
    capped = select_photos(selector, texts, images, pools, k=3, max_candidates=30)
    assert torch.equal(exact.indices, capped.indices) and torch.equal(exact.relevance, capped.relevance)


def test_capped_selection_picks_among_the_most_relevant():
    torch.manual_seed(0)
    selector = build_selector("dpp", feature_dim=16).eval()
    texts, images, pools = _requests(16, [400])
    capped = select_photos(selector, texts, images, pools, k=3, max_candidates=20)
    top = set(capped.relevance[0].topk(20).indices.tolist())
    assert set(capped.indices[0].tolist()) <= top and len(set(capped.indices[0].tolist())) == 3
    # the DPP on the top 20 is exactly greedy MAP on those 20
    order = capped.relevance[0].topk(20).indices
    sub = build_kernel(capped.relevance[0][order], selector.norm.images(pools[0])[order], jitter=selector.config.jitter)
    assert [int(order[j]) for j in greedy_map(sub, 3).tolist()] == capped.indices[0].tolist()


def test_group_relevance_is_the_sum_over_reviewers_without_a_kernel(monkeypatch):
    import showcase.selection.inference as inference

    torch.manual_seed(0)
    selector = build_selector("dpp", feature_dim=16).eval()
    texts, images, _ = _requests(16, [1] * 9)
    pool = torch.randn(25, 16)
    reference = select_photos(selector, texts, images, [pool] * 9, k=1, max_candidates=None).relevance.sum(0)
    monkeypatch.setattr(inference, "CHUNK_ELEMENTS", 2 * 25 * 16)  # 2 reviewers per chunk
    monkeypatch.setattr(inference, "build_kernel", None)  # no kernel may be built for the ranking
    torch.testing.assert_close(group_relevance(selector, texts, images, pool), reference)


def test_cold_selection_equals_the_uncapped_dpp_when_the_pool_fits():
    g = torch.Generator().manual_seed(1)
    quality, pool = torch.rand(30, generator=g) + 0.1, torch.randn(30, 8, generator=g)
    exact = [j for j in greedy_map(build_kernel(quality, pool), 3).tolist() if j >= 0]
    assert select_by_quality(quality, pool, 3, max_candidates=30) == exact
    assert set(select_by_quality(quality, pool, 3, max_candidates=10)) <= set(quality.topk(10).indices.tolist())


# --- encoder fingerprints --------------------------------------------------------------------------------------------
def test_store_fingerprint_recorded_and_derived_for_old_stores(store_dir, tmp_path):
    import shutil

    from showcase.encoders import FeatureStore

    store = FeatureStore.open(store_dir)
    assert store.fingerprint == {"model": "showcase-tiny", "pretrained": None, "seed": 0, "width": store.dim}
    old = tmp_path / "old"
    shutil.copytree(store_dir, old)
    meta = json.loads((old / "encoder.json").read_text())
    meta.pop("fingerprint", None)
    (old / "encoder.json").write_text(json.dumps(meta))
    assert FeatureStore.open(old).fingerprint == store.fingerprint


def _reseeded_store(store_dir, tmp_path, seed: int = 5):
    import shutil

    other = tmp_path / f"store-seed{seed}"
    shutil.copytree(store_dir, other)
    meta = json.loads((other / "encoder.json").read_text())
    meta["spec"]["seed"] = seed
    meta["fingerprint"] = {**meta["fingerprint"], "seed": seed}
    (other / "encoder.json").write_text(json.dumps(meta))
    return other


def _logger(root, name="run"):
    return ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={root}",
            f"--trainer.logger.init_args.name={name}", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={root}", "--trainer.enable_model_summary=false"]


def test_resume_from_last_gives_the_weights_of_an_unbroken_run(dataset_dir, store_dir, tmp_path, capsys, user_error):
    """A fit stopped after 2 of 4 epochs and resumed with `--ckpt_path last` ends with the unbroken run's weights;
    resuming on a store of another encoder is refused, naming both."""
    data = ["--config", "configs/selector.yaml", "--data.dataset", str(dataset_dir), "--data.store", str(store_dir),
            "--data.batch_size", "64", "--model.patience", "null"]
    assert main(["fit", *data, "--trainer.max_epochs=4", *_logger(tmp_path / "unbroken")]) == 0
    assert main(["fit", *data, "--trainer.max_epochs=2", *_logger(tmp_path / "stopped")]) == 0
    other = _reseeded_store(store_dir, tmp_path)
    user_error(["fit", *data, "--data.store", str(other), "--trainer.max_epochs=4", "--ckpt_path", "last",
                *_logger(tmp_path / "stopped")],
               r"trained on features of showcase-tiny \(random init, seed 0\).*"
               r"holds features of showcase-tiny \(random init, seed 5\)")
    assert main(["fit", *data, "--trainer.max_epochs=4", "--ckpt_path", "last", *_logger(tmp_path / "stopped")]) == 0
    assert "resuming from" in capsys.readouterr().out

    def last(root):
        path = max((root / "run").rglob("last.ckpt"), key=lambda p: p.stat().st_mtime_ns)
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        return checkpoint["epoch"], checkpoint["state_dict"]

    (epoch_a, a), (epoch_b, b) = last(tmp_path / "unbroken"), last(tmp_path / "stopped")
    assert epoch_a == epoch_b == 3
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_last_without_an_earlier_run_is_one_clear_error(dataset_dir, store_dir, tmp_path, user_error):
    line = user_error(["fit", "--config", "configs/selector.yaml", "--data.dataset", str(dataset_dir),
                       "--data.store", str(store_dir), "--ckpt_path", "last", *_logger(tmp_path)], "no last.ckpt")
    assert line.startswith("showcase fit: error: ")
    assert not list(tmp_path.rglob("*.ckpt"))  # it refused before training anything


# --- DDP: test predictions gathered in input order -------------------------------------------------------------------
def _gather_rank(rank, port, out):
    import os

    import torch.distributed as dist

    from showcase.training import gather_in_order

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    ids = list(range(rank, 7, 2)) + ([0] if rank == 1 else [])  # DistributedSampler's shares, one padded repeat
    gathered = gather_in_order([{"id": f"r{i}", "rank": rank} for i in ids], {f"r{i}": i for i in range(7)})
    if rank == 0:
        out.put([g["id"] for g in gathered])
    dist.destroy_process_group()


def test_test_predictions_are_gathered_from_two_gloo_processes_in_input_order():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_gather_rank, args=(port, queue), nprocs=2, join=True)
    assert queue.get() == [f"r{i}" for i in range(7)]
