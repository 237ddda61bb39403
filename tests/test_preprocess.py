"""Unit and property tests of facedialect.preprocess (no data files needed)."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from facedialect.preprocess import (
    N_VARIANTS,
    PIPELINE_VERSION,
    REASON_NO_FACE,
    CascadeNotFoundError,
    FaceResult,
    PreprocessParams,
    apply_mask,
    crop_face,
    detect_faces,
    make_variants,
    normalize_face,
    normalize_region,
    oval_mask,
    preprocess_face,
    variant,
    variant_matrix,
    variant_table,
)
from facedialect.preprocess import detect as detect_mod

P = PreprocessParams()
PROPS = settings(max_examples=50, deadline=None)


def region_stats(img: np.ndarray, region: np.ndarray) -> tuple[float, float]:
    v = np.asarray(img, dtype=np.float64)[region]
    return float(v.mean()), float(v.std())


def max_reachable_sd(values: np.ndarray, mean: float) -> float:
    """Largest SD of a monotone map of ``values`` into 0..255 with the given mean.

    Independent of the implementation: the maximum is reached by a threshold map, values
    below a level -> 0, above -> 255, the values equal to it -> whatever sets the mean.
    Values closer than 1e-9 of the range count as equal (as they do for any linear map in
    double precision).
    """
    v = np.asarray(values, dtype=np.float64)
    v = np.sort(np.round((v - v.min()) / max(np.ptp(v), 1e-300) * 1e9))
    n = v.size
    best = 0.0
    for u in np.unique(v):
        n_tie = np.count_nonzero(v == u)
        n_high = np.count_nonzero(v > u)
        mid = (mean * n - 255.0 * n_high) / n_tie
        if -1e-9 <= mid <= 255.0 + 1e-9:
            e2 = (255.0**2 * n_high + mid**2 * n_tie) / n
            best = max(best, np.sqrt(max(e2 - mean**2, 0.0)))
    return best


def face_like(size: int = 224, seed: int = 0) -> np.ndarray:
    """A smooth, textured (size, size) uint8 image: a stand-in for a face crop."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    img = 90 + 60 * np.sin(6 * x) * np.cos(4 * y) + rng.normal(0, 12, (size, size))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- params


def test_params_defaults_and_description():
    assert P.size == 224
    assert (P.scale_factor, P.min_neighbors) == (1.1, 5)
    assert (P.target_mean, P.target_sd) == (128, 32)
    assert P.variant_scales == (1.0, 0.9, 0.95, 1.05, 1.1)
    assert P.variant_shift_px == 8
    assert P.background_gray == 128
    for name, field in PreprocessParams.model_fields.items():
        assert field.description, f"{name} has no description"
        assert not field.is_required(), f"{name} has no default"


def test_params_frozen_and_extra_forbidden():
    with pytest.raises(pydantic.ValidationError):
        P.size = 100  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        PreprocessParams(sizee=100)


@pytest.mark.parametrize(
    "kw",
    [
        {"size": 0},
        {"scale_factor": 1.0},
        {"min_face_fraction": 0},
        {"crop_scale": -1},
        {"target_sd": 0},
        {"oval_width": 0},
        {"oval_height": 1.2},
        {"feather": 0},
        {"feather": 0.4},  # wider than half the oval: no pixel fully inside
        {"variant_scales": (0.9, 1.0, 0.95, 1.05, 1.1)},  # first must be 1.0
        {"variant_scales": (1.0, -0.9, 0.95, 1.05, 1.1)},
        {"variant_scales": (1.0, 0.9, 0.95, 1.05)},  # 5 needed
        {"variant_scales": (1.0, 1.0, 0.95, 1.05, 1.1)},
        {"variant_shift_px": 0},
        {"face_choice": "middle"},
    ],
)
def test_params_rejects_bad_values(kw):
    with pytest.raises(pydantic.ValidationError):
        PreprocessParams(**kw)


def test_params_key_is_stable_and_sensitive():
    k = P.key()
    assert len(k) == 64 and all(c in "0123456789abcdef" for c in k)
    assert PreprocessParams().key() == k
    assert PreprocessParams(**P.model_dump()).key() == k
    assert PreprocessParams(target_sd=30).key() != k
    assert PreprocessParams(variant_shift_px=6).key() != k
    assert PIPELINE_VERSION  # part of the hash


