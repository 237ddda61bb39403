"""Wrinkles and furrows that the mesh alone does not show, as shading of the skin.

The ICT model's blendshapes move the skin but are too smooth to fold it: a lowered brow
shows no vertical furrows between the brows, a nose wrinkler no wrinkles on the nose.
The FACS Manual names these appearance changes for each AU; they are drawn here as
darkened lines (with a lighter bulge beside a fold) in the model's *generic neutral*
frame, so that they move with the skin: each rendered fragment carries the generic
neutral ``(x, y)`` of its surface point, and its skin colour is multiplied by
:func:`crease_shading`.

=========================  ==========================================================
crease                     AUs (FACS appearance change)
=========================  ==========================================================
glabellar furrows          AU4: vertical furrows between the lowered, drawn-together
                           brows
nasion crease              AU4, AU9: a horizontal wrinkle at the root of the nose
nose wrinkles              AU9: wrinkles along the sides and across the bridge of
                           the nose
infraorbital furrow        AU9, AU6: deepened below the lower lid
nasolabial furrow          AU9, AU10, AU11, AU12, AU6: deepened from the nose wing to
                           beyond the lip corner, with the cheek bulging beside it
crow's feet                AU6: wrinkles fanning out from the eye's outer corner
forehead wrinkles          AU1: horizontal, in the forehead's centre; AU2: in its
                           lateral parts (both: across the forehead)
chin boss                  AU17: the chin's skin wrinkled (dimpled)
mentolabial furrow         AU17: a depression below the middle of the pushed-up lower
                           lip
lip corner furrow, bulge   AU15: a furrow running down from the lowered lip corner, the
                           skin bulging beside it, below the corner
=========================  ==========================================================

Each crease has a darkening depth at full strength and a width; the AU weights set its
strength (intensity 1 = FACS intensity E). Creases are defined on the subject's left
(``x > 0``) and mirrored; one-sided AUs (``"12L"``) crease their own side only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from facedialect.faces.model3d.recipes import parse_au_key

__all__ = ["CREASES", "CREASE_AUS", "Crease", "crease_shading", "crease_strengths"]


@dataclass(frozen=True)
class Crease:
    """One wrinkle or fold in the generic neutral frame (cm; the subject's left side).

    Attributes
    ----------
    name : str
        What it is.
    points : tuple[tuple[float, float], ...]
        Polyline ``(x, y)`` in cm on the subject's left (``x >= 0``); mirrored to the right.
    width : float
        Gaussian width (cm) across the line.
    depth : float
        Darkening at full strength (0.3: 30 % darker on the line); negative lightens (a
        bulge beside a fold).
    aus : dict[int, float]
        AU -> weight of its intensity in the crease's strength.
    """

    name: str
    points: tuple[tuple[float, float], ...]
    width: float
    depth: float
    aus: dict[int, float]


def _fan(x: float, y: float, length: float, angles: tuple[float, ...]
         ) -> list[tuple[tuple[float, float], ...]]:
    out = []
    for a in angles:
        r = np.radians(a)
        out.append(((x, y), (x + length * np.cos(r), y + length * np.sin(r))))
    return out


_NASOLABIAL = ((1.55, -0.45), (1.95, -1.4), (2.55, -2.55), (3.05, -3.85))

#: The creases (ICT generic neutral frame: nasion at y 3.7, nose tip at y 0.4, lip corners
#: at (2.5, -3.5), outer eye corners at (4.5, 3.4), inner brow ends at (1.2, 5.9) cm).
CREASES: Final[tuple[Crease, ...]] = (
    Crease("glabellar furrow", ((0.52, 6.7), (0.44, 5.5), (0.34, 4.4)), 0.1, 0.3, {4: 1.0}),
    Crease("glabellar bulge", ((0.9, 6.5), (0.8, 5.4), (0.65, 4.5)), 0.2, -0.08, {4: 1.0}),
    Crease("nasion crease", ((0.0, 4.05), (0.7, 3.95)), 0.1, 0.22, {4: 0.6, 9: 1.0}),
    *(Crease("nose wrinkle", ((0.0, y), (0.5, y - 0.1), (0.95, y - 0.4)), 0.09, 0.26,
             {9: 1.0}) for y in (3.45, 3.0, 2.55)),
    Crease("infraorbital furrow", ((1.95, 2.6), (2.8, 1.95), (3.9, 1.8)), 0.11, 0.25,
           {9: 0.8, 6: 0.5}),
    Crease("nasolabial furrow", _NASOLABIAL, 0.2, 0.3,
           {9: 0.6, 10: 0.8, 11: 1.0, 12: 0.7, 6: 0.25}),
    Crease("nasolabial bulge", tuple((x + 0.45, y) for x, y in _NASOLABIAL), 0.3, -0.1,
           {9: 0.6, 10: 0.8, 11: 1.0, 12: 0.7, 6: 0.25}),
    *(Crease("crow's feet", pts, 0.07, 0.2, {6: 1.0})
      for pts in _fan(4.95, 3.45, 0.75, (28.0, 0.0, -28.0))),
    *(Crease("forehead wrinkle, centre", ((0.0, y), (1.1, y + 0.05), (2.2, y - 0.1)), 0.09,
             0.2, {1: 1.0}) for y in (7.25, 7.85, 8.45)),
    *(Crease("forehead wrinkle, side", ((1.6, y), (3.0, y + 0.05), (4.3, y - 0.3)), 0.09,
             0.2, {2: 1.0}) for y in (7.15, 7.75, 8.35)),
    Crease("chin boss", ((0.0, -5.9), (0.55, -5.95), (0.9, -6.2)), 0.3, 0.14, {17: 1.0}),
    Crease("mentolabial furrow", ((0.0, -5.0), (0.65, -5.02), (1.15, -4.85)), 0.12, 0.16,
           {17: 1.0}),
    Crease("lip corner furrow", ((2.85, -3.95), (3.0, -4.45), (3.1, -5.05)), 0.12, 0.18,
           {15: 1.0}),
    Crease("lip corner bulge", ((2.5, -4.15), (2.6, -4.55), (2.65, -5.0)), 0.22, -0.06,
           {15: 1.0}),
)

#: The AUs that crease the skin.
CREASE_AUS: Final[frozenset[int]] = frozenset(a for c in CREASES for a in c.aus)


def crease_strengths(aus: Mapping[int | str, float]) -> dict[int, tuple[float, float]]:
    """Each creasing AU's intensity on the subject's ``(left, right)`` side.

    Parameters
    ----------
    aus : Mapping[int | str, float]
        AU key -> intensity (as :func:`~facedialect.faces.model3d.recipes.au_weights`).

    Returns
    -------
    dict[int, tuple[float, float]]
        Only AUs of :data:`CREASE_AUS` with a non-zero intensity.
    """
    out: dict[int, list[float]] = {}
    for key, value in aus.items():
        number, side = parse_au_key(key)
        x = float(value)
        if number not in CREASE_AUS or x == 0.0:
            continue
        lr = out.setdefault(number, [0.0, 0.0])
        if side in ("", "L"):
            lr[0] += x
        if side in ("", "R"):
            lr[1] += x
    return {k: (v[0], v[1]) for k, v in out.items()}


def _polyline_distance(xy: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance of points to a polyline and their position along it (0..1)."""
    seg = np.diff(pts, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    start = np.concatenate([[0.0], np.cumsum(seg_len)])
    best = np.full(len(xy), np.inf)
    along = np.zeros(len(xy))
    for a, d, n, s0 in zip(pts[:-1], seg, seg_len, start[:-1], strict=True):
        t = np.clip(((xy - a) @ d) / max(n * n, 1e-12), 0.0, 1.0)
        dist = np.linalg.norm(xy - (a + t[:, None] * d), axis=1)
        closer = dist < best
        best[closer] = dist[closer]
        along[closer] = (s0 + t[closer] * n) / max(start[-1], 1e-12)
    return best, along


def crease_shading(xy: np.ndarray, aus: Mapping[int | str, float]) -> np.ndarray | None:
    """Multiplicative shading of skin at generic neutral positions for a set of AUs.

    Parameters
    ----------
    xy : numpy.ndarray
        ``(N, 2)`` generic neutral ``(x, y)`` (cm) of the skin fragments.
    aus : Mapping[int | str, float]
        AU key -> intensity in 0..1.

    Returns
    -------
    numpy.ndarray or None
        ``(N,)`` float32 factors (1 = unchanged, below 1 darker), or None when no AU
        creases the skin.
    """
    strengths = crease_strengths(aus)
    if not strengths:
        return None
    xy = np.asarray(xy, np.float64)
    dark = np.zeros(len(xy))
    for crease in CREASES:
        s_l = sum(w * strengths.get(a, (0.0, 0.0))[0] for a, w in crease.aus.items())
        s_r = sum(w * strengths.get(a, (0.0, 0.0))[1] for a, w in crease.aus.items())
        if s_l == 0.0 and s_r == 0.0:
            continue
        pts = np.asarray(crease.points, np.float64)
        reach = 3.0 * crease.width
        lo, hi = pts.min(axis=0) - reach, pts.max(axis=0) + reach
        for side, strength in ((1.0, min(s_l, 1.2)), (-1.0, min(s_r, 1.2))):
            if strength == 0.0:
                continue
            q = xy * np.array([side, 1.0])
            near = np.flatnonzero((q[:, 0] >= lo[0]) & (q[:, 0] <= hi[0]) & (q[:, 1] >= lo[1])
                                  & (q[:, 1] <= hi[1]))
            if pts[:, 0].min() == 0.0:
                # a crease that starts on the midline: each side draws its own half
                near = near[q[near, 0] >= 0.0]
            if near.size == 0:
                continue
            d, t = _polyline_distance(q[near], pts)
            # ends taper (a midline start does not: the two halves join)
            taper = np.clip(t / 0.2, 0, 1) if pts[0, 0] != 0.0 else np.ones_like(t)
            taper = taper * np.clip((1.0 - t) / 0.25, 0, 1)
            dark[near] += crease.depth * strength * np.exp(-((d / crease.width) ** 2)) * taper
    return np.clip(1.0 - dark, 0.35, 1.3).astype(np.float32)
