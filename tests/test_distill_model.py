"""Φ, its scores, the pairs format and the diversity figures, on synthetic data with known answers (no world)."""
import json
import math

import lightning as L
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from showcase.data import Review, ShowcaseDataset
from showcase.distill import (
    ClassifierConfig,
    ClassifierModule,
    LabeledPair,
    SentenceImageClassifier,
    aggregate_labels,
    load_classifier,
    read_pairs,
    sample_pairs,
    split_pairs,
    visual_diversity,
    write_pairs,
)
from showcase.distill.datamodule import PairFeatures
from showcase.distill.scores import best_f1_threshold, f1_at, roc_auc
from showcase.errors import UserError

torch.set_num_threads(1)


# --- Φ ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("head", ["concat", "match"])
def test_all_pairs_agree_with_paired_form(head):
    torch.manual_seed(0)
    phi = SentenceImageClassifier(ClassifierConfig(dim=16, head=head, hidden=8)).eval()
    text, image = torch.randn(5, 16), torch.randn(3, 16)
    probs = phi(text, image)
    assert probs.shape == (5, 3) and ((probs > 0) & (probs < 1)).all()
    paired = phi.pair_probs(text.repeat_interleave(3, 0), image.repeat(5, 1)).view(5, 3)
    torch.testing.assert_close(probs, paired)
    assert phi.predict(text, image).dtype == torch.bool


def test_concat_head_is_one_linear_layer_over_the_concatenation():
    torch.manual_seed(0)
    phi = SentenceImageClassifier(ClassifierConfig(dim=8, head="concat")).eval()
    t, v = torch.randn(4, 8), torch.randn(4, 8)
    tn = phi.text_norm(torch.nn.functional.normalize(t, dim=-1))
    vn = phi.image_norm(torch.nn.functional.normalize(v, dim=-1))
    expected = phi.head.linear(torch.cat([tn, vn], dim=-1)).squeeze(-1)
    torch.testing.assert_close(phi.pair_logits(t, v), expected)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="head"):
        ClassifierConfig(head="bilinear")
    with pytest.raises(ValueError, match="threshold"):
        ClassifierConfig(threshold=1.5)
    phi = SentenceImageClassifier(ClassifierConfig(dim=8))
    with pytest.raises(ValueError, match="Φ expects 8"):
        phi(torch.randn(2, 9), torch.randn(2, 8))
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        phi(torch.randn(2, 1, 8), torch.randn(2, 8))
    with pytest.raises(UserError, match="not a saved model folder"):
        load_classifier("/nonexistent/phi")


def test_save_and_load_keep_weights_statistics_and_threshold(tmp_path):
    torch.manual_seed(0)
    phi = SentenceImageClassifier(ClassifierConfig(dim=8, head="match", hidden=4, threshold=0.3))
    phi.train()
    phi.pair_logits(torch.randn(32, 8) + 2, torch.randn(32, 8))  # updates the running statistics
    phi.eval()
    phi.save_pretrained(tmp_path / "phi")
    loaded = load_classifier(tmp_path / "phi")
    assert loaded.threshold == 0.3 and not loaded.training
    t, v = torch.randn(3, 8), torch.randn(2, 8)
    torch.testing.assert_close(loaded(t, v), phi(t, v))


# --- scores ----------------------------------------------------------------------------------------------------------
def test_scores_match_sklearn():
    g = torch.Generator().manual_seed(0)
    labels = torch.rand(300, generator=g) < 0.3
    scores = torch.where(labels, torch.rand(300, generator=g) + 0.3, torch.rand(300, generator=g)).round(decimals=1)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()))
    threshold, f1 = best_f1_threshold(scores, labels)
    assert f1 == pytest.approx(f1_at(scores, labels, threshold))
    assert f1 == pytest.approx(f1_score(labels.numpy(), (scores >= threshold).numpy()))
    best_by_search = max(f1_score(labels.numpy(), (scores >= t).numpy()) for t in scores.unique())
    assert f1 == pytest.approx(best_by_search)
    assert math.isnan(roc_auc(scores, torch.zeros(300)))
    assert best_f1_threshold(scores, torch.zeros(300)) == (0.5, 0.0)


