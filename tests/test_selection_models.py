"""Selectors, profile features, data module and Lightning training on a synthetic world with a known answer."""
import json

import lightning as L
import pytest
import torch
from selection_synthetic import make_world

from showcase.selection import (
    AuthorshipConfig,
    DPPSelector,
    DPPSelectorConfig,
    build_selector,
    collate_requests,
    load_selector,
    profile_features,
    select_photos,
    tower_widths,
)
from showcase.selection.data import SelectionDataModule
from showcase.selection.module import SelectionModule, format_table


def test_tower_widths_follow_clip_dim():
    assert tower_widths(512) == (512, 512, 256, 128)  # the paper's towers for ViT-B/32
    assert tower_widths(64) == (64, 64, 32, 16)
    model = DPPSelector(DPPSelectorConfig(feature_dim=512))
    assert [m.in_features for m in model.user_tower if hasattr(m, "in_features")] == [1024, 512, 512, 256]
    assert [m.out_features for m in model.image_tower if hasattr(m, "out_features")] == [512, 512, 256, 128]
    with pytest.raises(ValueError, match="unknown modality"):
        DPPSelectorConfig(modality="audio")
    with pytest.raises(ValueError, match="takes no option"):
        build_selector("random", modality="img")


def test_profile_modalities_and_top_w():
    d = 4
    text = torch.eye(d)[:2]  # two history texts
    hist = torch.stack([torch.eye(d)[2], torch.eye(d)[3], torch.eye(d)[3]])
    pool = torch.eye(d)[3:4].repeat(2, 1)
    batch = collate_requests([text, torch.zeros(0, d)], [hist, hist[:1]], [pool, pool[:1]])
    both = profile_features(batch, "img+text")
    assert both.shape == (2, 2 * d)
    torch.testing.assert_close(both[0, :d], text.mean(0))  # text first, then image
    torch.testing.assert_close(both[1, :d], torch.zeros(d))  # empty history -> zeros
    torch.testing.assert_close(profile_features(batch, "img")[0], hist.mean(0))
    # top-1 history photo most similar to the pool: the one along axis 3
    torch.testing.assert_close(profile_features(batch, "img", top_w=1)[0], torch.eye(d)[3])


def test_select_photos_batched_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = build_selector("dpp", feature_dim=8, modality="img+text")
    hist_t, hist_i = [torch.randn(3, 8), torch.randn(1, 8)], [torch.randn(5, 8), torch.zeros(0, 8)]
    pools = [torch.randn(6, 8), torch.randn(2, 8)]
    sel = select_photos(model, hist_t, hist_i, pools, k=3)
    assert sel.indices.shape == (2, 3) and sel.relevance.shape == (2, 6)
    assert sel.indices[1, 2] == -1 and (sel.relevance[1, 2:] == 0).all() and (sel.relevance[0] > 0).all()
    single = select_photos(model, hist_t[0], hist_i[0], pools[0], k=3)
    assert torch.equal(single.indices, sel.indices[0])
    model.save_pretrained(tmp_path / "dpp")
    loaded = load_selector(tmp_path / "dpp")
    assert torch.equal(select_photos(tmp_path / "dpp", hist_t, hist_i, pools).indices, sel.indices)
    assert isinstance(loaded, DPPSelector) and loaded.config == model.config
    for name in ("random", "centroid"):
        build_selector(name, feature_dim=8).save_pretrained(tmp_path / name)
        assert select_photos(tmp_path / name, hist_t, hist_i, pools).indices.shape == (2, 3)
    with pytest.raises(ValueError, match="built for 8"):
        select_photos(model, hist_t[0], hist_i[0], torch.randn(4, 5))


def test_datamodule_examples():
    dataset, store = make_world(users=20, businesses=5)
    dm = SelectionDataModule("unused", "unused", batch_size=8).attach(dataset, store)
    dm.setup("fit")
    train = dm.splits["train"]
    assert len(train) == 14 * 4 and dm.feature_dim == 16
    ex = train[0]
    review = dataset.review(ex.review_id)
    train_only = dataset.with_reviews(dataset.split("train"))  # training pools hold training users' photos only
    pool = train_only.business_photos(review.business_id)
    assert [pool[i] for i in ex.target] == list(review.photos)  # targets are the review's own photos
    test_ex = dm.splits["test"][0]  # evaluation pools are whole
    assert len(test_ex.pool) == len(dataset.business_photos(dataset.review(test_ex.review_id).business_id))
    assert len(ex.texts) == 3 and len(ex.history) == 6  # the other three reviews, never the review itself
    batch = next(iter(dm.train_dataloader()))
    assert batch["pool"].shape[0] == 8 and batch["target"].sum(1).eq(2).all()
    assert not (batch["target"] & ~batch["pool_mask"]).any()


