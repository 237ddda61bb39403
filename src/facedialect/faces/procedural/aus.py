"""The procedural face's action units: landmark displacements and render parameters per AU."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from facedialect.faces.procedural.shape import symmetric_field
from facedialect.vocab import STUDY_AUS

__all__ = [
    "AU_CATALOGUE_PROCEDURAL",
    "RENDER_PARAMS",
    "ProceduralAU",
    "render_params",
    "validate_aus",
]

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
    F = symmetric_field  # short alias keeps the tables readable
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
