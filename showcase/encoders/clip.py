"""One resolver for CLIP encoders: open_clip name + tag, a local checkpoint file, or a local folder.

`load_clip` is the only place that finds CLIP weights. It accepts

* an open_clip model name and a pretrained tag (`load_clip("ViT-B-32", "openai")`, downloaded by open_clip),
* an open_clip model name and a local checkpoint file (`load_clip("ViT-B-32", "/ckpt/clip.safetensors")`),
* a local folder with `open_clip_config.json` and weights (`load_clip("runs/clip")` or `"local-dir:runs/clip"`),
  as written by `ClipEncoder.save`,
* a model name alone for a random initialisation, deterministic for a given `seed`.

The package ships a tiny model of the same architecture, `showcase-tiny` (64-d embeddings, 64x64 images, the
real CLIP BPE vocabulary), for tests and the demo. Nothing touches the network at import time or when a local
path is given.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from PIL import Image

TINY_MODEL = "showcase-tiny"
CONFIG_DIR = Path(__file__).parent / "model_configs"
CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
LOCAL_DIR = "local-dir:"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")

ImageLike = str | os.PathLike | Image.Image


def _open_clip():
    """Import open_clip (heavy: it imports torchvision) and register the package's configs once."""
    import open_clip
    from open_clip import factory

    if CONFIG_DIR not in factory._MODEL_CONFIG_PATHS:
        open_clip.add_model_config(CONFIG_DIR)
    return open_clip


def _drop_random_init_warning(record: logging.LogRecord) -> bool:
    """open_clip warns on the root logger about every random init; here a random init is asked for."""
    return not record.getMessage().startswith("No pretrained weights loaded")


def open_rgb(image: ImageLike) -> Image.Image:
    """Return `image` (a path or a PIL image) decoded as an RGB PIL image.

    Raises:
        FileNotFoundError: when the path does not exist.
        OSError: (PIL's `UnidentifiedImageError` included) when the file cannot be decoded.
    """
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    with Image.open(image) as img:  # raises FileNotFoundError / UnidentifiedImageError
        return img.convert("RGB")  # forces the full decode: truncated files fail here