# --- learning: a known answer ----------------------------------------------------------------------------------------
def _matching_task(n_pairs: int, seed: int) -> PairFeatures:
    """Sentences and photos of 8 'dishes' in unaligned random spaces, sharing a large common offset (like CLIP).

    Every sentence and every photo is equally often positive, so only the match carries signal.
    """
    g = torch.Generator().manual_seed(0)
    text_protos, image_protos = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g)
    offset = 6 * torch.randn(32, generator=g)
    g.manual_seed(seed)
    t_dish = torch.randint(0, 8, (n_pairs,), generator=g)
    same = torch.rand(n_pairs, generator=g) < 0.5
    v_dish = torch.where(same, t_dish, (t_dish + torch.randint(1, 8, (n_pairs,), generator=g)) % 8)
    text = offset + text_protos[t_dish] + 0.3 * torch.randn(n_pairs, 32, generator=g)
    image = offset + image_protos[v_dish] + 0.3 * torch.randn(n_pairs, 32, generator=g)
    return PairFeatures(text, image, same.float())


class _Synthetic(L.LightningDataModule):
    dim = 32

    def __init__(self):
        super().__init__()
        self.splits = {"train": _matching_task(4000, 1), "val": _matching_task(500, 2), "test": _matching_task(500, 3)}

    def train_dataloader(self):
        return torch.utils.data.DataLoader(self.splits["train"], batch_size=128, shuffle=True)

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.splits["val"], batch_size=500)

    def test_dataloader(self):
        return torch.utils.data.DataLoader(self.splits["test"], batch_size=500)


def _fit(head: str, tmp_path) -> tuple[dict, SentenceImageClassifier]:
    L.seed_everything(0, verbose=False)
    data = _Synthetic()
    module = ClassifierModule(ClassifierConfig(dim=data.dim, head=head))
    trainer = L.Trainer(max_epochs=8, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, data)
    result = trainer.test(module, data, verbose=False)[0]
    module.export(tmp_path / head)
    return result, load_classifier(tmp_path / head)


def test_match_head_learns_the_match_and_concat_head_cannot(tmp_path):
    match, phi = _fit("match", tmp_path)
    concat, _ = _fit("concat", tmp_path)
    print(f"\nsynthetic matching task: match AUC {match['test/auc']:.3f} F1 {match['test/f1']:.3f}; "
          f"concat AUC {concat['test/auc']:.3f} F1 {concat['test/f1']:.3f}")
    assert match["test/auc"] > 0.97 and match["test/f1"] > 0.85
    assert concat["test/auc"] < 0.6  # a sentence score plus a photo score carries no signal here
    # the exported folder holds the best weights and the threshold chosen on validation
    saved = json.loads((tmp_path / "match" / "config.json").read_text())
    assert saved["metrics"]["val_auc"] > 0.97 and 0 < phi.threshold < 1
    test = _Synthetic().splits["test"]
    assert roc_auc(phi.pair_probs(test.text, test.image).detach(), test.labels) > 0.97


# --- pairs -----------------------------------------------------------------------------------------------------------
def test_pairs_round_trip_and_errors(tmp_path):
    pairs = [LabeledPair("r1", "The ramen was rich.", "p1", 1, "ann"), LabeledPair("r1", "Parking.", "p1")]
    path = write_pairs(tmp_path / "pairs.jsonl", pairs)
    assert read_pairs(path) == pairs
    log = '{"review_id": "r1", "sentence": "s", "photo_id": "p", "label": "skip", "event": "skip", "time": "t"}\n'
    path.write_text(log)
    assert read_pairs(path) == [LabeledPair("r1", "s", "p")]  # the annotation tool's label logs read as they are
    path.write_text(log + '{"review_id": "r2", "sentence": "x", "photo_id": "p", "label": 2}\n' + log)
    with pytest.raises(ValueError, match=r"pairs.jsonl:2: field 'label'"):
        read_pairs(path)
    path.write_text('{"review_id": "r2", "sentence": "", "photo_id": "p"}\n')
    with pytest.raises(ValueError, match=r":1: field 'sentence'"):
        read_pairs(path)


