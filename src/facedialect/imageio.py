"""Reading user images of any common kind into 8-bit grayscale, with clear errors."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from facedialect.errors import ImageReadError, InputError

#: File endings treated as images by the folder-walking presets.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pgm", ".ppm"}
)


def expand_user(path: str | os.PathLike[str],
                error: type[InputError] = InputError) -> Path:
    """``Path(path).expanduser()``, with a clear error when ``~user`` names no home folder.

    Raises
    ------
    InputError
        (or ``error``) naming the path and the user, instead of pathlib's RuntimeError.
    """
    p = Path(path)
    try:
        return p.expanduser()
    except RuntimeError as exc:
        head = p.parts[0] if p.parts else str(p)
        who = f"no user {head[1:]!r} on this computer" if head != "~" else "no home folder"
        raise error(f"{p}: {who}, so {head!r} names no home folder; write the path in "
                    f"full") from exc


def absolute_path(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None,
                  error: type[Exception] = InputError) -> Path:
    """``path`` made absolute: ``~`` expanded, a relative path taken from ``root``, resolved.

    Raises
    ------
    InputError
        (or ``error``) when ``~user`` names no home folder.
    """
    try:
        p = expand_user(path)
    except InputError as exc:
        raise error(str(exc)) from None
    if not p.is_absolute() and root is not None:
        p = Path(root) / p
    return p.resolve()


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
        When the file is missing, not an image, corrupt or truncated, or so large that
        Pillow refuses to decode it (a decompression bomb, over ``Image.MAX_IMAGE_PIXELS``
        times 2 pixels).
    """
    return _read(path, _to_gray_u8)


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as 8-bit RGB ``(H, W, 3)`` (gray images get 3 equal channels).

    Raises
    ------
    ImageReadError
        When the file is missing, not an image, corrupt or truncated, or too large to
        decode safely (see :func:`read_gray`).
    """
    return _read(path, lambda im: np.asarray(im.convert("RGB"), dtype=np.uint8).copy())


def read_image_bytes(path: str | Path) -> bytes:
    """Return an image file's bytes, to hash and decode the same bytes (:func:`decode_gray`).

    Raises
    ------
    ImageReadError
        When the file is missing or cannot be read.
    """
    path = expand_user(path, ImageReadError)
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc


def decode_gray(data: bytes, path: str | Path) -> np.ndarray:
    """Decode the bytes of an image file (read from ``path``) as :func:`read_gray` does.

    Raises
    ------
    ImageReadError
        As :func:`read_gray`, naming ``path``.
    """
    return _read(path, _to_gray_u8, data)


def _read(path: str | Path, convert: Callable[[Image.Image], np.ndarray],
          data: bytes | None = None) -> np.ndarray:
    path = expand_user(path, ImageReadError)
    try:
        with Image.open(path if data is None else io.BytesIO(data)) as im:
            im.load()
            return convert(im)
    except FileNotFoundError as exc:
        raise ImageReadError(f"{path}: file not found") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not an image file (unrecognised format)") from exc
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{path}: image too large to decode safely: {exc} Use a "
                             f"smaller image.") from exc
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
