"""Face regions from the 68 iBUG landmarks, and each region's share of a saliency map.

Regions (docs/saliency.md draws them): forehead, brows, eyes, nose, cheeks, mouth, chin,
and ``other`` (everything else: hair, face outline, background). They are polygons
built from landmark indices; a few points are moved along the face's own axes by a
fraction of the inter-ocular distance ``d`` (between the two eye centres), so the
regions scale and rotate with the face. Where polygons overlap, the region later in
:data:`PAINT_ORDER` wins (eyes over brows over mouth over nose ...), so every pixel
belongs to exactly one region and the shares of a map sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from facedialect.errors import InputError

__all__ = [
    "PAINT_ORDER",
    "REGIONS",
    "face_axes",
    "region_labels",
    "region_polygons",
    "region_shares",
]

#: Region names in table and figure order (``other`` last).
REGIONS: tuple[str, ...] = ("forehead", "brows", "eyes", "nose", "cheeks", "mouth", "chin",
                            "other")
#: Painting order: later regions win where polygons overlap.
PAINT_ORDER: tuple[str, ...] = ("forehead", "cheeks", "chin", "nose", "mouth", "brows",
                                "eyes")

#: Offsets, in inter-ocular distances ``d``.
BROW_HALF_WIDTH = 0.12  # brow band: the brow line +- this, along the face's vertical
EYE_HALF_HEIGHT = 0.15  # eye band: the eye outline +- this, along the face's vertical
FOREHEAD_HEIGHT = 0.7  # forehead: from the brow line this far up
NOSE_WING = 0.08  # nose: wings (31, 35) moved outwards by this
NOSE_BRIDGE = 0.12  # nose: bridge half-width at landmark 27
MOUTH_MARGIN = 0.15  # mouth: outer lip contour pushed outwards (radially) by this

_SHIFT = 4  # fixed-point bits for cv2.fillPoly (sub-pixel vertices)


def _check_landmarks(lm: np.ndarray) -> np.ndarray:
    arr = np.asarray(lm, dtype=np.float64)
    if arr.shape != (68, 2) or not np.isfinite(arr).all():
        raise InputError(f"expected (68, 2) finite iBUG landmarks, got shape {arr.shape}")
    return arr


def face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The face's horizontal axis, upward axis and inter-ocular distance.

    Parameters
    ----------
    lm : numpy.ndarray
        ``(68, 2)`` landmarks ``(x, y)`` in pixels (y down).

    Returns
    -------
    across : numpy.ndarray
        Unit vector from the image-left eye (36-41) to the image-right eye (42-47).
    up : numpy.ndarray
        Unit vector perpendicular to it, towards the forehead (``(0, -1)`` for an upright
        face).
    d : float
        Distance between the eye centres in pixels.
    """
    lm = _check_landmarks(lm)
    left, right = lm[36:42].mean(0), lm[42:48].mean(0)
    v = right - left
    d = float(np.hypot(*v))
    if d <= 0:
        raise InputError("degenerate landmarks: both eye centres coincide")
    across = v / d
    up = np.array([across[1], -across[0]])
    return across, up, d


def _hull(points: np.ndarray) -> np.ndarray:
    return cv2.convexHull(points.astype(np.float32)).reshape(-1, 2).astype(np.float64)


