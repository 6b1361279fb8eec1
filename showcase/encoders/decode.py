"""Decoding photos for extraction, where a bad photo is skipped with a reason and never stops the run.

A photo is skipped when it has no file, is a link pointing out of the photo folder, is empty, unreadable,
truncated or not an image, or claims more pixels than `max_pixels` (a decompression bomb: the size is read from
the header, before anything is decoded).
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from PIL import Image

DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own limit (Image.MAX_IMAGE_PIXELS): about 0.25 GB of RGB


class PhotoSkipped(Exception):
    """A photo that cannot be used; the message is the reason written to `skipped.json`."""


def decode_photo(path: str | os.PathLike | None, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                 root: str | os.PathLike | None = None) -> Image.Image:
    """Decode the photo at `path` as RGB.

    Args:
        path: the file (None: no file is known for this photo).
        max_pixels: refuse images whose header claims more pixels (None: no limit).
        root: when given, the file (links followed) must lie inside this folder.

    Raises:
        PhotoSkipped: with the reason, for every kind of bad photo.
    """
    if path is None:
        raise PhotoSkipped("no file for this photo id")
    path = Path(path)
    if root is not None:
        real, real_root = path.resolve(), Path(root).resolve()
        if real_root not in real.parents:
            raise PhotoSkipped(f"{path} points outside the photo folder {real_root} (to {real})")
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a folder, a FIFO (which would block), a device
            raise PhotoSkipped(f"{path} is not a regular file")
        if info.st_size == 0:
            raise PhotoSkipped(f"empty file {path}")
        with _no_pil_pixel_limit():  # the limit is checked below, with a clearer reason
            image = Image.open(path)
        with image:
            width, height = image.size
            if max_pixels is not None and width * height > max_pixels:
                raise PhotoSkipped(f"{path} claims {width}x{height} = {width * height:,} pixels, over the limit of "
                                   f"{max_pixels:,} (a decompression bomb? raise --max-pixels to allow it)")
            return image.convert("RGB")  # forces the full decode: truncated files fail here
    except FileNotFoundError:
        raise PhotoSkipped(f"missing file {path}") from None
    except PermissionError as e:
        raise PhotoSkipped(f"cannot read {path}: {e.strerror}") from None
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise PhotoSkipped(f"cannot decode {path}: {e}") from None  # PIL: not an image, truncated, bad headers


_PIXEL_LIMIT_LOCK = threading.Lock()


class _no_pil_pixel_limit:
    """Lift PIL's global pixel limit while opening (its warning/error would replace `max_pixels`).

    Under a lock: two threads interleaving save/restore would otherwise leave the limit lifted for good (the second
    one saves the first one's None). Opening reads the header only, so the lock is held briefly.
    """

    def __enter__(self):
        _PIXEL_LIMIT_LOCK.acquire()
        self.saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None

    def __exit__(self, *exc):
        Image.MAX_IMAGE_PIXELS = self.saved
        _PIXEL_LIMIT_LOCK.release()


def load_photos(keys: Sequence[str], paths: Mapping[str, Any], transform: Callable,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, root: str | os.PathLike | None = None,
                ) -> tuple[torch.Tensor, list[str], dict[str, str]]:
    """Decode and preprocess a batch: `(pixels (n, 3, H, W), kept ids, {skipped id: reason})`."""
    pixels, kept, skipped = [], [], {}
    for key in keys:
        try:
            pixels.append(transform(decode_photo(paths.get(key), max_pixels, root)))
        except PhotoSkipped as e:
            skipped[key] = str(e)
            continue
        kept.append(key)
    return (torch.stack(pixels) if pixels else torch.empty(0)), kept, skipped
