"""A CPU z-buffer renderer for the 3-D face model (numpy only, no display, no GPU).

Frontal orthographic camera, Lambert + ambient light with smooth (per-vertex) normals,
2x super-sampling reduced with ``cv2.INTER_AREA``. The model has no albedo texture, so
the renderer paints one per vertex: skin, darker brows, reddish lips, a dark lash line;
eyes are the sclera shell with an iris and pupil painted on it; teeth, gums, tongue and
the mouth socket have their own materials and are darkened by their depth behind the
front teeth, so an open mouth shows teeth and a dark cavity. Eyelash, lacrimal and
eye-occlusion geometry (which needs alpha textures) and the hidden iris spheres are not
drawn. Triangles are rasterised by :mod:`~facedialect.faces.model3d.raster`.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np

from facedialect.faces.mathutil import smoothstep
from facedialect.faces.model3d.creases import crease_shading
from facedialect.faces.model3d.model import VERTEX_RANGES, FaceModel3D, load_model
from facedialect.faces.model3d.raster import rasterize, vertex_normals
from facedialect.faces.model3d.recipes import au_weights
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.shape import IDENTITY_MODES

__all__ = [
    "IDENTITY_MAP",
    "IRIS_R",
    "MOUTH_COLOURS",
    "PUPIL_R",
    "Appearance",
    "Camera",
    "ModelPrep",
    "appearance_of",
    "default_model",
    "identity_coefficients",
    "mouth_interior",
    "pose_vertices",
    "prepare_model",
    "project_landmarks",
    "render_face_3d",
    "render_model",
    "skin_occlusion",
]

_SCLERA = 0.78
#: Radii of the painted iris and pupil on the sclera shell (cm, in the frontal plane).
IRIS_R: Final = 0.58
PUPIL_R: Final = 0.22


@dataclass(frozen=True)
class Camera:
    """Orthographic frontal camera.

    Attributes
    ----------
    center : tuple[float, float]
        Model point (cm) at the image centre.
    field : float
        Width of the image in cm (the image is square).
    """

    center: tuple[float, float] = (0.0, 0.9)
    field: float = 27.0

    def to_pixels(self, xy: np.ndarray, size: int) -> np.ndarray:
        """Map model ``(x, y)`` in cm to pixel ``(col, row)`` (row 0 at the top)."""
        k = size / self.field
        out = np.empty((xy.shape[0], 2), dtype=np.float64)
        out[:, 0] = (xy[:, 0] - self.center[0]) * k + size / 2.0
        out[:, 1] = size / 2.0 - (xy[:, 1] - self.center[1]) * k
        return out


@dataclass(frozen=True)
class Appearance:
    """Colours of a rendered face (RGB in ``[0, 1]``)."""

    skin: tuple[float, float, float] = (0.86, 0.70, 0.60)
    brow: tuple[float, float, float] = (0.22, 0.16, 0.12)
    lips: tuple[float, float, float] = (0.72, 0.42, 0.40)
    iris: tuple[float, float, float] = (0.30, 0.24, 0.18)
    background: tuple[float, float, float] = (0.62, 0.62, 0.62)
    brow_strength: float = 0.8
    #: Direction toward the light (x right, y up, z toward the viewer; normalized when used).
    light: tuple[float, float, float] = (-0.35, 0.45, 1.0)
    ambient: float = 0.38
    diffuse: float = 0.66


# ---------------------------------------------------------------------------------------
# Per-model preparation (cached)
# ---------------------------------------------------------------------------------------


@dataclass
class ModelPrep:
    """What rendering one model needs beyond its arrays (made once per model).

    Kept triangles and their kind (skin, left or right sclera), per-vertex material
    masks (mouth interior, teeth, eye sockets) and painted weights (brows, lips, lash
    line), the two-sided mouth-interior triangles and each sclera's vertices.
    """

    tris: np.ndarray            # (T, 3) kept triangles
    tri_kind: np.ndarray        # (T,) 0 skin, 1 sclera left (+x), 2 sclera right (-x)
    interior: np.ndarray        # (V,) 1 for mouth socket, gums, tongue, teeth
    teeth: np.ndarray           # (V,) bool
    socket_eye: np.ndarray      # (V,) 1 for the eye sockets
    w_brow: np.ndarray          # (V,) 0..1
    w_lips: np.ndarray          # (V,) 0..1
    w_lash: np.ndarray          # (V,) 0..1
    two_sided: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    sclera_l: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    sclera_r: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    mouth_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))

    @functools.cached_property
    def paint(self) -> np.ndarray:
        """(V, 6) lips, brow, lash, eye socket, interior, teeth weights."""
        return np.stack([self.w_lips, self.w_brow, self.w_lash, self.socket_eye,
                         self.interior, self.teeth.astype(np.float32)], axis=1
                        ).astype(np.float32)


_PREP: weakref.WeakKeyDictionary[FaceModel3D, ModelPrep] = weakref.WeakKeyDictionary()


def _paint_weights(model: FaceModel3D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brow, lip and lash-line weights per vertex, painted in the frontal plane."""
    v = model.neutral.astype(np.float64)
    lm = v[model.landmarks68]
    res = 40.0  # px per cm on the paint canvas
    x0, y0, n = -10.0, 10.0, 800

    def to_canvas(p: np.ndarray) -> np.ndarray:
        return np.stack([(p[:, 0] - x0) * res, (y0 - p[:, 1]) * res], axis=1)

    def sample(canvas: np.ndarray) -> np.ndarray:
        c = to_canvas(v)
        ix = np.clip(np.round(c[:, 0]).astype(int), 0, n - 1)
        iy = np.clip(np.round(c[:, 1]).astype(int), 0, n - 1)
        return canvas[iy, ix]

    front = np.zeros(model.n_vertices, bool)
    front[: VERTEX_RANGES["face"][1] + 1] = True
    # brows: from the iBUG brow contour (its upper edge) down, tapering outward
    brow = np.zeros((n, n), np.float32)
    for idx in (list(range(17, 22)), list(range(22, 27))[::-1]):   # outer -> inner
        top = lm[idx, :2]
        thick = np.linspace(0.45, 0.85, len(idx))
        bottom = top - np.stack([np.zeros(len(idx)), thick], axis=1)
        bottom[0, 1] += 0.15
        poly = np.concatenate([top + [0, 0.08], bottom[::-1]])
        cv2.fillPoly(brow, [np.round(to_canvas(poly)).astype(np.int32)], 1.0,
                     lineType=cv2.LINE_AA)
    brow = cv2.GaussianBlur(brow, (0, 0), 0.12 * res)
    w_brow = sample(brow) * (front & (v[:, 2] > 7.0))
    # lips: the outer lip contour
    lips = np.zeros((n, n), np.float32)
    cv2.fillPoly(lips, [np.round(to_canvas(lm[48:60, :2])).astype(np.int32)], 1.0,
                 lineType=cv2.LINE_AA)
    lips = cv2.GaussianBlur(lips, (0, 0), 0.08 * res)
    w_lips = np.clip(sample(lips) * 1.3, 0, 1) * (front & (v[:, 2] > 8.5))
    # lash line: the upper lid edge
    lash = np.zeros((n, n), np.float32)
    for idx in ([36, 37, 38, 39], [42, 43, 44, 45]):
        pts = np.round(to_canvas(lm[idx, :2] + [0, 0.05])).astype(np.int32)
        cv2.polylines(lash, [pts], False, 1.0, thickness=int(0.14 * res),
                      lineType=cv2.LINE_AA)
    lash = cv2.GaussianBlur(lash, (0, 0), 0.05 * res)
    w_lash = sample(lash) * (front & (v[:, 2] > 7.0))
    return (w_brow.astype(np.float32), w_lips.astype(np.float32),
            w_lash.astype(np.float32))


