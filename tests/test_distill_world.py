"""Φ and distillation on the test world: labels from its ground truth, training through `showcase fit`, distill."""
import json
from collections import Counter

import pytest
import torch

from showcase.cli import main
from showcase.data import ShowcaseDataset
from showcase.distill import PairDataModule, distillation, load_classifier, pairs_from_world, read_pairs
from showcase.distill.pairs import review_sentences
from showcase.distill.scores import f1_at, roc_auc

torch.set_num_threads(1)


def _fit(config_args: list[str], dataset_dir, store_dir, out) -> "torch.nn.Module":
    assert main(["fit", *config_args, "--data.dataset", str(dataset_dir), "--data.store", str(store_dir),
                 f"--trainer.default_root_dir={out}", "--trainer.logger=false",
                 "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]) == 0
    return load_classifier(out / "model")


@pytest.fixture(scope="module")
def data(dataset_dir, store_dir):
    dm = PairDataModule(str(dataset_dir), str(store_dir))  # labels from the world found with the dataset
    dm.setup("test")
    return dm


@pytest.fixture(scope="module")
def heads(dataset_dir, store_dir, data, tmp_path_factory):
    """Both heads trained through the user's path (`showcase fit --config ...`); test AUC/F1 of each."""
    out = tmp_path_factory.mktemp("phi")
    results = {}
    base = ["--config", "configs/classifier.yaml"]
    for head, configs in (("match", base), ("concat", [*base, "--config", "configs/classifier_concat.yaml"])):
        phi = _fit(configs, dataset_dir, store_dir, out / head)
        test = data.splits["test"]
        with torch.no_grad():
            probs = phi.pair_probs(test.text, test.image)
        results[head] = {"phi": phi, "folder": out / head / "model", "auc": roc_auc(probs, test.labels),
                         "f1": f1_at(probs, test.labels, phi.threshold), "threshold": phi.threshold}
    print("\nΦ on the test world (test split): " + "; ".join(
        f"{h}: AUC {r['auc']:.3f} F1 {r['f1']:.3f} (threshold {r['threshold']:.2f})" for h, r in results.items()))
    return results


def test_labels_from_the_world_follow_the_dish_names(world_dir, dataset_dir, tmp_path):
    world = json.loads((world_dir / "world.json").read_text())
    pairs = pairs_from_world(world_dir, dataset_dir)
    assert pairs and Counter(p.label for p in pairs)[1] > 0.15 * len(pairs)
    for p in pairs:
        dish = world["photos"][p.photo_id]
        assert p.label == int(dish in p.sentence), p  # in this world a dish sentence names its dish
    # the `showcase pairs` subcommand writes the same pairs; --sample writes unlabelled ones
    assert main(["pairs", "--world", str(world_dir), "--dataset", str(dataset_dir),
                 "--output", str(tmp_path / "p.jsonl")]) == 0
    assert read_pairs(tmp_path / "p.jsonl") == pairs
    assert main(["pairs", "--dataset", str(dataset_dir), "--output", str(tmp_path / "s.jsonl"), "--sample", "50"]) == 0
    sample = read_pairs(tmp_path / "s.jsonl")
    assert len(sample) == 50 and all(p.label is None for p in sample)


def test_match_head_reaches_auc_0_9_and_beats_the_concat_head(heads, data):
    assert data.stats["pairs"]["test"] > 200
    assert heads["match"]["auc"] >= 0.9 and heads["match"]["f1"] >= 0.7
    assert heads["match"]["auc"] > heads["concat"]["auc"] + 0.03
    saved = json.loads((heads["match"]["folder"] / "config.json").read_text())
    assert saved["config"]["head"] == "match" and saved["metrics"]["val_auc"] > 0.9


def _truth(world_dir, dataset: ShowcaseDataset) -> set[tuple[str, str]]:
    """(review, sentence) pairs that describe one of the review's photos, by the world's ground truth."""
    return {(p.review_id, p.sentence) for p in pairs_from_world(world_dir, dataset) if p.label == 1}


def test_distill_keeps_dish_sentences_and_drops_filler(heads, world_dir, dataset_dir, store_dir, tmp_path):
    out = tmp_path / "s2"
    assert main(["distill", "--dataset", str(dataset_dir), "--classifier", str(heads["match"]["folder"]),
                 "--store", str(store_dir), "--output", str(out)]) == 0
    source, result = ShowcaseDataset.load(dataset_dir), ShowcaseDataset.load(out)
    truth = _truth(world_dir, source)
    kept = {(r.review_id, s) for r in result.reviews for s in r.explanation}
    precision, recall = len(kept & truth) / len(kept), len(kept & truth) / len(truth)
    print(f"\ndistillation on the test world: precision {precision:.3f} recall {recall:.3f} "
          f"({len(kept)} kept, {len(truth)} true dish sentences)")
    assert precision >= 0.9 and recall >= 0.9
    # every kept review keeps its order of sentences, and reviews with no describing sentence are gone
    for r in result.reviews:
        assert r.explanation and list(r.explanation) == [s for s in review_sentences(source.review(r.review_id))
                                                         if s in r.explanation]
    meta = json.loads((out / "dataset.json").read_text())["distill"]
    assert meta["reviews_in"] == len(source) and meta["reviews_out"] == len(result)
    assert meta["reviews_dropped"] == len(source) - len(result) and meta["sentences_kept"] == len(kept)
    assert not (out / distillation.WORK_DIR).exists()


class Interrupted(Exception):
    """Stands for a killed process."""


def test_distill_resumes_after_an_interruption(heads, dataset_dir, store_dir, tmp_path, monkeypatch):
    folder = heads["match"]["folder"]
    reference, _ = distillation.distill(dataset_dir, folder, store_dir, tmp_path / "ref", chunk_size=100, verbose=False)
    real, calls = distillation.score_reviews, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 and not resumed:
            raise Interrupted
        return real(*args, **kwargs)

    resumed = False
    monkeypatch.setattr(distillation, "score_reviews", flaky)
    with pytest.raises(Interrupted):
        distillation.distill(dataset_dir, folder, store_dir, tmp_path / "out", chunk_size=100, verbose=False)
    assert len(list((tmp_path / "out" / distillation.WORK_DIR).glob("chunk_*.jsonl"))) == 2
    calls.clear()
    resumed = True
    result, stats = distillation.distill(dataset_dir, folder, store_dir, tmp_path / "out", chunk_size=100,
                                         verbose=False)
    n_chunks = -(-stats.reviews_in // 100)
    assert len(calls) == n_chunks - 2  # the two finished chunks were not scored again
    assert [r.to_json() for r in result.reviews] == [r.to_json() for r in reference.reviews]
    # a different threshold is applied at assembly: fewer sentences at a stricter threshold
    _, strict = distillation.distill(dataset_dir, folder, store_dir, tmp_path / "strict", threshold=0.99,
                                     verbose=False)
    assert strict.sentences_kept < stats.sentences_kept


def test_analyze_finds_users_photos_more_alike_than_other_users(dataset_dir, store_dir, tmp_path, capsys):
    assert main(["analyze", "--dataset", str(dataset_dir), "--store", str(store_dir),
                 "--json", str(tmp_path / "d.json")]) == 0
    printed = capsys.readouterr().out
    assert "Intra-Business" in printed and "Inter-User" in printed and "Intra-User" in printed
    d = json.loads((tmp_path / "d.json").read_text())
    # each user photographs on their own table: their photos are more alike than two users' photos
    assert d["intra_user"] < d["inter_user"]
    assert d["pairs_intra_business"] == d["pairs_inter_user"] + d["pairs_intra_user"] > 0


def test_sentences_missing_from_the_store_are_encoded_with_its_encoder(store_dir):
    from showcase.distill.features import FeatureLookup
    from showcase.encoders import FeatureStore

    store = FeatureStore.open(store_dir)
    known = store.texts[0]
    lookup = FeatureLookup(store)
    features = lookup.texts([known, "A sentence no review ever had.", known])
    assert lookup.encoded_texts == 1 and features.shape == (3, store.dim)
    torch.testing.assert_close(features[0], store.text_features([known])[0].float())
    expected = store.load_encoder().encode_texts(["A sentence no review ever had."])[0].float()
    torch.testing.assert_close(features[1], expected, atol=1e-5, rtol=1e-4)


def test_the_cache_of_encoded_texts_is_bounded_and_keeps_the_recent_ones():
    from showcase.inputs import FeatureLookup

    class Encoder:
        calls: list[str] = []

        def encode_texts(self, texts):
            Encoder.calls += texts
            return torch.stack([torch.full((4,), float(len(t))) for t in texts])

    class NoTexts:  # a store that holds no text: every text goes through the encoder
        dim = 4

        def has_text(self, text):
            return False

    lookup = FeatureLookup(NoTexts(), encoder=Encoder(), max_cached_texts=2)
    first = lookup.texts(["a", "bb", "ccc", "a"])  # 3 encoded; "a" is the oldest and is evicted
    assert first[:, 0].tolist() == [1, 2, 3, 1] and Encoder.calls == ["a", "bb", "ccc"]
    assert list(lookup._extra) == ["bb", "ccc"]
    lookup.texts(["bb"])  # a hit: "bb" becomes the most recent, nothing is encoded
    again = lookup.texts(["a", "ccc"])  # "ccc" is a hit; "a" is encoded again and evicts the least recent, "bb"
    assert again[:, 0].tolist() == [1, 3] and Encoder.calls == ["a", "bb", "ccc", "a"]
    assert list(lookup._extra) == ["ccc", "a"] and lookup.encoded_texts == 4


def test_distill_matched_photos_keeps_the_described_photos(heads, world_dir, dataset_dir, store_dir, tmp_path):
    world = json.loads((world_dir / "world.json").read_text())
    result, _ = distillation.distill(dataset_dir, heads["match"]["folder"], store_dir, tmp_path / "m",
                                     photos="matched", verbose=False)
    described = total = 0
    for r in result.reviews:
        assert r.photos
        for p in r.photos:
            total += 1
            described += any(world["photos"][p] in s for s in r.explanation)
    assert described / total > 0.95
