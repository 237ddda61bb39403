"""A built-in face drawn from a parametric 68-landmark model, moved by the 20 study AUs.

The face needs no downloaded asset: a hand-made mean shape in the iBUG 68-point layout,
a few identity modes, one displacement field per action unit (AU), and a 2-D renderer
(OpenCV polygons, anti-aliased by super-sampling, shaded from a fake height field).
It is what the offline demo, the tests and the synthetic cultures (``faces.cultures``)
use until the 3-D face model is installed.

Coordinates
-----------
The model lives in a *canonical frame*: ``x`` to the image's right, ``y`` down, the
origin midway between the eye corners, and one unit is half the jaw width (landmarks
0 and 16 lie at ``x = -1`` and ``x = +1``). :func:`landmarks` maps it to image pixels.
Landmark 0 and the eye 36-41 are on the image's left (the subject's right), as in iBUG.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

import cv2
import numpy as np

from facedialect.vocab import STUDY_AUS

__all__ = [
    "AU_CATALOGUE_PROCEDURAL",
    "IDENTITY_MODES",
    "MEAN_SHAPE",
    "RENDER_PARAMS",
    "STUDY_AUS",
    "FaceIdentity",
    "ProceduralAU",
    "canonical_landmarks",
    "landmarks",
    "render_face",
    "render_params",
    "validate_aus",
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
_MIRROR: Final[np.ndarray] = np.array(
    [16 - i for i in range(17)]
    + [26, 25, 24, 23, 22, 21, 20, 19, 18, 17]
    + [27, 28, 29, 30, 35, 34, 33, 32, 31]
    + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
    + [64, 63, 62, 61, 60, 67, 66, 65]
)

_JAW = np.arange(0, 17)
_BROWS = np.arange(17, 27)
_NOSE = np.arange(27, 36)
_EYES = np.arange(36, 48)
_MOUTH = np.arange(48, 68)


def _field(moves: Mapping[int, tuple[float, float]]) -> np.ndarray:
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
        j = int(_MIRROR[i])
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
    d[_EYES, 0] = 0.035 * np.sign(x[_EYES])
    d[_BROWS, 0] = 0.025 * np.sign(x[_BROWS])
    modes["eye_spacing"] = d
    d = np.zeros((68, 2))
    d[28, 1], d[29, 1], d[30, 1] = 0.015, 0.03, 0.045
    d[31:36, 1] = 0.045
    modes["nose_length"] = d
    d = np.zeros((68, 2))
    d[_MOUTH, 0] = 0.06 * x[_MOUTH] / 0.38
    modes["mouth_width"] = d
    d = np.zeros((68, 2))
    d[_BROWS, 1] = -0.035
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
_MODE_NAMES: Final[tuple[str, ...]] = tuple(IDENTITY_MODES)
_MODE_STACK: Final[np.ndarray] = np.stack([IDENTITY_MODES[k] for k in _MODE_NAMES])

# ---------------------------------------------------------------------------------------
# AU catalogue
# ---------------------------------------------------------------------------------------

#: Non-landmark render parameters an AU can drive (0 = absent; 1 = full at intensity 1).
RENDER_PARAMS: Final[tuple[str, ...]] = (
    "forehead_center",  # horizontal forehead furrows, middle (AU1)
    "forehead_lateral",  # horizontal forehead furrows, sides (AU2)
    "glabella",  # vertical furrows between the brows (AU4)
    "cheek_bulge",  # raised, bulging cheeks and lower-lid bags (AU6)
    "crows_feet",  # wrinkles fanning from the outer eye corners (AU6)
    "nose_wrinkle",  # horizontal wrinkles on the nasal root and sides (AU9)
    "nasolabial",  # depth of the nasolabial furrow (AU11, also AU9/10/12)
    "chin_boss",  # raised, wrinkled chin boss (AU17)
    "funnel",  # protruding, rounded lips (AU22)
    "lip_tight",  # narrowed, tense lip red (AU23)
    "lip_press",  # pressed lips with bulges above and below (AU24)
    "cheek_hollow",  # hollowed cheeks of a stretched mouth (AU27)
)


@dataclass(frozen=True)
class ProceduralAU:
    """One action unit of the procedural face.

    Attributes
    ----------
    au : int
        FACS number.
    name : str
        FACS name.
    displacement : numpy.ndarray
        ``(68, 2)`` landmark displacement at intensity 1, canonical units (scaled
        linearly by the intensity, summed over AUs).
    params : Mapping[str, float]
        Render parameters (names in :data:`RENDER_PARAMS`) at intensity 1.
    movement : str
        What moves, in words (used by the docs table).
    """

    au: int
    name: str
    displacement: np.ndarray
    params: Mapping[str, float] = field(default_factory=dict)
    movement: str = ""


def _catalogue() -> dict[int, ProceduralAU]:
    F = _field  # short alias keeps the tables readable
    cat = [
        ProceduralAU(
            1, "inner brow raiser",
            F({21: (0.0, -0.19), 20: (0.0, -0.13), 19: (0.0, -0.065), 18: (0.0, -0.02)}),
            {"forehead_center": 1.0},
            "inner brow ends up (brows oblique); furrows in the middle of the forehead",
        ),
        ProceduralAU(
            2, "outer brow raiser",
            F({17: (0.01, -0.14), 18: (0.0, -0.14), 19: (0.0, -0.10), 20: (0.0, -0.05),
               21: (0.0, -0.015)}),
            {"forehead_lateral": 1.0},
            "outer brows up (arched); furrows on the sides of the forehead",
        ),
        ProceduralAU(
            4, "brow lowerer",
            F({21: (-0.075, 0.085), 20: (-0.05, 0.08), 19: (-0.025, 0.055),
               18: (-0.01, 0.03), 17: (0.0, 0.012), 37: (0.0, 0.012), 38: (0.0, 0.018)}),
            {"glabella": 1.0},
            "brows down and pulled together (inner ends most); vertical furrows between them",
        ),
        ProceduralAU(
            5, "upper lid raiser",
            F({37: (0.0, -0.07), 38: (0.0, -0.07), 36: (0.0, -0.012), 39: (0.0, -0.008)}),
            {},
            "upper lids up: white of the eye shows above the iris",
        ),
        ProceduralAU(
            6, "cheek raiser",
            F({40: (0.0, -0.045), 41: (0.0, -0.055), 36: (0.01, -0.015), 37: (0.0, 0.01),
               17: (0.0, 0.04), 18: (0.0, 0.02), 48: (0.0, -0.02), 60: (0.0, -0.015),
               4: (0.01, -0.015), 3: (0.01, -0.01)}),
            {"cheek_bulge": 1.0, "crows_feet": 1.0, "nasolabial": 0.35},
            "cheeks up and bulging, lower lids pushed up, crow's feet at the eye corners",
        ),
        ProceduralAU(
            7, "lid tightener",
            F({40: (0.0, -0.055), 41: (0.0, -0.05), 37: (0.0, 0.012), 38: (0.0, 0.015),
               36: (0.0, -0.008), 39: (0.0, -0.006)}),
            {},
            "lower lids up and straightened, eye aperture narrowed",
        ),
        ProceduralAU(
            9, "nose wrinkler",
            F({31: (0.015, -0.07), 32: (0.0, -0.06), 33: (0.0, -0.055), 30: (0.0, -0.03),
               29: (0.0, -0.012), 21: (-0.02, 0.07), 20: (-0.01, 0.045), 19: (0.0, 0.02),
               40: (0.0, -0.02), 41: (0.0, -0.015), 49: (0.0, -0.045), 50: (0.0, -0.05),
               51: (0.0, -0.045), 61: (0.0, -0.02), 62: (0.0, -0.015), 48: (0.0, -0.01)}),
            {"nose_wrinkle": 1.0, "nasolabial": 0.7},
            "nose wings and upper lip pulled up, wrinkles on the nasal root, inner brows down",
        ),
        ProceduralAU(
            10, "upper lip raiser",
            F({49: (0.01, -0.09), 50: (0.0, -0.10), 51: (0.0, -0.095), 61: (0.0, -0.10),
               62: (0.0, -0.095), 60: (0.0, -0.03), 48: (0.0, -0.03), 31: (0.01, -0.03),
               32: (0.0, -0.02)}),
            {"nasolabial": 0.7},
            "upper lip raised (its centre most), showing the upper teeth; nasolabial furrow "
            "deepened",
        ),
        ProceduralAU(
            11, "nasolabial deepener",
            F({49: (0.015, -0.035), 48: (0.01, -0.015), 50: (0.0, -0.02), 61: (0.0, -0.015),
               60: (0.01, -0.01)}),
            {"nasolabial": 1.0},
            "nasolabial furrow deepened, lateral upper lip pulled up a little",
        ),
        ProceduralAU(
            12, "lip corner puller",
            F({48: (0.13, -0.13), 60: (0.12, -0.12), 49: (0.06, -0.06), 59: (0.06, -0.035),
               61: (0.03, -0.055), 67: (0.03, 0.03), 50: (0.015, -0.025), 58: (0.015, 0.035),
               62: (0.0, -0.045), 66: (0.0, 0.065), 57: (0.0, 0.045), 51: (0.0, -0.015),
               41: (0.0, -0.012), 40: (0.0, -0.01), 4: (0.01, -0.02), 5: (0.01, -0.01)}),
            {"nasolabial": 1.0, "cheek_bulge": 0.35},
            "lip corners pulled up and out (a smile), lower lip curved; the lips part a "
            "little, showing the teeth; nasolabial furrow deepened",
        ),
        ProceduralAU(
            15, "lip corner depressor",
            F({48: (0.015, 0.12), 60: (0.015, 0.11), 49: (0.0, 0.04), 59: (0.0, 0.06),
               61: (0.0, 0.02), 67: (0.0, 0.02), 58: (0.0, 0.02), 57: (0.0, -0.005)}),
            {},
            "lip corners pulled down (the mouth turns down)",
        ),
        ProceduralAU(
            16, "lower lip depressor",
            F({57: (0.0, 0.11), 58: (0.01, 0.11), 59: (0.02, 0.07), 66: (0.0, 0.12),
               67: (0.015, 0.11), 48: (0.005, 0.02), 60: (0.0, 0.02)}),
            {},
            "lower lip pulled down (and a little out), showing the lower teeth",
        ),
        ProceduralAU(
            17, "chin raiser",
            F({57: (0.0, -0.06), 58: (0.0, -0.055), 59: (0.0, -0.03), 66: (0.0, -0.03),
               67: (0.0, -0.025), 62: (0.0, -0.025), 61: (0.0, -0.02), 51: (0.0, -0.025),
               50: (0.0, -0.02), 48: (0.0, 0.03), 60: (0.0, 0.025), 8: (0.0, -0.03),
               7: (0.0, -0.025), 6: (0.0, -0.01)}),
            {"chin_boss": 1.0},
            "chin boss pushed up (wrinkled), lower lip pushed up, mouth arched downwards",
        ),
        ProceduralAU(
            20, "lip stretcher",
            F({48: (0.13, 0.03), 60: (0.12, 0.03), 49: (0.06, 0.02), 59: (0.06, 0.0),
               61: (0.03, 0.01), 67: (0.03, 0.0), 50: (0.015, 0.01), 58: (0.015, -0.01),
               57: (0.0, -0.012), 51: (0.0, 0.008), 5: (0.015, 0.0), 4: (0.015, 0.0)}),
            {"cheek_hollow": 0.3},
            "lip corners pulled sideways, lips stretched flat and wide",
        ),
        ProceduralAU(
            22, "lip funneler",
            F({48: (-0.13, 0.0), 60: (-0.16, 0.0), 49: (-0.06, -0.05), 59: (-0.06, 0.06),
               50: (-0.02, -0.05), 58: (-0.02, 0.07), 51: (0.0, -0.05), 57: (0.0, 0.07),
               61: (-0.07, -0.035), 62: (0.0, -0.04), 67: (-0.07, 0.045), 66: (0.0, 0.055)}),
            {"funnel": 1.0},
            "lips pushed forward into a round funnel, corners drawn in, a round opening",
        ),
        ProceduralAU(
            23, "lip tightener",
            F({48: (-0.05, 0.0), 60: (-0.05, 0.0), 49: (-0.025, 0.035), 50: (-0.01, 0.04),
               51: (0.0, 0.04), 59: (-0.025, -0.04), 58: (-0.01, -0.05), 57: (0.0, -0.05),
               61: (-0.02, 0.0), 67: (-0.02, 0.0)}),
            {"lip_tight": 1.0},
            "lips narrowed and tightened: the red of the lips thinner, corners drawn in",
        ),
        ProceduralAU(
            24, "lip pressor",
            F({49: (0.0, 0.045), 50: (0.0, 0.05), 51: (0.0, 0.05), 59: (0.0, -0.05),
               58: (0.0, -0.06), 57: (0.0, -0.06), 48: (-0.02, 0.0), 60: (-0.02, 0.0),
               61: (0.0, 0.008), 62: (0.0, 0.008), 67: (0.0, 0.004), 66: (0.0, 0.004)}),
            {"lip_press": 1.0},
            "lips pressed together: flattened and thinner, bulges above and below",
        ),
        ProceduralAU(
            25, "lips part",
            F({61: (0.0, -0.03), 62: (0.0, -0.035), 67: (0.0, 0.05), 66: (0.0, 0.055),
               60: (-0.01, 0.0), 57: (0.0, 0.04), 58: (0.0, 0.04), 59: (0.0, 0.02),
               50: (0.0, -0.01), 51: (0.0, -0.01)}),
            {},
            "lips parted, the teeth show",
        ),
        ProceduralAU(
            26, "jaw drop",
            F({8: (0.0, 0.26), 7: (0.0, 0.25), 6: (-0.01, 0.2), 5: (-0.01, 0.14),
               4: (0.0, 0.075), 3: (0.0, 0.025), 57: (0.0, 0.25), 58: (-0.005, 0.24),
               59: (-0.01, 0.17), 66: (0.0, 0.26), 67: (-0.01, 0.23), 48: (-0.015, 0.07),
               60: (-0.02, 0.075), 61: (0.0, -0.01), 62: (0.0, -0.01)}),
            {},
            "jaw lowered: chin and lower lip down, the mouth opens (relaxed)",
        ),
        ProceduralAU(
            27, "mouth stretch",
            F({8: (0.0, 0.40), 7: (-0.01, 0.38), 6: (-0.02, 0.31), 5: (-0.025, 0.21),
               4: (-0.01, 0.11), 3: (0.0, 0.04), 57: (0.0, 0.38), 58: (-0.01, 0.37),
               59: (-0.03, 0.27), 66: (0.0, 0.38), 67: (-0.02, 0.35), 48: (-0.05, 0.12),
               60: (-0.06, 0.12), 49: (-0.01, -0.02), 50: (0.0, -0.03), 51: (0.0, -0.03),
               61: (0.0, -0.04), 62: (0.0, -0.04)}),
            {"cheek_hollow": 1.0},
            "jaw pulled far down: the mouth stretched open vertically, corners drawn in",
        ),
    ]
    return {a.au: a for a in cat}


#: The 20 study AUs of the procedural face: AU number -> :class:`ProceduralAU`.
AU_CATALOGUE_PROCEDURAL: Final[dict[int, ProceduralAU]] = _catalogue()


def validate_aus(aus: Mapping[int, float]) -> dict[int, float]:
    """Check an AU -> intensity mapping and return it as a plain dict.

    Parameters
    ----------
    aus : Mapping[int, float]
        FACS number -> intensity in ``[0, 1]``. AUs not listed are off.

    Returns
    -------
    dict[int, float]
        The same mapping with ``int`` keys and ``float`` values.

    Raises
    ------
    ValueError
        When an AU is not one of the 20 study AUs, or an intensity is not a finite
        number in ``[0, 1]``.
    """
    if not isinstance(aus, Mapping):
        raise ValueError(f"aus must be a mapping AU -> intensity, got {type(aus).__name__}")
    out: dict[int, float] = {}
    for key, value in aus.items():
        if isinstance(key, bool) or not isinstance(key, int | np.integer):
            raise ValueError(f"AU keys must be integers, got {key!r}")
        au = int(key)
        if au not in AU_CATALOGUE_PROCEDURAL:
            raise ValueError(
                f"unknown AU {au}: the procedural face has the 20 study AUs "
                f"{', '.join(str(a) for a in STUDY_AUS)}"
            )
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"AU{au} intensity must be a number, got {value!r}") from None
        if not math.isfinite(v) or v < 0.0 or v > 1.0:
            raise ValueError(f"AU{au} intensity must be in 0..1, got {value!r}")
        out[au] = v
    return out


def render_params(aus: Mapping[int, float]) -> dict[str, float]:
    """Return the non-landmark render parameters driven by ``aus``.

    Parameters
    ----------
    aus : Mapping[int, float]
        AU -> intensity (validated).

    Returns
    -------
    dict[str, float]
        Every name in :data:`RENDER_PARAMS` -> its summed value (clipped to ``[0, 1.5]``).
    """
    aus = validate_aus(aus)
    out = dict.fromkeys(RENDER_PARAMS, 0.0)
    for au in STUDY_AUS:  # fixed order: the same sum whatever the mapping's order
        v = aus.get(au, 0.0)
        if v > 0.0:
            for k, w in AU_CATALOGUE_PROCEDURAL[au].params.items():
                out[k] += w * v
    return {k: min(v, 1.5) for k, v in out.items()}


# ---------------------------------------------------------------------------------------
# Identity
# ---------------------------------------------------------------------------------------

_SKIN_DARK = np.array([0.36, 0.24, 0.18])
_SKIN_LIGHT = np.array([0.94, 0.79, 0.69])


@dataclass(frozen=True)
class FaceIdentity:
    """Who is drawn, and how the head sits in the picture.

    Attributes
    ----------
    shape : tuple[float, ...]
        One coefficient per identity mode (:data:`IDENTITY_MODES`, in order), in
        standard deviations, each in ``[-3, 3]``.
    sex : {"F", "M"}
        Sets brow thickness and the hair style default; ``random`` also shifts the
        shape coefficients a little (wider jaw for "M", fuller lips for "F").
    skin_tone : float
        0 (dark) .. 1 (light) skin albedo.
    hair_gray : float
        Hair brightness 0 (black) .. 1 (blond/white).
    hair_style : int
        0 short, 1 chin length, 2 long.
    hairline : float
        Hairline height offset in canonical units (``-0.15 .. 0.15``, positive = higher).
    iris_gray : float
        Iris brightness 0 .. 1.
    background_gray : float
        Background brightness 0 .. 1 (an evenly lit studio wall).
    clothing_gray : float
        Brightness of the shoulders' clothing 0 .. 1.
    roll : float
        In-plane head rotation in degrees (``-15 .. 15``; positive turns the face
        clockwise on screen).
    yaw : float
        Pseudo-yaw ``-1 .. 1``: the features slide sideways on the head outline
        (nose most), as in a small turn of the head (1 ~ 10 degrees).
    shift : tuple[float, float]
        Head offset ``(dx, dy)`` as a fraction of the image side (each ``-0.1 .. 0.1``).
    scale : float
        Head size factor (``0.8 .. 1.2``; 1 makes the face about 55% of the width).
    texture_seed : int
        Seed of the fine skin and hair texture.
    """

    shape: tuple[float, ...] = (0.0,) * len(_MODE_NAMES)
    sex: Literal["F", "M"] = "F"
    skin_tone: float = 0.65
    hair_gray: float = 0.25
    hair_style: int = 1
    hairline: float = 0.0
    iris_gray: float = 0.35
    background_gray: float = 0.62
    clothing_gray: float = 0.3
    roll: float = 0.0
    yaw: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    scale: float = 1.0
    texture_seed: int = 0

    def __post_init__(self) -> None:
        shape = tuple(float(v) for v in self.shape)
        if len(shape) != len(_MODE_NAMES):
            raise ValueError(
                f"shape needs {len(_MODE_NAMES)} coefficients ({', '.join(_MODE_NAMES)}), "
                f"got {len(shape)}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "shift", (float(self.shift[0]), float(self.shift[1])))
        checks: list[tuple[str, float, float, float]] = [
            ("skin_tone", self.skin_tone, 0.0, 1.0),
            ("hair_gray", self.hair_gray, 0.0, 1.0),
            ("iris_gray", self.iris_gray, 0.0, 1.0),
            ("background_gray", self.background_gray, 0.0, 1.0),
            ("clothing_gray", self.clothing_gray, 0.0, 1.0),
            ("hairline", self.hairline, -0.15, 0.15),
            ("roll", self.roll, -15.0, 15.0),
            ("yaw", self.yaw, -1.0, 1.0),
            ("shift[0]", self.shift[0], -0.1, 0.1),
            ("shift[1]", self.shift[1], -0.1, 0.1),
            ("scale", self.scale, 0.8, 1.2),
        ] + [(f"shape[{i}] ({n})", v, -3.0, 3.0) for i, (n, v) in
             enumerate(zip(_MODE_NAMES, shape, strict=True))]
        for name, value, lo, hi in checks:
            if not (math.isfinite(float(value)) and lo <= float(value) <= hi):
                raise ValueError(f"FaceIdentity.{name} must be in {lo}..{hi}, got {value!r}")
        if self.sex not in ("F", "M"):
            raise ValueError(f"FaceIdentity.sex must be 'F' or 'M', got {self.sex!r}")
        if self.hair_style not in (0, 1, 2):
            raise ValueError(f"FaceIdentity.hair_style must be 0, 1 or 2, got {self.hair_style!r}")

    @classmethod
    def default(cls) -> FaceIdentity:
        """Return the average face: mean shape, mid skin tone, frontal and centred."""
        return cls()

    @classmethod
    def random(cls, rng: np.random.Generator, sex: Literal["F", "M"] | None = None,
               pose: bool = True) -> FaceIdentity:
        """Draw a random adult identity.

        Parameters
        ----------
        rng : numpy.random.Generator
            Source of randomness (the only one used).
        sex : {"F", "M"}, optional
            Fixed sex; drawn 50/50 when None.
        pose : bool
            Draw a small head pose (roll within about 4 degrees, a little yaw, shift
            and scale); ``False`` leaves the head frontal and centred.

        Returns
        -------
        FaceIdentity
        """
        s: Literal["F", "M"] = sex if sex is not None else ("F" if rng.random() < 0.5 else "M")
        coef = np.clip(rng.normal(0.0, 1.0, len(_MODE_NAMES)), -2.5, 2.5)
        bias = {"jaw_width": 0.6, "face_width": 0.3, "lip_thickness": -0.5, "brow_height": -0.4}
        sign = 1.0 if s == "M" else -1.0
        for k, b in bias.items():
            coef[_MODE_NAMES.index(k)] += sign * b
        coef = np.clip(coef, -3.0, 3.0)
        style = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1] if s == "M" else [0.15, 0.4, 0.45]))
        u = rng.random(9)
        roll, yaw, dx, dy, sc = (0.0, 0.0, 0.0, 0.0, 1.0)
        if pose:
            roll = float(np.clip(rng.normal(0.0, 2.0), -6.0, 6.0))
            yaw = float(np.clip(rng.normal(0.0, 0.25), -0.7, 0.7))
            dx = float(np.clip(rng.normal(0.0, 0.015), -0.04, 0.04))
            dy = float(np.clip(rng.normal(0.0, 0.015), -0.04, 0.04))
            sc = float(np.clip(rng.normal(1.0, 0.03), 0.92, 1.08))
        return cls(
            shape=tuple(float(v) for v in coef),
            sex=s,
            skin_tone=float(0.15 + 0.8 * u[0]),
            hair_gray=float(0.05 + 0.7 * u[1] ** 1.5),
            hair_style=style,
            hairline=float(0.2 * (u[2] - 0.5)),
            iris_gray=float(0.15 + 0.5 * u[3]),
            background_gray=float(0.35 + 0.5 * u[4]),
            clothing_gray=float(0.1 + 0.7 * u[5]),
            roll=roll,
            yaw=yaw,
            shift=(dx, dy),
            scale=sc,
            texture_seed=int(rng.integers(0, 2**31 - 1)),
        )

    def skin_rgb(self) -> np.ndarray:
        """Return the skin albedo as RGB in ``[0, 1]``."""
        return _SKIN_DARK + (_SKIN_LIGHT - _SKIN_DARK) * self.skin_tone

    def hair_rgb(self) -> np.ndarray:
        """Return the hair albedo as RGB in ``[0, 1]``."""
        g = 0.04 + 0.8 * self.hair_gray
        return np.clip(g * np.array([1.05, 0.92, 0.72]) + 0.02, 0.0, 1.0)


# ---------------------------------------------------------------------------------------
# Landmarks
# ---------------------------------------------------------------------------------------

#: Pseudo-depth of each landmark (0 at the outline, 1 at the nose tip): how far it slides
#: sideways with ``yaw``.
_DEPTH: Final[np.ndarray] = np.clip(
    0.55 * np.sqrt(np.clip(1.0 - (MEAN_SHAPE[:, 0] / 1.05) ** 2, 0.0, 1.0)), 0.0, 1.0
)
_DEPTH[_NOSE] += np.array([0.1, 0.2, 0.3, 0.45, 0.2, 0.3, 0.35, 0.3, 0.2])
_DEPTH[_JAW] *= np.clip(MEAN_SHAPE[_JAW, 1] / 1.67, 0.0, 1.0) ** 2
_DEPTH.setflags(write=False)
_YAW_SHIFT: Final[float] = 0.09
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
    pts = MEAN_SHAPE + np.tensordot(np.asarray(identity.shape), _MODE_STACK, axes=1)
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
        pts[:, 0] += identity.yaw * _YAW_SHIFT * _DEPTH
    return pts


@dataclass(frozen=True)
class _Pose:
    """Similarity transform canonical -> image pixels."""

    scale: float  # pixels per canonical unit
    cos: float
    sin: float
    cx: float
    cy: float

    @classmethod
    def of(cls, identity: FaceIdentity, size: int) -> _Pose:
        s = size * _UNIT_FRACTION * identity.scale
        a = math.radians(identity.roll)
        return cls(s, math.cos(a), math.sin(a),
                   size * (0.5 + identity.shift[0]), size * (_EYE_LINE + identity.shift[1]))

    def apply(self, q: np.ndarray) -> np.ndarray:
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


def _check_size(size: int) -> int:
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
    size = _check_size(size)
    return _Pose.of(identity, size).apply(canonical_landmarks(identity, aus))


# ---------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------

_SS: Final[int] = 4  # super-sampling factor of the masks
_SHIFT: Final[int] = 3  # fixed-point bits of the OpenCV drawing calls


def _spline(points: np.ndarray, n: int = 6) -> np.ndarray:
    """Open Catmull-Rom curve through ``points`` (k, 2), ``n`` samples per segment."""
    p = np.asarray(points, dtype=np.float64)
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(len(p) - 1):
        p0, p1, p2, p3 = ext[i], ext[i + 1], ext[i + 2], ext[i + 3]
        out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                          + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-1][None])
    return np.vstack(out)


def _ellipse_pts(center: tuple[float, float] | np.ndarray, axes: tuple[float, float],
                 angle0: float = 0.0, angle1: float = 360.0, n: int = 48,
                 rot: float = 0.0) -> np.ndarray:
    """Points on an ellipse arc (angles in degrees, y down), rotated by ``rot`` degrees."""
    a = np.radians(np.linspace(angle0, angle1, n))
    x, y = axes[0] * np.cos(a), axes[1] * np.sin(a)
    c, s = math.cos(math.radians(rot)), math.sin(math.radians(rot))
    return np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], axis=1)


class _Mask:
    """Anti-aliased coverage in ``[0, 1]`` on a rectangular window of the output image."""

    __slots__ = ("a", "x0", "y0")

    def __init__(self, a: np.ndarray, y0: int, x0: int) -> None:
        self.a, self.y0, self.x0 = a, y0, x0

    @property
    def sl(self) -> tuple[slice, slice]:
        h, w = self.a.shape
        return slice(self.y0, self.y0 + h), slice(self.x0, self.x0 + w)

    def __mul__(self, other: float | _Mask) -> _Mask:
        if not isinstance(other, _Mask):
            return _Mask(self.a * np.float32(other), self.y0, self.x0)
        y0, x0 = max(self.y0, other.y0), max(self.x0, other.x0)
        y1 = min(self.y0 + self.a.shape[0], other.y0 + other.a.shape[0])
        x1 = min(self.x0 + self.a.shape[1], other.x0 + other.a.shape[1])
        if y1 <= y0 or x1 <= x0:
            return _Mask(np.zeros((0, 0), np.float32), 0, 0)
        a = self.a[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0]
        b = other.a[y0 - other.y0:y1 - other.y0, x0 - other.x0:x1 - other.x0]
        return _Mask(a * b, y0, x0)

    __rmul__ = __mul__

    def blur(self, sigma: float) -> _Mask:
        if self.a.size == 0 or sigma <= 0:
            return self
        return _Mask(cv2.GaussianBlur(self.a, (0, 0), sigma), self.y0, self.x0)

    def full(self, size: int) -> np.ndarray:
        out = np.zeros((size, size), np.float32)
        if self.a.size:
            out[self.sl] = self.a
        return out


class _Canvas:
    """Rasterises canonical-frame shapes into anti-aliased coverage masks."""

    def __init__(self, pose: _Pose, size: int) -> None:
        self.pose = pose
        self.size = size
        self.big = size * _SS

    def _px(self, q: np.ndarray) -> np.ndarray:
        p = (self.pose.apply(np.asarray(q, np.float64)) + 0.5) * _SS - 0.5
        return np.round(p * (1 << _SHIFT)).astype(np.int32)

    def _render(self, draw: Callable[[np.ndarray, list[np.ndarray]], object],
                pts: list[np.ndarray], pad: int) -> _Mask:
        allp = np.vstack(pts).astype(np.float64) / (1 << _SHIFT)
        x0 = max(int(allp[:, 0].min()) - pad, 0) // _SS * _SS
        y0 = max(int(allp[:, 1].min()) - pad, 0) // _SS * _SS
        x1 = min((int(allp[:, 0].max()) + pad + 2 * _SS) // _SS * _SS, self.big)
        y1 = min((int(allp[:, 1].max()) + pad + 2 * _SS) // _SS * _SS, self.big)
        if x1 <= x0 or y1 <= y0:
            return _Mask(np.zeros((0, 0), np.float32), 0, 0)
        sub = np.zeros((y1 - y0, x1 - x0), np.uint8)
        off = np.array([x0, y0], np.int32) << _SHIFT
        draw(sub, [p - off for p in pts])
        w, h = (x1 - x0) // _SS, (y1 - y0) // _SS
        small = cv2.resize(sub, (w, h), interpolation=cv2.INTER_AREA)
        return _Mask(small.astype(np.float32) * np.float32(1.0 / 255.0), y0 // _SS, x0 // _SS)

    def poly(self, *polys: np.ndarray, pad: float = 0.0) -> _Mask:
        """Coverage of the filled polygon(s); ``pad`` widens the window (canonical units)."""
        pts = [self._px(p) for p in polys]
        extra = int(pad * self.pose.scale * _SS)
        def draw(im: np.ndarray, pp: list[np.ndarray]) -> None:
            for q in pp:  # one call each: OpenCV fills overlaps of one call even-odd
                cv2.fillPoly(im, [q], 255, cv2.LINE_8, _SHIFT)

        return self._render(draw, pts, 2 * _SS + extra)

    def line(self, curve: np.ndarray, width: float) -> _Mask:
        """Coverage of a stroked open polyline, ``width`` in canonical units."""
        th = max(1, int(round(width * self.pose.scale * _SS)))
        pts = [self._px(curve)]
        return self._render(
            lambda im, pp: cv2.polylines(im, pp, False, 255, th, cv2.LINE_8, _SHIFT),
            pts, th + 2 * _SS)


def _over(img: np.ndarray, m: _Mask, color: np.ndarray) -> None:
    """Composite ``color`` over ``img`` with coverage ``m``.

    ``color`` is an RGB triple, an ``(h, w, 3)`` array the size of the mask's window, or a
    full-image ``(H, W, 3)`` array.
    """
    if m.a.size == 0:
        return
    sl = m.sl
    sub = img[sl]
    col = color if color.ndim == 1 or color.shape[:2] == m.a.shape else color[sl]
    sub += m.a[..., None] * (col - sub)


class _Grid:
    """Canonical coordinates of the output pixels, with windowed field updates."""

    def __init__(self, pose: _Pose, size: int) -> None:
        self.pose, self.size = pose, size
        self.U, self.V = pose.grid(size)

    def win(self, c: np.ndarray | tuple[float, float], rx: float,
            ry: float) -> tuple[slice, slice]:
        """Pixel window covering the canonical box ``c +- (rx, ry)``."""
        box = np.array([(c[0] - rx, c[1] - ry), (c[0] + rx, c[1] - ry),
                        (c[0] - rx, c[1] + ry), (c[0] + rx, c[1] + ry)])
        p = self.pose.apply(box)
        x0 = min(max(int(p[:, 0].min()), 0), self.size)
        y0 = min(max(int(p[:, 1].min()), 0), self.size)
        x1 = min(max(int(p[:, 0].max()) + 2, 0), self.size)
        y1 = min(max(int(p[:, 1].max()) + 2, 0), self.size)
        return slice(y0, y1), slice(x0, x1)

    def gauss(self, out: np.ndarray, amp: float, c: np.ndarray | tuple[float, float],
              sx: float, sy: float) -> None:
        """``out += amp * exp(-((u-cx)/sx)^2/2 - ((v-cy)/sy)^2/2)`` within 3.5 sigma."""
        if amp == 0.0:
            return
        sl = self.win(c, 3.5 * sx, 3.5 * sy)
        u, v = self.U[sl], self.V[sl]
        du, dv = (u - np.float32(c[0])) / np.float32(sx), (v - np.float32(c[1])) / np.float32(sy)
        out[sl] += np.float32(amp) * np.exp(np.float32(-0.5) * (du * du + dv * dv))


def _seg_dist(u: np.ndarray, v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from every grid point to the segment a-b (canonical units)."""
    d = b - a
    t = np.clip(((u - a[0]) * d[0] + (v - a[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(u - (a[0] + t * d[0]), v - (a[1] + t * d[1]))


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


_LIGHT: Final[np.ndarray] = np.array([-0.35, -0.5, 1.0]) / np.linalg.norm([-0.35, -0.5, 1.0])
_HALF: Final[np.ndarray] = (_LIGHT + (0.0, 0.0, 1.0)) / np.linalg.norm(_LIGHT + (0.0, 0.0, 1.0))


def _shade(h: np.ndarray, px_per_unit: float) -> tuple[np.ndarray, np.ndarray]:
    """Lambert diffuse and Blinn specular terms of a height field (canonical units)."""
    gy, gx = np.gradient(h)
    gx *= px_per_unit
    gy *= px_per_unit
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)
    ndl = (-gx * _LIGHT[0] - gy * _LIGHT[1] + _LIGHT[2]) * inv
    ndh = (-gx * _HALF[0] - gy * _HALF[1] + _HALF[2]) * inv
    diffuse = np.clip(ndl, 0.0, 1.0)
    spec = np.clip(ndh, 0.0, 1.0) ** 16
    return diffuse.astype(np.float32), spec.astype(np.float32)


def _noise(rng: np.random.Generator, size: int, cells: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in about [-1, 1] (cubic-upsampled Gaussian cells)."""
    small = rng.normal(0.0, 1.0, (cells[0], cells[1])).astype(np.float32)
    big = cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(big, -2.5, 2.5) / np.float32(2.5)


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
    size = _check_size(size)
    aus = validate_aus(aus)
    prm = render_params(aus)
    lm = canonical_landmarks(identity, aus)
    pose = _Pose.of(identity, size)
    img = _Painter(identity, lm, prm, pose, size).paint()
    rgb = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if color:
        return rgb
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class _Painter:
    """Draws one face: layers back to front, shading from a height field."""

    def __init__(self, ident: FaceIdentity, lm: np.ndarray, prm: Mapping[str, float],
                 pose: _Pose, size: int) -> None:
        self.ident, self.L, self.prm, self.pose, self.size = ident, lm, prm, pose, size
        self.cv = _Canvas(pose, size)
        self.grid = _Grid(pose, size)
        self.U, self.V = self.grid.U, self.grid.V
        self.rng = np.random.default_rng(ident.texture_seed)
        self.skin = ident.skin_rgb().astype(np.float32)
        self.hair = ident.hair_rgb().astype(np.float32)
        self.fw = 1.0 + 0.06 * ident.shape[0]  # face width factor (the skull follows the jaw)
        self.yaw_dx = ident.yaw * _YAW_SHIFT * 0.3
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
        sh = self.cv.poly(_ellipse_pts((0.0, 3.6), (2.7 * fw, 1.5), 180, 360, 40))
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
            shade = (0.58 + 0.18 * _smoothstep(1.5, 2.5, v) - 0.14 * np.abs(u + 0.2) / fw
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
            fine = _noise(self.rng, self.size, (24, 24))
            r = np.hypot(self.U - crown[0], self.V - crown[1])
            s *= _smoothstep(0.05, 0.5, r)
            self._hair_tex = (0.85 + 0.09 * s + 0.06 * fine).astype(np.float32)
        return self._hair_tex

    def _hair_light(self, region: _Mask) -> np.ndarray:
        u, v = self.U[region.sl], self.V[region.sl]
        r2 = np.clip((u / (1.15 * self.fw)) ** 2 + ((v + 0.3) / 1.5) ** 2, 0, 1)
        nz = np.sqrt(1.0 - r2)
        lam = np.clip(-0.35 * u / 1.2 - 0.5 * (v + 0.3) / 1.5 + nz, 0.0, 1.3) / 1.3
        sheen = 0.12 * np.exp(-0.5 * ((np.hypot(u + 0.35, v + 1.05) - 0.25) / 0.1) ** 2)
        return (0.35 + 0.6 * lam + sheen).astype(np.float32)

    def _paint_hair(self, m: _Mask, dim: float = 1.0) -> None:
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
        parts = [_ellipse_pts((self.yaw_dx, c_y - 0.15), (hw + 0.15 * fw, c_y - top + 0.05),
                              0, 360, 48)]
        if style >= 1:
            bottom = 1.0 if style == 1 else 2.3
            w = hw + 0.17 * fw
            side = _spline(np.array([(w, c_y - 0.3), (w + 0.04, 0.5 * (c_y + bottom)),
                                     (w - 0.02, bottom - 0.1), (w - 0.25, bottom + 0.05),
                                     (0.5, bottom + 0.1)]), 6)
            mirror = side[::-1] * (-1.0, 1.0)
            parts.append(np.vstack([side, mirror]))
        m = self.cv.poly(*parts)  # the union of the parts
        self._paint_hair(m, 0.7)

    def _head(self) -> None:
        L, U, V, s = self.L, self.U, self.V, self.pose.scale
        c_y, hw, top = self._skull()
        cran = _ellipse_pts((self.yaw_dx * 0.5, c_y), (hw, c_y - top), 180.0, 360.0, 40)
        cran[:, 0] += np.linspace(L[0, 0] - cran[0, 0], L[16, 0] - cran[-1, 0], len(cran))
        head_poly = np.vstack([_spline(L[_JAW], 5), cran[-2:0:-1]])
        ears = self.cv.poly(
            _ellipse_pts((L[0, 0] - 0.05, 0.3), (0.13, 0.3), 0, 360, 24, rot=-8),
            _ellipse_pts((L[16, 0] + 0.05, 0.3), (0.13, 0.3), 0, 360, 24, rot=8))
        head = self.cv.poly(head_poly)
        # height field: rounded silhouette + a broad ellipsoid + the features
        solid = (head.full(self.size) > 0.5).astype(np.uint8) * 255
        dist = cv2.distanceTransform(solid, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) / s
        dd = np.clip(dist / 0.55, 0.0, 1.0)
        H = 0.45 * np.sqrt(1.0 - (1.0 - dd) ** 2)
        H = cv2.GaussianBlur(H.astype(np.float32), (0, 0), 0.09 * s)
        H += 0.35 * np.sqrt(np.clip(1.0 - ((U - self.yaw_dx) / 1.3) ** 2
                                    - ((V - 0.1) / 2.2) ** 2, 0.0, 1.0))
        self._features_height(H)
        H = cv2.GaussianBlur(H, (0, 0), 0.5)
        diffuse, spec = _shade(H, s)
        self.light = 0.3 + 0.78 * diffuse
        blotch = 1.0 + 0.03 * _noise(self.rng, self.size, (20, 20))
        self.skin_col = (self.skin * (self.light * blotch)[..., None]
                         + (0.07 * spec)[..., None])
        if ears.a.size:
            u = U[ears.sl]
            ear_shade = 0.6 + 0.12 * np.clip(1.0 - np.abs(np.abs(u) - 1.0) / 0.15, 0, 1)
            self.img[ears.sl] += ears.a[..., None] * (
                self.skin * ear_shade[..., None] - self.img[ears.sl])
        _over(self.img, head, self.skin_col)

    def _features_height(self, H: np.ndarray) -> None:
        """Add the features' relief (canonical units) to the height field ``H``."""
        L, prm, U, V, g = self.L, self.prm, self.U, self.V, self.grid
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
                win = (_smoothstep(0.05, 0.1, r) * _smoothstep(0.28, 0.14, r)
                       * _smoothstep(0.0, 0.05, sgn * du) * _smoothstep(1.3, 0.8, np.abs(ang)))
                H[sl] -= 0.007 * cf * win * (1 + np.cos(ang * 12.0))
        # forehead furrows
        fc, fl = prm["forehead_center"], prm["forehead_lateral"]
        if fc > 0 or fl > 0:
            brow_y = 0.5 * (L[19, 1] + L[24, 1])
            sl = g.win((0.0, brow_y - 0.35), 1.0, 0.35)
            u, v = U[sl], V[sl]
            band = _smoothstep(brow_y - 0.62, brow_y - 0.45, v) * _smoothstep(
                brow_y - 0.1, brow_y - 0.2, v)
            wx = fc * np.exp(-((u / 0.35) ** 2)) + fl * _smoothstep(0.15, 0.45, np.abs(u)) * (
                _smoothstep(0.95, 0.7, np.abs(u)))
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
        inside = _smoothstep(top[1] - 0.1, top[1] + 0.05, v) * _smoothstep(tip[1] + 0.12,
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
            d = _seg_dist(u, v, a, b)
            beside = _smoothstep(-0.02, 0.03, sgn * (u - 0.5 * (a[0] + b[0])))
            H[sl] -= depth * np.exp(-((d / 0.045) ** 2))
            along = _smoothstep(b[1] + 0.02, b[1] - 0.15, v)  # no bulge past the corner
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
            bumps = np.random.default_rng(self.ident.texture_seed + 17).normal(
                0.0, 1.0, (14, 14)).astype(np.float32)
            n = cv2.resize(bumps, (self.size, self.size), interpolation=cv2.INTER_CUBIC)[sl]
            u, v = U[sl], V[sl]
            win = np.exp(-0.5 * (((u - chin_c[0]) / 0.18) ** 2 + ((v - chin_c[1]) / 0.1) ** 2))
            H[sl] += 0.012 * cb * n * win

    def _eyes(self) -> None:
        L, U, V, cv = self.L, self.U, self.V, self.cv
        iris_rgb = (np.float32(self.ident.iris_gray) * np.array([0.95, 0.82, 0.65], np.float32)
                    + 0.03)
        lash = np.array([0.06, 0.05, 0.05], np.float32)
        for o, u1, u2, i, l2, l1 in ((36, 37, 38, 39, 40, 41), (45, 44, 43, 42, 47, 46)):
            upper = _spline(L[[o, u1, u2, i]], 8)
            lower = _spline(L[[i, l2, l1, o]], 8)
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
            iris = cv.poly(_ellipse_pts(c, (r_iris, r_iris), 0, 360, 36)) * eye
            if iris.a.size:
                u, v = U[iris.sl], V[iris.sl]
                rr = np.sqrt((u - c[0]) ** 2 + (v - c[1]) ** 2) / r_iris
                top_y = np.interp(u, xs[order], upper[order, 1])
                sh = np.clip(1.0 - (v - top_y) / 0.05, 0.0, 1.0)
                ring = 0.5 + 0.5 * (1.0 - np.clip(rr, 0, 1) ** 3) - 0.3 * sh
                _over(self.img, iris, iris_rgb * ring[..., None])
            pupil = cv.poly(_ellipse_pts(c, (0.034, 0.034), 0, 360, 24)) * eye
            _over(self.img, pupil, np.array([0.02, 0.02, 0.02], np.float32))
            glint = cv.poly(_ellipse_pts((c[0] - 0.024, c[1] - 0.024), (0.013, 0.013), 0, 360,
                                         16)) * eye
            _over(self.img, glint * 0.8, np.array([0.95, 0.95, 0.95], np.float32))
            # lash line (upper lid edge), lower lid line, upper-lid crease
            _over(self.img, cv.line(upper, 0.034).blur(0.4) * 0.92, lash)
            _over(self.img, cv.line(lower, 0.014) * 0.4, lash)
            brow = L[17:22] if o == 36 else L[22:27]
            bx = brow[:, 0]
            b_order = np.argsort(bx)
            brow_y = np.interp(upper[:, 0], bx[b_order], brow[b_order, 1])
            crease = upper.copy()
            crease[:, 1] = upper[:, 1] + 0.24 * (brow_y - upper[:, 1])
            crease = crease[3:-4] if o == 36 else crease[4:-3]
            _over(self.img, cv.line(crease, 0.016).blur(0.5) * 0.3, lash * 2.0)

    def _brows(self) -> None:
        col = self.hair * 0.7
        col = (col * min(1.0, 0.26 / float(col.max()))).astype(np.float32)
        thick = 1.15 if self.ident.sex == "M" else 0.9
        for idx in (slice(17, 22), slice(26, 21, -1)):  # outer -> inner
            c = _spline(self.L[idx], 6)
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
                _over(self.img, m * 0.9, col)

    def _nose(self) -> None:
        L = self.L
        dark = self.skin * 0.22
        for a, b, sgn in ((31, 32, -1.0), (35, 34, 1.0)):
            c = 0.45 * L[a] + 0.55 * L[b] + np.array([0.0, -0.012])
            m = self.cv.poly(_ellipse_pts(c, (0.04, 0.017), 0, 360, 24, rot=-14.0 * sgn),
                             pad=0.03).blur(0.6)
            _over(self.img, m * 0.7, dark)
            # alar crease around the nose wing
            arc = _ellipse_pts((L[a, 0] + sgn * 0.012, L[a, 1] - 0.035), (0.055, 0.065),
                               110 if sgn < 0 else -70, 230 if sgn < 0 else 50, 12)
            _over(self.img, self.cv.line(arc, 0.014).blur(0.5) * 0.3, dark)

    def _mouth(self) -> None:
        L, U, V, cv, prm = self.L, self.U, self.V, self.cv, self.prm
        lip_rgb = self.skin * np.array([0.82, 0.58, 0.58], np.float32)
        upper_out = _spline(L[[48, 49, 50, 51, 52, 53, 54]], 6)
        lower_out = _spline(L[[54, 55, 56, 57, 58, 59, 48]], 6)
        # the inner contour starts at the outer corners (landmarks 48/54, not 60/64)
        upper_in = np.vstack([L[48], _spline(L[[60, 61, 62, 63, 64]], 6), L[54]])
        lower_in = np.vstack([L[54], _spline(L[[64, 65, 66, 67, 60]], 6), L[48]])
        lips = cv.poly(np.vstack([upper_out, lower_out[1:-1]]), pad=0.05).blur(0.5)
        if lips.a.size:
            u, v = U[lips.sl], V[lips.sl]
            mid_y = np.interp(u, upper_in[:, 0], upper_in[:, 1])
            upper_part = _smoothstep(0.01, -0.01, v - mid_y)
            tight = 1.0 - 0.12 * min(prm["lip_tight"] + prm["lip_press"], 1.0)
            lit = (0.35 + 0.72 * self.light[lips.sl]) * tight * (1.0 - 0.25 * upper_part)
            lo_c = 0.5 * (L[57] + L[66])
            gloss = 0.08 * np.exp(-0.5 * (((u - lo_c[0] + 0.05) / 0.08) ** 2
                                          + ((v - lo_c[1] + 0.01) / 0.025) ** 2))
            col = lip_rgb * lit[..., None] + gloss[..., None]
            _over(self.img, lips * 0.92, (col))
        # the opening between the inner lips: cavity, teeth, tongue
        gap = float(np.max(L[[67, 66, 65], 1] - L[[61, 62, 63], 1]))
        if gap > 0.004:
            cav = cv.poly(np.vstack([upper_in, lower_in[1:-1]]))
            _over(self.img, cav, np.array([0.14, 0.045, 0.045], np.float32))
            if gap > 0.12:
                tongue = cv.poly(_ellipse_pts((L[66, 0], L[66, 1] - 0.015), (0.2, 0.09), 180,
                                              360, 24)) * cav
                _over(self.img, tongue * (0.9 * min((gap - 0.12) / 0.1, 1.0)),
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
                _over(self.img, t_up, (tooth * fade[..., None]))
                for k in (-0.16, -0.11, -0.055, 0.0, 0.055, 0.11, 0.16):
                    x = mx + k * half / 0.33
                    y0 = float(np.interp(x, upper_in[:, 0], upper_in[:, 1]))
                    tl = cv.line(np.array([(x, y0), (x, y0 + 0.085)]), 0.008) * t_up
                    _over(self.img, tl * 0.35, np.array([0.3, 0.28, 0.26], np.float32))
            lo_band = lower_in.copy()
            lo_band[:, 1] -= 0.06
            t_lo = cv.poly(np.vstack([lower_in, lo_band[::-1]])) * cav
            k = float(np.clip((gap - 0.05) / 0.1, 0.0, 1.0))
            if t_lo.a.size and k > 0:
                u = U[t_lo.sl]
                fade = 1.0 - 0.8 * np.clip(np.abs(u - mx) / (half * 1.05), 0.0, 1.0) ** 2
                _over(self.img, t_lo * k, (tooth * 0.72 * fade[..., None]))
        # the line between the lips, darkest at the corners
        _over(self.img, cv.line(upper_in, 0.02).blur(0.4) * 0.5, lip_rgb * 0.25)
        for j in (48, 54):
            cm = cv.poly(_ellipse_pts(L[j], (0.02, 0.012), 0, 360, 12), pad=0.03).blur(0.6)
            _over(self.img, cm * 0.25, lip_rgb * 0.3)

    def _hair_front(self) -> None:
        c_y, hw, top = self._skull()
        fw, hl = self.fw, self.ident.hairline
        y_side = 0.1
        a_side = math.degrees(math.asin(np.clip((y_side - c_y) / (c_y - top + 0.1), -1, 1)))
        cap = _ellipse_pts((self.yaw_dx * 0.5, c_y), (hw + 0.09 * fw, c_y - top + 0.1),
                           180.0 - a_side, 360.0 + a_side, 48)
        # hairline: from the right sideburn over the forehead to the left one
        hair_line = _spline(np.array([
            (hw + 0.02, y_side), (0.95 * hw, -0.4 - 0.5 * hl), (0.8 * hw, -0.72 - hl),
            (0.42, -0.92 - hl), (0.0, -0.97 - hl), (-0.42, -0.92 - hl),
            (-0.8 * hw, -0.72 - hl), (-0.95 * hw, -0.4 - 0.5 * hl), (-hw - 0.02, y_side),
        ]), 5)
        hair_line[:, 0] += self.yaw_dx * np.clip(1.0 - np.abs(hair_line[:, 0]), 0, 1)
        m = self.cv.poly(np.vstack([cap, hair_line]), pad=0.05).blur(0.6)
        self._paint_hair(m)