#: Mouth-interior albedo (RGB 0..1): teeth, gums, tongue, the socket's walls.
MOUTH_COLOURS: Final[dict[str, tuple[float, float, float]]] = {
    "teeth": (0.86, 0.83, 0.76),
    "gums": (0.78, 0.42, 0.42),
    "tongue": (0.80, 0.45, 0.44),
    "socket": (0.50, 0.22, 0.22),
}


def _mouth_albedo(model: FaceModel3D) -> np.ndarray:
    """Per-vertex albedo of the mouth interior (zero elsewhere).

    The model's gums and tongue share one vertex range: gum is what lies within 3 mm of a
    tooth, the rest is tongue.
    """
    out = np.zeros((model.n_vertices, 3), np.float32)
    a, b = VERTEX_RANGES["mouth_socket"]
    out[a: b + 1] = MOUTH_COLOURS["socket"]
    ta, tb = VERTEX_RANGES["teeth"]
    out[ta: tb + 1] = MOUTH_COLOURS["teeth"]
    ga, gb = VERTEX_RANGES["gums_tongue"]
    gt = model.neutral[ga: gb + 1].astype(np.float64)
    teeth = model.neutral[ta: tb + 1: 4].astype(np.float64)
    near = np.zeros(len(gt))
    for i in range(0, len(gt), 512):
        d = np.linalg.norm(gt[i: i + 512, None, :] - teeth[None], axis=2)
        near[i: i + 512] = d.min(axis=1)
    out[ga: gb + 1] = np.where((near < 0.3)[:, None], MOUTH_COLOURS["gums"],
                               MOUTH_COLOURS["tongue"])
    return out


