"""`showcase generate`: showcases for (user, business) pairs from a trained pipeline folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from showcase.errors import UserError, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, help="pipeline folder (e.g. runs/demo/pipeline)")
    parser.add_argument("--user", required=True, help="user id (an unknown user gets the cold-start group showcase)")
    parser.add_argument("--business", required=True, help="business id (must have reviews in the dataset)")
    parser.add_argument("-k", "--k", type=positive_int, default=3, help="photos to show (a whole number >= 1)")
    parser.add_argument("--output", help="write the showcase as .html or .png")
    parser.add_argument("--seed", type=int, default=0, help="random seed (only random selectors draw numbers)")


def run(args: argparse.Namespace) -> int:
    from showcase.api import Showcaser

    if args.output and Path(args.output).suffix.lower() not in (".html", ".htm", ".png", ".jpg", ".jpeg"):
        raise UserError(f"--output {args.output}: use a .html, .png or .jpg file name")
    showcaser = Showcaser.load(args.pipeline)
    businesses = showcaser.dataset.businesses
    if args.business not in set(businesses):
        examples = ", ".join(sorted(businesses)[:3])
        raise UserError(f"unknown business {args.business!r}: it has no review in the pipeline's dataset (it has "
                        f"{len(businesses)} businesses, e.g. {examples})", path=Path(args.pipeline) / "pipeline.json")
    result = showcaser.generate_showcase(args.user, args.business, k=args.k, seed=args.seed)
    known_user = args.user in set(showcaser.dataset.users)
    print(f"user {result.user_id}{'' if known_user else ' (not in the dataset)'} at business {result.business_id}:")
    for photo in result.photos:
        print(f"  photo {photo.photo_id}  relevance {photo.relevance:.3f}  {photo.path or '(file missing)'}")
    print(f"  text: {result.text}")
    for note in result.notes:
        print(f"  note: {note}")
    if args.output:
        print(f"wrote {result.save(Path(args.output))}")
    return 0
