"""Save and load trained models as folders: `config.json` (resolved config) + `model.safetensors` + `README.md`.

Nothing is unpickled when loading: weights are safetensors and the config is JSON. Besides the model's config,
`config.json` holds what inference needs: `"inputs"` (the input limits of `showcase.inputs`), `"encoder"` (the
fingerprint of the feature store it was trained on), `"decoding"` (generators) and `"metrics"` (test results).
`load_model(folder)` returns the right class, like transformers' `AutoModel`.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as load_safetensors
from safetensors.torch import save_model

from showcase.errors import UserError
from showcase.utils import atomic_write_text

T = TypeVar("T", bound="PretrainedMixin")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"


class PretrainedMixin:
    """Mixin for `nn.Module`s built from a dataclass config stored as `self.config`.

    Subclasses set `config_class` and take the config as the first argument of `__init__`.
    """

    config_class: ClassVar[type]

    def save_pretrained(self, folder: str | Path, **extra: Any) -> Path:
        """Write `config.json`, `model.safetensors` and a `README.md` card; `extra` goes into the JSON beside the
        config (`inputs`, `encoder`, `decoding`, `metrics`, `data`, ...)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cls = type(self)
        payload = {"class": f"{cls.__module__}.{cls.__qualname__}", "config": dataclasses.asdict(self.config), **extra}
        tmp = folder / f".{WEIGHTS_NAME}.tmp"
        save_model(self, str(tmp))  # handles tied weights (e.g. GPT-2's lm_head)
        tmp.replace(folder / WEIGHTS_NAME)
        atomic_write_text(folder / CONFIG_NAME, json.dumps(payload, indent=2, default=str))
        write_model_card(folder)
        return folder

    @classmethod
    def from_pretrained(cls: type[T], folder: str | Path, map_location: str | torch.device = "cpu") -> T:
        """Build the module from `folder/config.json` and load `folder/model.safetensors` into it.

        Raises:
            UserError: naming the file, when the folder is not a saved model of this class or a file is damaged.
        """
        config, payload = read_config(folder)
        model = cls(config_from_dict(cls.config_class, config, Path(folder) / CONFIG_NAME, payload.get("class")))
        load_weights(model, folder, map_location)
        model.eval()
        return model


