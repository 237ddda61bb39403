"""Oval face mask and histogram normalization of a face region (mean and SD, clipped)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from facedialect.preprocess.params import PreprocessParams

#: Largest slope tried, relative to the unclipped slope, before the SD target is
#: declared unreachable (the map is then, in effect, a threshold).
_MAX_SLOPE_GROWTH = 2.0**40


def oval_mask(size: int, params: PreprocessParams) -> np.ndarray:
    """Return the oval face mask with a raised-cosine edge.

    The oval is an ellipse centred in the image (at pixel ``((size-1)/2, (size-1)/2)``)
    with full axes ``oval_width * size`` (horizontal) and ``oval_height * size``
    (vertical). The mask is exactly 0 on and outside the ellipse and exactly 1 at
    distance ``feather * size`` or more inside it; in between it rises as a raised cosine
    ``(1 - cos(pi * t)) / 2`` of the relative depth ``t``. The distance to the ellipse is
    its first-order estimate ``(r - 1) / |grad r|`` with ``r`` the ellipse's normalized
    radius, which is exact on both axes and smooth everywhere.

    Parameters
    ----------
    size : int
        Side of the square mask in pixels.
    params : PreprocessParams
        Uses ``oval_width``, ``oval_height`` and ``feather``.

    Returns
    -------
    numpy.ndarray
        ``(size, size)`` float32 array in ``[0, 1]``, mirror-symmetric left-right and
        top-bottom. It is shared between calls and therefore read-only; copy it to change
        it.
    """
    if int(size) < 2:
        raise ValueError(f"mask size must be at least 2 pixels, got {size}")
    return _oval_mask(int(size), params.oval_width, params.oval_height, params.feather)


@lru_cache(maxsize=16)
def _oval_mask(size: int, width: float, height: float, feather: float) -> np.ndarray:
    c = (size - 1) / 2.0
    coord = np.arange(size, dtype=np.float64) - c  # exactly symmetric about 0
    x = coord[np.newaxis, :]
    y = coord[:, np.newaxis]
    a = width * size / 2.0
    b = height * size / 2.0
    r = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    grad = np.sqrt((x / a**2) ** 2 + (y / b**2) ** 2)  # |grad r| * r
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(r > 0, (r - 1.0) * r / grad, -np.inf)  # signed, < 0 inside
    t = np.clip(-dist / (feather * size), 0.0, 1.0)
    mask = (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)
    mask[t <= 0.0] = 0.0
    mask[t >= 1.0] = 1.0
    mask.setflags(write=False)
    return mask


def apply_mask(img: np.ndarray, mask: np.ndarray, background: float = 128) -> np.ndarray:
    """Blend an image with a uniform background through a mask.

    ``out = mask * img + (1 - mask) * background``: exactly ``img`` where the mask is 1
    and exactly ``background`` where it is 0.

    Parameters
    ----------
    img : numpy.ndarray
        ``(H, W)`` image, uint8 or float (finite values).
    mask : numpy.ndarray
        ``(H, W)`` weights in ``[0, 1]``, e.g. from :func:`oval_mask`.
    background : float, default 128
        Gray value where the mask is 0.

    Returns
    -------
    numpy.ndarray
        For a uint8 image, the blend rounded to uint8 (``background`` must then be an
        integer in 0..255); otherwise the float64 blend.
    """
    if img.shape != mask.shape:
        raise ValueError(f"image shape {img.shape} and mask shape {mask.shape} differ")
    m = mask.astype(np.float64)
    out = img.astype(np.float64) * m + float(background) * (1.0 - m)
    if img.dtype == np.uint8:
        if not (0 <= background <= 255 and float(background).is_integer()):
            raise ValueError(
                f"background for a uint8 image must be an integer 0..255, got {background}"
            )
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out


#: Up to this slope (in SD units of the region) the clipped moments come from prefix sums;
#: beyond it they are summed directly over the unclipped values, which stays exact when
#: the map is nearly a threshold.
_PREFIX_SLOPE_LIMIT = 1e4


class _ClippedStats:
    """Mean and SD of ``clip(a * (z - t) + m, 0, 255)`` over fixed values ``z``.

    The values are sorted once. Two binary searches find the values clipped at 0 and at
    255; the unclipped rest contributes through prefix sums of ``z`` and ``z**2``
    (O(log n)) for moderate slopes, and is summed directly for steep ones, where the
    prefix-sum formula would lose precision to cancellation.
    """

    def __init__(self, z: np.ndarray, m: float) -> None:
        self.z = np.sort(z)
        self.m = m
        self.n = self.z.size
        self.c1 = np.concatenate([[0.0], np.cumsum(self.z)])
        self.c2 = np.concatenate([[0.0], np.cumsum(self.z**2)])

    def __call__(self, a: float, t: float) -> tuple[float, float]:
        m = self.m
        lo = int(np.searchsorted(self.z, t - m / a, side="right"))  # y <= 0
        hi = int(np.searchsorted(self.z, t + (255.0 - m) / a, side="left"))  # y >= 255
        hi = max(hi, lo)
        nm = hi - lo
        nh = self.n - hi
        if a <= _PREFIX_SLOPE_LIMIT:
            s1 = self.c1[hi] - self.c1[lo] - nm * t  # sum of (z - t) over the middle
            s2 = self.c2[hi] - self.c2[lo] - 2.0 * t * (self.c1[hi] - self.c1[lo]) + nm * t * t
            total = a * s1 + m * nm + 255.0 * nh
            total2 = a * a * s2 + 2.0 * a * m * s1 + m * m * nm + 255.0**2 * nh
        else:
            y = a * (self.z[lo:hi] - t) + m
            total = float(y.sum()) + 255.0 * nh
            total2 = float(np.dot(y, y)) + 255.0**2 * nh
        mean = total / self.n
        var = max(total2 / self.n - mean * mean, 0.0)
        return mean, math.sqrt(var)

    def t_for_mean(self, a: float) -> float:
        """Return the shift ``t`` at which the clipped mean equals ``m`` for slope ``a``.

        The clipped mean falls continuously and monotonically with ``t``: from 255 (all
        values clipped high) to 0 (all clipped low), so Brent's method brackets it.
        """
        t_all_high = self.z[0] - (255.0 - self.m) / a
        t_all_low = self.z[-1] + self.m / a
        return brentq(
            lambda t: self(a, t)[0] - self.m,
            t_all_high,
            t_all_low,
            xtol=1e-10 / a,
            rtol=1e-15,
        )

    def unclipped(self, a: float) -> bool:
        return a * self.z[0] + self.m >= 0.0 and a * self.z[-1] + self.m <= 255.0


def _fit_clipped_linear(stats: _ClippedStats, sd: float) -> tuple[float, float]:
    """Find ``(a, t)`` so ``clip(a * (z - t) + m, 0, 255)`` has mean ``m`` and SD ``sd``.

    ``z`` are standardized values (mean 0, SD 1); ``m`` is fixed in ``stats``. For a slope
    ``a`` the clipped mean falls monotonically and continuously with the shift ``t``, so
    ``t(a)`` is found by Brent's method. Clipping never increases the SD (it is a
    1-Lipschitz monotone map), so starting from ``a = sd`` the slope is doubled until the
    clipped SD reaches the target, and Brent's method then finds ``a`` in the last
    bracket. If even a near-threshold map cannot reach the target SD (a region made
    mostly of one gray value), the slope with the largest SD seen is kept (polished by a
    bounded scalar search): the mean is still exact and the SD close to its maximum.
    """
    if stats.unclipped(sd):
        return sd, 0.0

    def excess(a: float) -> float:
        return stats(a, stats.t_for_mean(a))[1] - sd

    a_lo = sd
    e_lo = excess(a_lo)
    if e_lo >= 0.0:  # pragma: no cover - clipping cannot raise the SD
        return a_lo, stats.t_for_mean(a_lo)
    best_a, best_e = a_lo, e_lo
    a_hi = a_lo
    while a_hi < sd * _MAX_SLOPE_GROWTH:
        a_hi *= 2.0
        e_hi = excess(a_hi)
        if e_hi >= 0.0:
            a = brentq(excess, a_lo, a_hi, xtol=1e-12 * a_hi, rtol=1e-12)
            return a, stats.t_for_mean(a)
        if e_hi > best_e:
            best_a, best_e = a_hi, e_hi
        a_lo = a_hi
    # unreachable: polish the best slope between its neighbours on the doubling grid
    res = minimize_scalar(
        lambda log_a: -excess(math.exp(log_a)),
        bounds=(math.log(best_a / 2.0), math.log(best_a * 2.0)),
        method="bounded",
        options={"xatol": 1e-6},
    )
    if -res.fun > best_e:
        best_a = math.exp(res.x)
    return best_a, stats.t_for_mean(best_a)


def normalize_region(
    gray_float: np.ndarray, region: np.ndarray, mean: float = 128.0, sd: float = 32.0
) -> np.ndarray:
    """Map gray values linearly so a region gets a given mean and SD after clipping to 0..255.

    One linear map ``y = clip(a * (x - t) + mean, 0, 255)`` is fitted on the pixels of
    ``region`` and applied to the whole image. The plain map (``a = sd / SD(region)``,
    ``t`` = the region's mean) is used when it needs no clipping. Otherwise clipping would
    pull the region's mean and SD away from the targets, so slope and shift are refined
    (nested Brent root finding on the exact moments of the *clipped* values, see
    ``_fit_clipped_linear``) until the clipped region has the target mean and SD to about
    1e-6. That is reachable whenever the region has enough distinct values; a region made
    mostly of one gray value may not reach the SD, and then the mean is exact and the SD
    as large as the map can make it. A region with zero variance is shifted to the target
    mean (no crash).

    Parameters
    ----------
    gray_float : numpy.ndarray
        ``(H, W)`` image (any real dtype; values need not lie in 0..255).
    region : numpy.ndarray
        ``(H, W)`` bool array, True on the pixels whose statistics are set.
    mean : float, default 128
        Target mean of the region, in ``(0, 255)``.
    sd : float, default 32
        Target standard deviation (population SD, ``ddof=0``) of the region, > 0.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` float64 image with values in ``[0, 255]``.

    Raises
    ------
    ValueError
        On shape or dtype mismatches, an empty region, non-finite values in the region,
        or targets outside their ranges.
    """
    img = np.asarray(gray_float, dtype=np.float64)
    region = np.asarray(region)
    if region.dtype != np.bool_:
        raise ValueError(f"region must be a bool array, got dtype {region.dtype}")
    if img.shape != region.shape:
        raise ValueError(f"image shape {img.shape} and region shape {region.shape} differ")
    if not 0.0 < mean < 255.0:
        raise ValueError(f"target mean must lie in (0, 255), got {mean}")
    if not sd > 0.0:
        raise ValueError(f"target SD must be positive, got {sd}")
    values = img[region]
    if values.size == 0:
        raise ValueError("the region is empty: no pixel to normalize")
    if not np.all(np.isfinite(values)):
        raise ValueError("the region contains NaN or infinite values")
    if values.min() == values.max():
        # zero variance: shift so the region is exactly the target mean
        return np.clip(img - values[0] + mean, 0.0, 255.0)

    # Standardize in steps that neither overflow nor underflow, whatever the scale of
    # the values: divide by the largest magnitude, map the region's range to [0, 1],
    # then subtract the mean and divide by the SD (> 0, as the range is 1).
    scale = float(np.max(np.abs(values)))
    low = float(np.min(values / scale))
    span = float(np.max(values / scale)) - low
    if not span > 0.0:  # differences below double precision: treat as constant
        return np.clip(img - values[0] + mean, 0.0, 255.0)
    unit = (values / scale - low) / span
    mu = float(unit.mean())
    sigma = float(unit.std())

    def standardize(x: np.ndarray) -> np.ndarray:
        return ((x / scale - low) / span - mu) / sigma

    a, t = _fit_clipped_linear(_ClippedStats(standardize(values), float(mean)), float(sd))
    return np.clip(a * (standardize(img) - t) + mean, 0.0, 255.0)
