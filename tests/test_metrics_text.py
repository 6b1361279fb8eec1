"""N-gram metrics against independent references (sacrebleu, nltk), hand counts, edge cases, DDP, and the CLI."""
import itertools
import json
import math
import random
from pathlib import Path

import pytest
import sacrebleu
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu
from nltk.translate.nist_score import corpus_nist as nltk_corpus_nist

from metrics import BLEUScore, DistinctN, METEORScore, NISTScore, TextMetrics, wordnet_available
from metrics import wordnet as wordnet_mod
from metrics.cli import main
from metrics.functional import bleu_score, distinct_n, get_tokenizer, meteor_score, ngram_suite, nist_score

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmaps-restaurant-reviews" / "reviews.jsonl"
COMMITTED = Path(__file__).parent / "data" / "metrics_corpus.jsonl"
needs_wordnet = pytest.mark.skipif(not wordnet_available(), reason="WordNet not installed "
                                   "(apt-get install wordnet-base wordnet-sense-index)")


@pytest.fixture(scope="module")
def corpus():
    """(preds, refs): real review texts when ../shared/data is present, else the committed corpus (shuffled)."""
    path = REAL if REAL.is_file() else COMMITTED
    texts = [json.loads(line)["text"] for line in path.open(encoding="utf-8") if line.strip()]
    texts = [t for t in texts if t.strip()][:400]
    half = len(texts) // 2
    refs = texts[half:2 * half]
    random.Random(0).shuffle(refs)
    return texts[:half], refs


def _tok(texts):
    tok = get_tokenizer("13a")
    return [tok(t) for t in texts]


@pytest.mark.parametrize("order", [1, 4])
@pytest.mark.parametrize("lowercase", [False, True])
def test_bleu_equals_sacrebleu(corpus, order, lowercase):
    preds, refs = corpus
    ours = bleu_score(preds, refs, max_order=order, lowercase=lowercase)
    ref = sacrebleu.BLEU(max_ngram_order=order, lowercase=lowercase, tokenize="13a").corpus_score(preds, [refs])
    assert ours == pytest.approx(ref.score / 100, abs=1e-12)
    assert 0 < ours < 1


def test_bleu_several_references_equals_sacrebleu(corpus):
    preds, refs = corpus
    second = refs[1:] + refs[:1]
    ours = bleu_score(preds, [[a, b] for a, b in zip(refs, second)])
    assert ours == pytest.approx(sacrebleu.corpus_bleu(preds, [refs, second]).score / 100, abs=1e-12)


def test_bleu4_equals_nltk_corpus_bleu(corpus):
    # nltk (no smoothing) agrees with sacrebleu when every order has a match and every prediction has at least 4
    # tokens (nltk counts max(1, n-grams) per sentence in the denominator, so shorter ones would differ)
    pairs = [(p, r) for p, r in zip(*corpus) if len(_tok([p])[0]) >= 4]
    preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
    ref = nltk_corpus_bleu([[r] for r in _tok(refs)], _tok(preds))
    assert bleu_score(preds, refs) == pytest.approx(ref, rel=1e-9)


def test_nist_equals_nltk(corpus):
    preds, refs = corpus
    ref = nltk_corpus_nist([[r] for r in _tok(refs)], _tok(preds), 4)
    assert nist_score(preds, refs) == pytest.approx(ref, rel=1e-12)
    two = [[a, b] for a, b in zip(refs, refs[1:] + refs[:1])]
    ref2 = nltk_corpus_nist([_tok(g) for g in two], _tok(preds), 4)
    assert nist_score(preds, two) == pytest.approx(ref2, rel=1e-12)


def test_suite_equals_single_functions(corpus):
    preds, refs = corpus
    suite = ngram_suite(preds, refs, ["bleu1", "bleu4", "nist", "distinct1", "distinct2"])
    assert suite == pytest.approx({"bleu1": bleu_score(preds, refs, 1), "bleu4": bleu_score(preds, refs, 4),
                                   "nist": nist_score(preds, refs), "distinct1": distinct_n(preds, 1),
                                   "distinct2": distinct_n(preds, 2)}, abs=1e-12)


def test_distinct_hand_count():
    preds = ["the cat sat", "the cat ran", "dog"]
    # unigrams: the cat sat the cat ran dog -> 5 distinct / 7; bigrams: the-cat cat-sat the-cat cat-ran -> 3 / 4
    assert distinct_n(preds, 1) == pytest.approx(5 / 7)
    assert distinct_n(preds, 2) == pytest.approx(3 / 4)
    # per sentence: d1 = mean(1, 1, 1); d2 = mean(1, 1) ("dog" has no bigram and is left out)
    assert distinct_n(["a a b", "c d"], 1, level="sentence") == pytest.approx((2 / 3 + 1) / 2)
    assert distinct_n(preds, 2, level="sentence") == pytest.approx(1.0)
    assert distinct_n([], 1) == 0.0
    with pytest.raises(ValueError, match="level"):
        distinct_n(preds, 1, level="document")