def mouth_interior(prep: ModelPrep, v: np.ndarray, tv: np.ndarray, bary: np.ndarray,
                   pos_z: np.ndarray) -> np.ndarray:
    """Albedo of mouth-interior fragments, darkened with depth behind the front teeth.

    Light enters through the open lips, so the cavity darkens with depth but stays lit
    (to 25 % at the back); the teeth, at the front, darken less.

    Parameters
    ----------
    prep : ModelPrep
        The model's preparation (its ``mouth_rgb``).
    v : numpy.ndarray
        ``(V, 3)`` vertices (model frame, z toward the viewer).
    tv : numpy.ndarray
        ``(N, 3)`` vertex ids of each fragment's triangle.
    bary : numpy.ndarray
        ``(N, 3)`` barycentric weights of the fragments.
    pos_z : numpy.ndarray
        ``(N,)`` model-frame depth of the fragments.

    Returns
    -------
    numpy.ndarray
        ``(N, 3)`` float32 RGB.
    """
    rgb = np.einsum("nk,nkc->nc", bary, prep.mouth_rgb[tv])
    tooth = np.einsum("nk,nk->n", bary, prep.teeth[tv].astype(np.float32))
    z_front = float(v[prep.teeth, 2].max())
    depth = np.maximum(z_front - pos_z, 0.0)
    lit = (tooth * (0.5 + 0.5 * np.exp(-depth / 2.0))
           + (1 - tooth) * (0.25 + 0.75 * np.exp(-depth / 2.5)))
    return (rgb * lit[:, None]).astype(np.float32)


#: Occlusion: the face's depth map (model frame, this many cm per pixel) is blurred with
#: a Gaussian of ``_OCC_SIGMA`` cm; skin deeper than its blurred surroundings by ``d`` cm
#: receives ``exp(-d / _OCC_SCALE)`` of the ambient light.
_OCC_RES: Final = 0.1
_OCC_SIGMA: Final = 0.6
_OCC_SCALE: Final = 1.0
_OCC_CAP: Final = 1.5


