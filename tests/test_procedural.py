"""The built-in procedural face: landmark model, AU movements, rendering, detectability."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facedialect.faces.procedural.aus import (
    AU_CATALOGUE_PROCEDURAL,
    RENDER_PARAMS,
    render_params,
    validate_aus,
)
from facedialect.faces.procedural.geometry import canonical_landmarks, landmarks
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.procedural.render import render_face
from facedialect.faces.procedural.shape import IDENTITY_MODES, MEAN_SHAPE
from facedialect.vocab import STUDY_AUS

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
BASE = FaceIdentity.default()

# Landmark groups (iBUG 68)
JAW, BROWS, NOSE, EYES, MOUTH = (range(0, 17), range(17, 27), range(27, 36), range(36, 48),
                                 range(48, 68))


def _y(i: int) -> Callable[[np.ndarray], float]:
    return lambda p: float(p[i, 1])


def _mean_y(*idx: int) -> Callable[[np.ndarray], float]:
    return lambda p: float(np.mean(p[list(idx), 1]))


def _dist_x(i: int, j: int) -> Callable[[np.ndarray], float]:
    return lambda p: float(abs(p[j, 0] - p[i, 0]))


def _dist_y(i: int, j: int) -> Callable[[np.ndarray], float]:
    return lambda p: float(p[j, 1] - p[i, 1])


# For every AU: measures of the landmarks (image pixels, y down) and the direction in which
# each must change as the intensity rises (+1 grows, -1 shrinks), plus the landmark groups
# the AU must leave alone.
UP, DOWN = -1, +1
FACS: dict[int, tuple[list[tuple[str, Callable[[np.ndarray], float], int]], list[range]]] = {
    1: ([("inner brows up", _mean_y(21, 22), UP)], [JAW, NOSE, MOUTH]),
    2: ([("outer brows up", _mean_y(17, 26), UP)], [JAW, NOSE, MOUTH]),
    4: ([("inner brows down", _mean_y(21, 22), DOWN),
         ("inner brows together", _dist_x(21, 22), -1)], [JAW, NOSE, MOUTH]),
    5: ([("upper lids up", _mean_y(37, 38, 43, 44), UP)], [JAW, BROWS, NOSE, MOUTH]),
    6: ([("lower lids up (cheeks raised)", _mean_y(40, 41, 46, 47), UP)], [NOSE]),
    7: ([("lower lids up", _mean_y(40, 41, 46, 47), UP),
         ("eye aperture narrowed", _dist_y(37, 41), -1)], [JAW, BROWS, NOSE, MOUTH]),
    9: ([("nose wings up", _mean_y(31, 35), UP), ("upper lip up", _y(51), UP)], [JAW]),
    10: ([("upper lip up", _y(51), UP), ("inner upper lip up", _y(62), UP)], [BROWS, EYES]),
    11: ([("lateral upper lip up", _mean_y(49, 53), UP)], [JAW, BROWS, EYES]),
    12: ([("lip corners up", _mean_y(48, 54), UP), ("lip corners out", _dist_x(48, 54), +1)],
         [BROWS, NOSE]),
    15: ([("lip corners down", _mean_y(48, 54), DOWN)], [JAW, BROWS, EYES, NOSE]),
    16: ([("lower lip down", _y(57), DOWN), ("inner lower lip down", _y(66), DOWN)],
         [JAW, BROWS, EYES, NOSE]),
    17: ([("lower lip up", _y(57), UP), ("chin up", _y(8), UP)], [BROWS, EYES, NOSE]),
    20: ([("lip corners out", _dist_x(48, 54), +1), ("lips flattened", _dist_y(51, 57), -1)],
         [BROWS, EYES, NOSE]),
    22: ([("mouth narrower", _dist_x(48, 54), -1), ("lips rounded (taller)", _dist_y(51, 57), +1),
          ("opening", _dist_y(62, 66), +1)], [JAW, BROWS, EYES, NOSE]),
    23: ([("mouth narrower", _dist_x(48, 54), -1), ("upper lip red thinner", _dist_y(51, 62), -1),
          ("lower lip red thinner", _dist_y(66, 57), -1)], [JAW, BROWS, EYES, NOSE]),
    24: ([("lips pressed (outer height)", _dist_y(51, 57), -1),
          ("upper lip red thinner", _dist_y(51, 62), -1)], [JAW, BROWS, EYES, NOSE]),
    25: ([("lips part", _dist_y(62, 66), +1)], [JAW, BROWS, EYES, NOSE]),
    26: ([("jaw down", _y(8), DOWN), ("lower lip down", _y(57), DOWN),
          ("mouth opens", _dist_y(62, 66), +1)], [BROWS, EYES, NOSE]),
    27: ([("jaw down", _y(8), DOWN), ("mouth stretched open", _dist_y(62, 66), +1),
          ("taller than wide", lambda p: (p[66, 1] - p[62, 1]) / abs(p[64, 0] - p[60, 0]), +1)],
         [BROWS, EYES, NOSE]),
}


def test_facs_table_covers_the_study_aus() -> None:
    assert tuple(sorted(FACS)) == STUDY_AUS
    assert tuple(AU_CATALOGUE_PROCEDURAL) == STUDY_AUS
    for au, entry in AU_CATALOGUE_PROCEDURAL.items():
        assert entry.au == au and entry.name and entry.movement
        assert entry.displacement.shape == (68, 2)
        assert set(entry.params) <= set(RENDER_PARAMS)


@pytest.mark.parametrize("au", STUDY_AUS)
def test_au_moves_the_right_landmarks_monotonically(au: int) -> None:
    checks, untouched = FACS[au]
    shapes = [landmarks(BASE, {au: v}) for v in LEVELS]
    for name, measure, sign in checks:
        values = np.array([measure(p) for p in shapes])
        steps = np.diff(values) * sign
        assert np.all(steps > 1e-6), f"AU{au}: {name} not monotonic: {values}"
    moved = np.abs(shapes[-1] - shapes[0]).max(axis=1) > 1e-9
    for group in untouched:
        assert not moved[list(group)].any(), f"AU{au} moves landmarks {list(group)}"
    assert moved.any()


@pytest.mark.parametrize("au", STUDY_AUS)
def test_au_displacement_is_linear_in_intensity(au: int) -> None:
    null = canonical_landmarks(BASE, {})
    full = canonical_landmarks(BASE, {au: 1.0}) - null
    for v in LEVELS:
        np.testing.assert_allclose(canonical_landmarks(BASE, {au: v}) - null, v * full,
                                   atol=1e-12)


def test_aus_combine_additively() -> None:
    null = landmarks(BASE, {})
    a, b = {1: 0.6, 12: 0.3, 26: 0.9}, {4: 0.5, 15: 0.7, 26: 0.1}
    both = {k: a.get(k, 0.0) + b.get(k, 0.0) for k in set(a) | set(b)}
    np.testing.assert_allclose(landmarks(BASE, both) - null,
                               (landmarks(BASE, a) - null) + (landmarks(BASE, b) - null),
                               atol=1e-9)


def test_upper_face_aus_drive_their_render_params() -> None:
    assert render_params({})["cheek_bulge"] == 0.0
    assert render_params({6: 1.0})["cheek_bulge"] > 0.0
    assert render_params({9: 1.0})["nose_wrinkle"] > 0.0
    assert render_params({11: 0.5})["nasolabial"] > 0.0
    assert render_params({17: 1.0})["chin_boss"] > 0.0
    assert render_params({4: 1.0})["glabella"] > 0.0


def test_mean_shape_is_symmetric_and_plausible() -> None:
    mirror = np.array([16 - i for i in range(17)] + list(range(26, 16, -1))
                      + [27, 28, 29, 30, 35, 34, 33, 32, 31]
                      + [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
                      + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55]
                      + [64, 63, 62, 61, 60, 67, 66, 65])
    np.testing.assert_allclose(MEAN_SHAPE[mirror] * [-1, 1], MEAN_SHAPE, atol=1e-12)
    y = MEAN_SHAPE[:, 1]
    # brows above eyes above nose tip above mouth above chin
    assert y[19] < y[37] < y[33] < y[51] < y[57] < y[8]
    for mode in IDENTITY_MODES.values():
        np.testing.assert_allclose(mode[mirror] * [-1, 1], mode, atol=1e-12)


def test_null_face_is_the_same_whatever_aus_are_listed_at_zero() -> None:
    ident = FaceIdentity.random(np.random.default_rng(3))
    ref = render_face(ident, {}, 128)
    assert np.array_equal(render_face(ident, dict.fromkeys(STUDY_AUS, 0.0), 128), ref)
    assert np.array_equal(render_face(ident, {12: 0.0, 4: 0}, 128), ref)
    np.testing.assert_array_equal(landmarks(ident, {26: 0.0}), landmarks(ident, {}))


def test_rendering_is_deterministic_and_aus_change_pixels() -> None:
    ident = FaceIdentity.random(np.random.default_rng(11))
    aus = {6: 0.8, 12: 0.8}
    a = render_face(ident, aus, 160)
    b = render_face(ident, dict(reversed(list(aus.items()))), 160)
    assert a.dtype == np.uint8 and a.shape == (160, 160)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_face(ident, {}, 160))


def test_color_render_and_gray_is_its_luma() -> None:
    ident = FaceIdentity.random(np.random.default_rng(5))
    rgb = render_face(ident, {9: 0.7, 10: 0.4}, 128, color=True)
    gray = render_face(ident, {9: 0.7, 10: 0.4}, 128)
    assert rgb.shape == (128, 128, 3) and rgb.dtype == np.uint8
    assert np.array_equal(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), gray)


def test_landmarks_in_pixels_fill_half_the_width() -> None:
    pts = landmarks(BASE, {}, size=256)
    assert pts.shape == (68, 2)
    assert 0.45 <= (pts[16, 0] - pts[0, 0]) / 256 <= 0.65
    assert abs(pts[30, 0] - 128) < 1.0  # frontal and centred
    assert np.all((pts > 0) & (pts < 256))
    np.testing.assert_allclose(landmarks(BASE, {}, size=512), 2 * pts, atol=1e-9)


@pytest.mark.parametrize("bad", [{3: 0.5}, {28: 1.0}, {0: 0.1}])
def test_unknown_au_is_rejected_with_the_valid_list(bad: dict[int, float]) -> None:
    with pytest.raises(ValueError, match=r"1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 15, 16, 17, 20, "
                                         r"22, 23, 24, 25, 26, 27"):
        render_face(BASE, bad)
    with pytest.raises(ValueError, match="unknown AU"):
        landmarks(BASE, bad)


@pytest.mark.parametrize("value", [1.01, -0.1, float("nan"), float("inf"), "high", None])
def test_intensity_outside_0_1_is_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="AU12 intensity"):
        validate_aus({12: value})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        render_face(BASE, {12: value})  # type: ignore[dict-item]


def test_non_integer_au_keys_and_bad_sizes_are_rejected() -> None:
    with pytest.raises(ValueError, match="integers"):
        validate_aus({"12": 0.5})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="integers"):
        validate_aus({True: 0.5})
    with pytest.raises(ValueError, match="size"):
        render_face(BASE, {}, size=8)


def test_identity_validation_and_random_is_reproducible() -> None:
    with pytest.raises(ValueError, match="roll"):
        FaceIdentity(roll=40.0)
    with pytest.raises(ValueError, match="shape needs 8"):
        FaceIdentity(shape=(0.0, 1.0))
    with pytest.raises(ValueError, match="sex"):
        FaceIdentity(sex="X")  # type: ignore[arg-type]
    a = FaceIdentity.random(np.random.default_rng(42))
    b = FaceIdentity.random(np.random.default_rng(42))
    assert a == b
    frontal = FaceIdentity.random(np.random.default_rng(42), sex="M", pose=False)
    assert frontal.sex == "M" and frontal.roll == 0.0 and frontal.scale == 1.0


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.sampled_from(STUDY_AUS), st.floats(0.0, 1.0), max_size=8),
       st.integers(0, 2**16))
def test_any_valid_au_mix_gives_finite_landmarks_inside_the_image(aus: dict[int, float],
                                                                   seed: int) -> None:
    ident = FaceIdentity.random(np.random.default_rng(seed))
    pts = landmarks(ident, aus, size=256)
    assert np.all(np.isfinite(pts))
    assert np.all((pts > 0) & (pts < 256))


PROTOTYPES = {  # culture A (SCIENCE.md section 10) at prototype intensity 0.8
    "neutral": (), "happy": (6, 12), "sad": (1, 4, 15), "fearful": (1, 2, 4, 5, 7, 20, 26),
    "angry": (4, 5, 7, 23), "surprised": (1, 2, 5, 26), "disgusted": (9, 15, 16),
    "fearful_B": (1, 2, 5, 25), "angry_B": (4, 7, 24), "sad_B": (1, 17, 24),
    "disgusted_B": (4, 9, 10),
}


def test_haar_cascade_finds_the_face_in_nearly_every_render() -> None:
    """The study's pre-processing must find the built-in face (SCIENCE.md section 2)."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    assert not cascade.empty()
    rng = np.random.default_rng(2024)
    protos = list(PROTOTYPES.values())
    found = 0
    n = 40
    for k in range(n):
        ident = FaceIdentity.random(rng)
        gray = render_face(ident, dict.fromkeys(protos[k % len(protos)], 0.8), 256)
        faces = cascade.detectMultiScale(gray, 1.1, 5, minSize=(int(0.15 * 256),) * 2)
        found += len(faces) > 0
    assert found / n >= 0.95
