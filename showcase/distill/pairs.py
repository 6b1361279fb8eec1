"""Labelled (sentence, photo) pairs: the JSONL format of hand labels, the 8:1:1 split, labels from the test world.

One pair per line::

    {"review_id": "r1", "sentence": "The miso ramen was rich.", "photo_id": "p7", "label": 1, "annotator": "ann"}

`label` is 1 (the sentence describes the photo), 0 (it does not) or null (not labelled yet: a pair sampled for
annotation). Extra fields are ignored, so the annotation tool's label logs (`annotation/labels.py`: the same records
plus `event` and `time`, latest record of a pair wins) are read as they are; :func:`aggregate_labels` applies the
latest-wins rule per annotator and a majority vote across annotators.

Command line (``showcase pairs``)::

    showcase pairs --world WORLD --dataset DS --output pairs.jsonl          # labels from the world's ground truth
    showcase pairs --dataset DS --output pairs.jsonl --sample 1000          # unlabelled pairs to annotate
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from showcase.data import Review, ShowcaseDataset
from showcase.data.sentences import split_sentences
from showcase.utils import read_jsonl, write_jsonl

SPLIT_RATIOS = (8, 1, 1)


@dataclass(frozen=True)
class LabeledPair:
    """One (sentence, photo) pair of a review and, when labelled, whether the sentence describes the photo."""

    review_id: str
    sentence: str
    photo_id: str
    label: int | None = None
    annotator: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity of the pair regardless of who labelled it."""
        return (self.review_id, self.sentence, self.photo_id)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict, where: str = "pair") -> "LabeledPair":
        """Parse one record; errors name `where` (e.g. ``file:line``) and the field."""
        for name in ("review_id", "sentence", "photo_id"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ValueError(f"{where}: field {name!r} must be a non-empty string, got {data.get(name)!r}")
        label = data.get("label")
        if label == "skip":  # a label log's skip event: seen, not labelled
            label = None
        if label is not None:
            if isinstance(label, bool) or label not in (0, 1):
                raise ValueError(f"{where}: field 'label' must be 0, 1 or null, got {label!r}")
            label = int(label)
        annotator = data.get("annotator")
        if annotator is not None and not isinstance(annotator, str):
            raise ValueError(f"{where}: field 'annotator' must be a string or null, got {annotator!r}")
        return cls(data["review_id"], data["sentence"], data["photo_id"], label, annotator)


def read_pairs(path: str | Path) -> list[LabeledPair]:
    """Read a pairs JSONL file; a malformed line raises naming the file, the line and the field."""
    return [LabeledPair.from_json(rec, f"{path}:{lineno}") for lineno, rec in read_jsonl(path)]


def write_pairs(path: str | Path, pairs: Iterable[LabeledPair]) -> Path:
    """Write pairs as JSONL atomically (a crash never leaves half a file)."""
    write_jsonl(path, [p.to_json() for p in pairs])
    return Path(path)


def aggregate_labels(pairs: Iterable[LabeledPair]) -> list[LabeledPair]:
    """One labelled pair per (review, sentence, photo) by majority vote over annotators.

    Each annotator's latest record of a pair counts, as in the annotation tool's label logs: a relabel replaces
    the label, and a later unlabelled record (a skip or an undo, ``label`` null) withdraws it. Ties and unlabelled
    pairs are dropped. The result has ``annotator=None`` unless a single annotator labelled the pair.
    """
    votes: dict[tuple[str, str, str], dict[str | None, int | None]] = defaultdict(dict)
    for p in pairs:
        votes[p.key][p.annotator] = p.label
    out = []
    for key, latest in votes.items():
        by_annotator = {a: v for a, v in latest.items() if v is not None}
        if not by_annotator:
            continue
        counts = Counter(by_annotator.values())
        if counts[0] == counts[1]:
            continue
        label = int(counts[1] > counts[0])
        annotator = next(iter(by_annotator)) if len(by_annotator) == 1 else None
        out.append(LabeledPair(*key, label=label, annotator=annotator))
    return out


def split_pairs(
    pairs: Sequence[LabeledPair], ratios: Sequence[float] = SPLIT_RATIOS, seed: int = 0
) -> dict[str, list[LabeledPair]]:
    """Split pairs into train/val/test (8:1:1 by default), keeping all pairs of one review in one split.

    Grouping by review keeps a sentence (and its photos) from appearing on both sides of the split. Reviews are
    shuffled with `seed` and cut by their cumulative share of pairs; with at least three reviews, val and test
    are never empty.
    """
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(f"ratios must be three non-negative numbers, got {tuple(ratios)}")
    by_review: dict[str, list[LabeledPair]] = defaultdict(list)
    for p in pairs:
        by_review[p.review_id].append(p)
    reviews = sorted(by_review)
    random.Random(seed).shuffle(reviews)
    total = sum(ratios)
    n = len(reviews)
    n_test = max(round(n * ratios[2] / total), int(n >= 3 and ratios[2] > 0))
    n_val = max(round(n * ratios[1] / total), int(n >= 3 and ratios[1] > 0))
    n_train = n - n_val - n_test
    parts = {"train": reviews[:n_train], "val": reviews[n_train : n_train + n_val], "test": reviews[n_train + n_val :]}
    return {name: [p for r in ids for p in by_review[r]] for name, ids in parts.items()}


# --- pairs of a dataset ---------------------------------------------------------------------------------------------
def review_sentences(review: Review) -> tuple[str, ...]:
    """The review's sentences (split from its text when the dataset did not store them)."""
    return review.sentences or tuple(split_sentences(review.text))


def review_pairs(review: Review) -> list[LabeledPair]:
    """Every (sentence, photo) pair of a review, unlabelled."""
    return [LabeledPair(review.review_id, s, p) for s in review_sentences(review) for p in review.photos]


def sample_pairs(dataset: ShowcaseDataset, n: int, seed: int = 0) -> list[LabeledPair]:
    """About `n` unlabelled pairs for annotation: whole reviews drawn at random (as the paper labelled reviews).

    Reviews are added until `n` pairs are reached; the last review is cut so exactly `n` come back (or fewer when
    the dataset has fewer pairs).
    """
    if n <= 0:
        raise ValueError(f"sample size must be positive, got {n}")
    reviews = list(dataset.reviews)
    random.Random(seed).shuffle(reviews)
    out: list[LabeledPair] = []
    for review in reviews:
        out.extend(review_pairs(review))
        if len(out) >= n:
            break
    return out[:n]


def pairs_from_world(world_dir: str | Path, dataset: ShowcaseDataset | str | Path) -> list[LabeledPair]:
    """Ground-truth labels for every (sentence, photo) pair of the dataset, from the test world's ``world.json``.

    A pair is labelled 1 when the sentence names the photo's dish, else 0. The sentence's dish is read from
    ``world.json["sentences"][review_id]`` (matched by text); a sentence not found there is matched against the
    world's dish names (the longest name it contains). Photos missing from ``world.json["photos"]`` are skipped.

    Raises:
        FileNotFoundError: when ``world_dir/world.json`` does not exist.
    """
    path = Path(world_dir) / "world.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {world_dir} a test world (showcase world)?")
    world = json.loads(path.read_text())
    for name in ("photos", "sentences"):
        if name not in world:
            raise ValueError(f"{path}: missing field {name!r}")
    if not isinstance(dataset, ShowcaseDataset):
        dataset = ShowcaseDataset.load(dataset)
    photo_dish: dict[str, str] = world["photos"]
    dish_names = sorted({d["name"] for d in world.get("dishes", [])} | set(photo_dish.values()), key=len, reverse=True)
    by_text = {s["text"]: s.get("dish") for ss in world["sentences"].values() for s in ss}

    def dish_of(review_id: str, sentence: str) -> str | None:
        for s in world["sentences"].get(review_id, ()):
            if s["text"] == sentence:
                return s.get("dish")
        if sentence in by_text:
            return by_text[sentence]
        lower = sentence.lower()
        return next((d for d in dish_names if d.lower() in lower), None)

    out = []
    for review in dataset.reviews:
        photos = [p for p in review.photos if p in photo_dish]
        for sentence in review_sentences(review):
            dish = dish_of(review.review_id, sentence)
            for p in photos:
                out.append(LabeledPair(review.review_id, sentence, p, int(dish is not None and dish == photo_dish[p]),
                                       "world"))
    return out


# --- command line ---------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``showcase pairs``."""
    parser.add_argument("--dataset", required=True, help="dataset folder (showcase prepare)")
    parser.add_argument("--output", required=True, help="pairs JSONL file to write")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--world", help="test world folder: label every pair from its ground truth")
    group.add_argument("--sample", type=int, help="sample this many unlabelled pairs for annotation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")


def run(args: argparse.Namespace) -> int:
    """Write labelled pairs (``--world``) or a sample of unlabelled pairs (``--sample``)."""
    dataset = ShowcaseDataset.load(args.dataset)
    if args.world:
        pairs = pairs_from_world(args.world, dataset)
        positives = sum(p.label for p in pairs)
        write_pairs(args.output, pairs)
        print(f"wrote {len(pairs)} labelled pairs ({positives} positive) to {args.output}")
    else:
        pairs = sample_pairs(dataset, args.sample, seed=args.seed)
        write_pairs(args.output, pairs)
        print(f"wrote {len(pairs)} unlabelled pairs from {len({p.review_id for p in pairs})} reviews to {args.output}")
    return 0