def skin_occlusion(model: FaceModel3D, vertices: np.ndarray) -> np.ndarray:
    """How open each face vertex is to the light (1 flat or bulging, less in a recess).

    A recess: the eye socket under a lowered brow, a fold.
    A screen-space ambient occlusion in the model's frontal frame: the face's depth map is
    blurred, and a vertex below its blurred surroundings by ``d`` cm gets
    ``exp(-d / 1 cm)``. Used as a ratio (expressed / neutral) on photo textures, whose own
    shading already holds the neutral face's occlusion.

    Parameters
    ----------
    model : FaceModel3D
        The model.
    vertices : numpy.ndarray
        ``(V, 3)`` unposed vertices (cm).

    Returns
    -------
    numpy.ndarray
        ``(V,)`` float32 in (0, 1]; 1 for every vertex outside the face range.
    """
    v = np.asarray(vertices, np.float64)
    nf = VERTEX_RANGES["face"][1] + 1
    prep = prepare_model(model)
    tris = prep.tris[(prep.tris < nf).all(axis=1)]
    # a fixed grid (the same pixels for every expression, so unchanged skin keeps its value)
    lo, hi = np.array([-12.0, -14.0]), np.array([12.0, 12.0])
    w, h = (int(round(x)) for x in (hi - lo) / _OCC_RES)
    p = np.zeros((len(v), 2))
    p[:, 0] = (v[:, 0] - lo[0]) / _OCC_RES
    p[:, 1] = (hi[1] - v[:, 1]) / _OCC_RES
    pix, tri, l0, l1 = rasterize(p, v[:, 2], tris, w, h)
    tv = tris[tri]
    z = np.zeros(w * h, np.float32)
    cover = np.zeros(w * h, np.float32)
    z[pix] = l0 * v[tv[:, 0], 2] + l1 * v[tv[:, 1], 2] + (1.0 - l0 - l1) * v[tv[:, 2], 2]
    cover[pix] = 1.0
    sigma = _OCC_SIGMA / _OCC_RES
    zb = cv2.GaussianBlur(z.reshape(h, w), (0, 0), sigma)
    cb = cv2.GaussianBlur(cover.reshape(h, w), (0, 0), sigma)
    around = (zb / np.maximum(cb, 1e-6)).astype(np.float32)
    q = (p[:nf] - 0.5).astype(np.float32)
    at = cv2.remap(around, q[:, 0].reshape(1, -1), q[:, 1].reshape(1, -1), cv2.INTER_LINEAR,
                   borderMode=cv2.BORDER_REPLICATE).ravel()
    # skin hidden behind the front surface (under the chin, beside the nose) is not lit
    # from the front at all: its depth is capped so that it keeps its value
    depth = np.clip(at - v[:nf, 2], 0.0, _OCC_CAP)
    out = np.ones(len(v), np.float32)
    out[:nf] = np.exp(-depth / _OCC_SCALE)
    return out


def prepare_model(model: FaceModel3D) -> ModelPrep:
    """The :class:`ModelPrep` of ``model`` (computed once, cached while the model lives)."""
    if model in _PREP:
        return _PREP[model]
    mats = list(model.materials)
    drop = {mats.index(m) for m in ("M_IrisLeft", "M_IrisRight", "M_LacrimalFluid",
                                    "M_EyeBlend", "M_EyeOcclusion", "M_EyeLashes")
            if m in mats}
    keep = ~np.isin(model.triangle_material, list(drop))
    tris = model.triangles[keep]
    tmat = model.triangle_material[keep]
    kind = np.zeros(len(tris), np.int8)
    sl, sr = mats.index("M_ScleraLeft"), mats.index("M_ScleraRight")
    # which sclera lies at +x (the subject's left): decide from the geometry
    xl = model.neutral[np.unique(model.triangles[model.triangle_material == sl]), 0].mean()
    kind[tmat == sl] = 1 if xl > 0 else 2
    kind[tmat == sr] = 2 if xl > 0 else 1
    nv = model.n_vertices
    interior = np.zeros(nv, np.float32)
    for r in ("mouth_socket", "gums_tongue", "teeth"):
        a, b = VERTEX_RANGES[r]
        interior[a: b + 1] = 1.0
    teeth = np.zeros(nv, bool)
    teeth[VERTEX_RANGES["teeth"][0]: VERTEX_RANGES["teeth"][1] + 1] = True
    socket_eye = np.zeros(nv, np.float32)
    socket_eye[VERTEX_RANGES["eye_sockets"][0]: VERTEX_RANGES["eye_sockets"][1] + 1] = 1.0
    w_brow, w_lips, w_lash = _paint_weights(model)
    ids = {1: np.zeros(0, int), 2: np.zeros(0, int)}
    for k in (1, 2):
        ids[k] = np.unique(tris[kind == k])
    two_sided = interior[tris].min(axis=1) > 0.5     # mouth interior: drawn two-sided
    prep = ModelPrep(tris, kind, interior, teeth, socket_eye, w_brow, w_lips, w_lash,
                     two_sided, ids[1], ids[2], _mouth_albedo(model))
    _PREP[model] = prep
    return prep


