"""Explanation distillation (Section 3.3): keep the review sentences that describe one of the review's photos.

Every (sentence, photo) pair of every review is scored by Φ in batches; a sentence is kept when its best score over
the review's photos passes the threshold. Reviews left with no sentence are dropped. The result is the paper's
Gest-s2: a dataset whose reviews carry `explanation`.

The work is checkpointed in chunks of reviews under ``OUTPUT/.distill/`` (atomic writes): an interrupted run
continues where it stopped when started again with the same arguments.

Command line::

    showcase distill --dataset DATASET --classifier PHI_DIR --store STORE --output DATASET2 [--threshold 0.5]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import torch

from showcase.data import Review, ShowcaseDataset
from showcase.data.sentences import count_words
from showcase.distill.features import FeatureLookup
from showcase.distill.model import SentenceImageClassifier, load_classifier
from showcase.distill.pairs import review_sentences
from showcase.utils import atomic_write_text, read_jsonl, write_jsonl

WORK_DIR = ".distill"
PHOTO_MODES = ("all", "matched")


@dataclass
class DistillStats:
    """Counts of one distillation run."""

    threshold: float
    reviews_in: int = 0
    reviews_out: int = 0
    reviews_dropped: int = 0  # no sentence passed the threshold
    reviews_without_photo_features: int = 0  # none of their photos is in the store
    sentences_in: int = 0
    sentences_kept: int = 0
    photos_missing: int = 0  # photos absent from the store (skipped)
    texts_encoded: int = 0  # sentences absent from the store, encoded on the fly
    table: dict[str, dict[str, float]] = field(default_factory=dict)


def table1_row(dataset: ShowcaseDataset) -> dict[str, float]:
    """Table 1 statistics: #Image, #Review, #User, #Bus., Avg. R. Len. (words of the explanation, else the text)."""
    reviews = dataset.reviews
    words = [count_words(r.target_text) for r in reviews]
    return {
        "images": len({p for r in reviews for p in r.photos}),
        "reviews": len(reviews),
        "users": len({r.user_id for r in reviews}),
        "businesses": len({r.business_id for r in reviews}),
        "avg_review_length": sum(words) / len(words) if words else 0.0,
    }


def format_table1(rows: dict[str, dict[str, float]]) -> str:
    """Rows of :func:`table1_row` as a text table in the layout of the paper's Table 1."""
    head = f"{'Dataset':<12}{'#Image':>10}{'#Review':>10}{'#User':>10}{'#Bus.':>10}{'Avg. R. Len.':>14}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(
            f"{name:<12}{r['images']:>10,}{r['reviews']:>10,}{r['users']:>10,}{r['businesses']:>10,}"
            f"{r['avg_review_length']:>14.2f}"
        )
    return "\n".join(lines)


@torch.no_grad()
def score_reviews(
    phi: SentenceImageClassifier, lookup: FeatureLookup, reviews: list[Review], batch_size: int = 8192
) -> list[dict[str, Any]]:
    """Φ's scores of every (sentence, photo) pair of `reviews`, scored in batches of pairs.

    Returns one record per review: ``review_id``, ``photos`` (those in the store), ``scores`` (per sentence, the
    list of its scores against ``photos``) and ``missing_photos``.
    """
    sentences = {r.review_id: review_sentences(r) for r in reviews}
    text = lookup.texts(list(dict.fromkeys(s for ss in sentences.values() for s in ss)))  # (S, D)
    text_row = {s: i for i, s in enumerate(dict.fromkeys(s for ss in sentences.values() for s in ss))}
    image, present = lookup.photos(list(dict.fromkeys(p for r in reviews for p in r.photos)))  # (P, D)
    photo_row = {p: i for i, p in enumerate(present)}
    t_idx, p_idx, layout = [], [], []
    for r in reviews:
        photos = [p for p in dict.fromkeys(r.photos) if p in photo_row]
        layout.append((r, photos))
        for s in sentences[r.review_id]:
            for p in photos:
                t_idx.append(text_row[s])
                p_idx.append(photo_row[p])
    t_idx, p_idx = torch.tensor(t_idx, dtype=torch.long), torch.tensor(p_idx, dtype=torch.long)
    probs = torch.cat(
        [phi.pair_probs(text[t_idx[i : i + batch_size]], image[p_idx[i : i + batch_size]]).cpu()
         for i in range(0, len(t_idx), batch_size)]
        or [torch.zeros(0)]
    )
    records, offset = [], 0
    for r, photos in layout:
        m, n = len(sentences[r.review_id]), len(photos)
        block = probs[offset : offset + m * n].view(m, n)  # (sentences, photos)
        offset += m * n
        records.append({
            "review_id": r.review_id,
            "photos": photos,
            "scores": [[round(float(x), 6) for x in row] for row in block],
            "missing_photos": len(set(r.photos)) - n,
        })
    return records


