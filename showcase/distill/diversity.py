"""Visual diversity of user photos (Section 3.2 and Appendix B of the paper), from CLIP features.

With ``dis(i_m, i_n) = 1 − cos(i_m, i_n)`` over photo pairs of one business:

- **Intra-Business Div** (Eq. 14): every pair of the business's photos;
- **Inter-User Div** (Eq. 15): pairs of the business's photos posted by different users;
- **Intra-User Div** (Eq. 16): pairs of photos one user posted for the business.

Each is the sum of ``dis`` over all such pairs of all businesses divided by the number of pairs (``Z``), i.e. a
mean over pairs. Photos missing from the feature store are skipped and counted. Higher means more diverse.

Command line::

    showcase analyze --dataset DATASET --store STORE [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F

from showcase.data import ShowcaseDataset
from showcase.distill.features import FeatureLookup, open_store
from showcase.utils import atomic_write_text


@dataclass
class Diversity:
    """The three diversities (NaN when no pair of that kind exists) and the pair counts ``Z1, Z2, Z3``."""

    intra_business: float
    inter_user: float
    intra_user: float
    pairs_intra_business: int
    pairs_inter_user: int
    pairs_intra_user: int
    businesses: int
    photos: int
    photos_missing: int


def _pair_sums(features: torch.Tensor, users: torch.Tensor, block: int = 1024) -> tuple[float, float, int, int]:
    """Sums of ``dis`` over all pairs ``m < n`` and over same-user pairs, and their counts (rows in blocks)."""
    n = len(features)
    total = same = 0.0
    n_total = n * (n - 1) // 2
    n_same = 0
    cols = torch.arange(n)
    for start in range(0, n, block):
        rows = torch.arange(start, min(start + block, n))
        dis = 1.0 - features[rows] @ features.T  # (b, n)
        upper = cols[None, :] > rows[:, None]  # (b, n): each unordered pair once
        same_user = upper & (users[rows][:, None] == users[None, :])
        total += float(dis[upper].double().sum())
        same += float(dis[same_user].double().sum())
        n_same += int(same_user.sum())
    return total, same, n_total, n_same


def visual_diversity(dataset: ShowcaseDataset, store: Any) -> Diversity:
    """Intra-Business, Inter-User and Intra-User diversity of `dataset`'s photos (Appendix B).

    Args:
        dataset: reviews with photos; a photo belongs to the business and user of the review it is attached to
            (the first such review when it appears in several).
        store: feature store (or its folder) with the photos' CLIP features.
    """
    lookup = FeatureLookup(open_store(store))
    owners: dict[str, dict[str, str]] = {}  # business -> photo -> user
    for r in dataset.reviews:
        pool = owners.setdefault(r.business_id, {})
        for p in r.photos:
            pool.setdefault(p, r.user_id)
    sums = {"all": 0.0, "same": 0.0}
    counts = {"all": 0, "same": 0}
    photos = missing = 0
    for pool in owners.values():
        features, present = lookup.photos(list(pool))
        photos += len(present)
        missing += len(pool) - len(present)
        if len(present) < 2:
            continue
        user_ids = {u: i for i, u in enumerate(dict.fromkeys(pool[p] for p in present))}
        users = torch.tensor([user_ids[pool[p]] for p in present])
        total, same, n_total, n_same = _pair_sums(F.normalize(features.float(), dim=-1), users)
        sums["all"] += total
        sums["same"] += same
        counts["all"] += n_total
        counts["same"] += n_same

    def mean(s: float, z: int) -> float:
        return s / z if z else float("nan")

    n_inter = counts["all"] - counts["same"]
    return Diversity(
        intra_business=mean(sums["all"], counts["all"]),
        inter_user=mean(sums["all"] - sums["same"], n_inter),
        intra_user=mean(sums["same"], counts["same"]),
        pairs_intra_business=counts["all"],
        pairs_inter_user=n_inter,
        pairs_intra_user=counts["same"],
        businesses=len(owners),
        photos=photos,
        photos_missing=missing,
    )


def format_diversity(d: Diversity) -> str:
    lines = [f"{'Diversity':<18}{'value':>8}{'pairs':>14}"]
    for name, value, pairs in (
        ("Intra-Business", d.intra_business, d.pairs_intra_business),
        ("Inter-User", d.inter_user, d.pairs_inter_user),
        ("Intra-User", d.intra_user, d.pairs_intra_user),
    ):
        lines.append(f"{name:<18}{value:>8.4f}{pairs:>14,}")
    lines.append(f"{d.photos:,} photos of {d.businesses:,} businesses; {d.photos_missing:,} missing from the store")
    return "\n".join(lines)


# --- command line ---------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``showcase analyze``."""
    parser.add_argument("--dataset", required=True, help="dataset folder (showcase prepare)")
    parser.add_argument("--store", required=True, help="feature store folder with the photos' CLIP features")
    parser.add_argument("--json", help="also write the figures to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Run ``showcase analyze``: print the three visual diversities."""
    result = visual_diversity(ShowcaseDataset.load(args.dataset), args.store)
    print(format_diversity(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(asdict(result), indent=2))
    return 0
