"""`showcase world` and `showcase prepare`."""
from __future__ import annotations

import argparse
import json

from showcase.data.prepare import FilterConfig, format_statistics, prepare
from showcase.data.world import SIZES, generate_world


def add_world_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="folder to write filter_all_t.json, photos/ and world.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generator: same seed, same world (default 0)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="small: 150 users, 40 businesses; medium: 450 users, 100 businesses")


def run_world(args: argparse.Namespace) -> int:
    out = generate_world(args.output, seed=args.seed, size=args.size)
    truth = json.loads((out / "world.json").read_text())
    print(f"wrote the test world to {out}: {len(truth['photos'])} photos, {len(truth['users'])} users, "
          f"{len(truth['businesses'])} businesses ({out / 'filter_all_t.json'})")
    return 0


def add_prepare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="filter_all_t.json or image_review_all.json (JSON lines)")
    parser.add_argument("--photos", required=True, help="folder of photo files named by photo id")
    parser.add_argument("--output", required=True, help="dataset folder to write")
    parser.add_argument("--min-words", type=int, default=5, help="drop reviews with fewer words (default 5)")
    parser.add_argument("--max-photos", type=int, default=10, help="drop reviews with more photos (default 10)")
    parser.add_argument("--min-user-reviews", type=int, default=2, help="drop users with fewer reviews (default 2)")
    parser.add_argument("--split", type=float, nargs=3, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                        help="fractions of users in train, val and test (default 0.8 0.1 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split by user (default 0)")
    parser.add_argument("--resplit", action="store_true", help="ignore a split given by the input file")
    parser.add_argument("--businesses", help="Google Local metadata (JSON lines with gmap_id or business_id, and "
                        "name): business names shown on showcase cards")


def run_prepare(args: argparse.Namespace) -> int:
    filters = FilterConfig(args.min_words, args.max_photos, args.min_user_reviews)
    dataset, report = prepare(args.input, args.photos, args.output, filters, tuple(args.split), args.seed,
                              keep_split=not args.resplit, businesses=args.businesses)
    print(format_statistics(dataset.meta["statistics"]))
    if report.dropped:
        print("dropped:")
        for reason, n in report.dropped.items():
            print(f"  {n:>8}  {reason}")
    print(f"wrote {len(dataset)} reviews to {args.output}")
    return 0
