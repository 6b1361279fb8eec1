"""Save and load trained models as folders: `config.json` (resolved config) + `model.safetensors`.

Nothing is unpickled when loading: weights are safetensors and the config is JSON.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from safetensors.torch import load_model, save_model

from showcase.utils import atomic_write_text

T = TypeVar("T", bound="PretrainedMixin")

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class PretrainedMixin:
    """Mixin for `nn.Module`s built from a dataclass config stored as `self.config`.

    Subclasses set `config_class` and take the config as the first argument of `__init__`.
    """

    config_class: ClassVar[type]

    def save_pretrained(self, folder: str | Path, **extra: Any) -> Path:
        """Write `config.json` and `model.safetensors` into `folder`; `extra` goes into the JSON beside the config."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cls = type(self)
        payload = {"class": f"{cls.__module__}.{cls.__qualname__}", "config": dataclasses.asdict(self.config), **extra}
        tmp = folder / f".{WEIGHTS_NAME}.tmp"
        save_model(self, str(tmp))  # handles tied weights (e.g. GPT-2's lm_head)
        tmp.replace(folder / WEIGHTS_NAME)
        atomic_write_text(folder / CONFIG_NAME, json.dumps(payload, indent=2, default=str))
        return folder

    @classmethod
    def from_pretrained(cls: type[T], folder: str | Path, map_location: str | torch.device = "cpu") -> T:
        """Build the module from `folder/config.json` and load `folder/model.safetensors` into it."""
        config, _ = read_config(folder)
        model = cls(cls.config_class(**config))
        load_model(model, str(Path(folder) / WEIGHTS_NAME), device=str(map_location))
        model.eval()
        return model


def read_config(folder: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return `(config, whole_json)` of a saved model folder, with a clear error when it is not one."""
    path = Path(folder) / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: {folder} is not a saved model folder")
    payload = json.loads(path.read_text())
    if "config" not in payload:
        raise ValueError(f"{path}: missing field 'config'")
    return payload["config"], payload
