"""The 50 deterministic augmentation variants of a face image (5 sizes x 5 positions x 2 flips)."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from facedialect.preprocess.params import PreprocessParams

#: Number of variants per image: 5 scales x 5 positions x 2 reflections.
N_VARIANTS = 50

#: The 5 positions in variant order, as unit shifts (dx, dy) in image axes (y down).
POSITIONS: tuple[tuple[str, int, int], ...] = (
    ("centre", 0, 0),
    ("left", -1, 0),
    ("right", 1, 0),
    ("up", 0, -1),
    ("down", 0, 1),
)


def variant_table(params: PreprocessParams) -> pd.DataFrame:
    """Return the definition of every variant.

    Parameters
    ----------
    params : PreprocessParams
        Uses ``variant_scales`` and ``variant_shift_px``.

    Returns
    -------
    pandas.DataFrame
        50 rows, columns ``variant`` (0..49), ``scale`` (size relative to the plain
        image), ``dx``, ``dy`` (shift of the unflipped image in output pixels, right and
        down positive) and ``flip`` (bool: the variant is the left-right mirror image of
        the variant before it). Order: scale-major, then position (centre, left, right,
        up, down), then flip (no, yes); variant 0 is the plain image.
    """
    rows = []
    for scale in params.variant_scales:
        for _, ux, uy in POSITIONS:
            for flip in (False, True):
                rows.append(
                    {
                        "variant": len(rows),
                        "scale": float(scale),
                        "dx": ux * params.variant_shift_px,
                        "dy": uy * params.variant_shift_px,
                        "flip": flip,
                    }
                )
    table = pd.DataFrame(rows)
    return table.astype(
        {"variant": "int64", "scale": "float64", "dx": "int64", "dy": "int64", "flip": "bool"}
    )


def variant_matrix(scale: float, dx: float, dy: float, size: int) -> np.ndarray:
    """Return the 2x3 affine map (source to output) of one unflipped variant.

    Scales about the image centre ``((size-1)/2, (size-1)/2)``, then shifts by
    ``(dx, dy)`` pixels.

    Parameters
    ----------
    scale : float
        Size relative to the plain image.
    dx, dy : float
        Shift in output pixels (right and down positive).
    size : int
        Side of the square image.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` float64 matrix for ``cv2.warpAffine``.
    """
    c = (size - 1) / 2.0
    return np.array(
        [[scale, 0.0, (1.0 - scale) * c + dx], [0.0, scale, (1.0 - scale) * c + dy]],
        dtype=np.float64,
    )


def _check_image(image: np.ndarray, params: PreprocessParams) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {getattr(image, 'dtype', type(image))}")
    if image.shape != (params.size, params.size):
        raise ValueError(
            f"expected a {params.size}x{params.size} face image, got shape {image.shape}"
        )


def _warp(
    image: np.ndarray, scale: float, dx: int, dy: int, params: PreprocessParams
) -> np.ndarray:
    if scale == 1.0 and dx == 0 and dy == 0:
        return image.copy()
    size = params.size
    return cv2.warpAffine(
        image,
        variant_matrix(scale, dx, dy, size),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=params.background_gray,
    )


def make_variants(image: np.ndarray, params: PreprocessParams) -> np.ndarray:
    """Make the 50 augmentation variants of a pre-processed face image.

    Each unflipped variant is one bilinear ``cv2.warpAffine`` of the input (scale about
    the centre, then shift; pixels from outside the image get the background gray), and
    its flipped twin is that result mirrored left-right, so every variant is resampled
    once and twins are exact mirror images. Variant 0 is a byte-identical copy.

    Parameters
    ----------
    image : numpy.ndarray
        ``(size, size)`` uint8 face image (from :func:`preprocess_face`).
    params : PreprocessParams
        Uses ``size``, ``variant_scales``, ``variant_shift_px``, ``target_mean``.

    Returns
    -------
    numpy.ndarray
        ``(50, size, size)`` uint8 array in the order of :func:`variant_table`.
    """
    _check_image(image, params)
    out = np.empty((N_VARIANTS, params.size, params.size), dtype=np.uint8)
    k = 0
    for scale in params.variant_scales:
        for _, ux, uy in POSITIONS:
            warped = _warp(
                image, scale, ux * params.variant_shift_px, uy * params.variant_shift_px, params
            )
            out[k] = warped
            out[k + 1] = warped[:, ::-1]
            k += 2
    return out


def variant(image: np.ndarray, index: int, params: PreprocessParams) -> np.ndarray:
    """Make one augmentation variant (identical to ``make_variants(image, params)[index]``).

    Parameters
    ----------
    image : numpy.ndarray
        ``(size, size)`` uint8 face image.
    index : int
        Variant number, 0..49 (see :func:`variant_table`).
    params : PreprocessParams
        As for :func:`make_variants`.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` uint8 image.
    """
    _check_image(image, params)
    if not 0 <= int(index) < N_VARIANTS:
        raise ValueError(f"variant index must be 0..{N_VARIANTS - 1}, got {index}")
    index = int(index)
    pair, flip = divmod(index, 2)
    si, pi = divmod(pair, len(POSITIONS))
    _, ux, uy = POSITIONS[pi]
    warped = _warp(
        image,
        params.variant_scales[si],
        ux * params.variant_shift_px,
        uy * params.variant_shift_px,
        params,
    )
    return np.ascontiguousarray(warped[:, ::-1]) if flip else warped


def variant_subset(n: int) -> tuple[int, ...]:
    """Return the ``n`` of the 50 variants a protocol that uses fewer than 50 trains on.

    The variants come in mirror pairs, spread evenly over the 25 (size, position)
    combinations in variant order, so that a subset covers every size and position
    instead of only the first size: 10 gives the plain image, 0.90 left, 0.95 right,
    1.05 up and 1.10 down (default sizes), each with its mirror image
    (``0, 1, 12, 13, 24, 25, 36, 37, 48, 49``). 1 gives the plain image; 50 all; an odd
    ``n`` drops the last mirror image.

    Parameters
    ----------
    n : int
        Number of variants, 1..50.

    Returns
    -------
    tuple of int
        Sorted variant indices.
    """
    if not 1 <= int(n) <= N_VARIANTS:
        raise ValueError(f"a variant subset has 1..{N_VARIANTS} variants, got {n}")
    n = int(n)
    if n == 1:
        return (0,)
    pairs = -(-n // 2)
    combos = np.round(np.linspace(0, N_VARIANTS // 2 - 1, pairs)).astype(int)
    return tuple(sorted(int(2 * c + f) for c in combos for f in (0, 1)))[:n]