def fit_and_test(dataset, store, tmp_path, epochs: int = 0, selector: str = "dpp", **dpp) -> dict:
    L.seed_everything(0)
    dm = SelectionDataModule("unused", "unused", batch_size=32).attach(dataset, store)
    module = SelectionModule(selector, dpp=DPPSelectorConfig(feature_dim=dm.feature_dim, **dpp))
    trainer = L.Trainer(max_epochs=epochs, default_root_dir=tmp_path, logger=L.pytorch.loggers.CSVLogger(tmp_path),
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    if epochs:
        trainer.fit(module, dm)
        module.export(tmp_path / "export")
    trainer.test(module, dm, verbose=False)
    return module.test_results


pytestmark = pytest.mark.usefixtures("one_thread")


def test_learning_on_synthetic_world(tmp_path, capsys):
    dataset, store = make_world(users=200, businesses=30, clusters=6, dim=64)
    rows = {
        "random": fit_and_test(dataset, store, tmp_path / "r", selector="random"),
        "centroid": fit_and_test(dataset, store, tmp_path / "c", selector="centroid"),
        "relevance top-K": fit_and_test(dataset, store, tmp_path / "t", epochs=30, diversity=False),
        "img+text DPP": fit_and_test(dataset, store, tmp_path / "d", epochs=30),
    }
    print(format_table(rows))
    random, topk, dpp = rows["random"], rows["relevance top-K"], rows["img+text DPP"]
    assert dpp["Prec@3"] >= 2 * random["Prec@3"], rows
    assert topk["Prec@3"] >= 2 * random["Prec@3"], rows
    assert dpp["Div@3"] > topk["Div@3"], rows
    assert dpp["PercentileRank"] < 0.3 < random["PercentileRank"], rows
    # the test step printed its table and wrote it as JSON; the export loads back as the same selector
    assert "img+text DPP" in capsys.readouterr().out
    written = json.loads(next((tmp_path / "d").rglob("selection_test.json")).read_text())
    assert written["metrics"]["Prec@3"] == pytest.approx(dpp["Prec@3"])
    assert isinstance(load_selector(tmp_path / "d" / "export"), DPPSelector)


def test_authorship_learns_seen_users(tmp_path):
    dataset, store = make_world(dim=64)  # ELVis's head is d/2 wide: too narrow at d = 16 to learn 56 users
    L.seed_everything(0)
    dm = SelectionDataModule("unused", "unused", batch_size=32).attach(dataset, store)
    # val users are unseen (split by user): val P@3 says nothing about authorship, so no early stopping here
    module = SelectionModule("authorship", authorship=AuthorshipConfig(feature_dim=64), lr=1e-2, patience=None)
    L.Trainer(max_epochs=30, default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
              enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0).fit(module, dm)
    model, train = module.selector.eval(), dm.splits["train"]
    batch = train.collate(train.examples)
    assert set(batch["user_ids"]) <= set(model.config.users)
    chosen = model.select(batch, 2)
    precision = batch["target"].gather(1, chosen).float().mean().item()
    pool_share = (batch["target"].sum(1) / batch["pool_mask"].sum(1)).mean().item()
    assert precision > 2 * pool_share, (precision, pool_share)


def test_shared_pool_scores_equal_scores_with_the_pool_repeated():
    """The cold-start fast path (towers run once per user and once per photo) gives the batched relevance."""
    from showcase.selection.inference import group_relevance
    from showcase.selection.models import DPPSelector, DPPSelectorConfig
    from showcase.selection.profile import collate_requests

    torch.manual_seed(0)
    d, users, photos = 16, 5, 7
    selector = DPPSelector(DPPSelectorConfig(feature_dim=d, skip_init=2.0)).eval()
    for p in selector.user_tower.parameters():  # the last layer starts at zero: make the tower term count
        torch.nn.init.normal_(p, std=0.3)
    texts = [torch.randn(n, d) for n in (1, 3, 0, 2, 4)]
    images = [torch.randn(n, d) for n in (2, 0, 1, 3, 1)]
    pool = torch.randn(photos, d)
    repeated = collate_requests(texts, images, [pool] * users)
    with torch.no_grad():
        expected = selector.scores(repeated)  # (B, P)
        shared = selector.shared_pool_scores(collate_requests(texts, images, [pool[:0]] * users), pool)
        assert torch.allclose(shared, expected, rtol=1e-5, atol=1e-6)
        assert torch.allclose(group_relevance(selector, texts, images, pool), expected.sum(0), rtol=1e-5)
    selector.config.top_w = 2  # the profile depends on the pool: no shared path, group_relevance falls back
    assert selector.shared_pool_scores(repeated, pool) is None
    with torch.no_grad():
        assert torch.allclose(group_relevance(selector, texts, images, pool), selector.scores(repeated).sum(0),
                              rtol=1e-5)


@pytest.mark.parametrize("top_w", [None, 2])
def test_pools_are_scored_in_chunks_with_the_same_scores(monkeypatch, top_w):
    """A huge pool goes through the image tower POOL_CHUNK photos at a time: each photo's score is unchanged."""
    from showcase.selection import models
    from showcase.selection.profile import collate_requests

    torch.manual_seed(0)
    d = 16
    selector = models.DPPSelector(models.DPPSelectorConfig(feature_dim=d, skip_init=2.0, top_w=top_w)).eval()
    for p in selector.user_tower.parameters():
        torch.nn.init.normal_(p, std=0.3)
    texts, images = [torch.randn(2, d), torch.randn(0, d)], [torch.randn(3, d), torch.randn(4, d)]
    pools = [torch.randn(23, d), torch.randn(9, d)]
    batch = collate_requests(texts, images, pools)
    with torch.no_grad():
        whole = selector.scores(batch)
        monkeypatch.setattr(models, "POOL_CHUNK", 5)  # 23 photos: 5 chunks, the last one short
        chunked = selector.scores(batch)
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-6)
        if top_w is None:
            shared = selector.shared_pool_scores(collate_requests(texts, images, [pools[0][:0]] * 2), pools[0])
            repeated = selector.scores(collate_requests(texts, images, [pools[0]] * 2))
            torch.testing.assert_close(shared, repeated, rtol=1e-5, atol=1e-6)
