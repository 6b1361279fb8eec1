"""`showcase annotate`: serve the labelling page, or report agreement between annotators' label files.

    showcase annotate --pairs PAIRS.jsonl --labels LABELS.jsonl --annotator NAME [--photos DIR] [--port 0]
    showcase annotate --agreement alice.jsonl bob.jsonl [carol.jsonl ...]
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import webbrowser
from pathlib import Path

from annotation.agreement import agreement_from_files
from annotation.labels import LabelFileLocked
from annotation.server import AnnotationServer, open_session
from showcase.errors import ArgumentParser, UserError, debug_requested, run_reporting_errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `annotate` options to `parser`."""
    parser.description = ("Label (sentence, photo) pairs in a local web page (yes / no / skip, undo, resume), or "
                          "report inter-annotator agreement. Each label is saved to disk at once.")
    parser.add_argument("--pairs", type=Path, help="JSONL of pairs to label (review_id, sentence, photo_id)")
    parser.add_argument("--labels", type=Path, help="this annotator's label file (JSONL, appended; one per annotator)")
    parser.add_argument("--annotator", help="the annotator's name, recorded with every label")
    parser.add_argument("--photos", type=Path, default=None,
                        help="folder of photo files named by photo id, or a dataset folder (its photos_dir is used; "
                             "default: photos/ beside --pairs if present; required otherwise, unless --no-photos)")
    parser.add_argument("--no-photos", action="store_true",
                        help="label without photos (the page shows photo ids only)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default 0: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    parser.add_argument("--agreement", nargs="+", type=Path, metavar="LABELS",
                        help="instead of serving: Cohen's kappa (2 files) or Fleiss' kappa (more), and disagreements")
    parser.add_argument("--max-disagreements", type=int, default=50, help="disagreements to list (default 50)")


def run(args: argparse.Namespace) -> int:
    """Run `showcase annotate`; returns the exit status. Bad input raises `UserError` (one line, exit 2)."""
    try:
        if args.agreement:
            print(agreement_from_files(args.agreement).format(args.max_disagreements))
            return 0
        missing = [f"--{n}" for n in ("pairs", "labels", "annotator") if not getattr(args, n)]
        if missing:
            raise UserError(f"{' '.join(missing)} required (or --agreement FILES)")
        return serve(args.pairs, args.labels, args.annotator, _photos_dir(args), args.port, args.open, args.verbose)
    except (ValueError, LabelFileLocked) as e:  # the label and pair readers' messages name file and line
        if isinstance(e, UserError):
            raise
        raise UserError(" ".join(str(e).split())) from e


def _photos_dir(args: argparse.Namespace) -> Path | None:
    if args.no_photos:
        if args.photos is not None:
            raise UserError("give either --photos DIR or --no-photos, not both")
        return None
    if args.photos is not None:
        if not args.photos.is_dir():
            raise UserError("--photos: not a folder (give the photo folder or a dataset folder)", path=args.photos)
        meta = args.photos / "dataset.json"
        if meta.is_file():  # a dataset folder (showcase prepare): use its photo folder
            try:
                photos_dir = json.loads(meta.read_text(encoding="utf-8")).get("photos_dir")
            except (ValueError, AttributeError) as e:
                raise UserError(f"not a dataset description ({e})", path=meta) from None
            if not photos_dir:
                raise UserError("names no photos_dir", path=meta)
            return args.photos / photos_dir  # an absolute photos_dir replaces the prefix
        return args.photos
    beside = args.pairs.parent / "photos"
    if beside.is_dir():
        return beside
    raise UserError(f"no photos to show: give --photos DIR (the photo folder or the dataset folder), or --no-photos "
                    f"to label from the photo ids alone (looked for {beside})")


def serve(pairs: Path, labels: Path, annotator: str, photos: Path | None = None, port: int = 0,
          open_browser: bool = False, verbose: bool = False) -> int:
    """Serve the labelling page until Ctrl-C or SIGTERM, then release the label file's lock."""
    session = open_session(pairs, labels, annotator, photos)
    try:
        server = AnnotationServer(session, port, verbose)
    except BaseException:
        session.log.close()
        raise
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:  # SIGTERM -> SystemExit, so `finally` releases the lock
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        state = session.state()
        print(f"labelling {state['total']} pairs as {annotator!r} ({state['done']} done), labels -> {labels}")
        if photos is None:
            print("no --photos folder: the page shows photo ids only", file=sys.stderr)
        print(f"open {server.url}  (Ctrl-C to stop; every label is saved at once)", flush=True)
        if open_browser:
            webbrowser.open(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        server.server_close()
        session.log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m annotation.cli ...` (the same options as `showcase annotate`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    parser = ArgumentParser(prog="showcase annotate")
    add_arguments(parser)
    return run_reporting_errors("showcase annotate", lambda: run(parser.parse_args(argv)), debug)


if __name__ == "__main__":
    sys.exit(main())
