"""68-point landmarks (dlib), similarity alignment, the mean shape and piecewise-affine warps."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from facedialect import landmarks as lm
from facedialect.errors import FacedialectError
from facedialect.imageio import read_gray
from facedialect.landmarks import (
    LANDMARK_GROUPS,
    LandmarkModelMissingError,
    align_similarity,
    apply_transform,
    detect_landmarks,
    mean_shape,
    piecewise_affine_warp,
    preprocessed_face_box,
)

LONDON = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "london-frl"
G = LANDMARK_GROUPS


@pytest.fixture(scope="module")
def london_neutral() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, gray image, landmarks) of the 102 London neutral faces."""
    folder = LONDON / "neutral"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the shared London face set sits beside the "
                    "project checkout in CI (../shared)")
    out = []
    for f in sorted(folder.glob("*.jpg")):
        g = read_gray(f)
        out.append((f.name, g, detect_landmarks(g)))
    return out


# ------------------------------------------------------------------------ groups and model
def test_groups_partition_the_68_points_in_ibug_order():
    flat = [i for g in G.values() for i in g]
    assert sorted(flat) == list(range(68))
    assert G["jaw"] == tuple(range(17))
    assert G["right_eye"][0] == 36 and G["left_eye"][-1] == 47
    assert G["outer_lips"] == tuple(range(48, 60)) and G["inner_lips"][-1] == 67


def test_model_env_var_pointing_nowhere_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(lm.MODEL_ENV, str(tmp_path / "nope.dat"))
    with pytest.raises(LandmarkModelMissingError, match="face-recognition-models==0.3.0"):
        lm.landmark_model_path()
    assert issubclass(LandmarkModelMissingError, FacedialectError)


def test_model_package_missing_is_a_clear_error(monkeypatch):
    monkeypatch.delenv(lm.MODEL_ENV, raising=False)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "face_recognition_models"
                        else real(name, *a))
    with pytest.raises(LandmarkModelMissingError, match="pip install --no-deps"):
        lm.landmark_model_path()


def test_model_found_in_the_installed_package():
    p = lm.landmark_model_path()
    assert p.name == lm.MODEL_FILE and p.stat().st_size > 50_000_000


def test_no_face_gives_none_and_bad_input_raises():
    flat = np.full((200, 200), 128, np.uint8)
    assert detect_landmarks(flat) is None
    with pytest.raises(ValueError, match="2-D"):
        detect_landmarks(np.zeros((4, 4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="box"):
        detect_landmarks(flat, box=(0, 0, 1, 50))


# ------------------------------------------------------------------------------ real faces
@pytest.mark.shared
def test_every_london_neutral_face_is_found(london_neutral):
    missed = [n for n, _, p in london_neutral if p is None]
    assert len(london_neutral) == 102
    assert missed == []


@pytest.mark.shared
def test_london_landmarks_are_anatomically_plausible(london_neutral):
    for name, g, p in london_neutral:
        assert p.shape == (68, 2) and p.dtype == np.float64
        h, w = g.shape
        assert np.all((p >= 0).all(axis=1) & (p[:, 0] < w) & (p[:, 1] < h)), name
        y = {k: p[list(v), 1].mean() for k, v in G.items()}
        x = {k: p[list(v), 0].mean() for k, v in G.items()}
        # brows above eyes above nose tip above mouth above chin
        assert y["right_brow"] < y["right_eye"] and y["left_brow"] < y["left_eye"], name
        assert max(y["right_eye"], y["left_eye"]) < p[33, 1] < y["outer_lips"] < p[8, 1], name
        # subject's right side on the image's left
        assert x["right_eye"] < p[30, 0] < x["left_eye"], name
        assert p[0, 0] < p[48, 0] < p[54, 0] < p[16, 0], name
        # eye distance: a face filling a 512 px portrait, roughly level
        d = np.hypot(*(p[45] - p[36]))
        assert 0.12 * w < d < 0.45 * w, name
        assert abs(p[45, 1] - p[36, 1]) < 0.15 * d, name
        # upper lip's top above the inner lip line above the lower lip's bottom
        assert p[51, 1] < min(p[62, 1], p[66, 1]) <= max(p[62, 1], p[66, 1]) < p[57, 1], name


@pytest.mark.shared
def test_preprocessed_face_box_matches_detection_on_crops(london_neutral):
    from facedialect.preprocess.params import PreprocessParams
    from facedialect.preprocess.pipeline import preprocess_face

    params = PreprocessParams()
    box = preprocessed_face_box(params)
    errs, loose = [], []
    for _, g, _ in london_neutral[::10]:
        crop = preprocess_face(g, params).image
        found = detect_landmarks(crop)
        assert found is not None
        errs.append(np.abs(detect_landmarks(crop, box=box) - found).mean())
        loose.append(np.abs(detect_landmarks(crop, box=(0, 0, 224, 224)) - found).mean())
    # the calibrated box agrees with detect-then-predict; the whole crop does not
    assert np.mean(errs) < 1.0 and max(errs) < 2.0
    assert np.mean(loose) > 5 * np.mean(errs)


# --------------------------------------------------------------------------------- alignment
def _similarity(theta: float, s: float, t: tuple[float, float]) -> np.ndarray:
    c, n = np.cos(theta), np.sin(theta)
    return np.array([[s * c, -s * n, t[0]], [s * n, s * c, t[1]]])


def test_align_similarity_recovers_a_known_transform():
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 2)) * 40 + 100
    m = _similarity(0.3, 1.7, (12.0, -5.0))
    dst = src @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(align_similarity(src, dst), m, atol=1e-9)
    np.testing.assert_allclose(apply_transform(m, src), dst, atol=1e-9)


