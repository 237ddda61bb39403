"""The procedural face's shape model: the 68-landmark mean shape and its identity modes.

The model lives in a *canonical frame*: ``x`` to the image's right, ``y`` down, the
origin midway between the eye corners, and one unit is half the jaw width (landmarks
0 and 16 lie at ``x = -1`` and ``x = +1``). Landmark 0 and the eye 36-41 are on the
image's left (the subject's right), as in iBUG.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

__all__ = [
    "BROWS",
    "EYES",
    "IDENTITY_MODES",
    "JAW",
    "MEAN_SHAPE",
    "MIRROR",
    "MODE_NAMES",
    "MODE_STACK",
    "MOUTH",
    "NOSE",
    "symmetric_field",
]


# ---------------------------------------------------------------------------------------
# Mean shape (canonical units, written by hand; left/right symmetric)
# ---------------------------------------------------------------------------------------

#: Mean adult face, 68 iBUG landmarks ``(x, y)`` in canonical units (read-only).
MEAN_SHAPE: Final[np.ndarray] = np.array(
    [
        # jaw 0-16 (image left to right, through the chin at 8)
        (-1.00, 0.04), (-0.99, 0.31), (-0.96, 0.58), (-0.90, 0.84), (-0.80, 1.08),
        (-0.65, 1.30), (-0.46, 1.48), (-0.24, 1.62), (0.00, 1.67), (0.24, 1.62),
        (0.46, 1.48), (0.65, 1.30), (0.80, 1.08), (0.90, 0.84), (0.96, 0.58),
        (0.99, 0.31), (1.00, 0.04),
        # brows 17-21 (image left, outer to inner), 22-26 (image right, inner to outer)
        (-0.82, -0.17), (-0.69, -0.27), (-0.52, -0.31), (-0.35, -0.29), (-0.19, -0.23),
        (0.19, -0.23), (0.35, -0.29), (0.52, -0.31), (0.69, -0.27), (0.82, -0.17),
        # nose bridge 27-30 (top to tip), nostrils 31-35 (image left to right)
        (0.00, -0.02), (0.00, 0.17), (0.00, 0.36), (0.00, 0.55),
        (-0.20, 0.64), (-0.10, 0.68), (0.00, 0.70), (0.10, 0.68), (0.20, 0.64),
        # image-left eye 36-41: outer corner, upper lid x2, inner corner, lower lid x2
        (-0.635, 0.02), (-0.53, -0.055), (-0.37, -0.055), (-0.255, 0.03),
        (-0.37, 0.07), (-0.53, 0.07),
        # image-right eye 42-47: inner corner, upper lid x2, outer corner, lower lid x2
        (0.255, 0.03), (0.37, -0.055), (0.53, -0.055), (0.635, 0.02),
        (0.53, 0.07), (0.37, 0.07),
        # outer lips 48-59: left corner, upper lip to the right corner, lower lip back
        (-0.38, 0.97), (-0.25, 0.905), (-0.10, 0.875), (0.00, 0.89), (0.10, 0.875),
        (0.25, 0.905), (0.38, 0.97), (0.25, 1.075), (0.11, 1.125), (0.00, 1.135),
        (-0.11, 1.125), (-0.25, 1.075),
        # inner lips 60-67: left corner, upper inner lip, right corner, lower inner lip
        (-0.33, 0.97), (-0.11, 0.965), (0.00, 0.97), (0.11, 0.965),
        (0.33, 0.97), (0.11, 0.967), (0.00, 0.972), (-0.11, 0.967),
    ],
    dtype=np.float64,
)
MEAN_SHAPE.setflags(write=False)

#: iBUG left/right mirror pairs (index -> its mirror image).
MIRROR: Final[np.ndarray] = np.array(
    [16 - i for i in range(17)]
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)

JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
NOSE = np.arange(27, 36)
EYES = np.arange(36, 48)
MOUTH = np.arange(48, 68)


def symmetric_field(moves: Mapping[int, tuple[float, float]]) -> np.ndarray:
    """Build a symmetric (68, 2) displacement field from the moves of one side.

    ``moves`` maps a landmark of the image-left side (or the midline) to
    ``(lateral, down)``: ``lateral > 0`` moves away from the midline, ``down > 0``
    moves down. Each move is copied to the mirror landmark on the other side.
    Midline landmarks (27-30, 33, 51, 57, 62, 66, 8) must have ``lateral == 0``.
    """
    d = np.zeros((68, 2))
    for i, (lat, down) in moves.items():
        side = -1.0 if MEAN_SHAPE[i, 0] < 0 else (1.0 if MEAN_SHAPE[i, 0] > 0 else 0.0)
        if side == 0.0 and lat != 0.0:
            raise ValueError(f"midline landmark {i} cannot move laterally")
        j = int(MIRROR[i])
        d[i] = (side * lat, down)
        d[j] = (-side * lat, down)
    d.setflags(write=False)
    return d


# ---------------------------------------------------------------------------------------
# Identity modes: displacement per standard deviation of each coefficient
# ---------------------------------------------------------------------------------------


def _identity_modes() -> dict[str, np.ndarray]:
    m = MEAN_SHAPE
    x, y = m[:, 0], m[:, 1]
    modes: dict[str, np.ndarray] = {}
    d = np.zeros((68, 2))
    d[:, 0] = 0.06 * x
    modes["face_width"] = d
    d = np.zeros((68, 2))
    d[:, 1] = np.where(y > 0, 0.07 * y, 0.03 * y)
    modes["face_length"] = d
    d = np.zeros((68, 2))
    w = np.exp(-(((np.arange(17) - 8.0) / 4.5) ** 2)) * (np.abs(np.arange(17) - 8) >= 2)
    d[:17, 0] = 0.08 * np.sign(x[:17]) * w
    modes["jaw_width"] = d
    d = np.zeros((68, 2))
    d[EYES, 0] = 0.035 * np.sign(x[EYES])
    d[BROWS, 0] = 0.025 * np.sign(x[BROWS])
    modes["eye_spacing"] = d
    d = np.zeros((68, 2))
    d[28, 1], d[29, 1], d[30, 1] = 0.015, 0.03, 0.045
    d[31:36, 1] = 0.045
    modes["nose_length"] = d
    d = np.zeros((68, 2))
    d[MOUTH, 0] = 0.06 * x[MOUTH] / 0.38
    modes["mouth_width"] = d
    d = np.zeros((68, 2))
    d[BROWS, 1] = -0.035
    modes["brow_height"] = d
    d = np.zeros((68, 2))
    d[49:54, 1] = -0.018
    d[55:60, 1] = 0.025
    modes["lip_thickness"] = d
    for v in modes.values():
        v.setflags(write=False)
    return modes


#: Identity modes: name -> (68, 2) displacement per unit coefficient (about 1 SD).
IDENTITY_MODES: Final[dict[str, np.ndarray]] = _identity_modes()
MODE_NAMES: Final[tuple[str, ...]] = tuple(IDENTITY_MODES)
MODE_STACK: Final[np.ndarray] = np.stack([IDENTITY_MODES[k] for k in MODE_NAMES])