def test_edge_cases_give_values_not_crashes():
    preds = ["", "Délicieux ! 美味しい ramen 🍜", "Good", "Good"]
    refs = ["the food was good", "Délicieux ramen 🍜", "Good", "bad"]
    out = ngram_suite(preds, refs, ["bleu1", "bleu4", "nist", "distinct1", "distinct2"])
    assert all(math.isfinite(v) and v >= 0 for v in out.values())
    assert out["bleu1"] == pytest.approx(sacrebleu.BLEU(max_ngram_order=1).corpus_score(preds, [refs]).score / 100)
    assert out["bleu4"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score / 100)
    # one-word outputs only: nltk's corpus_nist divides by zero here; ours scores the unigram part
    assert nist_score(["Good", "bad"], ["Good food", "bad"]) > 0
    assert bleu_score([], []) == 0.0 and nist_score([], []) == 0.0
    assert ngram_suite(["x"], [""], ["bleu4", "nist"]) == {"bleu4": 0.0, "nist": 0.0}
    with pytest.raises(ValueError, match="2 predictions but 1"):
        bleu_score(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no reference"):
        bleu_score(["a"], [[]])
    with pytest.raises(ValueError, match="unknown text metrics"):
        ngram_suite(["a"], ["a"], ["rouge"])


def test_classes_accumulate_batches_like_functional(corpus):
    preds, refs = corpus
    metrics = {"bleu4": BLEUScore(4), "bleu1": BLEUScore(1), "nist": NISTScore(4), "distinct2": DistinctN(2)}
    suite = TextMetrics(["bleu1", "bleu4", "nist", "distinct2"])
    for i in range(0, len(preds), 37):
        for m in list(metrics.values()) + [suite]:
            m.update(preds[i:i + 37], refs[i:i + 37])
    expected = ngram_suite(preds, refs, ["bleu1", "bleu4", "nist", "distinct2"])
    assert {k: m.compute() for k, m in metrics.items()} == pytest.approx(expected, abs=1e-12)
    assert suite.compute() == pytest.approx(expected, abs=1e-12)
    suite.reset()
    assert suite.hyps == [] and suite.compute()["bleu4"] == 0.0


def _as_ranks(metrics):
    """Let each metric see the others as DDP ranks: like ``all_gather_object``, each gather call returns every
    rank's value of the same state (states are gathered one by one in registration order)."""
    for m in metrics:
        names = itertools.cycle(list(m._defaults))
        m.dist_sync_fn = lambda value, names=names: [getattr(x, name) for name in [next(names)] for x in metrics]


@pytest.mark.parametrize("make", [lambda: BLEUScore(4), lambda: NISTScore(), lambda: DistinctN(2),
                                  lambda: TextMetrics(["bleu1", "nist", "distinct1"])])
def test_sync_merges_states_of_ranks(corpus, make):
    """Two simulated ranks give the value of one process that saw everything, and keep their local states."""
    preds, refs = corpus
    half = len(preds) // 2
    ranks = [make(), make()]
    ranks[0].update(preds[:half], refs[:half])
    ranks[1].update(preds[half:], refs[half:])
    before = [m.state_dict() for m in ranks]
    _as_ranks(ranks)
    whole = make()
    whole.update(preds, refs)
    for m, local in zip(ranks, before):
        assert m.compute() == pytest.approx(whole.compute(), abs=1e-12)
        assert m.state_dict() == local


def _ddp_worker(rank, world, init, preds, refs, out):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    metric = TextMetrics(["bleu4", "nist", "distinct2"])
    metric.update(preds[rank::world], refs[rank::world])
    out.put((rank, metric.compute()))
    dist.destroy_process_group()


@pytest.mark.slow  # ~40 s of process start-up; test_sync_merges_states_of_ranks covers the same merge
def test_real_ddp_with_gloo(corpus, tmp_path):
    import torch.multiprocessing as mp

    preds, refs = corpus[0][:60], corpus[1][:60]
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    mp.start_processes(_ddp_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", preds, refs, out), nprocs=2,
                       start_method="spawn")
    results = dict(out.get(timeout=60) for _ in range(2))
    # rank r saw preds[r::2]: the merged corpus is the same multiset of pairs, in another order
    order = list(range(0, 60, 2)) + list(range(1, 60, 2))
    expected = ngram_suite([preds[i] for i in order], [refs[i] for i in order], ["bleu4", "nist", "distinct2"])
    assert results[0] == pytest.approx(expected, abs=1e-12) and results[1] == pytest.approx(expected, abs=1e-12)


@needs_wordnet
def test_meteor_equals_nltk(corpus):
    from nltk.translate.meteor_score import meteor_score as nltk_meteor

    preds, refs = corpus[0][:60], corpus[1][:60]
    ref = sum(nltk_meteor([r], p, wordnet=wordnet_mod.load_wordnet()) for p, r in zip(_tok(preds), _tok(refs)))
    assert meteor_score(preds, refs) == pytest.approx(ref / 60, rel=1e-12)
    m = METEORScore()
    m.update(preds[:30], refs[:30])
    m.update(preds[30:], refs[30:])
    assert m.compute() == pytest.approx(ref / 60, rel=1e-12)
    # synonyms count: WordNet is really used
    assert meteor_score(["the hound ran home"], ["the dog ran home"]) > meteor_score(
        ["the food was cold"], ["the food was delicious"])
    assert meteor_score([""], ["anything"]) == 0.0


def test_meteor_without_wordnet_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(wordnet_mod, "_cache", {})
    monkeypatch.setattr(wordnet_mod, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("METRICS_WORDNET_DIR", str(tmp_path / "empty"))
    with pytest.raises(wordnet_mod.WordNetUnavailableError, match="apt-get install wordnet-base"):
        meteor_score(["a"], ["a"])


def test_lexnames_matches_wordnet_30():
    lines = wordnet_mod.lexnames_text().splitlines()
    assert len(lines) == 45 and lines[0] == "00\tadj.all\t3" and lines[13] == "13\tnoun.food\t1"
    assert lines[44] == "44\tadj.ppl\t3"


# ---------------------------------------------------------------------------------------------------------- CLI
def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path, corpus):
    preds, refs = corpus[0][:50], corpus[1][:50]
    p = _write(tmp_path / "p.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(preds)])
    # references in another order, one with several texts
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(refs)][::-1]
    rows[0] = {"id": rows[0]["id"], "texts": [rows[0]["text"], "another reference"]}
    r = _write(tmp_path / "r.jsonl", rows)
    refs = list(refs)
    refs[-1] = [refs[-1], "another reference"]
    return p, r, preds, refs


def test_cli_json_equals_functional(files, capsys):
    p, r, preds, refs = files
    assert main(["--predictions", str(p), "--references", str(r), "--metrics",
                 "bleu1,bleu4,nist,distinct1,distinct2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = ngram_suite(preds, refs, ["bleu1", "bleu4", "nist", "distinct1", "distinct2"])
    assert got == pytest.approx({k: 100 * v for k, v in expected.items()}, abs=1e-9)


def test_cli_table_and_plots(files, capsys, tmp_path):
    p, r, *_ = files
    assert main(["--predictions", str(p), "--references", str(r), "--metrics", "bleu4,distinct1,keywords",
                 "--plot", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "value (%)" in out and "bleu4" in out and "keywords_noun" in out
    for name in ("length_distribution.png", "keyword_coverage.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


@needs_wordnet
def test_cli_default_metrics_include_meteor(files, capsys):
    p, r, *_ = files
    assert main(["--predictions", str(p), "--references", str(r), "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"bleu1", "bleu4", "meteor", "nist", "distinct1",
                                                        "distinct2"}


@pytest.mark.parametrize("case, message", [
    ("missing_ref", "no line for id 'extra'"),
    ("missing_pred", "no line for id 'r3'"),
    ("bad_json", "p.jsonl:2: not valid JSON"),
    ("no_text", "p.jsonl:1: id 'r0' has no 'text'"),
    ("dup", "p.jsonl:2: id 'r0' repeated (first at line 1)"),
    ("metric", "unknown metric(s) rouge"),
    ("clip", "need --clip"),
])
def test_cli_errors_name_file_line_and_id(tmp_path, capsys, case, message):
    preds = [{"id": f"r{i}", "text": f"text {i}"} for i in range(4)]
    refs = [{"id": f"r{i}", "text": f"ref {i}"} for i in range(4)]
    metrics = "bleu4"
    if case == "missing_ref":
        preds.append({"id": "extra", "text": "x"})
    elif case == "missing_pred":
        preds = preds[:3]
    elif case == "no_text":
        preds[0] = {"id": "r0", "txt": "x"}
    elif case == "dup":
        preds[1] = {"id": "r0", "text": "x"}
    elif case == "metric":
        metrics = "bleu4,rouge"
    elif case == "clip":
        metrics = "clip_score"
    p = _write(tmp_path / "p.jsonl", preds)
    if case == "bad_json":
        p.write_text('{"id": "r0", "text": "a"}\n{"id": "r1", "text": \n', encoding="utf-8")
    r = _write(tmp_path / "r.jsonl", refs)
    assert main(["--predictions", str(p), "--references", str(r), "--metrics", metrics]) == 2
    assert message in capsys.readouterr().err


def test_cli_meteor_without_wordnet_exits_with_instructions(files, capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(wordnet_mod, "_cache", {})
    monkeypatch.setattr(wordnet_mod, "DEBIAN_DIR", tmp_path / "no-debian")
    monkeypatch.setenv("METRICS_WORDNET_DIR", str(tmp_path / "empty"))
    p, r, *_ = files
    assert main(["--predictions", str(p), "--references", str(r), "--metrics", "bleu4,meteor"]) == 2
    assert "nltk.download('wordnet')" in capsys.readouterr().err