def read_config(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return `(config, whole_json)` of a saved model folder.

    Raises:
        UserError: naming `config.json` when the folder is not a saved model folder or the file is not valid JSON.
    """
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"not found: {folder} is not a saved model folder (config.json + model.safetensors)",
                        path=path)
    payload = read_json_file(path)
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise UserError("missing field 'config' (an object): not a saved model's config", path=path)
    return payload["config"], payload


def read_json_file(path: str | Path) -> Any:
    """Parse a JSON file; a truncated, non-UTF-8 or unreadable file raises `UserError` naming file and line."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"not UTF-8 text (byte {data[exc.start]:#04x}); the file is damaged, write it again",
                        path=path, line=line) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"not valid JSON ({exc.msg}, column {exc.colno}); the file is truncated or damaged, "
                        "write it again", path=path, line=exc.lineno) from None


def config_from_dict(
    config_class: type, values: dict[str, Any], path: str | Path, saved_class: str | None = None
) -> Any:
    """`config_class(**values)`, with an unknown or missing key named (with the file `path`) as a `UserError`.

    `saved_class`, the class recorded beside the config, is named in the message when the keys do not fit.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class) if f.init}
    holds = f" (the folder holds a {saved_class})" if saved_class else ""
    unknown = sorted(set(values) - set(fields))
    if unknown:
        shown = ", ".join(map(repr, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise UserError(f"unknown config key(s) {shown} for {config_class.__name__}{holds}; remove them, or load "
                        f"the folder with its own model class (known keys: {', '.join(fields)})", path=path)
    required = [name for name, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and name not in values]  # type: ignore[misc]
    if required:
        raise UserError(f"missing config key(s) {', '.join(map(repr, required))} for {config_class.__name__}{holds}",
                        path=path)
    try:
        return config_class(**values)
    except (TypeError, ValueError) as exc:  # __post_init__ checks of the values
        raise UserError(f"bad config for {config_class.__name__}: {exc}", path=path) from exc


def load_weights(model: torch.nn.Module, folder: str | Path, map_location: str | torch.device = "cpu") -> None:
    """Load `folder/model.safetensors` into `model`; a missing, truncated or mismatched file is a `UserError`."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise UserError(f"not found: {folder} has a config.json but no weights", path=path)
    try:
        load_safetensors(model, str(path), device=str(map_location))
    except SafetensorError as exc:
        raise UserError(f"not a readable safetensors file ({exc}); the file is truncated or damaged, export the "
                        "model again", path=path) from None
    except RuntimeError as exc:  # missing/unexpected tensors or wrong shapes: the weights belong to another config
        first = " ".join(str(exc).split())[:300]
        raise UserError(f"the weights do not match config.json ({first})", path=path) from None


def load_model(folder: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load any exported model folder as the class its `config.json` names (selector, generator, classifier Φ).

    The saved extras come back as attributes: `input_limits` (dict), `decoding` (dict), `encoder_fingerprint`
    (dict) and `export_info` (everything besides the config).

    Raises:
        UserError: when `folder` has no readable `config.json`, or its class is not a showcase model.
    """
    _, payload = read_config(folder)
    name = str(payload.get("class", ""))
    module_name, _, class_name = name.rpartition(".")
    if not module_name.startswith("showcase."):
        raise UserError(f"class {name!r} is not a showcase model", path=Path(folder) / CONFIG_NAME)
    cls = getattr(importlib.import_module(module_name), class_name)
    model = cls.from_pretrained(folder, map_location=map_location)
    attach_export_info(model, payload)
    return model


def attach_export_info(model: Any, payload: dict[str, Any]) -> Any:
    """Set `export_info`, `input_limits`, `decoding` and `encoder_fingerprint` from a `config.json` payload."""
    model.export_info = {k: v for k, v in payload.items() if k not in ("class", "config")}
    model.input_limits = payload.get("inputs")
    model.decoding = payload.get("decoding")
    model.encoder_fingerprint = payload.get("encoder")
    return model


def write_model_card(folder: str | Path, metrics: dict[str, float] | None = None) -> Path:
    """Write `README.md` in an exported folder from its `config.json`: what it is, data, encoder, test metrics.

    `metrics` (e.g. after `showcase test`) are saved into `config.json` too.
    """
    from showcase.fingerprint import describe

    folder = Path(folder)
    _, payload = read_config(folder)
    if metrics:
        payload["metrics"] = {**payload.get("metrics", {}), **metrics}
        atomic_write_text(folder / CONFIG_NAME, json.dumps(payload, indent=2, default=str))
    cls = str(payload.get("class", "?"))
    lines = [f"# {payload.get('method') or cls.rpartition('.')[2]}", "",
             f"A `{cls}` exported by `showcase fit`. Load it with `showcase.load_model({str(folder)!r})`.", "",
             "## Data", "", f"- dataset: {payload.get('data', {}).get('dataset', 'unrecorded')}",
             f"- feature store: {payload.get('data', {}).get('store', 'unrecorded')}", "",
             "## Encoder", "", f"- {describe(payload.get('encoder'))}", ""]
    if payload.get("inputs"):
        lines += ["## Inputs", "", *(f"- {k}: {v}" for k, v in payload["inputs"].items()), ""]
    if payload.get("decoding"):
        lines += ["## Decoding", "", *(f"- {k}: {v}" for k, v in payload["decoding"].items()), ""]
    lines += ["## Test metrics", ""]
    lines += [f"- {k}: {v}" for k, v in sorted(payload.get("metrics", {}).items())] or ["- not tested yet"]
    path = folder / CARD_NAME
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def training_extras(datamodule: Any) -> dict[str, Any]:
    """What an export records of its training data: the dataset and store folders, the store's encoder
    fingerprint (`"encoder"`) and the datamodule's input limits (`"inputs"`), when the datamodule knows them."""
    from showcase.fingerprint import store_fingerprint

    if datamodule is None:
        return {}
    hp = getattr(datamodule, "hparams", {}) or {}
    extras: dict[str, Any] = {"data": {k: str(hp[k]) for k in ("dataset", "store") if hp.get(k) is not None}}
    store = getattr(datamodule, "feature_store", None)
    if store is None and hp.get("store") and Path(str(hp["store"])).is_dir():
        from showcase.encoders import FeatureStore

        store = FeatureStore.open(hp["store"])
    if store is not None:
        fingerprint = store_fingerprint(store)
        if fingerprint:
            extras["encoder"] = fingerprint
    limits = getattr(datamodule, "input_limits", None)
    if limits is not None:
        extras["inputs"] = limits.to_dict()
    return extras
