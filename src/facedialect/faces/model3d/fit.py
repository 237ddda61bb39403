"""Fit the 3-D face model to a photo: pose and identity from the photo's 68 landmarks.

:func:`fit_photo` finds a scaled-orthographic pose (rotation, scale, shift) and the first
identity coefficients of the model, by regularised least squares on the model's 68
landmark vertices, alternating pose and shape a few times. The jaw-contour landmarks
depend on the silhouette, so they count less. :mod:`~facedialect.faces.model3d.photo`
textures the fitted mesh with the photo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from facedialect.faces.model3d.model import FaceModel3D, load_model
from facedialect.landmarks import LANDMARK_GROUPS, NoFaceDetectedError, detect_landmarks

__all__ = ["JAW_WEIGHT", "N_IDENTITY", "PhotoFit", "as_rgb", "fit_photo", "load_photo"]

#: Identity components fitted, and the landmark noise (fraction of the eye distance)
#: that sets the ridge penalty (coefficients have a N(0, 1) prior).
N_IDENTITY: Final = 40
_NOISE: Final = 0.04
#: Weight of the 17 jaw-contour landmarks (silhouette-dependent) in the fit.
JAW_WEIGHT: Final = 0.3


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def load_photo(path: str | Path) -> np.ndarray:
    """Read a photo as RGB uint8 ``(H, W, 3)`` (gray photos become three equal channels).

    Raises
    ------
    ImageReadError
        When the file is missing or not a readable image.
    """
    from facedialect.imageio import read_rgb

    return read_rgb(path)


def as_rgb(photo: np.ndarray) -> np.ndarray:
    """A photo as contiguous RGB uint8 ``(H, W, 3)`` (gray repeated, alpha dropped).

    Raises
    ------
    ValueError
        For an array that is neither ``(H, W)`` nor ``(H, W, 3|4)``.
    """
    a = np.asarray(photo)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a.astype(np.float64)), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return np.ascontiguousarray(a[:, :, :3])
    raise ValueError(f"photo must be (H, W) gray or (H, W, 3) RGB, got shape {a.shape}")


# ---------------------------------------------------------------------------------------
# Fit
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PhotoFit:
    """The model fitted to a photo (scaled orthographic camera).

    A model point ``X`` (cm, y up) lands at photo pixel ``(u, v)`` (pixel centres at whole
    numbers): ``(u, -v) = scale * (R @ X)[:2] + shift``; its depth toward the viewer is
    ``scale * (R @ X)[2]``.

    Attributes
    ----------
    identity : numpy.ndarray
        ``(K,)`` identity coefficients (the first K components).
    rotation : numpy.ndarray
        ``(3, 3)`` rotation.
    scale : float
        Pixels per cm.
    shift : numpy.ndarray
        ``(2,)`` in pixels (``(u, -v)`` frame).
    landmarks : numpy.ndarray
        ``(68, 2)`` detected landmarks the fit used.
    rms_px : float
        RMS distance (pixels) between the fitted and detected landmarks, jaw excluded.
    shape : tuple[int, int]
        ``(height, width)`` of the photo.
    """

    identity: np.ndarray
    rotation: np.ndarray
    scale: float
    shift: np.ndarray
    landmarks: np.ndarray
    rms_px: float
    shape: tuple[int, int]

    def project(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photo pixel ``(u, v)`` and depth (pixels, toward the viewer) of model points."""
        x = np.asarray(vertices, np.float64) @ self.rotation.T
        uv = np.empty((len(x), 2))
        uv[:, 0] = self.scale * x[:, 0] + self.shift[0]
        uv[:, 1] = -(self.scale * x[:, 1] + self.shift[1])
        return uv, self.scale * x[:, 2]


def _landmark_weights() -> np.ndarray:
    w = np.ones(68)
    w[list(LANDMARK_GROUPS["jaw"])] = JAW_WEIGHT
    return w


def _pose(x: np.ndarray, q: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """Scaled-orthographic pose taking 3-D points ``x`` to 2-D ``q`` (weighted LS)."""
    sw = np.sqrt(w)[:, None]
    a = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(a * sw, q * sw, rcond=None)      # (4, 2)
    m = coef[:3].T                                              # (2, 3) affine camera
    u, sv, vt = np.linalg.svd(m, full_matrices=False)
    r2 = u @ vt                                                 # nearest orthonormal rows
    s = float(sv.mean())
    r = np.vstack([r2, np.cross(r2[0], r2[1])])
    if np.linalg.det(r) < 0:   # pragma: no cover - cross product keeps it proper
        r[2] *= -1
    t = (w @ (q - s * x @ r2.T)) / w.sum()
    return r, s, t


def fit_photo(photo: np.ndarray, model: FaceModel3D | None = None, *,
              landmarks: np.ndarray | None = None, n_identity: int = N_IDENTITY,
              iterations: int = 8) -> PhotoFit:
    """Fit the face model's pose and identity to a photo's 68 landmarks.

    Parameters
    ----------
    photo : numpy.ndarray
        ``(H, W)`` gray or ``(H, W, 3)`` RGB uint8.
    model : FaceModel3D, optional
        The ICT model (default: :func:`load_model`).
    landmarks : numpy.ndarray, optional
        ``(68, 2)`` landmarks (default: detected).
    n_identity : int
        Identity components to fit (0..100).
    iterations : int
        Pose / shape alternations.

    Returns
    -------
    PhotoFit

    Raises
    ------
    NoFaceDetectedError
        When no face is found in the photo.
    """
    rgb = as_rgb(photo)
    m = model or load_model()
    if landmarks is None:
        landmarks = detect_landmarks(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        if landmarks is None:
            raise NoFaceDetectedError("no face detected in the photo (dlib HOG detector): "
                                      "use a frontal, well-lit face photo")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (68, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"landmarks must be finite (68, 2), got {lm.shape}")
    k = int(np.clip(n_identity, 0, m.n_identity))
    q = np.stack([lm[:, 0], -lm[:, 1]], axis=1)
    w = _landmark_weights()
    x0 = m.neutral[m.landmarks68].astype(np.float64)
    d = m.identity_deltas[:k, m.landmarks68].astype(np.float64)    # (k, 68, 3)
    eye = np.linalg.norm(lm[36:42].mean(0) - lm[42:48].mean(0))
    lam = (_NOISE * max(eye, 1.0)) ** 2
    c = np.zeros(k)
    for _ in range(max(1, int(iterations))):
        x = x0 + np.tensordot(c, d, axes=1) if k else x0
        r, s, t = _pose(x, q, w)
        if k == 0:
            continue
        base = s * x0 @ r[:2].T + t                            # (68, 2)
        j = s * np.einsum("kld,ed->lek", d, r[:2])              # (68, 2, k)
        jw = (j * np.sqrt(w)[:, None, None]).reshape(-1, k)
        rw = ((q - base) * np.sqrt(w)[:, None]).ravel()
        c = np.linalg.solve(jw.T @ jw + lam * np.eye(k), jw.T @ rw)
    x = x0 + np.tensordot(c, d, axes=1) if k else x0
    r, s, t = _pose(x, q, w)
    fit_q = s * x @ r[:2].T + t
    keep = w == 1.0
    rms = float(np.sqrt(((fit_q - q)[keep] ** 2).sum(axis=1).mean()))
    return PhotoFit(identity=c.astype(np.float32), rotation=r, scale=s, shift=t,
                    landmarks=lm, rms_px=rms, shape=(int(rgb.shape[0]), int(rgb.shape[1])))
