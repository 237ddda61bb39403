"""The landmark-aligned average face of a set of photos (the study's default base face).

Every image's 68 landmarks are detected (:func:`facedialect.landmarks.detect_landmarks`);
their Procrustes mean shape is placed in a square output frame; each image is warped to
it piecewise-affinely (one interpolation per image) and the warped images are averaged.
Images with no detectable face (or that cannot be read) are reported and left out.
Nothing here reads a run directory: a run's cached average neutral face is made by
:func:`facedialect.stages.tuning.cached_run_average`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import cv2
import numpy as np
import pandas as pd

from facedialect.errors import ImageReadError, InputError
from facedialect.imageio import (
    IMAGE_SUFFIXES,
    expand_user,
    read_gray,
    read_rgb,
)
from facedialect.landmarks import (
    align_similarity,
    apply_transform,
    detect_landmarks,
    mean_shape,
    piecewise_affine_warp,
)

__all__ = [
    "AverageFace",
    "average_face",
    "collect_images",
    "frame_shape",
    "neutral_images",
    "write_average_face",
]

#: Where the mean shape sits in the square output: eye-centre distance and the point
#: between the eyes, as fractions of the side (a head-and-shoulders portrait framing,
#: close to the London face set's 512 px photos).
EYE_DISTANCE: Final = 0.17
EYE_MIDPOINT: Final = (0.5, 0.44)


@dataclass
class AverageFace:
    """An average face and how it was made.

    Attributes
    ----------
    image : numpy.ndarray
        ``(size, size)`` uint8 gray, or ``(size, size, 3)`` RGB.
    landmarks : numpy.ndarray
        ``(68, 2)`` mean shape in the image's pixels (x, y).
    sources : pandas.DataFrame
        One row per input: ``path``, ``used`` (bool), ``reason`` ("" when used).
    """

    image: np.ndarray
    landmarks: np.ndarray
    sources: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_used(self) -> int:
        """Number of images averaged."""
        return int(self.sources["used"].sum()) if len(self.sources) else 0


def collect_images(items: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (their images, not recursive, sorted) into image paths.

    Raises
    ------
    InputError
        For a path that does not exist, or when nothing is left.
    """
    out: list[Path] = []
    for it in items:
        p = expand_user(it)
        try:
            if p.is_dir():
                out += sorted(f for f in p.iterdir()
                              if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            elif p.is_file():
                out.append(p)
            else:
                raise InputError(f"{p}: no such file or folder")
        except OSError as exc:  # a folder without permission, a name too long
            raise InputError(f"{exc.filename or p}: cannot be read ({exc.strerror or exc}); "
                             f"check the path and its permissions") from exc
    if not out:
        raise InputError(f"no images found in {', '.join(str(i) for i in items) or '(none)'}")
    return out


def frame_shape(shape: np.ndarray, size: int) -> np.ndarray:
    """Place a 68-point shape in a square ``size`` frame (eyes level, standard position).

    The eye centres are put ``EYE_DISTANCE * size`` apart, level, with their midpoint at
    ``EYE_MIDPOINT * size`` (a similarity transform of ``shape``).
    """
    s = np.asarray(shape, np.float64)
    eye_r, eye_l = s[36:42].mean(axis=0), s[42:48].mean(axis=0)
    d = EYE_DISTANCE * size / 2.0
    cx, cy = EYE_MIDPOINT[0] * size, EYE_MIDPOINT[1] * size
    target = np.array([[cx - d, cy], [cx + d, cy]])
    return apply_transform(align_similarity(np.stack([eye_r, eye_l]), target), s)


def average_face(images: Sequence[str | Path | np.ndarray], size: int = 512,
                 color: bool = False,
                 progress: Callable[[int, int], None] | None = None) -> AverageFace:
    """Landmark-aligned average of face images.

    Parameters
    ----------
    images : sequence of path or array
        Image files, or arrays (uint8 gray or RGB).
    size : int
        Side of the square output (64..4096).
    color : bool
        Average in RGB (gray inputs count as gray RGB) instead of grayscale.
    progress : callable, optional
        ``progress(done, total)`` after each image.

    Returns
    -------
    AverageFace

    Raises
    ------
    InputError
        When fewer than 2 images have a detectable face (the message lists the skipped
        ones and why).
    """
    if not isinstance(size, int | np.integer) or not 64 <= int(size) <= 4096:
        raise InputError(f"size must be an integer in 64..4096, got {size!r}")
    size = int(size)
    names: list[str] = []
    pics: list[np.ndarray] = []
    pts: list[np.ndarray] = []
    rows: list[dict[str, object]] = []
    total = len(images)
    for k, item in enumerate(images):
        name = f"<array {k}>" if isinstance(item, np.ndarray) else str(item)
        try:
            if isinstance(item, np.ndarray):
                arr = np.asarray(item)
                if arr.dtype != np.uint8:
                    arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
                gray = arr if arr.ndim == 2 else cv2.cvtColor(arr[..., :3], cv2.COLOR_RGB2GRAY)
                pic = (cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB) if arr.ndim == 2 else
                       arr[..., :3]) if color else gray
            elif color:
                pic = read_rgb(item)
                gray = cv2.cvtColor(pic, cv2.COLOR_RGB2GRAY)
            else:
                gray = pic = read_gray(item)
        except ImageReadError as exc:
            gray, why = None, str(exc).removeprefix(f"{name}: ")
        p = None if gray is None else detect_landmarks(gray)
        if gray is None:
            rows.append({"path": name, "used": False, "reason": f"unreadable: {why}"})
        elif p is None:
            rows.append({"path": name, "used": False, "reason": "no face detected"})
        else:
            names.append(name)
            pics.append(pic)
            pts.append(p)
            rows.append({"path": name, "used": True, "reason": ""})
        if progress is not None:
            progress(k + 1, total)
    sources = pd.DataFrame(rows, columns=["path", "used", "reason"])
    if len(pics) < 2:
        skipped = sources[~sources["used"]]
        why = "; ".join(f"{r.path}: {r.reason}" for r in skipped.head(5).itertuples())
        more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
        raise InputError(f"an average face needs at least 2 images with a detectable face; "
                         f"{len(pics)} of {total} usable" + (f" — skipped {why}{more}"
                                                             if why else ""))
    target = frame_shape(mean_shape(pts), size)
    acc = np.zeros((size, size, 3) if color else (size, size), np.float64)
    for pic, p in zip(pics, pts, strict=True):
        acc += piecewise_affine_warp(pic.astype(np.float32), p, target, (size, size))
    img = np.clip(np.rint(acc / len(pics)), 0, 255).astype(np.uint8)
    return AverageFace(image=img, landmarks=target, sources=sources)