def test_align_similarity_never_reflects():
    rng = np.random.default_rng(1)
    src = rng.normal(size=(20, 2))
    mirrored = src * [-1.0, 1.0]
    m = align_similarity(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_mean_shape_of_similar_copies_is_the_shape_in_the_average_frame():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(68, 2)) * 30 + 200
    copies = [apply_transform(_similarity(rng.uniform(-0.3, 0.3), rng.uniform(0.8, 1.25),
                                          tuple(rng.uniform(-20, 20, 2))), base)
              for _ in range(9)]
    m = mean_shape(copies)
    # the same shape (zero Procrustes residual) ...
    np.testing.assert_allclose(apply_transform(align_similarity(base, m), base), m, atol=1e-6)
    # ... placed where the inputs are on average
    np.testing.assert_allclose(m.mean(axis=0), np.mean(copies, axis=(0, 1)), atol=1e-6)


def test_mean_shape_averages_shape_differences():
    # two shapes differing only in one point's position: the mean lies half way
    base = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [5, 5]], float)
    a, b = base.copy(), base.copy()
    a[4] = [5, 4]
    b[4] = [5, 6]
    m = mean_shape([a, b])
    np.testing.assert_allclose(m, base, atol=1e-6)


def test_mean_shape_rejects_bad_input():
    with pytest.raises(ValueError):
        mean_shape([])
    with pytest.raises(ValueError):
        mean_shape([np.zeros((5, 3))])


# ------------------------------------------------------------------------------------ warps
def _test_image(h: int = 120, w: int = 160) -> np.ndarray:
    rng = np.random.default_rng(3)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 3)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


def _points(h: int = 120, w: int = 160, n: int = 25) -> np.ndarray:
    rng = np.random.default_rng(4)
    return np.stack([rng.uniform(20, w - 20, n), rng.uniform(20, h - 20, n)], axis=1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_warp_with_identical_points_returns_the_image(dtype):
    img = _test_image().astype(dtype)
    pts = _points()
    out = piecewise_affine_warp(img, pts, pts)
    assert out.dtype == img.dtype and out.shape == img.shape
    np.testing.assert_allclose(out.astype(float), img.astype(float), atol=1e-3)


def test_warp_reproduces_a_known_affine():
    img = _test_image()
    dst = _points()
    a = np.array([[1.1, 0.15, 6.0], [-0.1, 0.92, -4.0]])      # output -> input
    src = apply_transform(a, dst)
    out = piecewise_affine_warp(img, src, dst).astype(float)
    ref = cv2.warpAffine(img, a, (160, 120), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE).astype(float)
    assert np.abs(out - ref).max() <= 1.0


def test_warp_moves_a_landmark_and_its_neighbourhood():
    # a bright dot at a source landmark ends up at the destination landmark
    img = np.zeros((100, 100), np.float32)
    img[30, 40] = 1.0
    img = cv2.GaussianBlur(img, (0, 0), 2)
    src = np.array([[40, 30], [20, 80], [80, 80], [80, 20], [20, 20]], float)
    dst = src.copy()
    dst[0] = [60, 50]
    out = piecewise_affine_warp(img, src, dst)
    y, x = np.unravel_index(np.argmax(out), out.shape)
    assert abs(x - 60) <= 1 and abs(y - 50) <= 1


def test_warp_float_map_and_colour_and_out_shape():
    img = _test_image()
    pts = _points()
    rgb = np.dstack([img, img // 2, 255 - img])
    out = piecewise_affine_warp(rgb, pts, pts * 0.5, out_shape=(60, 80))
    assert out.shape == (60, 80, 3) and out.dtype == np.uint8
    small = cv2.resize(rgb, (80, 60), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(out.astype(float) - small).mean() < 12     # a half-size copy
    sal = (img / 255.0).astype(np.float64)
    outf = piecewise_affine_warp(sal, pts, pts + [3.0, -2.0])
    assert outf.dtype == np.float64 and 0.0 <= outf.min() and outf.max() <= 1.0
    np.testing.assert_allclose(outf[30:90, 40:120], sal[32:92, 37:117], atol=1e-4)


def test_warp_rejects_bad_points():
    img = _test_image()
    with pytest.raises(ValueError):
        piecewise_affine_warp(img, _points()[:5], _points()[:6])
    with pytest.raises(ValueError):
        piecewise_affine_warp(img, np.full((5, 2), np.nan), _points()[:5])