def test_majority_vote_over_annotators():
    a = ("r1", "s", "p")
    b = ("r1", "t", "p")
    pairs = [LabeledPair(*a, 1, "x"), LabeledPair(*a, 1, "y"), LabeledPair(*a, 0, "z"),
             LabeledPair(*b, 1, "x"), LabeledPair(*b, 0, "y"),            # tie: dropped
             LabeledPair("r2", "u", "p", 0, "x"), LabeledPair("r2", "u", "p", 1, "x"),  # relabelled: last counts
             LabeledPair("r3", "v", "p"),                                  # unlabelled: dropped
             LabeledPair("r4", "w", "p", 1, "x"), LabeledPair("r4", "w", "p", None, "x")]  # then undone: dropped
    merged = {p.key: p for p in aggregate_labels(pairs)}
    assert set(merged) == {a, ("r2", "u", "p")}
    assert merged[a].label == 1 and merged[a].annotator is None
    assert merged[("r2", "u", "p")].label == 1 and merged[("r2", "u", "p")].annotator == "x"


def test_split_is_8_1_1_by_review_and_deterministic():
    pairs = [LabeledPair(f"r{i}", f"s{j}", f"p{k}", 1) for i in range(100) for j in range(2) for k in range(3)]
    parts = split_pairs(pairs, seed=3)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [480, 60, 60]
    reviews = [{p.review_id for p in parts[s]} for s in ("train", "val", "test")]
    assert not (reviews[0] & reviews[1]) and not (reviews[0] & reviews[2]) and not (reviews[1] & reviews[2])
    assert split_pairs(pairs, seed=3) == parts and split_pairs(pairs, seed=4) != parts
    small = split_pairs(pairs[:18], seed=0)  # three reviews: one each
    assert all(len(v) == 6 for v in small.values())


def test_sample_pairs_takes_whole_reviews():
    reviews = [Review(f"r{i}", "u", "b", "A. B.", (f"p{i}a", f"p{i}b"), sentences=("A.", "B.")) for i in range(10)]
    pairs = sample_pairs(ShowcaseDataset(reviews), 10, seed=0)
    assert len(pairs) == 10 and all(p.label is None for p in pairs)
    assert len({p.review_id for p in pairs}) == 3  # 4 + 4 + 2 of the third
    assert len(sample_pairs(ShowcaseDataset(reviews), 1000)) == 40


# --- diversity -------------------------------------------------------------------------------------------------------
class _Store:
    """A feature store stand-in holding given photo features."""

    def __init__(self, photos: dict[str, list[float]]):
        self._p = {k: torch.tensor(v) for k, v in photos.items()}
        self.dim = 2

    def has_image(self, pid):
        return pid in self._p

    def image_features(self, pids):
        return torch.stack([self._p[p] for p in pids])


def test_diversity_against_hand_computed_values():
    # business b: u1 posts a (1,0) and b (0,1); u2 posts c (1,0) and d (missing). Business e has one photo.
    store = _Store({"a": [1, 0], "b": [0, 1], "c": [1, 0], "e": [0, 1]})
    ds = ShowcaseDataset([
        Review("r1", "u1", "b", "t", ("a", "b")),
        Review("r2", "u2", "b", "t", ("c", "d")),
        Review("r3", "u1", "e", "t", ("e",)),
    ])
    d = visual_diversity(ds, store)
    # pairs of b: (a,b) same user dis 1; (a,c) different users dis 0; (b,c) different users dis 1
    assert d.pairs_intra_business == 3 and d.intra_business == pytest.approx(2 / 3)
    assert d.pairs_inter_user == 2 and d.inter_user == pytest.approx(1 / 2)
    assert d.pairs_intra_user == 1 and d.intra_user == pytest.approx(1.0)
    assert d.photos_missing == 1 and d.photos == 4 and d.businesses == 2
