"""One photo in, one normalized, masked, square face image out (or the reason why not)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facedialect.preprocess.detect import check_gray, detect_faces_info
from facedialect.preprocess.normalize import apply_mask, normalize_region, oval_mask
from facedialect.preprocess.params import PreprocessParams

#: Reason given when the cascade finds no face.
REASON_NO_FACE = "no face detected: Haar cascade found no face"


@dataclass
class FaceResult:
    """Outcome of pre-processing one image.

    Attributes
    ----------
    image : numpy.ndarray or None
        ``(size, size)`` uint8 face image, or None when no face was found.
    detected : bool
        Whether a face was found (and ``image`` is set).
    n_faces : int
        Number of faces the cascade found.
    box : tuple of int or None
        ``(x, y, w, h)`` of the face used, in the original image's pixels.
    reason : str
        Empty when one face was found and processed normally; otherwise why the image was
        excluded or what was unusual (found only after equalization, several faces, crop
        padded, SD target missed),
        ``"; "``-separated.
    """

    image: np.ndarray | None
    detected: bool
    n_faces: int
    box: tuple[int, int, int, int] | None
    reason: str


def crop_box(box: tuple[int, int, int, int], params: PreprocessParams) -> tuple[int, int, int]:
    """Return the square crop ``(x0, y0, side)`` around a face box.

    The crop is centred on the box centre moved down by ``crop_shift_y * w``; its side is
    ``crop_scale * w`` rounded to whole pixels (at least 2).

    Parameters
    ----------
    box : tuple of int
        Face box ``(x, y, w, h)``.
    params : PreprocessParams
        Uses ``crop_scale`` and ``crop_shift_y``.

    Returns
    -------
    tuple of int
        Top-left corner and side of the crop, in the image's pixels; it may extend past
        the image.
    """
    x, y, w, h = (int(v) for v in box)
    cx = x + w / 2.0
    cy = y + h / 2.0 + params.crop_shift_y * w
    side = max(2, int(round(params.crop_scale * w)))
    return int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side


def crop_face(
    gray: np.ndarray, box: tuple[int, int, int, int], params: PreprocessParams
) -> tuple[np.ndarray, bool]:
    """Cut the square face crop and resize it to ``size`` x ``size``.

    Where the crop extends past the image it is padded by reflection (OpenCV
    ``BORDER_REFLECT_101``): mirrored image content keeps the local gray-value
    distribution, whereas a constant (128) pad would add a flat block and an edge-replicate
    pad a run of identical values to the region whose histogram is normalized next. The
    crop is shrunk with ``INTER_AREA`` and, if smaller than the output, enlarged with
    ``INTER_LINEAR`` (``INTER_AREA`` degenerates to nearest-neighbour when enlarging).

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 image.
    box : tuple of int
        Face box ``(x, y, w, h)`` in the image's pixels.
    params : PreprocessParams
        Uses ``size``, ``crop_scale``, ``crop_shift_y``.

    Returns
    -------
    crop : numpy.ndarray
        ``(size, size)`` float32 crop, values in 0..255.
    padded : bool
        Whether the crop extended past the image.
    """
    gray = check_gray(gray)
    H, W = gray.shape
    x0, y0, side = crop_box(box, params)
    xa, ya = max(x0, 0), max(y0, 0)
    xb, yb = min(x0 + side, W), min(y0 + side, H)
    if xa >= xb or ya >= yb:
        raise ValueError(f"face box {tuple(box)} lies outside the {W}x{H} image")
    patch = gray[ya:yb, xa:xb]
    pads = (ya - y0, y0 + side - yb, xa - x0, x0 + side - xb)
    padded = any(p > 0 for p in pads)
    if padded:
        patch = cv2.copyMakeBorder(patch, *pads, borderType=cv2.BORDER_REFLECT_101)
    interp = cv2.INTER_AREA if side >= params.size else cv2.INTER_LINEAR
    out = cv2.resize(patch.astype(np.float32), (params.size, params.size), interpolation=interp)
    return np.clip(out, 0.0, 255.0), padded


def normalize_face(crop: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """Normalize a face crop's histogram inside the oval and mask out the rest.

    The gray-value map is fitted on the pixels where the oval mask is exactly 1 (mean
    ``target_mean``, SD ``target_sd``, see :func:`normalize_region`), applied to the whole
    crop, blended with the mask so everything outside the oval is the background gray,
    and rounded to uint8.

    Parameters
    ----------
    crop : numpy.ndarray
        ``(size, size)`` image, e.g. from :func:`crop_face`.
    params : PreprocessParams
        Uses ``target_mean``, ``target_sd`` and the oval settings.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8 face image.
    """
    if crop.shape != (params.size, params.size):
        raise ValueError(f"crop must be {params.size}x{params.size}, got shape {crop.shape}")
    mask = oval_mask(params.size, params)
    norm = normalize_region(crop, mask == 1.0, params.target_mean, params.target_sd)
    out = apply_mask(norm, mask, params.background_gray)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def preprocess_face(gray: np.ndarray, params: PreprocessParams) -> FaceResult:
    """Detect, crop, normalize and mask the face in one grayscale image.

    Never raises for an image without a face: the result then has ``image=None``,
    ``detected=False`` and the reason (also for an image only 1 pixel high or wide). With
    several faces the largest is used (or the strongest, see ``face_choice``).

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` uint8 grayscale image (see :func:`facedialect.imageio.read_gray`).
    params : PreprocessParams
        All pre-processing settings.

    Returns
    -------
    FaceResult
        The face image and what happened.

    Raises
    ------
    ValueError
        When ``gray`` is not a 2-D uint8 array.
    """
    if isinstance(gray, np.ndarray) and gray.ndim == 2 and 0 < min(gray.shape) < 2:
        h, w = gray.shape
        return FaceResult(None, False, 0, None, f"no face detected: the image is only {w}x{h} "
                                                 f"pixels")
    gray = check_gray(gray)
    found = detect_faces_info(gray, params)
    n_faces = len(found.boxes)
    if n_faces == 0:
        return FaceResult(None, False, 0, None, REASON_NO_FACE)
    box = tuple(int(v) for v in found.boxes[found.choose(params.face_choice)])
    reasons = []
    if found.equalized:
        reasons.append("face found only on the histogram-equalized image")
    if n_faces > 1:
        reasons.append(f"several faces: {n_faces} detected, {params.face_choice} used")
    crop, padded = crop_face(gray, box, params)
    if padded:
        reasons.append("face crop extends past the image border: padded by reflection")
    image = normalize_face(crop, params)
    inside = image[oval_mask(params.size, params) == 1.0].astype(np.float64)
    if abs(inside.std() - params.target_sd) > 1.0:
        reasons.append(
            f"histogram normalization reached SD {inside.std():.1f} instead of "
            f"{params.target_sd:g} (face region of nearly uniform gray)"
        )
    return FaceResult(image, True, n_faces, box, "; ".join(reasons))