def test_params_round_trip_json():
    q = PreprocessParams(size=112, oval_width=0.6)
    assert PreprocessParams.model_validate_json(q.model_dump_json()) == q


# ---------------------------------------------------------------- mask


def test_mask_exact_zero_and_one_away_from_edge():
    size = P.size
    m = oval_mask(size, P)
    assert m.dtype == np.float32 and m.shape == (size, size)
    assert m.min() == 0.0 and m.max() == 1.0
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size] - c
    a, b, w = P.oval_width * size / 2, P.oval_height * size / 2, P.feather * size
    outside = (x / a) ** 2 + (y / b) ** 2 >= 1
    deep = (x / (a - 1.5 * w)) ** 2 + (y / (b - 1.5 * w)) ** 2 <= 1
    assert np.all(m[outside] == 0.0)
    assert np.all(m[deep] == 1.0)
    assert m[int(c), int(c)] == 1.0 and m[0, 0] == 0.0
    # the edge is a real ramp, not a step
    edge = m[(m > 0) & (m < 1)]
    assert edge.size > 0 and np.ptp(edge) > 0.9


def test_mask_symmetric_and_cached_read_only():
    m = oval_mask(224, P)
    assert np.array_equal(m, m[:, ::-1])
    assert np.array_equal(m, m[::-1, :])
    assert oval_mask(224, P) is m
    with pytest.raises(ValueError):
        m[0, 0] = 1


def test_mask_edge_width_matches_feather():
    m = oval_mask(224, P).astype(np.float64)
    row = m[111, :]  # through the centre, horizontal axis
    ramp = np.count_nonzero((row > 0) & (row < 1)) / 2
    assert abs(ramp - P.feather * 224) <= 1.5
    left = row[:112]
    assert np.all(np.diff(left) >= 0)  # monotone towards the centre


@PROPS
@given(
    size=st.integers(16, 160),
    width=st.floats(0.3, 1.0),
    ratio=st.floats(0.5, 2.0),
    feather=st.floats(0.01, 0.1),
)
def test_mask_properties_any_params(size, width, ratio, feather):
    height = min(1.0, width * ratio)
    assume(feather < min(width, height) / 2)
    q = PreprocessParams(size=max(size, 32), oval_width=width, oval_height=height, feather=feather)
    m = oval_mask(q.size, q)
    assert m.min() >= 0 and m.max() == 1.0
    assert np.array_equal(m, m[:, ::-1]) and np.array_equal(m, m[::-1, :])
    c = (q.size - 1) / 2
    y, x = np.mgrid[0 : q.size, 0 : q.size] - c
    outside = (x / (width * q.size / 2)) ** 2 + (y / (height * q.size / 2)) ** 2 >= 1
    assert np.all(m[outside] == 0.0)


@PROPS
@given(
    img=hnp.arrays(np.uint8, (40, 40)),
    bg=st.integers(0, 255),
)
def test_apply_mask_outside_is_background_any_image(img, bg):
    q = PreprocessParams(size=40, feather=0.1)
    m = oval_mask(40, q)
    out = apply_mask(img, m, bg)
    assert out.dtype == np.uint8
    assert np.all(out[m == 0] == bg)
    assert np.array_equal(out[m == 1], img[m == 1])


@PROPS
@given(img=hnp.arrays(np.float64, (40, 40), elements=st.floats(-1e4, 1e4)))
def test_apply_mask_float_exact(img):
    q = PreprocessParams(size=40, feather=0.1)
    m = oval_mask(40, q)
    out = apply_mask(img, m, 128)
    assert np.all(out[m == 0] == 128.0)
    assert np.array_equal(out[m == 1], img[m == 1])


def test_apply_mask_checks():
    with pytest.raises(ValueError, match="shape"):
        apply_mask(np.zeros((4, 4)), np.zeros((5, 5)))
    with pytest.raises(ValueError, match="integer"):
        apply_mask(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), 127.5)


# ---------------------------------------------------------------- normalize_region


