"""Encoder fingerprints: which CLIP computed a feature store's features, and checks that models match it.

A fingerprint is a small dict `{"model", "pretrained", "seed", "width"}`: the open_clip model name, its pretrained
tag (or `sha256:<hex>` of a local weights file; None for a seeded random initialisation), the seed and the feature
width. `init_store` writes it into the store's `encoder.json`; every exported model saves the fingerprint of the
store it was trained on (`"encoder"` in its `config.json`). Features of another encoder are meaningless to a model
(same name, another seed: another feature space), so loading one beside the other is refused with a `UserError`
naming both, unless the caller passes the explicit override (`--allow-encoder-mismatch`).
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from showcase.errors import UserError

FINGERPRINT_KEY = "encoder"  # key of the fingerprint in a model's config.json
OVERRIDE_FLAG = "--allow-encoder-mismatch"


def file_digest(path: str | Path, chars: int = 16) -> str:
    """`sha256:<first chars hex>` of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return f"sha256:{h.hexdigest()[:chars]}"


def fingerprint_from_spec(spec: dict[str, Any], width: int, hash_files: bool = True) -> dict[str, Any]:
    """The fingerprint of the encoder `spec` (`ClipEncoder.spec`) with feature `width`."""
    pretrained = spec.get("pretrained")
    if hash_files and pretrained and Path(str(pretrained)).is_file():
        pretrained = file_digest(pretrained)
    return {"model": str(spec.get("model")), "pretrained": pretrained, "seed": int(spec.get("seed", 0) or 0),
            "width": int(width)}


def describe(fingerprint: dict[str, Any] | None) -> str:
    """One line for people: `showcase-tiny (random init, seed 0), width 64`."""
    if not fingerprint:
        return "an unrecorded encoder"
    origin = fingerprint.get("pretrained") or "random init"
    return f"{fingerprint.get('model')} ({origin}, seed {fingerprint.get('seed')}), width {fingerprint.get('width')}"


def store_fingerprint(store: Any) -> dict[str, Any]:
    """A store's fingerprint (`FeatureStore.fingerprint`, or derived from its encoder spec for older stores)."""
    recorded = getattr(store, "fingerprint", None)
    if recorded:
        return dict(recorded)
    spec = getattr(store, "encoder_spec", None)
    return fingerprint_from_spec(spec, store.dim) if spec else {}


def check_encoder(expected: dict[str, Any] | None, store: Any, what: str, allow: bool = False,
                  path: str | Path | None = None) -> None:
    """Refuse features of another encoder than the one `what` was trained on.

    Args:
        expected: the fingerprint `what` recorded (None: nothing recorded, nothing to check).
        store: the feature store about to be used.
        what: the model, for the message ("the selector in runs/x/model").
        allow: the explicit override: warn nothing, check nothing.
        path: the file holding `expected`, named in the error.

    Raises:
        UserError: naming both encoders and the override flag.
    """
    if allow or not expected:
        return
    actual = store_fingerprint(store)
    if actual and _comparable(expected) != _comparable(actual):
        source = getattr(store, "label", None) or f"the feature store {getattr(store, 'folder', '')}"
        raise UserError(
            f"{what} was trained on features of {describe(expected)}, but {source} "
            f"holds features of {describe(actual)}; compute the features with the model's encoder "
            f"(showcase features) or pass {OVERRIDE_FLAG} to use them anyway", path=path)


def _comparable(fingerprint: dict[str, Any]) -> tuple:
    return tuple(fingerprint.get(k) for k in ("model", "pretrained", "seed", "width"))


def model_fingerprint(folder: str | Path) -> dict[str, Any] | None:
    """The encoder fingerprint saved in an exported model folder's `config.json` (None for older exports)."""
    path = Path(folder) / "config.json"
    if not path.exists():
        return None
    from showcase.pretrained import read_json_file

    payload = read_json_file(path)
    return payload.get(FINGERPRINT_KEY) if isinstance(payload, dict) else None


def check_model_encoder(folder: str | Path, store: Any, allow: bool = False) -> None:
    """`check_encoder` for an exported model folder against `store`."""
    check_encoder(model_fingerprint(folder), store, "this model", allow, Path(folder) / "config.json")


class _EncoderAsStore:
    """An encoder seen as a store by `check_encoder`: its fingerprint, named by its spec."""

    def __init__(self, encoder: Any) -> None:
        self.fingerprint = fingerprint_from_spec(encoder.spec, encoder.dim)
        self.label = "the given CLIP encoder"


def check_model_against_encoder(folder: str | Path, encoder: Any, allow: bool = False) -> None:
    """`check_encoder` for an exported model folder against a loaded `ClipEncoder` (e.g. `metrics --clip`)."""
    check_encoder(model_fingerprint(folder), _EncoderAsStore(encoder), "this model", allow,
                  Path(folder) / "config.json")