class ClipEncoder:
    """A CLIP model with its image transform and tokenizer; encodes to unit-normalised float32 features.

    Build it with `load_clip`. `spec` is the dict that rebuilds it (`load_clip(**encoder.spec)`), except for
    weights that only exist in a local file: `save` writes a folder that round-trips exactly.

    Example:
        >>> enc = load_clip("showcase-tiny", seed=0)
        >>> enc.encode_texts(["The miso ramen was rich."]).shape
        torch.Size([1, 64])
    """

    def __init__(self, model: torch.nn.Module, model_cfg: dict[str, Any], spec: dict[str, Any]):
        open_clip = _open_clip()
        from open_clip.transform import PreprocessCfg, image_transform_v2

        self.model = model.eval()
        self.model_cfg = model_cfg
        self.spec = dict(spec)
        self.preprocess_cfg = dict(open_clip.get_model_preprocess_cfg(model))
        self.preprocess = image_transform_v2(PreprocessCfg(**self.preprocess_cfg), is_train=False)
        self.context_length = int(model_cfg["text_cfg"].get("context_length", 77))
        self.tokenizer = open_clip.get_tokenizer("", context_length=self.context_length)  # CLIP BPE, truncates

    # --- properties ---------------------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Size of the joint embedding space."""
        return int(self.model_cfg["embed_dim"])

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def name(self) -> str:
        return str(self.spec["model"])

    @property
    def has_downloadable_weights(self) -> bool:
        """True when `spec` names an open_clip pretrained tag (weights others can fetch by name)."""
        return is_pretrained_tag(self.spec["model"], self.spec.get("pretrained"))

    def to(self, device: str | torch.device) -> "ClipEncoder":
        self.model.to(device)
        return self

    def __repr__(self) -> str:
        return f"ClipEncoder(spec={self.spec}, dim={self.dim})"

    # --- encoding -----------------------------------------------------------------------------------------------
    def preprocess_images(self, images: Sequence[ImageLike]) -> torch.Tensor:
        """Decode (RGB) and transform images to a `(n, 3, H, W)` float tensor."""
        return torch.stack([self.preprocess(open_rgb(im)) for im in images])

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        """CLIP BPE token ids `(n, context_length)`; longer texts are truncated (the last token is end-of-text)."""
        return self.tokenizer(list(texts))

    @torch.inference_mode()
    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit-normalised float32 features `(n, dim)` of preprocessed pixels `(n, 3, H, W)` (on the model's device)."""
        return self.model.encode_image(pixels.to(self.device), normalize=True).float()

    @torch.inference_mode()
    def text_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Unit-normalised float32 features `(n, dim)` of token ids `(n, context_length)`."""
        return self.model.encode_text(tokens.to(self.device), normalize=True).float()

    def encode_images(self, images: Iterable[ImageLike], batch_size: int = 64) -> torch.Tensor:
        """Encode paths or PIL images in batches; returns unit-normalised float32 features `(n, dim)` on CPU."""
        images = list(images)
        out = [self.image_features(self.preprocess_images(images[i : i + batch_size])).cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.dim)

    def encode_texts(self, texts: Iterable[str], batch_size: int = 256) -> torch.Tensor:
        """Encode texts in batches; returns unit-normalised float32 features `(n, dim)` on CPU."""
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a list of strings, not one string")
        texts = list(texts)
        out = [self.text_features(self.tokenize(texts[i : i + batch_size])).cpu()
               for i in range(0, len(texts), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.dim)

    # --- files --------------------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write an open_clip local folder (`open_clip_config.json` + `open_clip_model.safetensors`).

        `load_clip(folder)` rebuilds this exact encoder (same weights, transform and `spec`); open_clip itself
        also reads the folder with `open_clip.create_model("local-dir:FOLDER")`.
        """
        from safetensors.torch import save_file

        from showcase.utils import atomic_write_text

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tmp = folder / f".{WEIGHTS_NAME}.tmp"
        save_file(state, str(tmp))
        tmp.replace(folder / WEIGHTS_NAME)
        config = {"model_cfg": self.model_cfg, "preprocess_cfg": self.preprocess_cfg, "showcase_spec": self.spec}
        atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2))
        return folder


def is_pretrained_tag(name: str, pretrained: str | None) -> bool:
    """Whether `pretrained` is one of open_clip's pretrained tags for model `name` (no network needed)."""
    if not pretrained:
        return False
    clean = pretrained.lower().replace("-", "_")  # open_clip's own normalisation of tags
    return clean in {t.lower().replace("-", "_") for t in _open_clip().list_pretrained_tags_by_model(name)}


def _local_folder(name: str, pretrained: str | None) -> Path | None:
    """The local folder meant by `name`/`pretrained`, or None when neither is one."""
    if name.startswith(LOCAL_DIR):
        folder = Path(name[len(LOCAL_DIR):])
        if not folder.is_dir():
            raise FileNotFoundError(f"CLIP folder not found: {folder}")
        return folder
    for candidate in (name, pretrained):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _load_folder(folder: Path, device: str | torch.device) -> ClipEncoder:
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: a CLIP folder needs {CONFIG_NAME} and weights (write one with ClipEncoder.save)"
        )
    try:
        config = json.loads(config_path.read_text())
        model_cfg = config["model_cfg"]
    except (json.JSONDecodeError, KeyError) as e:
        raise ValueError(f"{config_path}: not an open_clip config with a 'model_cfg' field ({e!r})") from e
    if not any(p.suffix in _WEIGHT_SUFFIXES for p in folder.iterdir()):
        raise FileNotFoundError(f"no weights (*.safetensors, *.bin, *.pth) in CLIP folder {folder}")
    model = _open_clip().create_model(f"{LOCAL_DIR}{folder}", device="cpu")
    spec = config.get("showcase_spec") or {"model": f"{LOCAL_DIR}{folder.resolve()}", "pretrained": None, "seed": 0}
    return ClipEncoder(model, model_cfg, spec).to(device)