def test_normalize_plain_case_is_linear():
    rng = np.random.default_rng(1)
    img = rng.normal(100, 10, (50, 50))
    region = np.ones_like(img, dtype=bool)
    out = normalize_region(img, region, 128, 32)
    m, s = region_stats(out, region)
    assert abs(m - 128) < 1e-6 and abs(s - 32) < 1e-6
    # no clipping needed: an exact affine map of the input
    assert np.allclose(out, (img - img.mean()) / img.std() * 32 + 128)


def test_normalize_clipped_case_is_refined():
    rng = np.random.default_rng(2)
    img = rng.exponential(1.0, (80, 80)) ** 2  # long right tail: the plain map clips
    region = np.ones_like(img, dtype=bool)
    plain = np.clip((img - img.mean()) / img.std() * 32 + 128, 0, 255)
    assert abs(plain.mean() - 128) > 1 or abs(plain.std() - 32) > 1
    out = normalize_region(img, region, 128, 32)
    m, s = region_stats(out, region)
    assert abs(m - 128) < 0.5 and abs(s - 32) < 0.5
    assert out.min() >= 0 and out.max() <= 255
    # still monotone in the input
    order = np.argsort(img, axis=None)
    assert np.all(np.diff(out.ravel()[order]) >= 0)


def test_normalize_only_region_statistics_count():
    rng = np.random.default_rng(3)
    img = rng.normal(60, 5, (60, 60))
    region = np.zeros(img.shape, dtype=bool)
    region[20:40, 20:40] = True
    img[~region] = 250.0  # must not affect the fit
    out = normalize_region(img, region, 128, 32)
    m, s = region_stats(out, region)
    assert abs(m - 128) < 1e-6 and abs(s - 32) < 1e-6
    assert out.shape == img.shape


def test_normalize_constant_region_no_crash():
    img = np.full((10, 10), 77.0)
    img[0, 0] = 3.0
    region = img == 77.0
    out = normalize_region(img, region, 128, 32)
    assert np.all(out[region] == 128.0)
    assert np.all((out >= 0) & (out <= 255))


def test_normalize_input_errors():
    img = np.zeros((5, 5))
    with pytest.raises(ValueError, match="empty"):
        normalize_region(img, np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="bool"):
        normalize_region(img, np.ones((5, 5)))
    with pytest.raises(ValueError, match="shape"):
        normalize_region(img, np.ones((4, 5), bool))
    bad = img.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalize_region(bad, np.ones((5, 5), bool))


def _check_normalized(img, region, mean=128.0, sd=32.0):
    out = normalize_region(img, region, mean, sd)
    assert out.shape == img.shape
    assert np.all((out >= 0) & (out <= 255))
    vals = img[region]
    m, s = region_stats(out, region)
    if np.ptp(vals) == 0:
        assert np.all(out[region] == mean)
        return
    assert abs(m - mean) <= 0.5
    reachable = max_reachable_sd(vals, mean)
    if reachable >= sd + 0.5:
        assert abs(s - sd) <= 0.5, (s, reachable)
    else:  # the SD target cannot be met: the best reachable SD is returned
        assert s >= min(sd, reachable) - 0.5, (s, reachable)


@PROPS
@given(
    img=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=40),
        elements=st.floats(-1000, 1000, allow_subnormal=False),
    ),
    data=st.data(),
)
def test_normalize_region_property_any_content(img, data):
    region = data.draw(hnp.arrays(np.bool_, img.shape))
    assume(region.sum() >= 2)
    _check_normalized(img, region)


@PROPS
@given(
    img=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=4, max_side=60)),
    mean=st.floats(60, 190),
    sd=st.floats(5, 50),
)
def test_normalize_region_property_uint8_images(img, mean, sd):
    region = np.ones(img.shape, dtype=bool)
    _check_normalized(img.astype(np.float64), region, mean, sd)


@PROPS
@given(
    u=hnp.arrays(np.float64, (12, 12), elements=st.floats(0.0, 1.0)),
    power=st.floats(1.0, 30.0),
    left=st.booleans(),
)
def test_normalize_region_property_heavily_skewed(u, power, left):
    img = np.round(u**power * 255_000) / 1000  # long right tail, values to 1/1000 gray level
    if left:
        img = 255 - img  # long left tail
    _check_normalized(img, np.ones(img.shape, dtype=bool))