def _chunks(items: list[Review], size: int) -> Iterator[tuple[int, list[Review]]]:
    for k, start in enumerate(range(0, len(items), size)):
        yield k, items[start : start + size]


def _job_key(dataset: ShowcaseDataset, classifier: str | Path, chunk_size: int) -> dict[str, Any]:
    weights = Path(classifier) / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16] if weights.exists() else None
    ids = hashlib.sha256("\n".join(r.review_id for r in dataset.reviews).encode()).hexdigest()[:16]
    return {"classifier": digest, "reviews": ids, "chunk_size": chunk_size}


def distill(
    dataset: ShowcaseDataset | str | Path,
    classifier: str | Path,
    store: Any,
    output: str | Path,
    threshold: float | None = None,
    photos: str = "all",
    batch_size: int = 8192,
    chunk_size: int = 2000,
    verbose: bool = True,
    allow_encoder_mismatch: bool = False,
) -> tuple[ShowcaseDataset, DistillStats]:
    """Distill explanations from every review of `dataset` with Φ and write the result to `output`.

    Args:
        dataset: the input dataset (or its folder).
        classifier: Φ's folder (``showcase fit --config configs/classifier.yaml``).
        store: feature store (or its folder) holding the photos' and sentences' CLIP features.
        output: folder of the distilled dataset (created; resumes from ``output/.distill`` when present).
        threshold: decision threshold; Φ's stored threshold (chosen on validation) when not given.
        photos: ``"all"`` keeps every photo of a kept review; ``"matched"`` only those some kept sentence describes.
        batch_size: (sentence, photo) pairs per forward pass.
        chunk_size: reviews per checkpointed chunk.
        verbose: print progress and the Table 1-style statistics.
        allow_encoder_mismatch: use a store of another encoder than the one Φ was trained on (otherwise a
            `UserError` naming both).

    Returns:
        The distilled dataset (also saved to `output`) and the run's statistics.
    """
    if photos not in PHOTO_MODES:
        raise ValueError(f"photos must be one of {PHOTO_MODES}, got {photos!r}")
    source = None
    if not isinstance(dataset, ShowcaseDataset):
        source = str(Path(dataset).resolve())
        dataset = ShowcaseDataset.load(dataset)
    phi = load_classifier(classifier)
    threshold = phi.threshold if threshold is None else float(threshold)
    lookup = FeatureLookup(store)
    from showcase.fingerprint import check_model_encoder

    check_model_encoder(classifier, lookup.store, allow=allow_encoder_mismatch)
    output = Path(output)
    work = output / WORK_DIR
    key = _job_key(dataset, classifier, chunk_size)
    job_path = work / "job.json"
    if job_path.exists() and json.loads(job_path.read_text()) != key:
        if verbose:
            print(f"{work}: left by a run with other inputs; starting over")
        shutil.rmtree(work)
    atomic_write_text(job_path, json.dumps(key))

    n_chunks = (len(dataset.reviews) + chunk_size - 1) // chunk_size
    scored: dict[str, dict[str, Any]] = {}
    for k, chunk in _chunks(dataset.reviews, chunk_size):
        path = work / f"chunk_{k:06d}.jsonl"
        if not path.exists():
            write_jsonl(path, score_reviews(phi, lookup, chunk, batch_size))
            if verbose:
                print(f"scored chunk {k + 1}/{n_chunks}", flush=True)
        scored.update((rec["review_id"], rec) for _, rec in read_jsonl(path))

    stats = DistillStats(threshold=threshold, reviews_in=len(dataset), texts_encoded=lookup.encoded_texts)
    kept_reviews = []
    for review in dataset.reviews:
        rec = scored[review.review_id]
        sentences = review_sentences(review)
        stats.sentences_in += len(sentences)
        stats.photos_missing += rec["missing_photos"]
        if not rec["photos"]:
            stats.reviews_without_photo_features += 1
        keep = [i for i, row in enumerate(rec["scores"]) if row and max(row) >= threshold]
        if not keep:
            stats.reviews_dropped += 1
            continue
        stats.sentences_kept += len(keep)
        kept_photos = review.photos
        if photos == "matched":
            best = [max(rec["scores"][i][j] for i in keep) for j in range(len(rec["photos"]))]
            kept_photos = tuple(p for p, score in zip(rec["photos"], best) if score >= threshold)
        kept_reviews.append(replace(review, photos=tuple(kept_photos), explanation=tuple(sentences[i] for i in keep)))
    stats.reviews_out = len(kept_reviews)
    result = dataset.with_reviews(kept_reviews)
    stats.table = {"input": table1_row(dataset), "distilled": table1_row(result)}
    result.save(output, distill={**asdict(stats), "source": source, "photos": photos})
    shutil.rmtree(work, ignore_errors=True)
    if verbose:
        print(format_stats(stats))
    return result, stats


