"""The procedural face's relief: the height field of its features (shaded by the renderer)."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from facedialect.faces.mathutil import smoothstep
from facedialect.faces.procedural.drawing import Grid, segment_distance

__all__ = ["feature_relief"]


def feature_relief(H: np.ndarray, grid: Grid, L: np.ndarray, prm: Mapping[str, float],
                   texture_seed: int) -> None:
    """Add the features' relief (canonical units) to the height field ``H``.

    Parameters
    ----------
    H : numpy.ndarray
        ``(size, size)`` float32 height field, changed in place.
    grid : Grid
        Canonical coordinates of the output pixels.
    L : numpy.ndarray
        ``(68, 2)`` canonical landmarks of the face.
    prm : Mapping[str, float]
        Render parameters (:func:`~facedialect.faces.procedural.aus.render_params`).
    texture_seed : int
        The identity's texture seed (the chin boss's bumps).
    """
    U, V, g = grid.U, grid.V, grid
    for side, (eye, brow) in enumerate(((slice(36, 42), slice(17, 22)),
                                        (slice(42, 48), slice(22, 27)))):
        e = L[eye].mean(axis=0)
        b = L[brow].mean(axis=0)
        sgn = -1.0 if side == 0 else 1.0
        g.gauss(H, -0.11, (e[0], e[1] - 0.04), 0.2, 0.12)  # eye socket
        g.gauss(H, 0.05, (b[0], b[1] + 0.03), 0.28, 0.07)  # brow ridge
        g.gauss(H, 0.035, (e[0], e[1] - 0.02), 0.14, 0.06)  # eyeball under the lid
        g.gauss(H, 0.07, (e[0] + sgn * 0.05, e[1] + 0.45), 0.28, 0.2)  # cheek
        cb = prm["cheek_bulge"]
        if cb > 0:
            g.gauss(H, 0.12 * cb, (e[0] + sgn * 0.04, e[1] + 0.3), 0.19, 0.12)
            g.gauss(H, 0.03 * cb, (e[0], e[1] + 0.13), 0.13, 0.035)  # lower-lid bag
        ch = prm["cheek_hollow"]
        if ch > 0:
            g.gauss(H, -0.06 * ch, (sgn * 0.66, 0.95), 0.15, 0.28)
        cf = prm["crows_feet"]
        if cf > 0:
            corner = L[36] if side == 0 else L[45]
            sl = g.win((corner[0] + sgn * 0.17, corner[1]), 0.2, 0.25)
            du, dv = U[sl] - corner[0], V[sl] - corner[1]
            r = np.sqrt(du * du + dv * dv)
            ang = np.arctan2(dv, sgn * du)
            win = (smoothstep(0.05, 0.1, r) * smoothstep(0.28, 0.14, r)
                   * smoothstep(0.0, 0.05, sgn * du) * smoothstep(1.3, 0.8, np.abs(ang)))
            H[sl] -= 0.007 * cf * win * (1 + np.cos(ang * 12.0))
    # forehead furrows
    fc, fl = prm["forehead_center"], prm["forehead_lateral"]
    if fc > 0 or fl > 0:
        brow_y = 0.5 * (L[19, 1] + L[24, 1])
        sl = g.win((0.0, brow_y - 0.35), 1.0, 0.35)
        u, v = U[sl], V[sl]
        band = smoothstep(brow_y - 0.62, brow_y - 0.45, v) * smoothstep(
            brow_y - 0.1, brow_y - 0.2, v)
        wx = fc * np.exp(-((u / 0.35) ** 2)) + fl * smoothstep(0.15, 0.45, np.abs(u)) * (
            smoothstep(0.95, 0.7, np.abs(u)))
        H[sl] -= 0.009 * wx * band * (1 + np.cos((v - brow_y) * 2 * np.pi / 0.12))
    gl = prm["glabella"]
    if gl > 0:
        gx, gy = 0.5 * (L[21, 0] + L[22, 0]), 0.5 * (L[21, 1] + L[22, 1])
        g.gauss(H, -0.016 * gl, (gx - 0.06, gy - 0.05), 0.02, 0.08)
        g.gauss(H, -0.016 * gl, (gx + 0.06, gy - 0.05), 0.02, 0.08)
        g.gauss(H, 0.012 * gl, (gx, gy), 0.1, 0.06)
    # nose: ridge, tip, wings
    top, tip = L[27], L[30]
    sl = g.win((0.5 * (top[0] + tip[0]), 0.5 * (top[1] + tip[1])), 0.4,
               0.5 * (tip[1] - top[1]) + 0.25)
    u, v = U[sl], V[sl]
    t = np.clip((v - top[1]) / max(tip[1] - top[1], 1e-3), 0.0, 1.0)
    ridge_x = top[0] + t * (tip[0] - top[0])
    inside = smoothstep(top[1] - 0.1, top[1] + 0.05, v) * smoothstep(tip[1] + 0.12,
                                                                         tip[1], v)
    H[sl] += (0.05 + 0.12 * t) * np.exp(-(((u - ridge_x) / (0.06 + 0.05 * t)) ** 2)) * inside
    g.gauss(H, 0.09, (tip[0], tip[1] + 0.05), 0.075, 0.065)
    for i in (31, 35):
        g.gauss(H, 0.07, (L[i, 0] + 0.3 * (L[33, 0] - L[i, 0]), L[i, 1] - 0.03), 0.065, 0.06)
    nw = prm["nose_wrinkle"]
    if nw > 0:
        c = (L[28, 0], 0.6 * L[27, 1] + 0.4 * L[28, 1])
        sl = g.win(c, 0.2, 0.2)
        u, v = U[sl], V[sl]
        win = np.exp(-0.5 * (((u - c[0]) / 0.09) ** 2 + ((v - c[1]) / 0.07) ** 2))
        H[sl] -= 0.009 * nw * win * (1 + np.cos((v - c[1]) * 2 * np.pi / 0.05))
        for i, sgn in ((31, -1.0), (35, 1.0)):
            c = (L[i, 0] - sgn * 0.05, L[i, 1] - 0.2)
            sl = g.win(c, 0.2, 0.2)
            u, v = U[sl], V[sl]
            win = np.exp(-0.5 * (((u - c[0]) / 0.05) ** 2 + ((v - c[1]) / 0.07) ** 2))
            H[sl] -= 0.006 * nw * win * (
                1 + np.cos((v - c[1] + 0.5 * sgn * (u - c[0])) * 2 * np.pi / 0.05))
    # nasolabial furrows: a soft groove with the cheek bulging beside it
    nl = prm["nasolabial"]
    depth = 0.004 + 0.022 * nl
    for i, j, sgn in ((31, 48, -1.0), (35, 54, 1.0)):
        a = L[i] + np.array([sgn * 0.08, -0.04])
        b = L[j] + np.array([sgn * 0.09, 0.1 - 0.05 * nl])
        sl = g.win(0.5 * (a + b), 0.5 * abs(b[0] - a[0]) + 0.25, 0.5 * abs(b[1] - a[1]) + 0.25)
        u, v = U[sl], V[sl]
        d = segment_distance(u, v, a, b)
        beside = smoothstep(-0.02, 0.03, sgn * (u - 0.5 * (a[0] + b[0])))
        H[sl] -= depth * np.exp(-((d / 0.045) ** 2))
        along = smoothstep(b[1] + 0.02, b[1] - 0.15, v)  # no bulge past the corner
        H[sl] += 0.8 * depth * np.exp(-(((d - 0.08) / 0.06) ** 2)) * beside * along
    # philtrum and lips
    g.gauss(H, -0.012, (L[51, 0], 0.5 * (L[33, 1] + L[51, 1])), 0.025, 0.08)
    mw = max(0.5 * (L[54, 0] - L[48, 0]), 0.1)
    up_c = np.array([L[51, 0], 0.5 * (L[51, 1] + L[62, 1])])
    lo_c = np.array([L[57, 0], 0.5 * (L[57, 1] + L[66, 1])])
    fun = prm["funnel"]
    lip_h = 0.05 + 0.04 * fun
    g.gauss(H, lip_h, up_c, mw * 0.7, max(L[62, 1] - L[51, 1], 0.03) * 0.9)
    g.gauss(H, lip_h + 0.015, lo_c, mw * 0.65, max(L[57, 1] - L[66, 1], 0.03) * 0.8)
    g.gauss(H, 0.04 * fun, 0.5 * (up_c + lo_c), mw * 0.9, 0.2)
    lp = prm["lip_press"]
    if lp > 0:
        g.gauss(H, 0.025 * lp, (L[51, 0], L[51, 1] - 0.07), mw * 0.7, 0.04)
        g.gauss(H, 0.03 * lp, (L[57, 0], L[57, 1] + 0.07), mw * 0.6, 0.045)
    lt = prm["lip_tight"]
    if lt > 0:
        g.gauss(H, 0.012 * lt, (L[57, 0], L[57, 1] + 0.05), mw * 0.6, 0.035)
    # mentolabial sulcus and chin boss
    cb = prm["chin_boss"]
    g.gauss(H, -0.03 - 0.025 * cb, (L[57, 0], L[57, 1] + 0.1), mw * 0.6, 0.04)
    chin_c = (L[8, 0], L[8, 1] - 0.24 - 0.06 * cb)
    g.gauss(H, 0.09 + 0.08 * cb, chin_c, 0.24, 0.13)
    if cb > 0:
        sl = g.win(chin_c, 0.5, 0.35)
        bumps = np.random.default_rng(texture_seed + 17).normal(
            0.0, 1.0, (14, 14)).astype(np.float32)
        n = cv2.resize(bumps, (grid.size, grid.size), interpolation=cv2.INTER_CUBIC)[sl]
        u, v = U[sl], V[sl]
        win = np.exp(-0.5 * (((u - chin_c[0]) / 0.18) ** 2 + ((v - chin_c[1]) / 0.1) ** 2))
        H[sl] += 0.012 * cb * n * win

