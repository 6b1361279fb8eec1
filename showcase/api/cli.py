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
    from showcase.api.explain import Explainer

    if args.output and Path(args.output).suffix.lower() not in (".html", ".htm", ".png", ".jpg", ".jpeg"):
        raise UserError(f"--output {args.output}: use a .html, .png or .jpg file name")
    showcaser = Showcaser.load(args.pipeline)
    dataset = showcaser.dataset
    if not dataset.has_business(args.business):
        examples = ", ".join(dataset.businesses[:3])
        raise UserError(f"unknown business {args.business!r}: it has no review in the pipeline's dataset (e.g. "
                        f"{examples})", path=Path(args.pipeline) / "pipeline.json")
    result = showcaser.generate_showcase(args.user, args.business, k=args.k, seed=args.seed)
    explanation = Explainer.load(args.pipeline, showcaser).explain(result)
    name = explanation.business_name or result.business_id
    known = "" if dataset.has_user(args.user) else " (not in the dataset)"
    print(f"user {result.user_id}{known} at {name}:")
    for photo, reason in zip(result.photos, explanation.photos):
        print(f"  photo {photo.photo_id}  ranked {reason.rank_text}  {photo.path or '(file missing)'}")
    print(f"  text: {result.text}")
    scorer = "Φ" if explanation.scorer == "classifier" else "CLIP cosine"
    for link in explanation.sentences:
        if link.photo_id is not None:
            print(f"    \"{link.sentence}\" is about photo {link.photo_id} ({scorer} {link.score:.2f})")
    for note in result.notes:
        print(f"  note: {note}")
    if args.output:
        print(f"wrote {result.save(Path(args.output))}")
    return 0