@PROPS
@given(
    seed=st.integers(0, 2**32 - 1),
    power=st.floats(1.0, 40.0),
    outliers=st.floats(0.0, 0.2),
)
def test_normalize_region_property_skewed_large(seed, power, outliers):
    rng = np.random.default_rng(seed)
    img = rng.random((60, 60)) ** power * 255  # most values near 0, long right tail
    hit = rng.random(img.shape) < outliers
    img[hit] = 255 - rng.random(hit.sum())  # plus a block of bright outliers
    _check_normalized(img, np.ones(img.shape, dtype=bool))


@PROPS
@given(value=st.floats(-1e6, 1e6), shape=st.tuples(st.integers(1, 20), st.integers(1, 20)))
def test_normalize_region_property_constant(value, shape):
    img = np.full(shape, value)
    out = normalize_region(img, np.ones(shape, bool), 128, 32)
    assert np.all(out == 128.0)


# ---------------------------------------------------------------- normalize_face


@PROPS
@given(
    crop=hnp.arrays(np.float32, (64, 64), elements=st.floats(0, 255, width=32)),
)
def test_normalize_face_background_is_128_any_image(crop):
    q = PreprocessParams(size=64)
    out = normalize_face(crop, q)
    m = oval_mask(64, q)
    assert out.dtype == np.uint8 and out.shape == (64, 64)
    assert np.all(out[m == 0] == 128)


@PROPS
@given(seed=st.integers(0, 2**32 - 1), base=st.integers(10, 240), spread=st.integers(3, 80))
def test_normalize_face_invariants_textured(seed, base, spread):
    rng = np.random.default_rng(seed)
    crop = np.clip(base + rng.normal(0, spread, (224, 224)), 0, 255).astype(np.float32)
    out = normalize_face(crop, P)
    m = oval_mask(224, P)
    mean, sd = region_stats(out, m == 1)
    assert abs(mean - 128) <= 1 and abs(sd - 32) <= 1
    assert np.all(out[m == 0] == 128)


def test_normalize_face_checks_shape():
    with pytest.raises(ValueError, match="224x224"):
        normalize_face(np.zeros((100, 100), np.float32), P)


# ---------------------------------------------------------------- crop and pipeline


def test_crop_face_inside_and_padded():
    img = face_like(400)
    crop, padded = crop_face(img, (100, 100, 150, 150), P)
    assert crop.shape == (224, 224) and crop.dtype == np.float32 and not padded
    crop, padded = crop_face(img, (0, 0, 150, 150), P)
    assert crop.shape == (224, 224) and padded
    assert crop.min() >= 0 and crop.max() <= 255
    small, _ = crop_face(face_like(100), (20, 20, 50, 50), P)  # enlarged
    assert small.shape == (224, 224)


def test_preprocess_no_face_never_raises():
    for img in (
        np.full((300, 300), 128, np.uint8),
        np.random.default_rng(0).integers(0, 256, (240, 320), dtype=np.uint8),
        np.zeros((10, 10), np.uint8),
    ):
        r = preprocess_face(img, P)
        assert isinstance(r, FaceResult)
        assert (r.image, r.detected, r.n_faces, r.box) == (None, False, 0, None)
        assert r.reason == REASON_NO_FACE == "no face detected: Haar cascade found no face"


def test_preprocess_rejects_bad_arrays():
    with pytest.raises(ValueError, match="2-D"):
        preprocess_face(np.zeros((50, 50, 3), np.uint8), P)
    with pytest.raises(ValueError, match="uint8"):
        preprocess_face(np.zeros((50, 50), np.float32), P)


def test_detect_returns_empty_int_array():
    boxes = detect_faces(np.full((100, 100), 200, np.uint8), P)
    assert boxes.shape == (0, 4) and boxes.dtype == np.int64


def test_missing_cascade_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(detect_mod, "_local", threading.local())
    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path) + "/")
    with pytest.raises(CascadeNotFoundError, match="opencv-python-headless"):
        detect_faces(np.zeros((100, 100), np.uint8), P)


