"""Read prediction/reference JSON-lines files and pair them by id, with errors naming the file, line and id."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from showcase.errors import UserError


class MetricsInputError(UserError, ValueError):
    """A malformed or inconsistent input file (the message names the file, the line and the id)."""


@dataclass
class Record:
    """One line of a predictions or references file."""

    id: str
    texts: List[str]
    path: Path
    line: int
    images: List[str] = field(default_factory=list)


def read_records(path: Path, allow_many: bool) -> Dict[str, Record]:
    """Read ``{"id", "text"}`` lines (also ``{"id", "texts": [...]}`` when ``allow_many``) keyed by id.

    Optional ``"images"`` or ``"photos"``: file names or photo ids of the sample's images (for CLIP metrics).
    Blank lines are skipped; a bad line, a missing field or a repeated id raises :class:`MetricsInputError`.
    """
    path = Path(path)
    if not path.is_file():
        raise MetricsInputError("no such file", path=path)
    out: Dict[str, Record] = {}
    with path.open("rb") as fh:
        for no, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MetricsInputError(f"not UTF-8 text (byte {raw[exc.start]:#04x} at column {exc.start + 1}); "
                                        "save the file as UTF-8", path=path, line=no) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MetricsInputError(f"not valid JSON ({exc.msg})", path=path, line=no) from None
            if not isinstance(obj, dict) or "id" not in obj:
                raise MetricsInputError("each line must be a JSON object with an 'id'", path=path, line=no)
            rid = str(obj["id"])
            if "text" in obj:
                texts = [obj["text"]]
            elif allow_many and "texts" in obj:
                texts = obj["texts"]
            else:
                need = "'text' or 'texts'" if allow_many else "'text'"
                raise MetricsInputError(f"id {rid!r} has no {need} field", path=path, line=no)
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise MetricsInputError(f"id {rid!r}: texts must be a non-empty list of strings", path=path, line=no)
            if rid in out:
                raise MetricsInputError(f"id {rid!r} repeated (first at line {out[rid].line})", path=path, line=no)
            images = obj.get("images", obj.get("photos")) or []
            if not isinstance(images, list):
                raise MetricsInputError(f"id {rid!r}: 'images' must be a list of names", path=path, line=no)
            out[rid] = Record(rid, texts, path, no, [str(i) for i in images])
    return out


@dataclass
class Paired:
    """Predictions and references matched by id, in the predictions file's order."""

    ids: List[str]
    preds: List[str]
    refs: List[List[str]]
    images: List[List[str]]
    pred_records: List[Record]


def pair(pred_path: Path, ref_path: Path) -> Paired:
    """Match the two files by id; an id present on one side only is an error naming it (and its line)."""
    preds = read_records(pred_path, allow_many=False)
    refs = read_records(ref_path, allow_many=True)
    for a, b, side in ((preds, refs, ref_path), (refs, preds, pred_path)):
        missing = [r for k, r in a.items() if k not in b]
        if missing:
            shown = ", ".join(f"{r.id!r} ({r.path}:{r.line})" for r in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise MetricsInputError(f"no line for id {shown}{more}", path=side)
    if not preds:
        raise MetricsInputError("no predictions (the file holds no line)", path=pred_path)
    ids = list(preds)
    return Paired(ids, [preds[i].texts[0] for i in ids], [refs[i].texts for i in ids],
                  [preds[i].images or refs[i].images for i in ids], [preds[i] for i in ids])


def resolve_images(paired: Paired, folder: Optional[Path]) -> List[List[Path]]:
    """Image paths of each sample: each name as given, then with ``.jpg`` appended, inside ``folder``."""
    out = []
    for rec, names in zip(paired.pred_records, paired.images):
        if not names:
            raise MetricsInputError(f"id {rec.id!r} lists no 'images' (needed by CLIP metrics; give them on "
                                    "the prediction or reference line)", path=rec.path, line=rec.line)
        paths = []
        for name in names:
            base = Path(folder) / name if folder else Path(name)
            cand = [base, base.with_name(base.name + ".jpg")]
            found = next((c for c in cand if c.is_file()), None)
            if found is None:
                raise MetricsInputError(f"id {rec.id!r}: image {name!r} not found (looked for {cand[0]} and "
                                        f"{cand[1].name})", path=rec.path, line=rec.line)
            paths.append(found)
        out.append(paths)
    return out
