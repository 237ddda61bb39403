"""The procedural face's renderer: layers back to front, shaded from a height field.

:func:`render_face` draws a :class:`~facedialect.faces.procedural.identity.FaceIdentity`
with AU intensities (OpenCV polygons, anti-aliased by super-sampling, shaded from a fake
height field).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np

from facedialect.faces.mathutil import smoothstep
from facedialect.faces.procedural.aus import render_params, validate_aus
from facedialect.faces.procedural.drawing import (
    Canvas,
    Grid,
    Mask,
    ellipse_points,
    over,
    shade_height,
    spline,
    value_noise,
)
from facedialect.faces.procedural.geometry import YAW_SHIFT, Pose, canonical_landmarks, check_size
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.relief import feature_relief
from facedialect.faces.procedural.shape import JAW

__all__ = ["render_face"]

# ---------------------------------------------------------------------------------------
# The renderer
# ---------------------------------------------------------------------------------------


def render_face(identity: FaceIdentity, aus: Mapping[int, float], size: int = 256,
                color: bool = False) -> np.ndarray:
    """Draw the built-in face.

    Parameters
    ----------
    identity : FaceIdentity
        Face shape, skin, hair, background and head pose.
    aus : Mapping[int, float]
        AU -> intensity in ``[0, 1]`` (the 20 study AUs); AUs not listed are off.
    size : int
        Side of the square image in pixels (32..4096).
    color : bool
        Return RGB (``(size, size, 3)``) instead of grayscale (``(size, size)``).

    Returns
    -------
    numpy.ndarray
        uint8 image. The same arguments always give the same pixels. The grayscale
        image is the ITU-R 601 luma of the RGB one.

    Raises
    ------
    ValueError
        On an unknown AU, an intensity outside ``[0, 1]`` or a bad size.
    """
    size = check_size(size)
    aus = validate_aus(aus)
    prm = render_params(aus)
    lm = canonical_landmarks(identity, aus)
    pose = Pose.of(identity, size)
    img = _Painter(identity, lm, prm, pose, size).paint()
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if color:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class _Painter:
    """Draws one face: layers back to front, shading from a height field."""

    def __init__(self, ident: FaceIdentity, lm: np.ndarray, prm: Mapping[str, float],
                 pose: Pose, size: int) -> None:
        self.ident, self.L, self.prm, self.pose, self.size = ident, lm, prm, pose, size
        self.cv = Canvas(pose, size)
        self.grid = Grid(pose, size)
        self.U, self.V = self.grid.U, self.grid.V
        self.rng = np.random.default_rng(ident.texture_seed)
        self.skin = ident.skin_rgb().astype(np.float32)
        self.hair = ident.hair_rgb().astype(np.float32)
        self.fw = 1.0 + 0.06 * ident.shape[0]  # face width factor (the skull follows the jaw)
        self.yaw_dx = ident.yaw * YAW_SHIFT * 0.3
        self.img = np.empty((size, size, 3), np.float32)
        self.light = np.ones((size, size), np.float32)

    # -- layers ---------------------------------------------------------------------------

    def paint(self) -> np.ndarray:
        self._background()
        self._body()
        self._hair_back()
        self._head()
        self._eyes()
        self._brows()
        self._nose()
        self._mouth()
        self._hair_front()
        return np.clip(self.img, 0.0, 1.0)

    def _background(self) -> None:
        bg = np.float32(self.ident.background_gray)
        ramp = bg * (1.04 - 0.08 * np.linspace(0, 1, self.size, dtype=np.float32))
        self.img[:] = ramp[:, None, None]

    def _body(self) -> None:
        fw, U, V = self.fw, self.U, self.V
        cloth = np.float32(self.ident.clothing_gray)
        sh = self.cv.poly(ellipse_points((0.0, 3.6), (2.7 * fw, 1.5), 180, 360, 40))
        if sh.a.size:
            u, v = U[sh.sl], V[sh.sl]
            shade = cloth * (0.75 + 0.25 * np.clip(1.0 - np.abs(u) / 2.6, 0, 1)
                             - 0.1 * np.clip(v - 2.6, 0, 1))
            self.img[sh.sl] += sh.a[..., None] * (shade[..., None] - self.img[sh.sl])
        neck_poly = np.array([(-0.62 * fw, 0.6), (0.62 * fw, 0.6), (0.64 * fw, 2.2),
                              (0.85 * fw, 2.75), (-0.85 * fw, 2.75), (-0.64 * fw, 2.2)])
        neck = self.cv.poly(neck_poly)
        if neck.a.size:
            u, v = U[neck.sl], V[neck.sl]
            shade = (0.58 + 0.18 * smoothstep(1.5, 2.5, v) - 0.14 * np.abs(u + 0.2) / fw
                     - 0.22 * np.exp(-0.5 * ((v - self.L[8, 1] - 0.05) / 0.2) ** 2))
            col = self.skin * shade[..., None]
            self.img[neck.sl] += neck.a[..., None] * (col - self.img[neck.sl])

    def _hair_texture(self) -> np.ndarray:
        """Hair albedo field: strands radiating from the crown, plus fine noise."""
        if not hasattr(self, "_hair_tex"):
            crown = (0.0, -1.1)
            ang = np.arctan2(self.U - crown[0], -(self.V - crown[1]))
            n = 420
            strands = self.rng.normal(0.0, 1.0, n).astype(np.float32)
            strands = np.convolve(np.concatenate([strands[-2:], strands, strands[:2]]),
                                  np.array([0.25, 0.5, 0.25], np.float32), "same")[2:-2]
            idx = (ang / (2 * np.pi) + 0.5) * n
            s = np.interp(idx.ravel(), np.arange(n + 1),
                          np.append(strands, strands[0])).reshape(idx.shape)
            fine = value_noise(self.rng, self.size, (24, 24))
            r = np.hypot(self.U - crown[0], self.V - crown[1])
            s *= smoothstep(0.05, 0.5, r)
            self._hair_tex = (0.85 + 0.09 * s + 0.06 * fine).astype(np.float32)
        return self._hair_tex

    def _hair_light(self, region: Mask) -> np.ndarray:
        u, v = self.U[region.sl], self.V[region.sl]
        r2 = np.clip((u / (1.15 * self.fw)) ** 2 + ((v + 0.3) / 1.5) ** 2, 0, 1)
        nz = np.sqrt(1.0 - r2)
        lam = np.clip(-0.35 * u / 1.2 - 0.5 * (v + 0.3) / 1.5 + nz, 0.0, 1.3) / 1.3
        sheen = 0.12 * np.exp(-0.5 * ((np.hypot(u + 0.35, v + 1.05) - 0.25) / 0.1) ** 2)
        return (0.35 + 0.6 * lam + sheen).astype(np.float32)

    def _paint_hair(self, m: Mask, dim: float = 1.0) -> None:
        if m.a.size == 0:
            return
        tex = self._hair_texture()[m.sl]
        shade = self._hair_light(m) * tex * np.float32(dim)
        col = self.hair * shade[..., None]
        self.img[m.sl] += m.a[..., None] * (col - self.img[m.sl])

    def _skull(self) -> tuple[float, float, float]:
        """Centre height, half width and top of the cranium ellipse."""
        L = self.L
        c_y = 0.5 * (L[0, 1] + L[16, 1])
        top = -1.42 * (1.0 + 0.03 * self.ident.shape[1])
        return c_y, 0.5 * (L[16, 0] - L[0, 0]), top

    def _hair_back(self) -> None:
        c_y, hw, top = self._skull()
        fw = self.fw
        style = self.ident.hair_style
        parts = [ellipse_points((self.yaw_dx, c_y - 0.15), (hw + 0.15 * fw, c_y - top + 0.05),
                              0, 360, 48)]
        if style >= 1:
            bottom = 1.0 if style == 1 else 2.3
            w = hw + 0.17 * fw
            side = spline(np.array([(w, c_y - 0.3), (w + 0.04, 0.5 * (c_y + bottom)),
                                     (w - 0.02, bottom - 0.1), (w - 0.25, bottom + 0.05),
                                     (0.5, bottom + 0.1)]), 6)
            mirror = side[::-1] * (-1.0, 1.0)
            parts.append(np.vstack([side, mirror]))
        m = self.cv.poly(*parts)  # the union of the parts
        self._paint_hair(m, 0.7)

    def _head(self) -> None:
        L, U, V, s = self.L, self.U, self.V, self.pose.scale
        c_y, hw, top = self._skull()
        cran = ellipse_points((self.yaw_dx * 0.5, c_y), (hw, c_y - top), 180.0, 360.0, 40)
        cran[:, 0] += np.linspace(L[0, 0] - cran[0, 0], L[16, 0] - cran[-1, 0], len(cran))
        head_poly = np.vstack([spline(L[JAW], 5), cran[-2:0:-1]])
        ears = self.cv.poly(
            ellipse_points((L[0, 0] - 0.05, 0.3), (0.13, 0.3), 0, 360, 24, rot=-8),
            ellipse_points((L[16, 0] + 0.05, 0.3), (0.13, 0.3), 0, 360, 24, rot=8))
        head = self.cv.poly(head_poly)
        # height field: rounded silhouette + a broad ellipsoid + the features
        solid = (head.full(self.size) > 0.5).astype(np.uint8) * 255
        dist = cv2.distanceTransform(solid, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / s
        dd = np.clip(dist / 0.55, 0.0, 1.0)
        H = 0.45 * np.sqrt(1.0 - (1.0 - dd) ** 2)
        H = cv2.GaussianBlur(H.astype(np.float32), (0, 0), 0.09 * s)
        H += 0.35 * np.sqrt(np.clip(1.0 - ((U - self.yaw_dx) / 1.3) ** 2
                                    - ((V - 0.1) / 2.2) ** 2, 0.0, 1.0))
        feature_relief(H, self.grid, L, self.prm, self.ident.texture_seed)
        H = cv2.GaussianBlur(H, (0, 0), 0.5)
        diffuse, spec = shade_height(H, s)
        self.light = 0.3 + 0.78 * diffuse
        blotch = 1.0 + 0.03 * value_noise(self.rng, self.size, (20, 20))
        self.skin_col = (self.skin * (self.light * blotch)[..., None]
                         + (0.07 * spec)[..., None])
        if ears.a.size:
            u = U[ears.sl]
            ear_shade = 0.6 + 0.12 * np.clip(1.0 - np.abs(np.abs(u) - 1.0) / 0.15, 0, 1)
            self.img[ears.sl] += ears.a[..., None] * (
                self.skin * ear_shade[..., None] - self.img[ears.sl])
        over(self.img, head, self.skin_col)

    def _eyes(self) -> None:
        L, U, V, cv = self.L, self.U, self.V, self.cv
        iris_rgb = (np.float32(self.ident.iris_gray) * np.array([0.95, 0.82, 0.65], np.float32)
                    + 0.03)
        lash = np.array([0.06, 0.05, 0.05], np.float32)
        for o, u1, u2, i, l2, l1 in ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46)):
            upper = spline(L[[o, u1, u2, i]], 8)
            lower = spline(L[[i, l2, l1, o]], 8)
            eye = cv.poly(np.vstack([upper, lower[1:-1]]))
            if eye.a.size == 0:
                continue
            u, v = U[eye.sl], V[eye.sl]
            xs = upper[:, 0]
            order = np.argsort(xs)
            top_y = np.interp(u, xs[order], upper[order, 1])
            shadow = np.clip(1.0 - (v - top_y) / 0.06, 0.0, 1.0)
            ec = 0.5 * (L[o] + L[i])
            half_w = 0.5 * abs(L[i, 0] - L[o, 0])
            corner = np.clip(np.abs(u - ec[0]) / half_w, 0.0, 1.0) ** 2
            sclera = (0.88 - 0.32 * shadow - 0.18 * corner) * (0.65 + 0.35 * self.light[eye.sl])
            col = sclera[..., None] * np.array([1.0, 0.97, 0.95], np.float32)
            self.img[eye.sl] += eye.a[..., None] * (col - self.img[eye.sl])
            # iris and pupil: the eyeball does not move with the lids
            c = (ec[0], ec[1] - 0.004)
            r_iris = 0.082
            iris = cv.poly(ellipse_points(c, (r_iris, r_iris), 0, 360, 36)) * eye
            if iris.a.size:
                u, v = U[iris.sl], V[iris.sl]
                rr = np.sqrt((u - c[0]) ** 2 + (v - c[1]) ** 2) / r_iris
                top_y = np.interp(u, xs[order], upper[order, 1])
                sh = np.clip(1.0 - (v - top_y) / 0.05, 0.0, 1.0)
                ring = 0.5 + 0.5 * (1.0 - np.clip(rr, 0, 1) ** 3) - 0.3 * sh
                over(self.img, iris, iris_rgb * ring[..., None])
            pupil = cv.poly(ellipse_points(c, (0.034, 0.034), 0, 360, 24)) * eye
            over(self.img, pupil, np.array([0.02, 0.02, 0.02], np.float32))
            glint = cv.poly(ellipse_points((c[0] - 0.024, c[1] - 0.024), (0.013, 0.013), 0, 360,
                                         16)) * eye
            over(self.img, glint * 0.8, np.array([0.95, 0.95, 0.95], np.float32))
            # lash line (upper lid edge), lower lid line, upper-lid crease
            over(self.img, cv.line(upper, 0.034).blur(0.4) * 0.92, lash)
            over(self.img, cv.line(lower, 0.014) * 0.4, lash)
            brow = L[17:22] if o == 36 else L[22:27]
            bx = brow[:, 0]
            b_order = np.argsort(bx)
            brow_y = np.interp(upper[:, 0], bx[b_order], brow[b_order, 1])
            crease = upper.copy()
            crease[:, 1] = upper[:, 1] + 0.24 * (brow_y - upper[:, 1])
            crease = crease[3:-4] if o == 36 else crease[4:-3]
            over(self.img, cv.line(crease, 0.016).blur(0.5) * 0.3, lash * 2.0)

    def _brows(self) -> None:
        col = self.hair * 0.7
        col = (col * min(1.0, 0.26 / float(col.max()))).astype(np.float32)
        thick = 1.15 if self.ident.sex == "M" else 0.9
        for idx in (slice(17, 22), slice(26, 21, -1)):  # outer -> inner
            c = spline(self.L[idx], 6)
            tan = np.gradient(c, axis=0)
            tan /= np.linalg.norm(tan, axis=1, keepdims=True)
            nrm = np.stack([tan[:, 1], -tan[:, 0]], axis=1)
            nrm *= np.sign(-nrm[:, 1:2] + 1e-9)  # point up
            t = np.linspace(0.0, 1.0, len(c))[:, None]  # 0 outer .. 1 inner
            w = thick * (0.025 + 0.07 * np.sin(np.pi * np.clip(0.3 + 0.6 * t, 0, 1)) ** 0.6)
            m = self.cv.poly(np.vstack([c + nrm * w * 0.45, (c - nrm * w * 0.7)[::-1]]),
                             pad=0.05).blur(0.8)
            if m.a.size:
                # darker along the middle of the brow, lighter at its edges
                over(self.img, m * 0.9, col)

    def _nose(self) -> None:
        L = self.L
        dark = self.skin * 0.22
        for a, b, sgn in ((31, 32, -1.0), (35, 34, 1.0)):
            c = 0.45 * L[a] + 0.55 * L[b] + np.array([0.0, -0.012])
            m = self.cv.poly(ellipse_points(c, (0.04, 0.017), 0, 360, 24, rot=-14.0 * sgn),
                             pad=0.03).blur(0.6)
            over(self.img, m * 0.7, dark)
            # alar crease around the nose wing
            arc = ellipse_points((L[a, 0] + sgn * 0.012, L[a, 1] - 0.035), (0.055, 0.065),
                               110 if sgn < 0 else -70, 230 if sgn < 0 else 50, 12)
            over(self.img, self.cv.line(arc, 0.014).blur(0.5) * 0.3, dark)

    def _mouth(self) -> None:
        L, U, V, cv, prm = self.L, self.U, self.V, self.cv, self.prm
        lip_rgb = self.skin * np.array([0.82, 0.58, 0.58], np.float32)
        upper_out = spline(L[[48, 49, 50, 51, 52, 53, 54]], 6)
        lower_out = spline(L[[54, 55, 56, 57, 58, 59, 48]], 6)
        # the inner contour starts at the outer corners (landmarks 48/54, not 60/64)
        upper_in = np.vstack([L[48], spline(L[[60, 61, 62, 63, 64]], 6), L[54]])
        lower_in = np.vstack([L[54], spline(L[[64, 65, 66, 67, 60]], 6), L[48]])
        lips = cv.poly(np.vstack([upper_out, lower_out[1:-1]]), pad=0.05).blur(0.5)
        if lips.a.size:
            u, v = U[lips.sl], V[lips.sl]
            mid_y = np.interp(u, upper_in[:, 0], upper_in[:, 1])
            upper_part = smoothstep(0.01, -0.01, v - mid_y)
            tight = 1.0 - 0.12 * min(prm["lip_tight"] + prm["lip_press"], 1.0)
            lit = (0.35 + 0.72 * self.light[lips.sl]) * tight * (1.0 - 0.25 * upper_part)
            lo_c = 0.5 * (L[57] + L[66])
            gloss = 0.08 * np.exp(-0.5 * (((u - lo_c[0] + 0.05) / 0.08) ** 2
                                          + ((v - lo_c[1] + 0.01) / 0.025) ** 2))
            col = lip_rgb * lit[..., None] + gloss[..., None]
            over(self.img, lips * 0.92, (col))
        # the opening between the inner lips: cavity, teeth, tongue
        gap = float(np.max(L[[67, 66, 65], 1] - L[[61, 62, 63], 1]))
        if gap > 0.004:
            cav = cv.poly(np.vstack([upper_in, lower_in[1:-1]]))
            over(self.img, cav, np.array([0.14, 0.045, 0.045], np.float32))
            if gap > 0.12:
                tongue = cv.poly(ellipse_points((L[66, 0], L[66, 1] - 0.015), (0.2, 0.09), 180,
                                              360, 24)) * cav
                over(self.img, tongue * (0.9 * min((gap - 0.12) / 0.1, 1.0)),
                      np.array([0.42, 0.17, 0.17], np.float32))
            mx = 0.5 * (L[60, 0] + L[64, 0])
            half = max(0.5 * (L[64, 0] - L[60, 0]), 0.05)
            tooth = np.array([0.86, 0.84, 0.78], np.float32)
            band = upper_in.copy()
            band[:, 1] += 0.085
            t_up = cv.poly(np.vstack([upper_in, band[::-1]])) * cav
            if t_up.a.size:
                u = U[t_up.sl]
                fade = 1.0 - 0.8 * np.clip(np.abs(u - mx) / (half * 1.05), 0.0, 1.0) ** 2
                over(self.img, t_up, (tooth * fade[..., None]))
                for k in (-0.16, -0.11, -0.055, 0.0, 0.055, 0.11, 0.16):
                    x = mx + k * half / 0.33
                    y0 = float(np.interp(x, upper_in[:, 0], upper_in[:, 1]))
                    tl = cv.line(np.array([(x, y0), (x, y0 + 0.085)]), 0.008) * t_up
                    over(self.img, tl * 0.35, np.array([0.3, 0.28, 0.26], np.float32))
            lo_band = lower_in.copy()
            lo_band[:, 1] -= 0.06
            t_lo = cv.poly(np.vstack([lower_in, lo_band[::-1]])) * cav
            k = float(np.clip((gap - 0.05) / 0.1, 0.0, 1.0))
            if t_lo.a.size and k > 0:
                u = U[t_lo.sl]
                fade = 1.0 - 0.8 * np.clip(np.abs(u - mx) / (half * 1.05), 0.0, 1.0) ** 2
                over(self.img, t_lo * k, (tooth * 0.72 * fade[..., None]))
        # the line between the lips, darkest at the corners
        over(self.img, cv.line(upper_in, 0.02).blur(0.4) * 0.5, lip_rgb * 0.25)
        for j in (48, 54):
            cm = cv.poly(ellipse_points(L[j], (0.02, 0.012), 0, 360, 12), pad=0.03).blur(0.6)
            over(self.img, cm * 0.25, lip_rgb * 0.3)

    def _hair_front(self) -> None:
        c_y, hw, top = self._skull()
        fw, hl = self.fw, self.ident.hairline
        y_side = 0.1
        a_side = math.degrees(math.asin(np.clip((y_side - c_y) / (c_y - top + 0.1), -1, 1)))
        cap = ellipse_points((self.yaw_dx * 0.5, c_y), (hw + 0.09 * fw, c_y - top + 0.1),
                           180.0 - a_side, 360.0 + a_side, 48)
        # hairline: from the right sideburn over the forehead to the left one
        hair_line = spline(np.array([
            (hw + 0.02, y_side), (0.95 * hw, -0.4 - 0.5 * hl), (0.8 * hw, -0.72 - hl),
            (0.42, -0.92 - hl), (0.0, -0.97 - hl), (-0.42, -0.92 - hl),
            (-0.8 * hw, -0.72 - hl), (-0.95 * hw, -0.4 - 0.5 * hl), (-hw - 0.02, y_side),
        ]), 5)
        hair_line[:, 0] += self.yaw_dx * np.clip(1.0 - np.abs(hair_line[:, 0]), 0, 1)
        m = self.cv.poly(np.vstack([cap, hair_line]), pad=0.05).blur(0.6)
        self._paint_hair(m)
