"""Reading user images of any common kind into 8-bit grayscale, with clear errors."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facedialect.errors import ImageReadError

#: File endings treated as images by the folder-walking presets.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}
)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_gray(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit grayscale.

    Handles 8/16-bit, grayscale, palette, RGB, RGBA (composited on white is *not*
    done: alpha is dropped) and CMYK images.

    Parameters
    ----------
    path : str or Path
        The image file.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8 array.

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, corrupt or truncated.
    """
    return _read(path, _to_gray_u8)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit RGB ``(H, W, 3)`` (gray images get 3 equal channels).

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, corrupt or truncated.
    """
    return _read(path, lambda im: np.asarray(im.convert("RGB"), dtype=np.uint8).copy())


def _read(path: str | Path, convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    path = Path(path).expanduser()
    try:
        with Image.open(path) as im:
            im.load()
            return convert(im)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not an image file (unrecognised format)") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"{path}: corrupt or truncated image ({exc})") from exc


def _to_gray_u8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 or mode.startswith("I;16") else 255.0
        return np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8).copy()
    if mode == "LA":
        return np.asarray(im.getchannel("L"), dtype=np.uint8).copy()
    # P, RGB, RGBA, CMYK, YCbCr, LAB ...: convert through RGB (ITU-R 601 luma).
    return np.asarray(im.convert("RGB").convert("L"), dtype=np.uint8).copy()
