"""Read prediction/reference JSON-lines files and pair them by id, with errors naming the file, line and id."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional


class MetricsInputError(ValueError):
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
        raise MetricsInputError(f"{path}: no such file")
    out: Dict[str, Record] = {}
    with path.open(encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{no}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MetricsInputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or "id" not in obj:
                raise MetricsInputError(f"{where}: each line must be a JSON object with an 'id'")
            rid = str(obj["id"])
            if "text" in obj:
                texts = [obj["text"]]
            elif allow_many and "texts" in obj:
                texts = obj["texts"]
            else:
                need = "'text' or 'texts'" if allow_many else "'text'"
                raise MetricsInputError(f"{where}: id {rid!r} has no {need} field")
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise MetricsInputError(f"{where}: id {rid!r}: texts must be a non-empty list of strings")
            if rid in out:
                raise MetricsInputError(f"{where}: id {rid!r} repeated (first at line {out[rid].line})")
            images = obj.get("images", obj.get("photos")) or []
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
            raise MetricsInputError(f"{side}: no line for id {shown}{more}")
    if not preds:
        raise MetricsInputError(f"{pred_path}: no predictions")
    ids = list(preds)
    return Paired(ids, [preds[i].texts[0] for i in ids], [refs[i].texts for i in ids],
                  [preds[i].images or refs[i].images for i in ids], [preds[i] for i in ids])


def resolve_images(paired: Paired, folder: Optional[Path]) -> List[List[Path]]:
    """Image paths of each sample: each name as given, then with ``.jpg`` appended, inside ``folder``."""
    out = []
    for rec, names in zip(paired.pred_records, paired.images):
        if not names:
            raise MetricsInputError(f"{rec.path}:{rec.line}: id {rec.id!r} lists no 'images' (needed by CLIP "
                                    "metrics; give them on the prediction or reference line)")
        paths = []
        for name in names:
            base = Path(folder) / name if folder else Path(name)
            cand = [base, base.with_name(base.name + ".jpg")]
            found = next((c for c in cand if c.is_file()), None)
            if found is None:
                raise MetricsInputError(f"{rec.path}:{rec.line}: id {rec.id!r}: image {name!r} not found "
                                        f"(looked for {cand[0]} and {cand[1].name})")
            paths.append(found)
        out.append(paths)
    return out
