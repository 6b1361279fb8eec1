"""`showcase predict`: showcases for many (user, business) pairs, batched, resumable, on one or more processes.

    showcase predict --pipeline DIR --pairs pairs.jsonl --output showcases.jsonl [--batch-size N] [--devices N]

Input: one JSON object a line, `{"user_id": ..., "business_id": ...}`, optionally `"photos": [ids]` (explain
those photos instead of selecting). Output: one line per pair, in input order:
`{"user_id", "business_id", "photos": [{"photo_id", "relevance"}], "text", "cold_start", "notes"}`.

Resumable: finished pairs are journalled in `<output>.part-<rank>` files as they are written; a rerun skips every
pair already in the output or in a journal, and the journals are merged into the output (atomically, in input
order) when all pairs are done. With `--devices N`, N processes (a `gloo` process group on CPU, `nccl` on GPUs)
each take every N-th remaining pair, and the merge restores the input order.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from showcase.errors import UserError, positive_int
from showcase.utils import atomic_write_text, read_jsonl

PART = ".part-"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, help="pipeline folder (showcase demo writes runs/demo/pipeline)")
    parser.add_argument("--pairs", required=True, help='JSON lines {"user_id", "business_id"[, "photos"]}')
    parser.add_argument("--output", required=True, help="JSON lines, one showcase per pair in input order")
    parser.add_argument("--batch-size", type=int, default=64, help="pairs per batch (default 64)")
    parser.add_argument("--devices", type=int, default=1, help="processes (CPU) or GPUs to share the pairs")
    parser.add_argument("--k", type=positive_int, default=3, help="photos per showcase (a whole number >= 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed (cold-start reviewer sample, random selectors)")
    parser.add_argument("--allow-encoder-mismatch", action="store_true",
                        help="use the pipeline even if its store's encoder differs from the models'")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs of a JSON-lines file; a bad line is a `UserError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError("no such file", path=path)
    pairs = []
    for number, record in read_jsonl(path):
        missing = [k for k in ("user_id", "business_id") if not isinstance(record.get(k), str)]
        if missing:
            raise UserError(f"missing or non-string {', '.join(missing)}", path=path, line=number)
        photos = record.get("photos")
        if photos is not None and not (isinstance(photos, list) and all(isinstance(p, str) for p in photos)):
            raise UserError("photos must be a list of photo ids", path=path, line=number)
        pairs.append({"user_id": record["user_id"], "business_id": record["business_id"], "photos": photos,
                      "line": number})
    return pairs


def _complete_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSON-lines file, ignoring a torn last line (a killed writer)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                return


def _journals(output: Path) -> list[Path]:
    return sorted(output.parent.glob(f"{output.name}{PART}*"))


def _drop_torn_line(path: Path) -> None:
    """Cut a journal after its last complete line, so appended records start on a line of their own."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def finished(output: Path) -> dict[int, dict[str, Any]]:
    """Pairs already done, by input position: the output's lines, then the journals' (`"index"` keyed)."""
    done = {i: record for i, record in enumerate(_complete_lines(output))}
    for journal in _journals(output):
        for record in _complete_lines(journal):
            done[int(record.pop("index"))] = record
    return done


def showcase_record(showcase) -> dict[str, Any]:
    """The output line of one showcase."""
    return {"user_id": showcase.user_id, "business_id": showcase.business_id,
            "photos": [{"photo_id": p.photo_id, "relevance": round(float(p.relevance), 6)} for p in showcase.photos],
            "text": showcase.text, "cold_start": showcase.cold_start, "notes": list(showcase.notes)}


def run_share(rank: int, world_size: int, args: argparse.Namespace, todo: list[int],
              pairs: list[dict[str, Any]]) -> None:
    """One process's share: every `world_size`-th pending pair, journalled to `<output>.part-<rank>`."""
    import torch

    from showcase.api.showcaser import Showcaser

    distributed = world_size > 1
    device = "cpu"
    if distributed:
        import torch.distributed as dist

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world_size))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, rank=rank, world_size=world_size)
        if backend == "nccl":
            device = f"cuda:{rank}"
    elif torch.cuda.is_available():
        device = "cuda"
    try:
        showcaser = Showcaser.load(args.pipeline, device=device, allow_encoder_mismatch=args.allow_encoder_mismatch)
        mine = todo[rank::world_size]
        journal = Path(args.output).with_name(f"{Path(args.output).name}{PART}{rank}")
        progress = None
        if rank == 0 and not args.no_progress:
            from tqdm import tqdm

            progress = tqdm(total=len(todo), unit="pair", desc="showcases", file=sys.stderr)
        with journal.open("a", encoding="utf-8") as out:
            for start in range(0, len(mine), args.batch_size):
                batch = mine[start: start + args.batch_size]
                results = showcaser.generate_showcases(
                    [(pairs[i]["user_id"], pairs[i]["business_id"]) for i in batch], k=args.k, seed=args.seed,
                    photos=[pairs[i]["photos"] for i in batch], batch_size=args.batch_size)
                out.write("".join(json.dumps({"index": i, **showcase_record(s)}, ensure_ascii=False) + "\n"
                                  for i, s in zip(batch, results)))
                out.flush()
                if progress is not None:
                    progress.update(len(batch) * world_size)
        if progress is not None:
            progress.close()
        if distributed:
            dist.barrier()
    finally:
        if distributed:
            dist.destroy_process_group()


def _spawned(rank: int, world_size: int, port: int, args, todo, pairs) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    run_share(rank, world_size, args, todo, pairs)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def merge(output: Path, count: int) -> None:
    """Write the output in input order from the output and journals; then remove the journals."""
    done = finished(output)
    missing = [i for i in range(count) if i not in done]
    if missing:
        raise RuntimeError(f"{len(missing)} pairs have no showcase (first at position {missing[0]}): rerun to resume")
    atomic_write_text(output, "".join(json.dumps(done[i], ensure_ascii=False) + "\n" for i in range(count)))
    for journal in _journals(output):
        journal.unlink()


def predict(args: argparse.Namespace) -> dict[str, Any]:
    """Run `showcase predict`; returns `{"pairs", "done_before", "written", "seconds"}`."""
    import time

    if args.batch_size < 1 or args.devices < 1:
        raise UserError(f"--batch-size and --devices must be >= 1, got {args.batch_size} and {args.devices}")
    pairs = read_pairs(args.pairs)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    for journal in _journals(output):
        _drop_torn_line(journal)
    done = finished(output)
    todo = [i for i in range(len(pairs)) if i not in done]
    start = time.perf_counter()
    if todo:
        world_size = min(args.devices, len(todo))
        if world_size == 1:
            run_share(0, 1, args, todo, pairs)
        else:
            import torch.multiprocessing as mp

            mp.spawn(_spawned, args=(world_size, _free_port(), args, todo, pairs), nprocs=world_size, join=True)
    merge(output, len(pairs))
    return {"pairs": len(pairs), "done_before": len(done), "written": len(todo),
            "seconds": time.perf_counter() - start}


def run(args: argparse.Namespace) -> int:
    summary = predict(args)
    rate = summary["written"] / summary["seconds"] if summary["seconds"] > 0 else float("nan")
    print(f"{summary['pairs']} showcases in {args.output} ({summary['done_before']} done before, "
          f"{summary['written']} now in {summary['seconds']:.1f} s: {rate:.1f} pairs/s on {args.devices} process(es))")
    return 0