# ---------------------------------------------------------------- augmentation


def test_variant_table_layout():
    t = variant_table(P)
    assert isinstance(t, pd.DataFrame)
    assert list(t.columns) == ["variant", "scale", "dx", "dy", "flip"]
    assert len(t) == N_VARIANTS == 50
    assert t["variant"].tolist() == list(range(50))
    assert t.iloc[0].to_dict() == {"variant": 0, "scale": 1.0, "dx": 0, "dy": 0, "flip": False}
    assert t["scale"].tolist()[::10] == [1.0, 0.9, 0.95, 1.05, 1.1]
    first = t.iloc[:10]
    assert list(zip(first.dx, first.dy, first.flip, strict=True)) == [
        (0, 0, False), (0, 0, True), (-8, 0, False), (-8, 0, True), (8, 0, False),
        (8, 0, True), (0, -8, False), (0, -8, True), (0, 8, False), (0, 8, True),
    ]  # fmt: skip
    assert not t.duplicated(["scale", "dx", "dy", "flip"]).any()


@pytest.fixture(scope="module")
def face_image() -> np.ndarray:
    return normalize_face(face_like(224).astype(np.float32), P)


@pytest.fixture(scope="module")
def variants(face_image) -> np.ndarray:
    return make_variants(face_image, P)


def test_variant_zero_is_the_plain_image(face_image, variants):
    assert variants.shape == (50, 224, 224) and variants.dtype == np.uint8
    assert variants[0].tobytes() == face_image.tobytes()


def test_variants_deterministic_and_distinct(face_image, variants):
    again = make_variants(face_image.copy(), P)
    assert np.array_equal(variants, again)
    flat = {v.tobytes() for v in variants}
    assert len(flat) == 50


def test_flips_mirror_their_twin(variants):
    for k in range(0, 50, 2):
        assert np.array_equal(variants[k + 1], variants[k][:, ::-1])


def test_single_variant_matches_batch(face_image, variants):
    for i in (0, 1, 7, 22, 49):
        assert np.array_equal(variant(face_image, i, P), variants[i])
    with pytest.raises(ValueError, match="0..49"):
        variant(face_image, 50, P)


def test_background_stays_128_after_warps(face_image, variants):
    support = (oval_mask(224, P) > 0).astype(np.uint8)
    support = cv2.dilate(support, np.ones((3, 3), np.uint8))  # bilinear footprint
    t = variant_table(P)
    for row in t.itertuples():
        if row.flip:
            continue
        warped = cv2.warpAffine(
            support, variant_matrix(row.scale, row.dx, row.dy, 224), (224, 224),
            flags=cv2.INTER_NEAREST, borderValue=0,
        )  # fmt: skip
        warped = cv2.dilate(warped, np.ones((3, 3), np.uint8))
        v = variants[row.variant]
        assert np.all(v[warped == 0] == 128), row


def test_shift_and_scale_directions():
    img = np.full((224, 224), 128, np.uint8)
    img[100, 60] = 255
    t = variant_table(P).set_index("variant")
    out = make_variants(img, P)
    right = t[(t.scale == 1.0) & (t.dx == 8) & ~t.flip].index[0]
    down = t[(t.scale == 1.0) & (t.dy == 8) & ~t.flip].index[0]
    assert out[right][100, 68] == 255 and out[down][108, 60] == 255
    # scaling about the centre moves an off-centre point outwards (scale > 1)
    big = t[(t.scale == 1.1) & (t.dx == 0) & (t.dy == 0) & ~t.flip].index[0]
    ys, xs = np.nonzero(out[big] > 128)
    c = 111.5
    assert abs(xs.mean() - (c + 1.1 * (60 - c))) < 1 and abs(ys.mean() - (c + 1.1 * (100 - c))) < 1


def test_make_variants_checks_input():
    with pytest.raises(ValueError, match="224x224"):
        make_variants(np.zeros((100, 100), np.uint8), P)
    with pytest.raises(ValueError, match="uint8"):
        make_variants(np.zeros((224, 224), np.float32), P)