def write_average_face(face: AverageFace, out: str | Path) -> dict[str, Path]:
    """Write the image (PNG), its mean landmarks and the source list beside it.

    Files: ``OUT`` (the image), ``OUT-stem_landmarks.csv`` (``point, x, y``) and
    ``OUT-stem_sources.csv`` (``path, used, reason``), each written atomically.

    Returns
    -------
    dict
        ``image``, ``landmarks`` and ``sources`` paths.
    """
    from facedialect.files import atomic_write_bytes, atomic_write_text

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise InputError(f"{out}: the average face is written as PNG (use a .png name)")
    img = face.image
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise RuntimeError(f"could not encode {out}")
    lm_path = out.with_name(f"{out.stem}_landmarks.csv")
    src_path = out.with_name(f"{out.stem}_sources.csv")
    atomic_write_bytes(out, buf.tobytes())
    lm = pd.DataFrame({"point": np.arange(68), "x": face.landmarks[:, 0].round(3),
                       "y": face.landmarks[:, 1].round(3)})
    atomic_write_text(lm_path, lm.to_csv(index=False))
    atomic_write_text(src_path, face.sources.to_csv(index=False))
    return {"image": out, "landmarks": lm_path, "sources": src_path}


def neutral_images(images: pd.DataFrame, dbs: Sequence[str] | None = None) -> list[Path]:
    """Neutral images of the included faces of an images table (every database, or ``dbs``).

    Parameters
    ----------
    images : pandas.DataFrame
        One row per image with ``db``, ``path``, ``expression`` and ``included`` (the
        ingest table; pre-processing marks images without a face as excluded).
    dbs : sequence of str, optional
        Databases to take (default: all).

    Returns
    -------
    list of Path
        The paths, in the table's order.

    Raises
    ------
    InputError
        When no included neutral image is left.
    """
    sel = images["included"].astype(bool) & (images["expression"] == "neutral")
    if dbs is not None:
        sel &= images["db"].isin(list(dbs))
    paths = [Path(p) for p in images.loc[sel, "path"]]
    if not paths:
        which = f" of {', '.join(dbs)}" if dbs is not None else ""
        raise InputError(f"no included neutral image{which}; the average face needs the "
                         f"databases' neutral faces")
    return paths