def render_model(model: FaceModel3D, vertices: np.ndarray, size: int = 256,
                 color: bool = False, *, camera: Camera | None = None,
                 appearance: Appearance | None = None, supersample: int = 2,
                 aus: Mapping[int | str, float] | None = None) -> np.ndarray:
    """Render posed model vertices.

    Parameters
    ----------
    model : FaceModel3D
        The model (triangles, materials).
    vertices : numpy.ndarray
        ``(V, 3)`` vertices, e.g. from :meth:`FaceModel3D.shape` (and :func:`pose_vertices`).
    size : int
        Image side in pixels (64..2048).
    color : bool
        RGB ``(size, size, 3)`` instead of grayscale ``(size, size)`` (ITU-R 601 luma).
    camera : Camera, optional
        Framing (default: head and neck, the face about half the width).
    appearance : Appearance, optional
        Colours (default: mid skin tone on a mid-gray background).
    supersample : int
        Anti-aliasing factor (rendered at ``size * supersample``, reduced with INTER_AREA).
    aus : Mapping, optional
        The AU intensities that made ``vertices``: their wrinkles and furrows are shaded
        on the skin (:func:`~facedialect.faces.model3d.creases.crease_shading`).

    Returns
    -------
    numpy.ndarray
        uint8 image; the same inputs always give the same pixels.
    """
    if not isinstance(size, int | np.integer) or not 64 <= int(size) <= 2048:
        raise ValueError(f"size must be an integer in 64..2048, got {size!r}")
    v = np.asarray(vertices, dtype=np.float64)
    if v.shape != (model.n_vertices, 3) or not np.all(np.isfinite(v)):
        raise ValueError(f"vertices must be finite with shape ({model.n_vertices}, 3), "
                         f"got {v.shape}")
    cam = camera or Camera()
    look = appearance or Appearance()
    prep = prepare_model(model)
    s = int(size) * int(supersample)
    p = cam.to_pixels(v[:, :2], s)
    pix, tri, L0, L1 = rasterize(p, v[:, 2], prep.tris, s, s, prep.two_sided)
    L0, L1 = L0.astype(np.float32), L1.astype(np.float32)
    L2 = 1.0 - L0 - L1
    tv = prep.tris[tri]

    normals = vertex_normals(v, prep.tris)
    # every per-vertex attribute interpolated at once: normal, position, paint weights
    attrs = np.concatenate([normals, v, prep.paint, model.neutral[:, :2]], axis=1,
                           dtype=np.float32)
    f = (L0[:, None] * attrs[tv[:, 0]] + L1[:, None] * attrs[tv[:, 1]]
         + L2[:, None] * attrs[tv[:, 2]])
    n, pos = f[:, 0:3], f[:, 3:6]
    w_lips, w_brow, w_lash, w_socket, inner = (f[:, 6 + i] for i in range(5))
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    flip = prep.two_sided[tri] & (n[:, 2] < 0)
    n[flip] *= -1.0
    light = np.asarray(look.light, np.float64)
    light = (light / max(float(np.linalg.norm(light)), 1e-12)).astype(np.float32)
    lam = np.clip(n @ light, 0.0, 1.0)
    shade = look.ambient + look.diffuse * lam

    skin = np.asarray(look.skin, np.float32)
    albedo = np.broadcast_to(skin, (pix.size, 3)).copy()
    wl = w_lips[:, None]
    albedo = albedo * (1 - wl) + np.asarray(look.lips) * wl
    wb = (look.brow_strength * w_brow)[:, None]
    albedo = albedo * (1 - wb) + np.asarray(look.brow) * wb
    wk = (0.75 * w_lash)[:, None]
    albedo = albedo * (1 - wk) + np.asarray(look.brow) * 0.5 * wk
    es = w_socket[:, None]
    albedo = albedo * (1 - 0.75 * es)
    # wrinkles and furrows of the AUs, on the skin
    creases = crease_shading(f[:, 12:14], aus) if aus else None
    if creases is not None:
        albedo *= creases[:, None]

    # mouth interior: teeth white, gums/tongue/socket pinkish, darkened by depth
    is_in = inner > 0.5
    if np.any(is_in):
        bary = np.stack([L0, L1, L2], axis=1)[is_in]
        albedo[is_in] = mouth_interior(prep, v, tv[is_in], bary, pos[is_in, 2])
        shade[is_in] = 0.55 + 0.45 * shade[is_in]

    # eyes: sclera shell with a painted iris and pupil
    kind = prep.tri_kind[tri]
    for k, ids in ((1, prep.sclera_l), (2, prep.sclera_r)):
        sel = kind == k
        if not np.any(sel) or ids.size == 0:
            continue
        centre = v[ids].mean(axis=0)
        r = np.hypot(pos[sel, 0] - centre[0], pos[sel, 1] - centre[1])
        front_half = pos[sel, 2] > centre[2]
        iris_w = (1 - smoothstep(IRIS_R - 0.06, IRIS_R + 0.02, r)) * front_half
        pupil_w = (1 - smoothstep(PUPIL_R - 0.04, PUPIL_R + 0.03, r)) * front_half
        ring = np.exp(-(((r - IRIS_R + 0.04) / 0.06) ** 2)) * front_half
        col = np.broadcast_to(np.full(3, _SCLERA), (int(sel.sum()), 3))
        iris = np.asarray(look.iris) * (1 - 0.45 * ring)[:, None]
        col = col * (1 - iris_w[:, None]) + iris * iris_w[:, None]
        col = col * (1 - pupil_w[:, None]) + 0.04 * pupil_w[:, None]
        albedo[sel] = col
        shade[sel] = 0.6 + 0.4 * shade[sel]

    rgb_frag = np.clip(albedo * shade[:, None], 0.0, 1.0)
    img = np.empty((s * s, 3), np.float32)
    img[:] = np.asarray(look.background, np.float32)
    img[pix] = rgb_frag
    img = img.reshape(s, s, 3)
    if supersample > 1:
        img = cv2.resize(img, (int(size), int(size)), interpolation=cv2.INTER_AREA)
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if color:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def project_landmarks(model: FaceModel3D, vertices: np.ndarray, size: int = 256,
                      camera: Camera | None = None) -> np.ndarray:
    """Pixel ``(col, row)`` of the 68 iBUG landmarks in a :func:`render_model` image.

    Returns
    -------
    numpy.ndarray
        ``(68, 2)`` float64; landmark 0 and the eye 36-41 are on the image's left.
    """
    v = np.asarray(vertices, dtype=np.float64)[model.landmarks68]
    return (camera or Camera()).to_pixels(v[:, :2], int(size))