def region_polygons(lm: np.ndarray) -> dict[str, list[np.ndarray]]:
    """The polygons of every region (except ``other``) for one face.

    Parameters
    ----------
    lm : numpy.ndarray
        ``(68, 2)`` iBUG landmarks ``(x, y)``.

    Returns
    -------
    dict
        Region name -> list of ``(k, 2)`` polygons (two for the paired regions).
        Polygons may overlap; :func:`region_labels` resolves overlaps by
        :data:`PAINT_ORDER`.
    """
    lm = _check_landmarks(lm)
    across, up, d = face_axes(lm)
    polys: dict[str, list[np.ndarray]] = {}
    brow_idx = (list(range(17, 22)), list(range(22, 27)))
    polys["brows"] = [_hull(np.concatenate([lm[i] + BROW_HALF_WIDTH * d * up,
                                            lm[i] - BROW_HALF_WIDTH * d * up]))
                      for i in brow_idx]
    eye_idx = (list(range(36, 42)), list(range(42, 48)))
    polys["eyes"] = [_hull(np.concatenate([lm[i] + EYE_HALF_HEIGHT * d * up,
                                           lm[i] - EYE_HALF_HEIGHT * d * up]))
                     for i in eye_idx]
    brow_line = lm[17:27]
    polys["forehead"] = [np.concatenate([
        brow_line, (brow_line + FOREHEAD_HEIGHT * d * up)[::-1]])]
    polys["nose"] = [_hull(np.stack([
        lm[27] - NOSE_BRIDGE * d * across, lm[27] + NOSE_BRIDGE * d * across,
        lm[31] - NOSE_WING * d * across, lm[35] + NOSE_WING * d * across,
        lm[32], lm[33], lm[34]]))]
    lips = lm[48:60]
    centre = lips.mean(0)
    radial = lips - centre
    radial /= np.maximum(np.linalg.norm(radial, axis=1, keepdims=True), 1e-9)
    polys["mouth"] = [lips + MOUTH_MARGIN * d * radial]
    polys["cheeks"] = [lm[[1, 2, 3, 4, 5, 48, 31, 40, 41, 36]],
                       lm[[15, 14, 13, 12, 11, 54, 35, 47, 46, 45]]]
    polys["chin"] = [lm[[5, 6, 7, 8, 9, 10, 11, 54, 55, 56, 57, 58, 59, 48]]]
    return polys


def region_labels(lm: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Label every pixel of an image with its region.

    Parameters
    ----------
    lm : numpy.ndarray
        ``(68, 2)`` landmarks ``(x, y)`` in the image's pixels (pixel centres at integers).
    shape : tuple of int
        ``(H, W)`` of the image.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` uint8: index into :data:`REGIONS` (``other`` where no polygon covers
        the pixel centre).
    """
    labels = np.full(shape, REGIONS.index("other"), dtype=np.uint8)
    polys = region_polygons(lm)
    scale = 1 << _SHIFT
    for name in PAINT_ORDER:
        pts = [np.round(p * scale).astype(np.int32).reshape(-1, 1, 2) for p in polys[name]]
        cv2.fillPoly(labels, pts, int(REGIONS.index(name)), lineType=cv2.LINE_8,
                     shift=_SHIFT)
    return labels


def region_shares(maps: np.ndarray, landmarks: Sequence[np.ndarray] | np.ndarray,
                  ) -> np.ndarray:
    """Each region's share of the absolute saliency of each map.

    Parameters
    ----------
    maps : numpy.ndarray
        ``(N, H, W)`` signed saliency maps (or ``(R, N, H, W)``: runs of the same faces).
    landmarks : array-like
        ``(N, 68, 2)`` landmarks of the faces, in the maps' pixels.

    Returns
    -------
    numpy.ndarray
        ``(N, len(REGIONS))`` (or ``(R, N, len(REGIONS))``): ``sum |map|`` in the region
        divided by ``sum |map|`` over the image; rows sum to 1 (NaN for an all-zero map).

    Raises
    ------
    InputError
        When the numbers of maps and landmark sets differ.
    """
    arr = np.abs(np.asarray(maps, dtype=np.float64))
    lead = arr.shape[:-3] if arr.ndim == 4 else ()
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4:
        raise InputError(f"maps must be (N, H, W) or (R, N, H, W), got shape {arr.shape}")
    lms = np.asarray(landmarks, dtype=np.float64)
    if len(lms) != arr.shape[1]:
        raise InputError(f"{arr.shape[1]} maps but {len(lms)} landmark sets")
    n_reg = len(REGIONS)
    out = np.empty((arr.shape[0], arr.shape[1], n_reg))
    for i, lm in enumerate(lms):
        lab = region_labels(lm, arr.shape[2:]).ravel()
        for r in range(arr.shape[0]):
            sums = np.bincount(lab, weights=arr[r, i].ravel(), minlength=n_reg)
            total = sums.sum()
            out[r, i] = sums / total if total > 0 else np.nan
    return out.reshape(*lead, arr.shape[1], n_reg) if lead else out[0]
