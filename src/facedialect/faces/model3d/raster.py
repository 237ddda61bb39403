"""Triangle rasterization for the 3-D face model (numpy only, no display, no GPU).

Rasterization is vectorised over triangles: triangles are binned by the size of their
pixel bounding box, every candidate pixel of a bin is tested with barycentric
coordinates at once, and the nearest fragment per pixel wins (``np.maximum.at`` depth
buffer). Used by :mod:`~facedialect.faces.model3d.render` and
:mod:`~facedialect.faces.model3d.photo`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["rasterize", "vertex_normals"]


def rasterize(p: np.ndarray, z: np.ndarray, tris: np.ndarray, w: int, h: int,
               two_sided: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Z-buffer the triangles; return per covered pixel (pixel index, tri, l0, l1).

    ``p`` are pixel coordinates (pixel ``i`` covers ``[i, i+1)``; centres at ``i+0.5``),
    ``z`` grows toward the viewer. Only triangles facing the camera are drawn, except
    those flagged in ``two_sided``.
    """
    a, b, c = p[tris[:, 0]], p[tris[:, 1]], p[tris[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # counter-clockwise in model space (y up) is clockwise in pixels (y down): area < 0
    front = area < -1e-12
    if two_sided is not None:
        front |= two_sided & (np.abs(area) > 1e-12)
    lo = np.floor(np.minimum(np.minimum(a, b), c) - 0.5).astype(np.int64) + 1
    hi = np.floor(np.maximum(np.maximum(a, b), c) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi[:, 0] = np.minimum(hi[:, 0], w - 1)
    hi[:, 1] = np.minimum(hi[:, 1], h - 1)
    ext = hi - lo + 1
    ok = front & (ext[:, 0] > 0) & (ext[:, 1] > 0)
    big = np.maximum(ext[:, 0], ext[:, 1])
    pix_l, tri_l, z_l, l0_l, l1_l = [], [], [], [], []
    k_lo = 0
    for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024,
              4096):
        sel = np.flatnonzero(ok & (big > k_lo) & (big <= k))
        k_lo = k
        if sel.size == 0:
            continue
        # chunk so that n * k * k stays moderate
        step = max(1, 2_000_000 // (k * k))
        for s in range(0, sel.size, step):
            t = sel[s: s + step]
            oy, ox = np.divmod(np.arange(k * k), k)
            # work relative to each triangle's first candidate pixel: small numbers,
            # so float32 is exact enough and the pixel grid is one shared row
            cx, cy = (ox + 0.5).astype(np.float32)[None, :], (oy + 0.5).astype(np.float32)[None, :]
            base = lo[t].astype(np.float64)
            ta = (a[t] - base).astype(np.float32)
            tb = (b[t] - base).astype(np.float32)
            tc = (c[t] - base).astype(np.float32)
            inv = (1.0 / area[t]).astype(np.float32)[:, None]
            inb = (ox[None, :] < ext[t, 0:1]) & (oy[None, :] < ext[t, 1:2])
            l0 = ((tb[:, 0:1] - cx) * (tc[:, 1:2] - cy)
                  - (tb[:, 1:2] - cy) * (tc[:, 0:1] - cx)) * inv
            l1 = ((tc[:, 0:1] - cx) * (ta[:, 1:2] - cy)
                  - (tc[:, 1:2] - cy) * (ta[:, 0:1] - cx)) * inv
            eps = np.float32(-1e-6)
            m = inb & (l0 >= eps) & (l1 >= eps) & (l0 + l1 <= 1.0 - eps)
            rows, cols = np.nonzero(m)
            tt = t[rows]
            L0 = l0[rows, cols].astype(np.float64)
            L1 = l1[rows, cols].astype(np.float64)
            zz = (L0 * z[tris[tt, 0]] + L1 * z[tris[tt, 1]]
                  + (1.0 - L0 - L1) * z[tris[tt, 2]])
            px = lo[tt, 0] + ox[cols]
            py = lo[tt, 1] + oy[cols]
            pix_l.append(py * w + px)
            tri_l.append(tt)
            z_l.append(zz)
            l0_l.append(L0)
            l1_l.append(L1)
    if not pix_l:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0), np.zeros(0)
    pix = np.concatenate(pix_l)
    tri = np.concatenate(tri_l)
    zz = np.concatenate(z_l)
    L0 = np.concatenate(l0_l)
    L1 = np.concatenate(l1_l)
    zbuf = np.full(w * h, -np.inf)
    np.maximum.at(zbuf, pix, zz)
    win = zz >= zbuf[pix]
    pix, tri, L0, L1 = pix[win], tri[win], L0[win], L1[win]
    # ties (shared edges at equal depth): keep the first per pixel, deterministically
    order = np.lexsort((tri, pix))
    pix, tri, L0, L1 = pix[order], tri[order], L0[order], L1[order]
    first = np.ones(pix.size, bool)
    first[1:] = pix[1:] != pix[:-1]
    return pix[first], tri[first], L0[first], L1[first]


def vertex_normals(v: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unit per-vertex normals of a mesh: the area-weighted sum of its triangles' normals."""
    a, b, c = v[tris[:, 0]], v[tris[:, 1]], v[tris[:, 2]]
    fn = np.cross(b - a, c - a)
    n = np.zeros_like(v)
    for j in range(3):
        for k in range(3):
            n[:, k] += np.bincount(tris[:, j], weights=fn[:, k], minlength=len(v))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return n
