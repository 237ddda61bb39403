"""Photo-textured 3-D faces: a photo on the ICT face model, animated with FACS AUs.

What FaceGen does, done openly:

1. **Landmarks**: the photo's 68 iBUG landmarks (:func:`facedialect.landmarks.detect_landmarks`).
2. **Fit** (:func:`~facedialect.faces.model3d.fit.fit_photo`): a scaled-orthographic pose
   (rotation, scale, shift) and the first identity coefficients of the model, by
   regularised least squares on the model's 68 landmark vertices, alternating pose and
   shape a few times. The jaw-contour landmarks depend on the silhouette, so they count
   less.
3. **Texture**: each vertex's texture coordinate is where the fitted neutral mesh
   projects in the photo, so at AU 0 the textured mesh lands exactly on the photo.
4. **Render** (:meth:`PhotoFace.render`): the mesh with AUs is rasterised in the photo's
   camera (the z-buffer of :mod:`~facedialect.faces.model3d.raster`). Skin takes the photo
   at its texture coordinate (the texture moves with the mesh), multiplied by the ratio
   of the expressed to the neutral Lambertian shading (creases and bulges). Surface that
   was hidden in the photo and shows now takes its own material: teeth, gums, tongue and
   mouth socket (dark, darkened with depth) and the eyeballs' sclera and iris (colours
   sampled from the photo's eyes). Outside the face (hair, background, neck, ears) the
   photo's own pixels stay; a soft mask blends the two at the face border.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from facedialect.errors import ImageReadError
from facedialect.faces.mathutil import smoothstep
from facedialect.faces.model3d.creases import crease_shading
from facedialect.faces.model3d.fit import PhotoFit, as_rgb, fit_photo, load_photo
from facedialect.faces.model3d.model import VERTEX_RANGES, FaceModel3D, load_model
from facedialect.faces.model3d.raster import rasterize, vertex_normals
from facedialect.faces.model3d.recipes import au_weights
from facedialect.faces.model3d.render import (
    IRIS_R,
    PUPIL_R,
    Appearance,
    mouth_interior,
    prepare_model,
    skin_occlusion,
)
from facedialect.landmarks import LANDMARK_GROUPS, NoFaceDetectedError

__all__ = [
    "PhotoFace",
    "face_region_metrics",
    "photo_face",
    "psnr",
    "ssim",
]

#: Soft mask: the face region is eroded by this fraction of the eye distance, then
#: blurred with a Gaussian of the same size, before it is blended over the photo.
_MASK_EDGE: Final = 0.08
#: The shading ratio (expressed / neutral Lambert shading) is applied in full (power 1:
#: the relit skin of a Lambertian surface) and clipped: down to 0.45 (a lowered brow, a
#: raised cheek, folds darken as the geometry says), up to 1.15 only: the photo already
#: holds its highlights, and a large ratio over-brightens skin that turns to the light
#: (raised brows lit the upper lids orange at 1.7x). Until issue 16 the ratio was
#: softened (power 0.6, clip 0.55..1.35), which muted every AU's shading.
_RATIO_POWER: Final = 1.0
_RATIO_RANGE: Final = (0.45, 1.15)


# ---------------------------------------------------------------------------------------
# The textured face
# ---------------------------------------------------------------------------------------


@dataclass
class _Raster:
    """Per-size cache: the texture and the neutral render at raster resolution."""

    k: float                        # raster pixels per photo pixel
    side: tuple[int, int]           # raster (height, width)
    texture: np.ndarray             # photo resized to the raster, float32 RGB 0..1
    zbuf0: np.ndarray               # neutral depth per raster pixel (-inf: background)
    edge: float                     # soft-mask erosion radius (raster pixels)
    base: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    base_mask: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class PhotoFace:
    """A photo fitted with the 3-D model, ready to render with AUs.

    Parameters
    ----------
    photo : numpy.ndarray
        ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8.
    model : FaceModel3D, optional
        The ICT model (default: :func:`load_model`).
    fit : PhotoFit, optional
        A fit of this photo (default: :func:`fit_photo`).

    Raises
    ------
    NoFaceDetectedError
        When no face is found in the photo.
    """

    def __init__(self, photo: np.ndarray, model: FaceModel3D | None = None,
                 fit: PhotoFit | None = None) -> None:
        self.photo = as_rgb(photo)
        self.model = model or load_model()
        self.fit = fit or fit_photo(self.photo, self.model)
        if self.fit.shape != self.photo.shape[:2]:
            raise ValueError("fit was made on a photo of another size")
        self.prep = prepare_model(self.model)
        ident = self.model.shape(self.fit.identity)
        self.identity_vertices = ident.astype(np.float64)
        self.uv, self.depth0 = self.fit.project(self.identity_vertices)
        nv = self.model.n_vertices
        face = np.zeros(nv, bool)
        face[: VERTEX_RANGES["face"][1] + 1] = True
        tv = self.prep.tris
        # the face region (blended over the photo): face skin, eyes and mouth interior
        self._tri_face = (face[tv].all(axis=1) | (self.prep.tri_kind > 0)
                          | (self.prep.interior[tv].min(axis=1) > 0.5))
        self._tri_eye = self.prep.tri_kind > 0
        self._face_ids = np.flatnonzero(self._tri_face)
        self._face_tris = tv[self._face_ids]
        self._face_two_sided = self.prep.two_sided[self._face_ids]
        self._tri_inner = self.prep.interior[tv].min(axis=1) > 0.5
        lm = self.fit.landmarks
        self.eye_distance = float(np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0)))
        self._normals0 = self._normals(self.identity_vertices)
        self._occlusion0 = skin_occlusion(self.model, self.identity_vertices)
        self._colours = self._eye_colours()
        # teeth and mouth lit like the photo: brighter photos, brighter teeth
        lum = float(np.median(cv2.cvtColor(self.photo, cv2.COLOR_RGB2GRAY))) / 255.0
        self._mouth_light = min(1.0, 0.5 + lum)
        self._rasters: dict[tuple[int, int], _Raster] = {}

    # -- geometry ---------------------------------------------------------------------------
    def _shade(self, n: np.ndarray) -> np.ndarray:
        """Lambert + ambient shading of unit normals, with the 3-D renderer's default light."""
        look = Appearance()
        light = np.asarray(look.light, np.float64)
        light /= max(float(np.linalg.norm(light)), 1e-12)
        return look.ambient + look.diffuse * np.clip(n @ light, 0.0, 1.0)

    def _normals(self, v: np.ndarray) -> np.ndarray:
        return vertex_normals(v @ self.fit.rotation.T, self.prep.tris)

    def vertices(self, aus: Mapping[int | str, float]) -> np.ndarray:
        """Model vertices (cm, unposed) of the fitted identity with AUs."""
        w = au_weights(aus)
        nz = np.flatnonzero(w)
        if nz.size == 0:
            return self.identity_vertices
        return self.identity_vertices + np.tensordot(
            w[nz], self.model.expression_deltas[nz], axes=1).astype(np.float64)

    def _eye_colours(self) -> dict[str, np.ndarray]:
        """Sclera and iris colours sampled from the photo's eyes (RGB 0..1)."""
        img = self.photo.astype(np.float32) / 255.0
        lm = self.fit.landmarks
        sclera, iris = [], []
        for idx in (LANDMARK_GROUPS["right_eye"], LANDMARK_GROUPS["left_eye"]):
            poly = np.round(lm[list(idx)]).astype(np.int32)
            mask = np.zeros(img.shape[:2], np.uint8)
            cv2.fillConvexPoly(mask, poly, 1)
            px = img[mask > 0]
            if len(px) < 4:
                continue
            lum = px @ np.array([0.299, 0.587, 0.114], np.float32)
            hi = lum >= np.quantile(lum, 0.8)
            lo = lum <= np.quantile(lum, 0.25)
            sclera.append(px[hi].mean(0))
            iris.append(px[lo].mean(0))
        if not sclera:
            return {"sclera": np.full(3, 0.78, np.float32), "iris": np.full(3, 0.25, np.float32)}
        return {"sclera": np.mean(sclera, 0).astype(np.float32),
                "iris": np.mean(iris, 0).astype(np.float32)}

    # -- raster cache -----------------------------------------------------------------------
    def _raster(self, out_hw: tuple[int, int], supersample: int) -> _Raster:
        """The per-size cache (texture, neutral depth, the null composite)."""
        key = (out_hw[0] * supersample, out_hw[1] * supersample)
        if key in self._rasters:
            return self._rasters[key]
        h, w = self.photo.shape[:2]
        k = float(min(key[1] / w, key[0] / h))
        interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
        tex = cv2.resize(self.photo, (key[1], key[0]), interpolation=interp)
        tex = tex.astype(np.float32) / 255.0
        # depth of the neutral (photo) surface per raster pixel
        p = (self.uv + 0.5) * k
        z = self.depth0 * k
        pix, tri, l0, l1 = rasterize(p, z, self.prep.tris, key[1], key[0],
                                      self.prep.two_sided)
        tv = self.prep.tris[tri]
        zbuf = np.full(key[0] * key[1], -np.inf)
        zbuf[pix] = l0 * z[tv[:, 0]] + l1 * z[tv[:, 1]] + (1.0 - l0 - l1) * z[tv[:, 2]]
        edge = max(1.0, _MASK_EDGE * self.eye_distance * k)
        ras = _Raster(k=k, side=key, texture=tex, zbuf0=zbuf, edge=edge)
        full = (0, 0, key[1], key[0])
        ras.base, ras.base_mask = self._compose(ras, self.identity_vertices, full)
        self._rasters[key] = ras
        return ras

    # -- rendering --------------------------------------------------------------------------
    def render(self, aus: Mapping[int | str, float] | None = None, size: int | None = None,
               color: bool = False, *, supersample: int = 2, full: bool = False
               ) -> np.ndarray:
        """Render the photo face with AUs.

        Parameters
        ----------
        aus : mapping, optional
            ``{AU: intensity}`` (0..1; see :func:`~facedialect.faces.model3d.recipes.au_weights`).
        size : int, optional
            Output width in pixels (the height keeps the photo's aspect); default: the
            photo's width.
        color : bool
            RGB ``(H, W, 3)`` instead of grayscale ``(H, W)`` (ITU-R 601 luma).
        supersample : int
            Rasterise at this multiple of the output size and reduce (anti-aliasing).
        full : bool
            Rasterise the whole frame instead of only the region the AUs change (the
            result is the same; for tests and checks).

        Returns
        -------
        numpy.ndarray
            uint8 image; with no AU it reproduces the photo (resized).
        """
        img, _ = self._render(aus or {}, size, supersample, full)
        rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return rgb if color else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

    def out_shape(self, size: int | None) -> tuple[int, int]:
        """Output ``(height, width)`` for a requested width (None: the photo's)."""
        h, w = self.photo.shape[:2]
        if size is None:
            return h, w
        if not isinstance(size, int | np.integer) or not 32 <= int(size) <= 4096:
            raise ValueError(f"size must be an integer in 32..4096, got {size!r}")
        return max(1, int(round(h * int(size) / w))), int(size)

    def face_mask(self, size: int | None = None, supersample: int = 2) -> np.ndarray:
        """The soft face mask of the neutral fit at output size (float32 0..1)."""
        out_h, out_w = self.out_shape(size)
        ras = self._raster((out_h, out_w), max(1, int(supersample)))
        mask = ras.base_mask
        if ras.side != (out_h, out_w):
            mask = cv2.resize(mask, (out_w, out_h), interpolation=cv2.INTER_AREA)
        return mask

    def _render(self, aus: Mapping[int | str, float], size: int | None, supersample: int,
                full: bool = False) -> tuple[np.ndarray, np.ndarray]:
        out_h, out_w = self.out_shape(size)
        ss = max(1, int(supersample))
        ras = self._raster((out_h, out_w), ss)
        sh, sw = ras.side
        v = self.vertices(aus)
        if full:
            img, mask = self._compose(ras, v, (0, 0, sw, sh), aus)
        else:
            img, mask = self._render_changed(ras, v, aus)
        if ss > 1:
            img = cv2.resize(img, (out_w, out_h), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(mask, (out_w, out_h), interpolation=cv2.INTER_AREA)
        return np.clip(img, 0.0, 1.0), mask

    def _render_changed(self, ras: _Raster, v: np.ndarray,
                        aus: Mapping[int | str, float] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
        """The null composite with only the region the moved mesh touches redone."""
        sh, sw = ras.side
        moved = np.abs(v - self.identity_vertices).max(axis=1) > 1e-7
        if not np.any(moved):
            return ras.base.copy(), ras.base_mask.copy()
        tris = self.prep.tris
        touched = np.unique(tris[moved[tris].any(axis=1)])
        p_new = (self.fit.project(v[touched])[0] + 0.5) * ras.k
        p_old = (self.uv[touched] + 0.5) * ras.k
        both = np.concatenate([p_new, p_old])
        lo = np.floor(both.min(axis=0)).astype(int) - 1
        hi = np.ceil(both.max(axis=0)).astype(int) + 2
        # the soft mask reaches this far: erosion radius + 4 sigma of the blur
        reach = _reach(ras)

        def box(a: np.ndarray, b: np.ndarray, m: int) -> tuple[int, int, int, int]:
            return (max(0, int(a[0]) - m), max(0, int(a[1]) - m),
                    min(sw, int(b[0]) + m), min(sh, int(b[1]) + m))

        r2 = box(lo, hi, reach)
        win = box(lo, hi, 2 * reach)
        if r2[2] <= r2[0] or r2[3] <= r2[1]:
            return ras.base.copy(), ras.base_mask.copy()
        img_w, mask_w = self._compose(ras, v, win, aus)
        img, mask = ras.base.copy(), ras.base_mask.copy()
        ys, xs = slice(r2[1], r2[3]), slice(r2[0], r2[2])
        ly, lx = slice(r2[1] - win[1], r2[3] - win[1]), slice(r2[0] - win[0], r2[2] - win[0])
        img[ys, xs] = img_w[ly, lx]
        mask[ys, xs] = mask_w[ly, lx]
        return img, mask

    def _compose(self, ras: _Raster, v: np.ndarray, win: tuple[int, int, int, int],
                 aus: Mapping[int | str, float] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Render vertices ``v`` in the raster window ``(x0, y0, x1, y1)`` over the photo.

        Returns the window's RGB image (float32 0..1) and its soft face mask. ``aus``
        (the AUs that made ``v``) shade their wrinkles and furrows on the skin.
        """
        x0, y0, x1, y1 = win
        ww, wh = x1 - x0, y1 - y0
        sh, sw = ras.side
        uv, z = self.fit.project(v)
        p = (uv + 0.5) * ras.k - np.array([x0, y0], np.float64)
        z = z * ras.k
        # only the face region is drawn: elsewhere the soft mask keeps the photo anyway
        tris = self._face_tris
        tp = p[tris]
        tlo, thi = tp.min(axis=1), tp.max(axis=1)
        near = np.flatnonzero((thi[:, 0] >= -1) & (tlo[:, 0] <= ww + 1)
                              & (thi[:, 1] >= -1) & (tlo[:, 1] <= wh + 1))
        pix, t, l0, l1 = rasterize(p, z, tris[near], ww, wh, self._face_two_sided[near])
        tri = self._face_ids[near[t]]               # index into prep.tris
        tv = tris[near[t]]
        moved = v is not self.identity_vertices
        # every per-vertex attribute interpolated at once: texture position, neutral
        # depth, and when the mesh moved its posed position and both sets of normals
        cols = [(self.uv + 0.5) * ras.k - 0.5, self.depth0[:, None] * ras.k]
        if moved:
            occ = skin_occlusion(self.model, v) / self._occlusion0
            cols += [v, self._normals(v), self._normals0, self.model.neutral[:, :2],
                     occ[:, None]]
        attrs = np.concatenate(cols, axis=1, dtype=np.float32)
        l0f, l1f = l0.astype(np.float32)[:, None], l1.astype(np.float32)[:, None]
        f = (l0f * attrs[tv[:, 0]] + l1f * attrs[tv[:, 1]]
             + (np.float32(1.0) - l0f - l1f) * attrs[tv[:, 2]])
        tuv, z0 = f[:, 0:2], f[:, 2]
        # was this surface point visible in the photo? (its neutral depth vs the photo's)
        ix = np.clip(np.rint(tuv[:, 0]).astype(np.int64), 0, sw - 1)
        iy = np.clip(np.rint(tuv[:, 1]).astype(np.int64), 0, sh - 1)
        seen = z0 >= ras.zbuf0[iy * sw + ix] - 0.05 * self.fit.scale * ras.k
        col = _sample(ras.texture, tuv)
        eye = self._tri_eye[tri]
        inner = self._tri_inner[tri]
        skin = ~eye & ~inner
        na = None
        if moved:
            # shading ratio of the expressed to the neutral surface (skin only)
            pos, na, n0 = f[:, 3:6], f[:, 6:9], f[:, 9:12]
            na /= np.maximum(np.linalg.norm(na, axis=1, keepdims=True), 1e-12)
            n0 /= np.maximum(np.linalg.norm(n0, axis=1, keepdims=True), 1e-12)
            # and skin moved into a recess (under a lowered brow, in a fold) gets less
            # light: the ratio of its occlusion to the neutral's
            ratio = np.clip((self._shade(na) / self._shade(n0)) ** _RATIO_POWER * f[:, 14],
                            *_RATIO_RANGE)
            col[skin] *= ratio[skin, None].astype(np.float32)
            # wrinkles and furrows of the AUs (generic neutral frame, moving with the skin)
            creases = crease_shading(f[skin, 12:14], aus) if aus else None
            if creases is not None:
                col[skin] *= creases[:, None]
        else:
            pos = None
        # surface hidden in the photo: eyeballs painted in the photo's eye colours, the
        # mouth interior as teeth, gums, tongue and a dark socket
        hid_eye = eye & ~seen
        hid_in = inner & ~seen
        if np.any(hid_eye) or np.any(hid_in):
            if pos is None:
                pos = (l0[:, None] * v[tv[:, 0]] + l1[:, None] * v[tv[:, 1]]
                       + (1.0 - l0 - l1)[:, None] * v[tv[:, 2]])
            if np.any(hid_eye):
                col[hid_eye] = self._paint_eyes(v, tri[hid_eye], pos[hid_eye])
            if np.any(hid_in):
                bary = np.stack([l0, l1, 1.0 - l0 - l1], axis=1)[hid_in]
                col[hid_in] = self._paint_mouth(v, tri[hid_in], pos[hid_in],
                                                None if na is None else na[hid_in], bary)
        base = ras.texture[y0:y1, x0:x1]
        if moved:
            base = self._carry_jaw(ras, v, win, base)
        img = base.reshape(-1, 3).copy()
        img[pix] = col
        img = img.reshape(wh, ww, 3)
        # soft mask of the face region; outside it the photo's own pixels stay
        cover = np.zeros(wh * ww, np.float32)
        cover[pix] = 1.0
        e = ras.edge
        ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * int(e) + 1, 2 * int(e) + 1))
        mask = cv2.GaussianBlur(cv2.erode(cover.reshape(wh, ww), ker), (0, 0), e / 2)
        img = mask[:, :, None] * img + (1 - mask[:, :, None]) * base
        return img, mask

    def _carry_jaw(self, ras: _Raster, v: np.ndarray, win: tuple[int, int, int, int],
                   base: np.ndarray) -> np.ndarray:
        """The photo around the face, moved with the mesh's jaw contour.

        When the jaw drops, the mesh's jaw edge moves while the photo's own jaw line
        (just outside the blended face region) would stay: two jaw lines. The photo is
        warped near the jaw contour by the contour's displacement (landmarks 0-16,
        densified), with a weight that falls to 0 within :func:`_reach` of the moved
        contour, so the region render still equals the full one.
        """
        jaw = self.model.landmarks68[:17]
        old = (self.uv[jaw] + 0.5) * ras.k
        new = (self.fit.project(v[jaw])[0] + 0.5) * ras.k
        if np.abs(new - old).max() < 0.25:
            return base
        t = np.linspace(0.0, 1.0, 8, endpoint=False)
        dense_old = np.concatenate([old[:-1] + t[:, None, None] * np.diff(old, axis=0)[None]
                                    ]).reshape(-1, 2)
        dense_new = np.concatenate([new[:-1] + t[:, None, None] * np.diff(new, axis=0)[None]
                                    ]).reshape(-1, 2)
        x0, y0, x1, y1 = win
        radius = float(_reach(ras))
        lo = dense_new.min(axis=0) - radius
        hi = dense_new.max(axis=0) + radius
        bx0, by0 = max(x0, int(np.floor(lo[0]))), max(y0, int(np.floor(lo[1])))
        bx1, by1 = min(x1, int(np.ceil(hi[0])) + 1), min(y1, int(np.ceil(hi[1])) + 1)
        if bx1 <= bx0 or by1 <= by0:
            return base
        h, w = by1 - by0, bx1 - bx0
        xs = np.arange(bx0, bx1, dtype=np.float32) + np.float32(0.5)
        ys = np.arange(by0, by1, dtype=np.float32) + np.float32(0.5)
        disp = (dense_new - dense_old).astype(np.float32)
        acc = np.zeros((h, w, 2), np.float32)
        wsum = np.zeros((h, w), np.float32)
        r2_scale = np.float32(radius * radius)
        # each contour point moves only the pixels within ``radius`` of it (its weight is
        # 0 beyond), so it updates its own window: the same sums in the same order
        for c, d in zip(dense_new.astype(np.float32), disp, strict=True):
            j0 = max(0, int(np.floor(c[0] - radius)) - bx0 - 1)
            j1 = min(w, int(np.ceil(c[0] + radius)) - bx0 + 1)
            i0 = max(0, int(np.floor(c[1] - radius)) - by0 - 1)
            i1 = min(h, int(np.ceil(c[1] + radius)) - by0 + 1)
            if j1 <= j0 or i1 <= i0:
                continue
            dx2 = (xs[j0:j1] - c[0]) ** 2
            dy2 = (ys[i0:i1] - c[1]) ** 2
            r2 = (dx2[None, :] + dy2[:, None]) / r2_scale
            wt = np.clip(1.0 - r2, 0.0, None) ** 2
            acc[i0:i1, j0:j1] += wt[..., None] * d
            wsum[i0:i1, j0:j1] += wt
        field_ = acc / np.maximum(wsum, 1.0)[..., None]
        if not np.any(np.abs(field_) > 1e-3):
            return base
        out = base.copy()
        warped = cv2.remap(ras.texture, (xs[None, :] - np.float32(0.5)) - field_[..., 0],
                           (ys[:, None] - np.float32(0.5)) - field_[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        out[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0] = warped
        return out

    def _paint_eyes(self, v: np.ndarray, tri: np.ndarray, pos: np.ndarray) -> np.ndarray:
        out = np.empty((len(tri), 3), np.float32)
        kind = self.prep.tri_kind[tri]
        for k, ids in ((1, self.prep.sclera_l), (2, self.prep.sclera_r)):
            sel = kind == k
            if not np.any(sel):
                continue
            centre = v[ids].mean(axis=0)
            r = np.hypot(pos[sel, 0] - centre[0], pos[sel, 1] - centre[1])
            front = pos[sel, 2] > centre[2]
            iris_w = (1 - smoothstep(IRIS_R - 0.06, IRIS_R + 0.02, r)) * front
            pupil_w = (1 - smoothstep(PUPIL_R - 0.04, PUPIL_R + 0.03, r)) * front
            c = np.broadcast_to(self._colours["sclera"], (int(sel.sum()), 3))
            c = c * (1 - iris_w[:, None]) + self._colours["iris"] * iris_w[:, None]
            c = c * (1 - pupil_w[:, None]) + 0.04 * pupil_w[:, None]
            out[sel] = c
        return out

    def _paint_mouth(self, v: np.ndarray, tri: np.ndarray, pos: np.ndarray,
                     normals: np.ndarray | None, bary: np.ndarray) -> np.ndarray:
        tv = self.prep.tris[tri]
        col = mouth_interior(self.prep, v, tv, bary, pos[:, 2])
        if normals is not None:
            n = normals.copy()
            n[n[:, 2] < 0] *= -1.0
            shade = self._shade(n)
        else:
            shade = np.full(len(tri), float(self._shade(np.array([[0.0, 0.0, 1.0]]))[0]))
        return (col * (0.55 + 0.45 * shade)[:, None] * self._mouth_light
                ).astype(np.float32)


def _reach(ras: _Raster) -> int:
    """How far (raster pixels) the soft face mask reaches beyond the mesh."""
    return int(ras.edge) + int(np.ceil(2.0 * ras.edge)) + 2


def _sample(texture: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Bilinear samples of an ``(H, W, C)`` texture at ``(N, 2)`` pixel positions."""
    n = len(xy)
    width = 2048
    rows = max(1, -(-n // width))
    pad = np.zeros((rows * width, 2), np.float32)
    pad[:n] = xy
    out = cv2.remap(texture, pad[:, 0].reshape(rows, width), pad[:, 1].reshape(rows, width),
                    cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(rows * width, -1)[:n]


@functools.lru_cache(maxsize=4)
def _photo_face_cached(path: str, mtime_ns: int) -> PhotoFace:
    return PhotoFace(load_photo(path))


def photo_face(path: str | Path) -> PhotoFace:
    """A :class:`PhotoFace` of a photo file (cached per process while the file is unchanged).

    Parameters
    ----------
    path : str or Path
        The photo file.

    Returns
    -------
    PhotoFace

    Raises
    ------
    ImageReadError
        When the file is missing or not an image.
    NoFaceDetectedError
        When no face is found in it (the message names the file).
    """
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ImageReadError(f"{p}: base face photo not found")
    try:
        return _photo_face_cached(str(p), p.stat().st_mtime_ns)
    except NoFaceDetectedError as exc:
        raise NoFaceDetectedError(f"{p}: {exc}") from None


# ---------------------------------------------------------------------------------------
# Image similarity (PSNR, SSIM) inside a region
# ---------------------------------------------------------------------------------------


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
         peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio (dB) of two images, over ``mask`` (bool) if given."""
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    d = (x - y) ** 2
    if mask is not None:
        d = d[np.asarray(mask, bool)]
    mse = float(d.mean()) if d.size else 0.0
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None,
         peak: float = 255.0, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) of two gray images.

    Gaussian windows (``sigma`` 1.5 px), ``K1 = 0.01``, ``K2 = 0.03``; the SSIM map is
    averaged over ``mask`` (bool) if given, else over the whole image.
    """
    x = np.asarray(a, np.float64)
    y = np.asarray(b, np.float64)
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(f"need two gray images of one shape, got {x.shape} and {y.shape}")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    if mask is not None:
        s = s[np.asarray(mask, bool)]
    return float(s.mean())


def face_region_metrics(face: PhotoFace, size: int | None = None) -> dict[str, float]:
    """PSNR and SSIM of the AU-0 render against the photo, inside the face mask.

    The reference is the photo resized to the output (``INTER_AREA``), both in gray; the
    region is where the soft face mask is 1 (the fitted mesh's face, eyes and mouth).
    """
    out_h, out_w = face.out_shape(size)
    render = face.render({}, size=size)
    ref = cv2.cvtColor(cv2.resize(face.photo, (out_w, out_h), interpolation=cv2.INTER_AREA)
                       if (out_h, out_w) != face.photo.shape[:2] else face.photo,
                       cv2.COLOR_RGB2GRAY)
    region = face.face_mask(size) >= 0.999
    return {"psnr_db": psnr(render, ref, region), "ssim": ssim(render, ref, region),
            "region_px": int(region.sum()), "fit_rms_px": face.fit.rms_px}