def format_stats(stats: DistillStats) -> str:
    """Table 1-style statistics of input and output plus the run's counts."""
    kept = stats.sentences_kept / stats.sentences_in if stats.sentences_in else 0.0
    return "\n".join([
        format_table1(stats.table),
        f"threshold {stats.threshold:.3f}: kept {stats.sentences_kept:,}/{stats.sentences_in:,} sentences "
        f"({kept:.1%}); "
        f"dropped {stats.reviews_dropped:,} reviews with no kept sentence",
        f"photos missing from the store: {stats.photos_missing:,} "
        f"(reviews with none: {stats.reviews_without_photo_features:,}); "
        f"sentences encoded on the fly: {stats.texts_encoded:,}",
    ])


# --- command line ---------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``showcase distill``."""
    parser.add_argument("--dataset", required=True, help="input dataset folder (showcase prepare)")
    parser.add_argument("--classifier", required=True,
                        help="trained Φ folder (showcase fit --config configs/classifier.yaml)")
    parser.add_argument("--store", required=True, help="feature store folder (showcase features)")
    parser.add_argument("--output", required=True, help="folder of the distilled dataset (Gest-s2)")
    parser.add_argument("--threshold", type=float, help="decision threshold (default: Φ's, chosen on validation)")
    parser.add_argument("--photos", choices=PHOTO_MODES, default="all",
                        help="keep all photos of a kept review, or only those a kept sentence describes")
    parser.add_argument("--batch-size", type=int, default=8192, help="(sentence, photo) pairs per forward pass")
    parser.add_argument("--chunk-size", type=int, default=2000, help="reviews per checkpointed chunk")
    parser.add_argument("--allow-encoder-mismatch", action="store_true",
                        help="use a store of another CLIP than the one Φ was trained on")


def run(args: argparse.Namespace) -> int:
    """Run ``showcase distill``."""
    distill(args.dataset, args.classifier, args.store, args.output, threshold=args.threshold, photos=args.photos,
            batch_size=args.batch_size, chunk_size=args.chunk_size,
            allow_encoder_mismatch=args.allow_encoder_mismatch)
    print(f"wrote {args.output}")
    return 0
