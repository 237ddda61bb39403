"""FACS action units as recipes in the ICT face model's blendshape weights.

Each AU is a fixed mix of the model's 53 ARKit-style blendshapes (the model's own AU
table, with AU23, AU25 and AU26 composed here, and some strengths tuned by eye on
renders; docs/faces-3d.md gives the reasons). An AU at intensity ``i`` contributes
``i * recipe``; several AUs add up linearly. AUs whose shapes come in ``_L``/``_R``
pairs also exist one-sided, as ``"12L"`` (the subject's left, image right) and
``"12R"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

__all__ = [
    "AU_CATALOGUE",
    "BLENDSHAPE_NAMES",
    "MODEL_AUS",
    "AUEntry",
    "au_keys",
    "au_weights",
    "parse_au_key",
]

#: The model's 53 blendshapes, in the order of ``FaceModel3D.expression_names``.
BLENDSHAPE_NAMES: Final[tuple[str, ...]] = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L",
    "browOuterUp_R", "cheekPuff_L", "cheekPuff_R", "cheekSquint_L", "cheekSquint_R",
    "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L",
    "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawForward", "jawLeft",
    "jawOpen", "jawRight", "mouthClose", "mouthDimple_L", "mouthDimple_R", "mouthFrown_L",
    "mouthFrown_R", "mouthFunnel", "mouthLeft", "mouthLowerDown_L", "mouthLowerDown_R",
    "mouthPress_L", "mouthPress_R", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmile_L", "mouthSmile_R",
    "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R", "noseSneer_L",
    "noseSneer_R",
)
_INDEX: Final[dict[str, int]] = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}


@dataclass(frozen=True)
class AUEntry:
    """One action unit.

    Attributes
    ----------
    number : int
        FACS number.
    name : str
        FACS name.
    recipe : dict[str, float]
        Blendshape name -> weight at intensity 1 (both sides).
    note : str
        Where the recipe comes from (model table, composed, tuned).
    """

    number: int
    name: str
    recipe: dict[str, float]
    note: str = "model table"

    @property
    def sided(self) -> bool:
        """True when every shape of the recipe has an ``_L``/``_R`` form."""
        return all(k.endswith(("_L", "_R")) for k in self.recipe)


def _both(shape: str, w: float) -> dict[str, float]:
    return {f"{shape}_L": w, f"{shape}_R": w}


#: FACS number -> entry: the 20 study AUs and AU14, AU18, AU28, AU45.
AU_CATALOGUE: Final[dict[int, AUEntry]] = {
    1: AUEntry(1, "inner brow raiser", _both("browInnerUp", 1.0)),
    2: AUEntry(2, "outer brow raiser", _both("browOuterUp", 1.0)),
    4: AUEntry(4, "brow lowerer", {**_both("browDown", 2.0), **_both("browInnerUp", -2.0)},
               "model table; weight 2.0 (browDown reads weakly at 1.0; it lowers the brow's "
               "middle more than its inner end) + browInnerUp -2.0: FACS AU4 pulls the inner "
               "brow down most and together, so that at E the brows slope down toward the "
               "nose in a V. browInnerUp -1.0 left the brows nearly level and the expression "
               "judge read photo-textured angry faces as neutral (0.20 correct on 20 London "
               "faces; 0.60 at -2.0, bench/realism.py; -2.5 made B's fearful unit tune to "
               "AU20 in the planted-difference validation). Glabellar furrows and a nasion "
               "crease are shaded (model3d.creases). With AU1 (1+4 in sadness and fear) the "
               "inner-brow lowering gives way to AU1's raise (the 1+4 rule in au_weights)"),
    5: AUEntry(5, "upper lid raiser", _both("eyeWide", 1.3),
               "model table; weight 1.3 so the sclera shows above the iris"),
    6: AUEntry(6, "cheek raiser", _both("cheekSquint", 1.31),
               "model table; weight 1.31 calibrated on the London set's 102 smiles "
               "(model3d.calibrate, bench/results/smile_calibration.json: intensity 1 is the "
               "95th-percentile smile). Crow's feet, infraorbital and nasolabial furrows "
               "shaded (model3d.creases)"),
    7: AUEntry(7, "lid tightener", _both("eyeSquint", 2.2),
               "model table; weight 2.2 for FACS E: the lower lid raised 4.6 mm and "
               "straightened (eyeSquint is subtle at 1.0 and AU5 cancels part of it)"),
    9: AUEntry(9, "nose wrinkler",
               {**_both("noseSneer", 1.3), "mouthShrugUpper": -0.4, **_both("browDown", 0.8),
                **_both("cheekSquint", 1.0), **_both("eyeSquint", 0.8)},
               "model table (noseSneer, 1.3 for FACS E: nose wings and the skin beside the "
               "nose pulled up) + FACS appearance: the medial brow lowered (browDown 0.8), "
               "the infraorbital triangle raised and the eye narrowed (cheekSquint 1.0, "
               "eyeSquint 0.8); noseSneer also raises the upper lip's middle (4.6 mm at "
               "1.3), parting the lips into a teeth show, which is AU10's: mouthShrugUpper "
               "-0.4 keeps 2.3 mm of it (FACS: AU9 raises the upper lip a little). "
               "Nose wrinkles, nasion crease, infraorbital and nasolabial furrows are "
               "shaded (model3d.creases)"),
    10: AUEntry(10, "upper lip raiser", {"mouthShrugUpper": 1.0, **_both("mouthUpperUp", 0.6)},
                "model table (mouthShrugUpper) + mouthUpperUp 0.6: FACS E raises the upper "
                "lip's centre and its sides (an angular upper lip), raises the nose wings and "
                "deepens the nasolabial furrow (shaded, model3d.creases)"),
    11: AUEntry(11, "nasolabial deepener", _both("mouthUpperUp", 0.6),
                "model table at 0.6 (kept below AU10's upper-lip lift)"),
    12: AUEntry(12, "lip corner puller",
                {**_both("mouthSmile", 0.73), **_both("mouthUpperUp", 0.303)},
                "calibrated on the London set's 102 neutral/smiling pairs (model3d.calibrate, "
                "bench/results/smile_calibration.json): the people's mean mix of mouthSmile "
                "and mouthUpperUp (the corners pulled up and out, the upper lip lifted with "
                "them), intensity 1 = the 95th-percentile smile. Nasolabial furrow shaded"),
    14: AUEntry(14, "dimpler", _both("mouthDimple", 1.0)),
    15: AUEntry(15, "lip corner depressor",
                {**_both("mouthFrown", 1.6), **_both("mouthStretch", 0.25),
                 **_both("mouthLowerDown", 0.15)},
                "model table; weight 1.6 (mouthFrown at 1.0 barely turns the corners down: "
                "a classic sad face was confused with neutral) + FACS E: the lower lip "
                "stretched laterally (mouthStretch 0.25) and pulled down slightly "
                "(mouthLowerDown 0.15; mouthFrown alone pushes the lower lip's middle up, "
                "AU17's movement). Bulges and a furrow below the lip corners are shaded "
                "(model3d.creases)"),
    16: AUEntry(16, "lower lip depressor", {**_both("mouthLowerDown", 1.0), "jawOpen": 0.2},
                "model table (mouthLowerDown) + jawOpen 0.2: FACS E pulls the lower lip down "
                "and exposes the lower teeth, which parts the lips (AU25) and lets the jaw "
                "drop a little; with the teeth closed, 9+15+16 showed a clenched bite that "
                "the expression judge read as angry (disgusted 0.05 correct on 20 London "
                "faces; 0.40 with the teeth apart, bench/realism.py)"),
    17: AUEntry(17, "chin raiser", {"mouthShrugLower": 1.0},
                "model table (chin boss and lower lip pushed up, the mouth an inverted U "
                "through the lower lip, corners not pulled down); the chin's wrinkling and "
                "the depression below the lower lip's middle are shaded (model3d.creases)"),
    18: AUEntry(18, "lip pucker", {"mouthPucker": 1.0}),
    20: AUEntry(20, "lip stretcher", _both("mouthStretch", 1.5),
                "model table; weight 1.5 for FACS E: the lip corners pulled 1 cm outward "
                "(and slightly down), the lips flattened and stretched"),
    22: AUEntry(22, "lip funneler", {"mouthFunnel": 1.0}),
    23: AUEntry(23, "lip tightener",
                {"mouthRollUpper": 0.55, "mouthRollLower": 0.55, "mouthPucker": 0.25},
                "composed: red margins narrowed (mouthRoll 0.55 each) and the lips tightened "
                "and narrowed (mouthPucker 0.25); no mouthPress, so that AU23 does not look "
                "like AU24 (lip pressor)"),
    24: AUEntry(24, "lip pressor",
                {**_both("mouthPress", 2.0), **_both("mouthStretch", 0.15), "jawOpen": 0.3,
                 "mouthClose": 0.3},
                "model table at 2.0 (lips pressed, red narrowed, bulges above and below "
                "the lips) + mouthStretch 0.15 (FACS: the lips may lengthen slightly) + "
                "jawOpen 0.3 with mouthClose 0.3 (jaw down, lips kept closed): the model's "
                "mouthPress also raises the chin (landmark 8 up 8.2 px at 256 px), and FACS "
                "AU24 does not; the chin now rises 1.5 px. The earlier recipe (mouthPress "
                "1.3 + mouthShrugLower 0.35, AU17's shape) looked like AU17 (pixel change "
                "correlation 0.83 with the crop fixed, now 0.19) and AU23 (0.61, now 0.31)"),
    25: AUEntry(25, "lips part",
                {"jawOpen": 0.08, **_both("mouthLowerDown", 0.45), **_both("mouthUpperUp", 0.2)},
                "composed: lips apart with the jaw nearly closed (jawOpen 0.08, lower lip "
                "down 0.45, upper lip up 0.2)"),
    26: AUEntry(26, "jaw drop",
                {"jawOpen": 0.45, **_both("mouthLowerDown", 0.2), **_both("mouthUpperUp", 0.15)},
                "composed: jaw half open (jawOpen 0.45) with the lips relaxed apart "
                "(mouthLowerDown 0.2, mouthUpperUp 0.15: the upper teeth's edges show, as "
                "in a relaxed open mouth; the model's upper lip otherwise covers them)"),
    27: AUEntry(27, "mouth stretch",
                {"jawOpen": 1.0, **_both("mouthUpperUp", 0.3), **_both("mouthLowerDown", 0.3)},
                "model table (jawOpen) + the lips stretched open over the teeth (FACS E): "
                "mouthUpperUp 0.3, mouthLowerDown 0.3"),
    28: AUEntry(28, "lip suck", {"mouthRollLower": 1.0, "mouthRollUpper": 1.0}),
    45: AUEntry(45, "blink", _both("eyeBlink", 1.0)),
}

#: The 1+4 rule (FACS: with AU1, AU4 draws the raised inner brows together instead of
#: lowering them): AU4's ``browInnerUp`` part is scaled by ``max(0, 1 - AU1 / AU4)`` on
#: each side, so it is gone when AU1 is at least as strong as AU4.
_YIELDS: Final = 4
_YIELD_FROM: Final = 1
_YIELDING_SHAPE: Final = "browInnerUp"

#: Every FACS number the model supports, ascending.
MODEL_AUS: Final[tuple[int, ...]] = tuple(sorted(AU_CATALOGUE))

_KEY = re.compile(r"^\s*(?:AU)?\s*(\d+)\s*([LR]?)\s*$", re.IGNORECASE)


def au_keys() -> list[str]:
    """All valid AU keys: ``"1"``, ``"2"``, ... and one-sided ``"1L"``, ``"1R"``, ..."""
    out: list[str] = []
    for n in MODEL_AUS:
        out.append(str(n))
        if AU_CATALOGUE[n].sided:
            out += [f"{n}L", f"{n}R"]
    return out


def parse_au_key(key: int | str) -> tuple[int, str]:
    """Parse an AU key (``12``, ``"12"``, ``"AU12"``, ``"12L"``) to ``(number, side)``.

    ``side`` is ``""`` (both), ``"L"`` or ``"R"``.

    Raises
    ------
    ValueError
        On an unknown AU or a side the AU does not have (the message lists the valid keys).
    """
    valid = ", ".join(au_keys())
    if isinstance(key, bool):
        raise ValueError(f"unknown AU {key!r}; valid AUs: {valid}")
    if isinstance(key, int | np.integer):
        number, side = int(key), ""
    elif isinstance(key, str) and (m := _KEY.match(key)):
        number, side = int(m.group(1)), m.group(2).upper()
    else:
        raise ValueError(f"unknown AU {key!r}; valid AUs: {valid}")
    if number not in AU_CATALOGUE or (side and not AU_CATALOGUE[number].sided):
        raise ValueError(f"unknown AU {key!r}; valid AUs: {valid}")
    return number, side


def au_weights(aus: Mapping[int | str, float]) -> np.ndarray:
    """Blendshape weights of a set of AU intensities.

    Parameters
    ----------
    aus : Mapping[int | str, float]
        AU key (see :func:`parse_au_key`) -> intensity in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        ``(53,)`` float32 weights in :data:`BLENDSHAPE_NAMES` order; linear in the
        intensities, except one FACS combination rule: with AU1, AU4's inner-brow
        lowering (its negative ``browInnerUp``) is scaled by ``max(0, 1 - AU1 / AU4)`` on
        each side, so that 1+4 raises the inner brows and draws them together.

    Raises
    ------
    ValueError
        On an unknown AU (listing the valid ones) or an intensity that is not a finite
        number in ``[0, 1]``.
    """
    if not isinstance(aus, Mapping):
        raise ValueError(f"aus must be a mapping AU -> intensity, got {type(aus).__name__}")
    w = np.zeros(len(BLENDSHAPE_NAMES), np.float64)
    # the 1+4 rule: AU4's inner-brow lowering gives way to AU1's raise, per side
    held: dict[str, float] = {}
    raised = {"L": 0.0, "R": 0.0}
    lowered = {"L": 0.0, "R": 0.0}
    for key, value in aus.items():
        number, side = parse_au_key(key)
        try:
            x = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"AU{key} intensity must be a number, got {value!r}") from None
        if not math.isfinite(x) or not 0.0 <= x <= 1.0:
            raise ValueError(f"AU{key} intensity must be in 0..1, got {value!r}")
        if x == 0.0:
            continue
        if number == _YIELD_FROM:
            for sd in (side,) if side else ("L", "R"):
                raised[sd] += x
        for shape, weight in AU_CATALOGUE[number].recipe.items():
            if side and not shape.endswith("_" + side):
                continue
            if number == _YIELDS and shape.startswith(_YIELDING_SHAPE):
                held[shape] = held.get(shape, 0.0) + x * weight
                lowered[shape[-1]] += x
                continue
            w[_INDEX[shape]] += x * weight
    for shape, value in held.items():
        sd = shape[-1]
        w[_INDEX[shape]] += value * max(0.0, 1.0 - raised[sd] / lowered[sd])
    return w.astype(np.float32)
