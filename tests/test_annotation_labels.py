"""Label files (append-only event log, torn lines, locks, one file per annotator) and agreement (κ)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

from annotation.agreement import agreement, agreement_from_files, cohen_kappa, fleiss_kappa
from annotation.cli import main as annotate_main
from annotation.labels import (
    NO,
    SKIP,
    YES,
    LabelFileLocked,
    LabelLog,
    PairKey,
    effective_labels,
    labeled_pairs,
    read_events,
    read_labels,
    read_pairs,
)
from showcase.distill.pairs import LabeledPair, aggregate_labels, write_pairs
from showcase.distill.pairs import read_pairs as distill_read_pairs

K = [PairKey(f"r{i // 2}", f"Sentence {i}.", f"p{i}") for i in range(6)]


def test_log_round_trip_undo_and_skip(tmp_path):
    path = tmp_path / "alice.jsonl"
    with LabelLog.open(path, "alice") as log:
        log.label(K[0], "yes")
        log.label(K[1], 0)
        log.label(K[2], "skip")
        assert log.undo() == K[2] and log.undo() == K[1]
        log.label(K[1], "yes")
        assert log.labels == {K[0]: YES, K[1]: YES} and log.last == K[1]
    events = read_events(path)
    assert [e.event for e in events] == ["label", "label", "skip", "undo", "undo", "label"]
    assert effective_labels(events) == {K[0]: YES, K[1]: YES}
    # the format of showcase.distill.pairs: its reader takes the file as it is (skip / undo are null labels)
    records = distill_read_pairs(path)
    assert [r.label for r in records] == [1, 0, None, None, None, 1] and {r.annotator for r in records} == {"alice"}
    assert sorted(p.key for p in labeled_pairs(path)) == sorted([K[0], K[1]])
    with LabelLog.open(path, "alice") as log:  # replay restores labels and the undo stack
        assert log.labels == {K[0]: YES, K[1]: YES} and log.undo() == K[1] and log.undo() == K[0]
        assert log.undo() is None
    assert read_labels(path) == ("alice", {})


def test_torn_last_line_is_ignored_and_repaired(tmp_path):
    path = tmp_path / "a.jsonl"
    with LabelLog.open(path, "a") as log:
        log.label(K[0], YES)
        log.label(K[1], NO)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"review_id": "r1", "sentence": "Sent')  # a write interrupted mid-line
    with pytest.warns(UserWarning, match="torn last line"):
        assert effective_labels(read_events(path)) == {K[0]: YES, K[1]: NO}
    with pytest.warns(UserWarning):
        log = LabelLog.open(path, "a")
    with log:
        assert path.read_bytes() == whole  # the torn tail is cut before the next append
        log.label(K[2], SKIP)
    assert effective_labels(read_events(path)) == {K[0]: YES, K[1]: NO, K[2]: SKIP}
    # a complete last line without its newline is kept and terminated
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    with LabelLog.open(path, "a") as log:
        log.label(K[3], YES)
    assert len(read_events(path)) == 4


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"review_id": "r", "sentence": "s", "photo_id": "p", "label": 1}\nnot json\n'
                    '{"review_id": "r", "sentence": "s", "photo_id": "q", "label": 0}\n')
    with pytest.raises(ValueError, match=r"a\.jsonl:2"):
        read_events(path)
    path.write_text('{"review_id": "r", "sentence": "s", "photo_id": "p", "label": 7}\n')
    with pytest.raises(ValueError, match=r"a\.jsonl:1: label must be"):
        read_events(path)


def test_crash_loses_nothing_and_stale_lock_is_taken_over(tmp_path):
    path = tmp_path / "a.jsonl"
    script = textwrap.dedent(f"""
        import os
        from annotation.labels import LabelLog, PairKey
        log = LabelLog.open({str(path)!r}, "a")
        log.label(PairKey("r", "s1", "p"), "yes")
        log.label(PairKey("r", "s2", "p"), "no")
        os._exit(9)  # no close(): the lock file stays behind, as after kill -9
    """)
    assert subprocess.run([sys.executable, "-c", script], cwd=os.getcwd()).returncode == 9
    assert path.with_name("a.jsonl.lock").exists()
    with LabelLog.open(path, "a") as log:  # the holder is dead: the lock is taken over
        assert log.labels == {PairKey("r", "s1", "p"): YES, PairKey("r", "s2", "p"): NO}
    assert not path.with_name("a.jsonl.lock").exists()


def test_two_annotators_never_share_a_file(tmp_path):
    alice, bob = tmp_path / "alice.jsonl", tmp_path / "bob.jsonl"
    with LabelLog.open(alice, "alice") as a, LabelLog.open(bob, "bob") as b:  # side by side: fine
        a.label(K[0], YES)
        b.label(K[0], NO)
        with pytest.raises(LabelFileLocked, match="already being labelled.*held by alice"):
            LabelLog.open(alice, "alice")  # a second server on the same file
        with pytest.raises(LabelFileLocked):
            LabelLog.open(alice, "bob")
    with pytest.raises(ValueError, match=r"holds labels of \['alice'\]"):
        LabelLog.open(alice, "bob")
    assert not (tmp_path / "alice.jsonl.lock").exists()  # a refused open does not leave or steal the lock
    assert read_labels(alice) == ("alice", {K[0]: YES}) and read_labels(bob) == ("bob", {K[0]: NO})
    with pytest.raises(ValueError, match="annotator name"):
        LabelLog.open(tmp_path / "x.jsonl", " ")


def test_read_pairs_dedups_and_checks(tmp_path):
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, [LabeledPair(*K[0]), LabeledPair(*K[1], label=1), LabeledPair(*K[0], label=0)])
    assert read_pairs(path) == [K[0], K[1]]
    path.write_text('{"review_id": "r", "photo_id": "p"}\n')
    with pytest.raises(ValueError, match="sentence"):
        read_pairs(path)
    with pytest.raises(FileNotFoundError):
        read_pairs(tmp_path / "missing.jsonl")


# --- agreement --------------------------------------------------------------------------------------------------------
A = [1, 1, 0, 1, 0, 0, 1, 1, 0, 1]
B = [1, 0, 0, 1, 0, 1, 1, 1, 0, 0]


def test_cohen_kappa_hand_computed_and_sklearn():
    # p_o = 7/10; p_e = 0.6*0.5 + 0.4*0.5 = 0.5; kappa = 0.2 / 0.5
    assert cohen_kappa(A, B) == pytest.approx(0.4)
    assert cohen_kappa(A, A) == pytest.approx(1.0)
    assert cohen_kappa([1, 0], [0, 1]) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa([1, 1], [1, 1])) and math.isnan(cohen_kappa([], []))
    sklearn = pytest.importorskip("sklearn.metrics")
    import random

    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(5, 60)
        a = [rng.randint(0, 1) for _ in range(n)]
        b = [x if rng.random() < 0.7 else rng.randint(0, 1) for x in a]
        if len(set(a)) > 1 or len(set(b)) > 1:
            assert cohen_kappa(a, b) == pytest.approx(sklearn.cohen_kappa_score(a, b))


def test_fleiss_kappa_hand_computed():
    # 3 raters, 4 items: P_i = 1, 1, 1/3, 1/3 -> P = 2/3; p_yes = 6/12 -> P_e = 1/2; kappa = 1/3
    assert fleiss_kappa([[3, 0], [0, 3], [2, 1], [1, 2]]) == pytest.approx(1 / 3)
    wikipedia = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                 [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(wikipedia) == pytest.approx(0.2099, abs=1e-4)  # en.wikipedia.org/wiki/Fleiss'_kappa
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa([[2, 0], [1, 2]])


def test_agreement_reports_and_disagreements():
    keys = [PairKey("r", f"s{i}", "p") for i in range(10)]
    two = agreement({"a": dict(zip(keys, A)), "b": {**dict(zip(keys, B)), PairKey("r", "extra", "p"): SKIP}})
    assert two.method == "cohen" and two.kappa == pytest.approx(0.4) and (two.n_common, two.n_agree) == (10, 7)
    assert [k.sentence for k, _ in two.disagreements] == ["s1", "s5", "s9"]
    assert two.disagreements[0][1] == {"a": 1, "b": 0} and two.counts["b"] == {"yes": 5, "no": 5, "skip": 1}
    votes = {"a": [1, 0, 1, 1], "b": [1, 0, 1, 0], "c": [1, 0, 0, 0]}
    three = agreement({n: dict(zip(keys, v)) for n, v in votes.items()})
    assert three.method == "fleiss" and three.kappa == pytest.approx(1 / 3) and len(three.disagreements) == 2
    assert three.pairwise[("a", "b")] == pytest.approx(cohen_kappa(votes["a"], votes["b"]))
    text = three.format()
    assert "Fleiss' kappa: 0.3333" in text and "a=yes, b=yes, c=no" in text


def test_agreement_cli_from_label_files(tmp_path, capsys):
    keys = [PairKey("r", f"s{i}", "p") for i in range(10)]
    files = []
    for name, labels in (("ann", A), ("bea", B)):
        files.append(tmp_path / f"{name}.jsonl")
        with LabelLog.open(files[-1], name) as log:
            for k, v in zip(keys, labels):
                log.label(k, v)
            log.undo()
            log.label(keys[-1], labels[-1])  # an undone and relabelled pair counts once, with its latest label
    assert annotate_main(["--agreement", *map(str, files)]) == 0
    out = capsys.readouterr().out
    assert "Cohen's kappa: 0.4000" in out and "disagreements: 3" in out and "'s9'" in out
    assert len(aggregate_labels([p for f in files for p in labeled_pairs(f)])) == 7  # ties (disagreements) dropped
    report = agreement_from_files(files)
    assert report.n_common == 10
    assert annotate_main(["--agreement", str(files[0])]) == 2
    assert "at least two" in capsys.readouterr().err
    with pytest.raises(ValueError, match="two label files"):
        agreement_from_files([files[0], files[0]])
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps({**k._asdict(), "label": 1, "annotator": n}) + "\n"
                             for k, n in ((keys[0], "x"), (keys[1], "y"))))
    with pytest.raises(ValueError, match="several annotators"):
        read_labels(mixed)
