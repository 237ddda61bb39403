"""2-D drawing for the procedural face: anti-aliased masks, curves, field windows, shading.

Shapes are given in the canonical frame and rasterised through the head :class:`Pose`
(:mod:`~facedialect.faces.procedural.geometry`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

import cv2
import numpy as np

from facedialect.faces.procedural.geometry import Pose

__all__ = [
    "Canvas",
    "Grid",
    "Mask",
    "ellipse_points",
    "over",
    "segment_distance",
    "shade_height",
    "spline",
    "value_noise",
]

_SS: Final[int] = 4  # super-sampling factor of the masks
_SHIFT: Final[int] = 3  # fixed-point bits of the OpenCV drawing calls


def spline(points: np.ndarray, n: int = 6) -> np.ndarray:
    """Open Catmull-Rom curve through ``points`` (k, 2), ``n`` samples per segment."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(len(p) - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-1][None])
    return np.vstack(out)


def ellipse_points(center: tuple[float, float] | np.ndarray, axes: tuple[float, float],
                 angle0: float = 0.0, angle1: float = 360.0, n: int = 48,
                 rot: float = 0.0) -> np.ndarray:
    """Points on an ellipse arc (angles in degrees, y down), rotated by ``rot`` degrees."""
    a = np.radians(np.linspace(angle0, angle1, n))
    x, y = axes[0] * np.cos(a), axes[1] * np.sin(a)
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], axis=1)


class Mask:
    """Anti-aliased coverage in ``[0, 1]`` on a rectangular window of the output image."""

    __slots__ = ("a", "x0", "y0")

    def __init__(self, a: np.ndarray, y0: int, x0: int) -> None:
        self.a, self.y0, self.x0 = a, y0, x0

    @property
    def sl(self) -> tuple[slice, slice]:
        """The mask's window of the output image (rows, columns)."""
        h, w = self.a.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def __mul__(self, other: float | Mask) -> Mask:
        if not isinstance(other, Mask):
            return Mask(self.a * np.float32(other), self.y0, self.x0)
        y0, x0 = max(self.y0, other.y0), max(self.x0, other.x0)
        y1 = min(self.y0 + self.a.shape[0], other.y0 + other.a.shape[0])
        x1 = min(self.x0 + self.a.shape[1], other.x0 + other.a.shape[1])
        if y1 <= y0 or x1 <= x0:
            return Mask(np.zeros((0, 0), np.float32), 0, 0)
        a = self.a[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0]
        b = other.a[y0 - other.y0:y1 - other.y0, x0 - other.x0:x1 - other.x0]
        return Mask(a * b, y0, x0)

    __rmul__ = __mul__

    def blur(self, sigma: float) -> Mask:
        """The coverage blurred with a Gaussian of ``sigma`` pixels."""
        if self.a.size == 0 or sigma <= 0:
            return self
        return Mask(cv2.GaussianBlur(self.a, (0, 0), sigma), self.y0, self.x0)

    def full(self, size: int) -> np.ndarray:
        """The coverage on the whole ``(size, size)`` image."""
        out = np.zeros((size, size), np.float32)
        if self.a.size:
            out[self.sl] = self.a
        return out


