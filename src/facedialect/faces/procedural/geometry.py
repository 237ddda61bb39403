"""Where the procedural face's 68 landmarks land: identity and AUs, then the head pose.

:func:`canonical_landmarks` gives them in the canonical frame
(:mod:`~facedialect.faces.procedural.shape`); :class:`Pose` and :func:`landmarks` map
them to image pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from facedialect.faces.procedural.aus import AU_CATALOGUE_PROCEDURAL, validate_aus
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.shape import JAW, MEAN_SHAPE, MODE_STACK, NOSE
from facedialect.vocab import STUDY_AUS

__all__ = ["YAW_SHIFT", "Pose", "canonical_landmarks", "check_size", "landmarks"]

#: Pseudo-depth of each landmark (0 at the outline, 1 at the nose tip): how far it slides
#: sideways with ``yaw``.
_DEPTH: Final[np.ndarray] = np.clip(
    0.55 * np.sqrt(np.clip(1.0 - (MEAN_SHAPE[:, 0] / 1.05) ** 2, 0.0, 1.0)), 0.0, 1.0
)
_DEPTH[NOSE] += np.array([0.1, 0.2, 0.3, 0.45, 0.2, 0.3, 0.35, 0.3, 0.2])
_DEPTH[JAW] *= np.clip(MEAN_SHAPE[JAW, 1] / 1.67, 0.0, 1.0) ** 2
_DEPTH.setflags(write=False)
YAW_SHIFT: Final[float] = 0.09
#: One canonical unit (half the jaw width) as a fraction of the image side: the jaw spans
#: 54% of the width and the head with the ears about 60%.
_UNIT_FRACTION: Final[float] = 0.23
#: Height of the canonical origin (between the eyes) as a fraction of the image side.
_EYE_LINE: Final[float] = 0.39


_CHIN: Final[int] = 8  # iBUG index of the chin tip


def canonical_landmarks(identity: FaceIdentity, aus: Mapping[int, float]) -> np.ndarray:
    """Return the 68 landmarks in canonical units (before the head pose is applied).

    Parameters
    ----------
    identity : FaceIdentity
        Face shape (``shape``) and pseudo-yaw; roll, shift and scale are not applied.
    aus : Mapping[int, float]
        AU -> intensity in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        ``(68, 2)`` float64.
    """
    aus = dict(validate_aus(aus))
    pts = MEAN_SHAPE + np.tensordot(np.asarray(identity.shape), MODE_STACK, axes=1)
    # AU26 and AU27 move the same jaw: their drops add up to at most AU27's full drop.
    d26 = AU_CATALOGUE_PROCEDURAL[26].displacement[_CHIN, 1]
    d27 = AU_CATALOGUE_PROCEDURAL[27].displacement[_CHIN, 1]
    drop = aus.get(26, 0.0) * d26 + aus.get(27, 0.0) * d27
    if drop > d27 > 0:
        for au in (26, 27):
            if au in aus:
                aus[au] *= d27 / drop
    for au in STUDY_AUS:
        v = aus.get(au, 0.0)
        if v > 0.0:
            pts = pts + v * AU_CATALOGUE_PROCEDURAL[au].displacement
    if identity.yaw != 0.0:
        pts = pts.copy()
        pts[:, 0] += identity.yaw * YAW_SHIFT * _DEPTH
    return pts


@dataclass(frozen=True)
class Pose:
    """Similarity transform canonical -> image pixels."""

    scale: float  # pixels per canonical unit
    cos: float
    sin: float
    cx: float
    cy: float

    @classmethod
    def of(cls, identity: FaceIdentity, size: int) -> Pose:
        """The pose of ``identity``'s head in a ``size`` px image."""
        s = size * _UNIT_FRACTION * identity.scale
        a = math.radians(identity.roll)
        return cls(s, math.cos(a), math.sin(a),
                   size * (0.5 + identity.shift[0]), size * (_EYE_LINE + identity.shift[1]))

    def apply(self, q: np.ndarray) -> np.ndarray:
        """Map canonical points ``(..., 2)`` to image pixels."""
        x, y = q[..., 0], q[..., 1]
        return np.stack([self.cx + self.scale * (self.cos * x - self.sin * y),
                         self.cy + self.scale * (self.sin * x + self.cos * y)], axis=-1)

    def grid(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Canonical coordinates of every output pixel centre."""
        p = np.arange(size, dtype=np.float32)
        px = (p - self.cx) / self.scale
        py = (p - self.cy) / self.scale
        u = self.cos * px[None, :] + self.sin * py[:, None]
        v = -self.sin * px[None, :] + self.cos * py[:, None]
        return u.astype(np.float32), v.astype(np.float32)


def check_size(size: int) -> int:
    """Return ``size`` as an int, or raise ValueError unless it is an integer in 32..4096."""
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not (
        32 <= int(size) <= 4096
    ):
        raise ValueError(f"size must be an integer in 32..4096, got {size!r}")
    return int(size)


def landmarks(identity: FaceIdentity, aus: Mapping[int, float], size: int = 256) -> np.ndarray:
    """Return the 68 iBUG landmarks of a rendered face in image pixels.

    Parameters
    ----------
    identity : FaceIdentity
        The face and its head pose.
    aus : Mapping[int, float]
        AU -> intensity in ``[0, 1]``; AUs not listed are off.
    size : int
        Side of the square image in pixels.

    Returns
    -------
    numpy.ndarray
        ``(68, 2)`` float64 ``(x, y)`` pixel coordinates (pixel centres at integers),
        matching :func:`render_face` with the same arguments.

    Raises
    ------
    ValueError
        On an unknown AU, an intensity outside ``[0, 1]`` or a bad size.
    """
    size = check_size(size)
    return Pose.of(identity, size).apply(canonical_landmarks(identity, aus))