def pose_vertices(vertices: np.ndarray, roll: float = 0.0, yaw: float = 0.0,
                  pivot: tuple[float, float, float] = (0.0, 1.0, 2.0)) -> np.ndarray:
    """Rotate a head: ``yaw`` degrees about the vertical axis, then ``roll`` in the image plane.

    Positive roll turns the face clockwise on screen (as :class:`FaceIdentity` does);
    positive yaw turns the face toward the image's right.
    """
    v = np.asarray(vertices, dtype=np.float64) - np.asarray(pivot)
    ya, ro = math.radians(yaw), math.radians(-roll)
    ry = np.array([[math.cos(ya), 0, math.sin(ya)], [0, 1, 0],
                   [-math.sin(ya), 0, math.cos(ya)]])
    rz = np.array([[math.cos(ro), -math.sin(ro), 0], [math.sin(ro), math.cos(ro), 0],
                   [0, 0, 1]])
    return (v @ (rz @ ry).T + np.asarray(pivot)).astype(np.float32)


# ---------------------------------------------------------------------------------------
# FaceIdentity adapter (for synthetic.cultures.write_synthetic_database)
# ---------------------------------------------------------------------------------------

#: How :class:`FaceIdentity.shape` maps to identity components: mode -> (component, gain).
#: The ICT identity components are ordered by variance; the first eight are used, one
#: per procedural mode, with a gain of 0.6 so that 3 SD stays a plausible face.
IDENTITY_MAP: Final[dict[str, tuple[int, float]]] = {
    "face_width": (0, 0.6),
    "face_length": (1, 0.6),
    "jaw_width": (2, 0.6),
    "eye_spacing": (3, 0.6),
    "nose_length": (4, 0.6),
    "mouth_width": (5, 0.6),
    "brow_height": (6, 0.6),
    "lip_thickness": (7, 0.6),
}


