"""`showcase generate`: showcases for (user, business) pairs from a trained pipeline folder."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, help="pipeline folder (e.g. runs/demo/pipeline)")
    parser.add_argument("--user", required=True, help="user id (an unknown user gets the cold-start group showcase)")
    parser.add_argument("--business", required=True, help="business id (must have reviews in the dataset)")
    parser.add_argument("-k", "--k", type=int, default=3, help="photos to show")
    parser.add_argument("--output", help="write the showcase as .html or .png")
    parser.add_argument("--seed", type=int, default=0, help="random seed (only random selectors draw numbers)")


def run(args: argparse.Namespace) -> int:
    from showcase.api import Showcaser

    result = Showcaser.load(args.pipeline).generate_showcase(args.user, args.business, k=args.k, seed=args.seed)
    print(f"user {result.user_id} at business {result.business_id}:")
    for photo in result.photos:
        print(f"  photo {photo.photo_id}  relevance {photo.relevance:.3f}  {photo.path or '(file missing)'}")
    print(f"  text: {result.text}")
    for note in result.notes:
        print(f"  note: {note}")
    if args.output:
        print(f"wrote {result.save(Path(args.output))}")
    return 0
