"""The 3-D face model: asset lookup, loader, AU catalogue, landmarks per AU, renderer."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from facedialect.errors import FacedialectError
from facedialect.faces.model3d.assets import (
    ICT_FACEKIT_FILE,
    AssetMissingError,
    find_ict_facekit,
    install_ict_facekit,
)
from facedialect.faces.model3d.recipes import (
    AU_CATALOGUE,
    BLENDSHAPE_NAMES,
    MODEL_AUS,
    au_keys,
    au_weights,
)
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.vocab import STUDY_AUS

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "ict-facekit"
NPZ = SHARED / ICT_FACEKIT_FILE
needs_model = pytest.mark.skipif(
    not NPZ.is_file(),
    reason=f"ICT Face Model Light not found at {NPZ} (development copy in ../shared/assets)")


@pytest.fixture(scope="module")
def model():
    from facedialect.faces.model3d.model import load_model

    return load_model(NPZ)


# ---------------------------------------------------------------------------------------
# assets
# ---------------------------------------------------------------------------------------


def test_missing_asset_message(tmp_path):
    with pytest.raises(AssetMissingError) as e:
        find_ict_facekit(tmp_path / "nowhere.npz")
    msg = str(e.value)
    assert "facedialect assets install ict-facekit" in msg and "--from" in msg
    assert isinstance(e.value, FacedialectError)


def test_install_without_source_says_what_to_do(tmp_path):
    # downloading is tested in tests/test_assets.py (local server, never the internet)
    with pytest.raises(AssetMissingError, match="--from"):
        install_ict_facekit(None, allow_download=False, cache_dir=tmp_path)


def test_install_rejects_wrong_checksum(tmp_path):
    bad = tmp_path / ICT_FACEKIT_FILE
    bad.write_bytes(b"not the model")
    with pytest.raises(AssetMissingError, match="sha256"):
        install_ict_facekit(bad, cache_dir=tmp_path / "cache")


@needs_model
def test_install_copies_into_cache_and_is_found(tmp_path, monkeypatch):
    dest = install_ict_facekit(SHARED, cache_dir=tmp_path)
    assert dest == tmp_path / "assets" / "ict-facekit" / ICT_FACEKIT_FILE
    assert (dest.parent / "LICENSE").is_file()
    monkeypatch.setenv("FACEDIALECT_CACHE", str(tmp_path))
    monkeypatch.delenv("FACEDIALECT_ASSETS", raising=False)
    assert find_ict_facekit() == dest


# ---------------------------------------------------------------------------------------
# loader
# ---------------------------------------------------------------------------------------


@needs_model
def test_loader_shapes(model):
    nv = model.n_vertices
    assert model.neutral.shape == (nv, 3) and model.neutral.dtype == np.float32
    assert model.triangles.shape[1] == 3 and model.triangles.max() < nv
    assert model.triangle_material.shape == (model.triangles.shape[0],)
    assert model.expression_deltas.shape == (53, nv, 3)
    assert model.identity_deltas.shape == (100, nv, 3)
    assert model.landmarks68.shape == (68,)
    assert model.expression_names == BLENDSHAPE_NAMES
    assert "M_Teeth" in model.materials
    assert not model.neutral.flags.writeable


@needs_model
def test_shape_is_linear(model):
    rng = np.random.default_rng(0)
    c1, c2 = rng.normal(size=10), rng.normal(size=10)
    w1, w2 = rng.random(53), rng.random(53)
    v0 = model.shape().astype(np.float64)
    v1 = model.shape(c1, w1).astype(np.float64) - v0
    v2 = model.shape(c2, w2).astype(np.float64) - v0
    v12 = model.shape(c1 + c2, w1 + w2).astype(np.float64) - v0
    np.testing.assert_allclose(v12, v1 + v2, atol=2e-4)
    with pytest.raises(ValueError, match="blend_weights"):
        model.shape(None, np.zeros(5))


# ---------------------------------------------------------------------------------------
# AU catalogue
# ---------------------------------------------------------------------------------------


def test_catalogue_covers_study_aus_and_model_extras():
    assert set(STUDY_AUS) | {14, 18, 28, 45} == set(MODEL_AUS)
    for n, e in AU_CATALOGUE.items():
        assert e.number == n and e.name and e.recipe
        assert set(e.recipe) <= set(BLENDSHAPE_NAMES)
    assert "12L" in au_keys() and "17L" not in au_keys()


def test_au_weights_combine_linearly():
    a, b = au_weights({12: 0.3}), au_weights({6: 0.5})
    np.testing.assert_allclose(au_weights({12: 0.3, 6: 0.5}), a + b, atol=1e-6)
    np.testing.assert_allclose(au_weights({12: 1.0}), au_weights({12: 0.5}) * 2, atol=1e-6)
    np.testing.assert_allclose(au_weights({"12L": 1.0}) + au_weights({"12R": 1.0}),
                               au_weights({"AU12": 1.0}), atol=1e-6)
    left = au_weights({"12L": 1.0})
    assert left[BLENDSHAPE_NAMES.index("mouthSmile_L")] > 0
    assert left[BLENDSHAPE_NAMES.index("mouthSmile_R")] == 0
    assert not au_weights({}).any() and not au_weights({4: 0.0}).any()


def test_au1_and_au4_combine_by_the_facs_rule():
    """FACS 1+4: the inner brows rise and come together; AU4's inner-brow lowering gives
    way to AU1 in proportion AU1 / AU4, side by side, and everything else still adds up."""
    inner = [BLENDSHAPE_NAMES.index(f"browInnerUp_{s}") for s in "LR"]
    down = [BLENDSHAPE_NAMES.index(f"browDown_{s}") for s in "LR"]
    a1, a4 = au_weights({1: 0.8}), au_weights({4: 0.8})
    assert np.all(a4[inner] < 0)                                   # AU4 alone lowers them
    half = au_weights({1: 0.4, 4: 0.8})                            # AU1 half of AU4
    np.testing.assert_allclose(half[inner], 0.5 * a1[inner] + 0.5 * a4[inner], atol=1e-6)
    both = au_weights({1: 0.8, 4: 0.8})                            # AU1 as strong: gone
    np.testing.assert_allclose(both[inner], a1[inner], atol=1e-6)
    np.testing.assert_allclose(both[down], a4[down], atol=1e-6)     # still drawn down/in
    assert np.all(both[inner] > 0)                                 # raised
    left = au_weights({"1L": 1.0, 4: 0.8})
    np.testing.assert_allclose(left[inner[0]], a1[inner[0]] * 1.25, atol=1e-6)
    np.testing.assert_allclose(left[inner[1]], a4[inner[1]], atol=1e-6)


@pytest.mark.parametrize("bad", [{3: 0.5}, {"12X": 0.5}, {"17L": 0.5}, {True: 0.5}])
def test_unknown_au_lists_valid(bad):
    with pytest.raises(ValueError, match="valid AUs: 1, 1L, 1R, 2"):
        au_weights(bad)


@pytest.mark.parametrize("value", [-0.1, 1.01, float("nan"), "much"])
def test_intensity_out_of_range(value):
    with pytest.raises(ValueError, match="AU12 intensity"):
        au_weights({12: value})


# ---------------------------------------------------------------------------------------
# landmarks move the way FACS says (image rows grow downward)
# ---------------------------------------------------------------------------------------


def _row(lm, *i):
    return float(sum(lm[j, 1] for j in i))


def _width(lm):
    return float(lm[54, 0] - lm[48, 0])


#: AU -> list of (what, measure) that must increase strictly with intensity.
FACS_MOVES = {
    1: [("inner brows up", lambda lm: -_row(lm, 21, 22))],
    2: [("outer brows up", lambda lm: -_row(lm, 17, 26))],
    4: [("inner brows down", lambda lm: _row(lm, 21, 22)),
        ("brows together", lambda lm: -(lm[22, 0] - lm[21, 0]))],
    5: [("upper lids up", lambda lm: -_row(lm, 37, 38, 43, 44))],
    6: [("lower lids pushed up", lambda lm: -_row(lm, 40, 41, 46, 47))],
    7: [("lower lids tightened up", lambda lm: -_row(lm, 40, 41, 46, 47))],
    9: [("nose wings up", lambda lm: -_row(lm, 31, 35))],
    10: [("upper lip up", lambda lm: -_row(lm, 51))],
    11: [("upper lip sides up", lambda lm: -_row(lm, 50, 52))],
    12: [("corners up", lambda lm: -_row(lm, 48, 54)), ("corners outward", _width)],
    14: [("corners outward", _width)],
    15: [("corners down", lambda lm: _row(lm, 48, 54))],
    16: [("lower lip down", lambda lm: _row(lm, 57))],
    17: [("lower lip pushed up", lambda lm: -_row(lm, 57)), ("chin up", lambda lm: -_row(lm, 8))],
    18: [("mouth narrower", lambda lm: -_width(lm))],
    20: [("corners outward", _width)],
    22: [("mouth narrower (rounded)", lambda lm: -_width(lm)),
         ("lips apart", lambda lm: lm[57, 1] - lm[51, 1])],
    23: [("lips thinner", lambda lm: -(lm[57, 1] - lm[51, 1]))],
    24: [("lips pressed thinner", lambda lm: -(lm[57, 1] - lm[51, 1]))],
    25: [("lips part", lambda lm: lm[66, 1] - lm[62, 1])],
    26: [("lower lip down", lambda lm: _row(lm, 57)), ("jaw down", lambda lm: _row(lm, 8))],
    27: [("lower lip down", lambda lm: _row(lm, 57)), ("jaw down", lambda lm: _row(lm, 8))],
    28: [("lips rolled in", lambda lm: -(lm[57, 1] - lm[51, 1]))],
    45: [("upper lids down", lambda lm: _row(lm, 37, 38, 43, 44))],
}


def test_every_model_au_has_a_facs_check():
    assert set(FACS_MOVES) == set(MODEL_AUS)


@needs_model
@pytest.mark.parametrize("au", sorted(FACS_MOVES))
def test_landmarks_move_as_facs_says(model, au):
    from facedialect.faces.model3d.render import project_landmarks

    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    lms = [project_landmarks(model, model.shape(None, au_weights({au: x})), 256)
           for x in levels]
    for what, measure in FACS_MOVES[au]:
        vals = np.array([measure(lm) for lm in lms])
        steps = np.diff(vals)
        assert np.all(steps > 0), f"AU{au}: {what} not monotone: {vals}"
        assert vals[-1] - vals[0] > 0.5, f"AU{au}: {what} moves < 0.5 px at 256 px: {vals}"


@needs_model
def test_au24_presses_the_lips_without_raising_the_chin(model):
    """FACS: AU24 presses the lips (thinner, not narrower) and does not raise the chin;
    AU17 does. The model's mouthPress alone raises the chin, which the recipe cancels
    (docs/faces-3d.md)."""
    from facedialect.faces.model3d.render import project_landmarks

    def marks(aus):
        return project_landmarks(model, model.shape(None, au_weights(aus)), 256)

    n, p24, p17 = marks({}), marks({24: 1.0}), marks({17: 1.0})
    assert (p24[57, 1] - p24[51, 1]) < (n[57, 1] - n[51, 1]) - 5      # lips pressed thin
    assert _width(p24) >= _width(n)                                   # not narrowed
    assert abs(p24[8, 1] - n[8, 1]) < 2.5                             # chin stays
    assert n[8, 1] - p17[8, 1] > 5                                    # AU17 raises it


@needs_model
def test_au22_pushes_lips_forward(model):
    lip = model.landmarks68[[51, 57]]
    z0 = model.shape()[lip, 2]
    z1 = model.shape(None, au_weights({22: 1.0}))[lip, 2]
    assert np.all(z1 > z0 + 0.1)


@needs_model
def test_one_sided_au_moves_one_side(model):
    from facedialect.faces.model3d.render import project_landmarks

    base = project_landmarks(model, model.shape(), 256)
    left = project_landmarks(model, model.shape(None, au_weights({"12L": 1.0})), 256)
    # the subject's left is the image's right: landmark 54
    assert base[54, 1] - left[54, 1] > 3.0
    assert abs(base[48, 1] - left[48, 1]) < 0.5


# ---------------------------------------------------------------------------------------
# renderer
# ---------------------------------------------------------------------------------------


@needs_model
def test_null_render_deterministic(model):
    from facedialect.faces.model3d.render import render_face_3d, render_model

    a = render_model(model, model.shape(), 256)
    b = render_model(model, model.shape(None, au_weights({})), 256)
    assert a.shape == (256, 256) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    c1 = render_face_3d(FaceIdentity(), {12: 0.0}, 256, model=model)
    c2 = render_face_3d(FaceIdentity(), {4: 0.0, 27: 0.0}, 256, model=model)
    assert np.array_equal(c1, c2)
    rgb = render_face_3d(FaceIdentity(), {}, 256, color=True, model=model)
    assert rgb.shape == (256, 256, 3)
    assert np.array_equal(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), c1)


def _mouth_pixels(model, aus, size=256):
    from facedialect.faces.model3d.render import project_landmarks, render_model

    v = model.shape(None, au_weights(aus))
    img = render_model(model, v, size)
    lm = project_landmarks(model, v, size)
    mask = np.zeros_like(img)
    cv2.fillPoly(mask, [np.round(lm[60:68]).astype(np.int32)], 255)
    mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
    return img[mask > 0]


@needs_model
def test_open_mouth_shows_lit_cavity_and_bright_teeth(model):
    from facedialect.faces.model3d.render import render_model

    skin = float(np.median(render_model(model, model.shape(), 256)[96:160, 96:160]))
    jaw = _mouth_pixels(model, {27: 1.0})
    assert jaw.size > 150
    # a cavity: darker than the skin; lit through the lips: not a black hole (the tongue
    # and the back of the mouth show)
    assert np.median(jaw) < 0.6 * skin, "open mouth has no dark cavity"
    assert np.median(jaw) > 25, "open mouth is a black hole"
    teeth = _mouth_pixels(model, {25: 1.0, 10: 0.6})
    assert teeth.size > 30
    assert np.percentile(teeth, 90) > max(170, skin + 20), "no bright teeth behind the lips"


@needs_model
@pytest.mark.parametrize("aus", [{}, {12: 1.0, 6: 1.0}, {1: 0.8, 2: 0.8, 5: 0.8, 26: 0.8}])
def test_haar_detects_rendered_face(model, aus):
    from facedialect.faces.model3d.render import render_face_3d

    img = render_face_3d(FaceIdentity(), aus, 256, model=model)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades
                                    + "haarcascade_frontalface_default.xml")
    faces = cascade.detectMultiScale(img, 1.1, 5, minSize=(38, 38))
    assert len(faces) >= 1


@needs_model
def test_render_face_3d_is_a_culture_renderer(model, tmp_path, monkeypatch):
    from facedialect.faces.model3d import render
    from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database

    monkeypatch.setattr(render, "default_model", lambda: model)
    preset = EastWestPreset(n_posers=1, size=96, seed=3)
    table = write_synthetic_database(tmp_path, "A", preset, renderer=render.render_face_3d)
    assert len(table) == 7 * len(STUDY_AUS)
    assert len(list(tmp_path.rglob("*.png"))) == 7


@needs_model
def test_identity_and_pose_change_the_face(model):
    from facedialect.faces.model3d.render import render_face_3d

    base = render_face_3d(FaceIdentity(), {}, 128, model=model).astype(int)
    shaped = FaceIdentity(shape=(2.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0))
    rolled = FaceIdentity(roll=8.0)
    assert np.abs(render_face_3d(shaped, {}, 128, model=model) - base).mean() > 1.0
    assert np.abs(render_face_3d(rolled, {}, 128, model=model) - base).mean() > 1.0
    with pytest.raises(ValueError, match="size"):
        render_face_3d(FaceIdentity(), {}, 10, model=model)


@needs_model
def test_pose_directions(model):
    from facedialect.faces.model3d.render import pose_vertices, project_landmarks

    v = model.shape()
    base = project_landmarks(model, v, 256)
    rolled = project_landmarks(model, pose_vertices(v, roll=10.0), 256)
    # positive roll turns the face clockwise on screen: the image-right eye goes down
    assert rolled[45, 1] > base[45, 1] + 2 and rolled[36, 1] < base[36, 1] - 2
    turned = project_landmarks(model, pose_vertices(v, yaw=10.0), 256)
    assert turned[30, 0] > base[30, 0] + 2