def load_clip(
    name: str, pretrained: str | None = None, device: str | torch.device = "cpu", seed: int = 0
) -> ClipEncoder:
    """Build a CLIP encoder from a name + tag, a checkpoint file, or a local folder.

    Args:
        name: an open_clip model name (`"ViT-B-32"`, `"showcase-tiny"`), a folder written by `ClipEncoder.save`
            (or any open_clip local folder: `open_clip_config.json` + weights), or `"local-dir:FOLDER"`.
        pretrained: an open_clip pretrained tag (`"openai"`; open_clip downloads and caches the weights),
            a local checkpoint file (`.safetensors`, `.pt`, `.bin`), a local folder, or `None` for a random
            initialisation. Ignored when `name` is a folder.
        device: where the model lives.
        seed: seed of the random initialisation (drawn from a forked RNG: the global RNG is left untouched).

    Returns:
        A `ClipEncoder` in eval mode.

    Raises:
        ValueError: unknown model name or pretrained tag (the message lists what is available).
        FileNotFoundError: a local path that does not exist or lacks config/weights.
        RuntimeError: a pretrained tag whose weights cannot be downloaded (the message says what to do).
    """
    folder = _local_folder(str(name), pretrained)
    if folder is not None:
        return _load_folder(folder, device)
    open_clip = _open_clip()
    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise ValueError(
            f"unknown CLIP model {name!r}: give an open_clip model name (e.g. 'ViT-B-32', or {TINY_MODEL!r} for the "
            f"tiny test model), a folder with {CONFIG_NAME} and weights, or 'local-dir:FOLDER'"
        )
    spec: dict[str, Any] = {"model": name, "pretrained": None, "seed": int(seed)}
    if pretrained is None:
        root = logging.getLogger()
        root.addFilter(_drop_random_init_warning)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = open_clip.create_model(name, pretrained=None, device="cpu")
        finally:
            root.removeFilter(_drop_random_init_warning)
    elif Path(pretrained).is_file():
        spec["pretrained"] = str(Path(pretrained).resolve())
        model = open_clip.create_model(name, pretrained=spec["pretrained"], device="cpu")
    elif is_pretrained_tag(name, pretrained):
        spec["pretrained"] = pretrained
        try:
            model = open_clip.create_model(name, pretrained=pretrained, device="cpu")
        except Exception as e:  # download failures come in many types (HTTP, offline mode, hub errors)
            raise RuntimeError(
                f"could not get the weights of CLIP {name!r} / {pretrained!r}: {e}\n"
                f"open_clip downloads them on first use (cache ~/.cache/huggingface). Without network: run "
                f"`python -c \"import open_clip; open_clip.create_model('{name}', pretrained='{pretrained}')\"` "
                f"on a machine with network and copy the cache, or save the weights to a file and pass its path "
                f"as pretrained (--pretrained PATH)."
            ) from e
    elif any(sep in pretrained for sep in ("/", os.sep)) or pretrained.endswith(_WEIGHT_SUFFIXES):
        raise FileNotFoundError(f"CLIP checkpoint not found: {pretrained}")
    else:
        tags = open_clip.list_pretrained_tags_by_model(name)
        raise ValueError(
            f"unknown pretrained tag {pretrained!r} for CLIP {name!r}; known tags: {tags or 'none'}. "
            f"Pass a tag, a local checkpoint file, or nothing for a random initialisation."
        )
    return ClipEncoder(model, model_cfg, spec).to(device)


def load_clip_from_spec(spec: dict[str, Any], device: str | torch.device = "cpu") -> ClipEncoder:
    """Rebuild an encoder from `ClipEncoder.spec`."""
    return load_clip(spec["model"], spec.get("pretrained"), device=device, seed=int(spec.get("seed", 0)))