class Canvas:
    """Rasterises canonical-frame shapes into anti-aliased coverage masks."""

    def __init__(self, pose: Pose, size: int) -> None:
        self.pose = pose
        self.size = size
        self.big = size * _SS

    def _px(self, q: np.ndarray) -> np.ndarray:
        p = (self.pose.apply(np.asarray(q, np.float64)) + 0.5) * _SS - 0.5
        return np.round(p * (1 << _SHIFT)).astype(np.int32)

    def _render(self, draw: Callable[[np.ndarray, list[np.ndarray]], object],
                pts: list[np.ndarray], pad: int) -> Mask:
        allp = np.vstack(pts).astype(np.float64) / (1 << _SHIFT)
        x0 = max(int(allp[:, 0].min()) - pad, 0) // _SS * _SS
        y0 = max(int(allp[:, 1].min()) - pad, 0) // _SS * _SS
        x1 = min((int(allp[:, 0].max()) + pad + 2 * _SS) // _SS * _SS, self.big)
        y1 = min((int(allp[:, 1].max()) + pad + 2 * _SS) // _SS * _SS, self.big)
        if x1 <= x0 or y1 <= y0:
            return Mask(np.zeros((0, 0), np.float32), 0, 0)
        sub = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0, y0], np.int32) << _SHIFT
        draw(sub, [p - off for p in pts])
        w, h = (x1 - x0) // _SS, (y1 - y0) // _SS
        small = cv2.resize(sub, (w, h), interpolation=cv2.INTER_AREA)
        return Mask(small.astype(np.float32) * np.float32(1.0 / 255.0), y0 // _SS, x0 // _SS)

    def poly(self, *polys: np.ndarray, pad: float = 0.0) -> Mask:
        """Coverage of the filled polygon(s); ``pad`` widens the window (canonical units)."""
        pts = [self._px(p) for p in polys]
        extra = int(pad * self.pose.scale * _SS)
        def draw(im: np.ndarray, pp: list[np.ndarray]) -> None:
            for q in pp:  # one call each: OpenCV fills overlaps of one call even-odd
                cv2.fillPoly(im, [q], 255, cv2.LINE_8, _SHIFT)

        return self._render(draw, pts, 2 * _SS + extra)

    def line(self, curve: np.ndarray, width: float) -> Mask:
        """Coverage of a stroked open polyline, ``width`` in canonical units."""
        th = max(1, int(round(width * self.pose.scale * _SS)))
        pts = [self._px(curve)]
        return self._render(
            lambda im, pp: cv2.polylines(im, pp, False, 255, th, cv2.LINE_8, _SHIFT),
            pts, th + 2 * _SS)


def over(img: np.ndarray, m: Mask, color: np.ndarray) -> None:
    """Composite ``color`` over ``img`` with coverage ``m``.

    ``color`` is an RGB triple, an ``(h, w, 3)`` array the size of the mask's window, or a
    full-image ``(H, W, 3)`` array.
    """
    if m.a.size == 0:
        return
    sl = m.sl
    sub = img[sl]
    col = color if color.ndim == 1 or color.shape[:2] == m.a.shape else color[sl]
    sub += m.a[..., None] * (col - sub)


class Grid:
    """Canonical coordinates of the output pixels, with windowed field updates."""

    def __init__(self, pose: Pose, size: int) -> None:
        self.pose, self.size = pose, size
        self.U, self.V = pose.grid(size)

    def win(self, c: np.ndarray | tuple[float, float], rx: float,
            ry: float) -> tuple[slice, slice]:
        """Pixel window covering the canonical box ``c +- (rx, ry)``."""
        box = np.array([(c[0] - rx, c[1] - ry), (c[0] + rx, c[1] - ry),
                        (c[0] - rx, c[1] + ry), (c[0] + rx, c[1] + ry)])
        p = self.pose.apply(box)
        x0 = min(max(int(p[:, 0].min()), 0), self.size)
        y0 = min(max(int(p[:, 1].min()), 0), self.size)
        x1 = min(max(int(p[:, 0].max()) + 2, 0), self.size)
        y1 = min(max(int(p[:, 1].max()) + 2, 0), self.size)
        return slice(y0, y1), slice(x0, x1)

    def gauss(self, out: np.ndarray, amp: float, c: np.ndarray | tuple[float, float],
              sx: float, sy: float) -> None:
        """``out += amp * exp(-((u-cx)/sx)^2/2 - ((v-cy)/sy)^2/2)`` within 3.5 sigma."""
        if amp == 0.0:
            return
        sl = self.win(c, 3.5 * sx, 3.5 * sy)
        u, v = self.U[sl], self.V[sl]
        du, dv = (u - np.float32(c[0])) / np.float32(sx), (v - np.float32(c[1])) / np.float32(sy)
        out[sl] += np.float32(amp) * np.exp(np.float32(-0.5) * (du * du + dv * dv))


def segment_distance(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from every grid point to the segment a-b (canonical units)."""
    d = b - a
    t = np.clip(((u - a[0]) * d[0] + (v - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(u - (a[0] + t * d[0]), v - (a[1] + t * d[1]))


_LIGHT: Final[np.ndarray] = np.array([-0.35, -0.5, 1.0]) / np.linalg.norm([-0.35, -0.5, 1.0])
_HALF: Final[np.ndarray] = (_LIGHT + (0.0, 0.0, 1.0)) / np.linalg.norm(_LIGHT + (0.0, 0.0, 1.0))


def shade_height(h: np.ndarray, px_per_unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Lambert diffuse and Blinn specular terms of a height field (canonical units)."""
    gy, gx = np.gradient(h)
    gx *= px_per_unit
    gy *= px_per_unit
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    ndl = (-gx * _LIGHT[0] - gy * _LIGHT[1] + _LIGHT[2]) * inv
    ndh = (-gx * _HALF[0] - gy * _HALF[1] + _HALF[2]) * inv
    diffuse = np.clip(ndl, 0.0, 1.0)
    spec = np.clip(ndh, 0.0, 1.0) ** 16
    return diffuse.astype(np.float32), spec.astype(np.float32)


def value_noise(rng: np.random.Generator, size: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in about [-1, 1] (cubic-upsampled Gaussian cells)."""
    small = rng.normal(0.0, 1.0, (cells[0], cells[1])).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, -2.5, 2.5) / np.float32(2.5)