def identity_coefficients(identity: FaceIdentity) -> np.ndarray:
    """Map a :class:`FaceIdentity`'s shape coefficients to the model's first components."""
    c = np.zeros(max(i for i, _ in IDENTITY_MAP.values()) + 1, np.float32)
    for name, value in zip(IDENTITY_MODES, identity.shape, strict=True):
        i, g = IDENTITY_MAP[name]
        c[i] = g * value
    return c


@functools.lru_cache(maxsize=1)
def default_model() -> FaceModel3D:
    """The installed ICT model (:func:`load_model`, loaded once)."""
    return load_model()


def appearance_of(identity: FaceIdentity) -> Appearance:
    """The colours of a :class:`FaceIdentity` on the 3-D model (skin, brows, lips, iris, wall)."""
    skin = tuple(float(x) for x in identity.skin_rgb())
    hair = 0.08 + 0.55 * identity.hair_gray
    brow = (hair * 1.1, hair * 0.85, hair * 0.65)
    lips = tuple(float(s * m) for s, m in zip(skin, (0.8, 0.52, 0.52), strict=True))
    ig = identity.iris_gray
    bg = identity.background_gray
    return Appearance(skin=skin, brow=brow, lips=lips,  # type: ignore[arg-type]
                      iris=(ig * 0.95, ig * 0.8, ig * 0.6), background=(bg, bg, bg),
                      brow_strength=0.85 if identity.sex == "M" else 0.75)


def render_face_3d(identity: FaceIdentity, aus: Mapping[int | str, float], size: int = 256,
                   color: bool = False, *, model: FaceModel3D | None = None,
                   coeffs: np.ndarray | None = None,
                   appearance: Appearance | None = None) -> np.ndarray:
    """Draw a :class:`FaceIdentity` with the 3-D model (a drop-in for ``render_face``).

    Mapping: the 8 shape coefficients drive the first 8 identity components
    (:data:`IDENTITY_MAP`); ``roll`` rolls the head, ``yaw`` turns it by ``10 * yaw``
    degrees, ``shift`` and ``scale`` move and size the camera field; skin tone, hair
    (brow) colour, iris and background come from the identity. Hair, hairstyle,
    hairline, clothing and ``texture_seed`` are not drawn by this renderer. ``coeffs``
    (identity coefficients, replacing the mapped shape) and ``appearance`` (colours and
    light, replacing those derived from the identity) override the mapping.

    Parameters
    ----------
    identity : FaceIdentity
        The face and its head pose.
    aus : Mapping
        ``{AU: intensity}`` (0..1; :func:`~facedialect.faces.model3d.recipes.au_weights`).
    size : int
        Image side in pixels (64..2048).
    color : bool
        RGB instead of grayscale.
    model : FaceModel3D, optional
        The model (default: the installed one, :func:`default_model`).
    coeffs : numpy.ndarray, optional
        Identity coefficients replacing those mapped from ``identity.shape``.
    appearance : Appearance, optional
        Colours and light replacing those of :func:`appearance_of`.

    Returns
    -------
    numpy.ndarray
        uint8 image; the same inputs always give the same pixels.

    Raises
    ------
    ValueError
        On an unknown AU or an intensity outside 0..1.
    AssetMissingError
        When the model is not installed.
    """
    w = au_weights(aus)
    m = model or default_model()
    v = m.shape(identity_coefficients(identity) if coeffs is None else coeffs, w)
    v = pose_vertices(v, roll=identity.roll, yaw=10.0 * identity.yaw)
    base = Camera()
    field_cm = base.field / identity.scale
    cam = Camera(center=(base.center[0] - identity.shift[0] * field_cm,
                         base.center[1] + identity.shift[1] * field_cm), field=field_cm)
    return render_model(m, v, size=size, color=color, camera=cam,
                        appearance=appearance or appearance_of(identity), aus=aus)
