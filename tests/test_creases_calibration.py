"""Wrinkle and furrow shading of the AUs, the lit mouth, and the smile calibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from facedialect.faces.model3d.creases import crease_shading, crease_strengths
from facedialect.faces.model3d.recipes import AU_CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "assets" / "ict-facekit" / "ict_facekit_light.npz"
LONDON = ROOT.parent / "shared" / "datasets" / "london-frl"

needs_model = pytest.mark.skipif(not MODEL.is_file(), reason="ICT model not in ../shared")


def test_crease_strengths_follow_sides():
    assert crease_strengths({4: 0.5, 5: 1.0}) == {4: (0.5, 0.5)}      # AU5 does not crease
    assert crease_strengths({"12L": 0.8}) == {12: (0.8, 0.0)}
    assert crease_strengths({}) == {}


def test_crease_shading_darkens_the_right_places():
    glabella, nose, cheek = (0.44, 5.5), (0.0, 3.0), (5.0, -3.0)
    xy = np.array([glabella, nose, cheek, (-0.44, 5.5), (0.5, 7.85), (3.0, 7.8)])
    assert crease_shading(xy, {5: 1.0}) is None                       # nothing to shade
    s1, s2 = crease_shading(xy, {1: 1.0}), crease_shading(xy, {2: 1.0})
    assert s1[4] < 0.9 and s1[5] == pytest.approx(1.0)                # forehead: centre
    assert s2[5] < 0.9 and s2[4] == pytest.approx(1.0)                # forehead: sides
    s4 = crease_shading(xy, {4: 1.0})
    assert s4[0] < 0.8 and s4[3] < 0.8                                 # furrows between brows
    assert s4[2] == pytest.approx(1.0)                                 # cheek untouched
    s9 = crease_shading(xy, {9: 1.0})
    assert s9[1] < 0.85                                                # nose wrinkle
    # linear in intensity near zero, one-sided AUs crease their side only
    s4h = crease_shading(xy, {4: 0.5})
    assert 1 - s4h[0] == pytest.approx((1 - s4[0]) / 2, rel=1e-4)
    s4l = crease_shading(xy, {"4L": 1.0})
    assert s4l[0] < 0.8 and s4l[3] == pytest.approx(1.0)


@needs_model
def test_plain_render_shows_brow_furrows_and_nose_wrinkles():
    from facedialect.faces.model3d.model import load_model
    from facedialect.faces.model3d.recipes import au_weights
    from facedialect.faces.model3d.render import project_landmarks, render_model

    model = load_model(MODEL)
    for au, lm_ids in ((4, (21, 22, 27)), (9, (27, 28, 29))):
        v = model.shape(None, au_weights({au: 1.0}))
        plain = render_model(model, v, 256).astype(float)
        shaded = render_model(model, v, 256, aus={au: 1.0}).astype(float)
        lm = project_landmarks(model, v, 256)
        x0 = int(lm[list(lm_ids), 0].min()) - 4
        x1 = int(lm[list(lm_ids), 0].max()) + 4
        y0, y1 = int(lm[list(lm_ids), 1].min()) - 4, int(lm[list(lm_ids), 1].max()) + 4
        region = (slice(y0, y1), slice(x0, x1))
        assert shaded[region].mean() < plain[region].mean() - 1, au        # darker lines
        assert (plain - shaded)[region].max() > 15, au                      # visible ones
        # elsewhere (the lower face for AU4, the forehead for AU9) nothing changes
        far = slice(int(lm[57, 1]) + 2, 256) if au == 4 else slice(0, int(lm[19, 1]) - 20)
        assert np.array_equal(plain[far], shaded[far]), au


@needs_model
def test_mouth_interior_has_teeth_gums_and_tongue():
    from facedialect.faces.model3d.model import VERTEX_RANGES, load_model
    from facedialect.faces.model3d.render import MOUTH_COLOURS, prepare_model

    prep = prepare_model(load_model(MODEL))
    a, b = VERTEX_RANGES["gums_tongue"]
    gt = prep.mouth_rgb[a: b + 1]
    gum = np.all(np.isclose(gt, MOUTH_COLOURS["gums"]), axis=1)
    tongue = np.all(np.isclose(gt, MOUTH_COLOURS["tongue"]), axis=1)
    assert np.all(gum | tongue) and gum.mean() > 0.05 and tongue.mean() > 0.05
    ta, tb = VERTEX_RANGES["teeth"]
    assert np.allclose(prep.mouth_rgb[ta: tb + 1], MOUTH_COLOURS["teeth"])


@needs_model
def test_fit_expression_recovers_known_intensities():
    """Landmarks made by the model with known AU intensities are fitted back."""
    from facedialect.faces.model3d.calibrate import fit_expression, recipe_directions
    from facedialect.faces.model3d.fit import PhotoFit
    from facedialect.faces.model3d.model import load_model

    model = load_model(MODEL)
    aus = (6, 12, 25)
    d = recipe_directions(model, {a: AU_CATALOGUE[a].recipe for a in aus})
    truth = np.array([0.4, 0.7, 0.2])
    x = model.neutral[model.landmarks68].astype(np.float64) + np.tensordot(truth, d, axes=1)
    scale, shift = 9.0, np.array([256.0, -240.0])
    lm = np.stack([scale * x[:, 0] + shift[0], -(scale * x[:, 1] + shift[1])], axis=1)
    neutral = PhotoFit(identity=np.zeros(0, np.float32), rotation=np.eye(3), scale=scale,
                       shift=shift, landmarks=lm, rms_px=0.0, shape=(512, 512))
    a, res, null = fit_expression(model, neutral, lm, d)
    assert np.allclose(a, truth, atol=0.02)
    assert res < 0.05 < null
    # bounded at intensity 1: a direction too weak cannot reach the smile
    a_weak, res_weak, _ = fit_expression(model, neutral, lm, d * 0.3)
    assert a_weak.max() == pytest.approx(1.0) and res_weak > res


def test_recipes_are_the_recorded_calibration():
    """AU6 and AU12 carry the gains that bench/calibrate_smile.py fitted and recorded."""
    from facedialect.faces.model3d.calibrate import CALIBRATED_SHAPES

    rec = json.loads((ROOT / "bench" / "results" / "smile_calibration.json").read_text())
    assert rec["residual_after"] < rec["residual_before"] < rec["residual_neutral"]
    for au, shapes in CALIBRATED_SHAPES.items():
        fitted = rec["recipes_after"][str(au)]
        for shape in shapes:
            assert AU_CATALOGUE[au].recipe[f"{shape}_L"] == pytest.approx(fitted[shape])
            assert AU_CATALOGUE[au].recipe[f"{shape}_R"] == pytest.approx(fitted[shape])


@needs_model
@pytest.mark.skipif(not (LONDON / "smiling").is_dir(), reason="London set not in ../shared")
def test_calibration_on_london_pairs_lowers_the_residual():
    """On real pairs, weak recipes (a third of the model's shapes) cannot reach the
    smiles at intensity 1; the calibrated ones fit them better."""
    from facedialect.faces.model3d.calibrate import calibrate_smile, london_pairs

    pairs = london_pairs(LONDON)[:6]
    cal = calibrate_smile(pairs, recipes_before={6: {"cheekSquint": 0.3},
                                                 12: {"mouthSmile": 0.3}})
    assert cal.people == 6
    assert cal.residual_after < cal.residual_before < cal.residual_neutral
    assert cal.recipes_after[12]["mouthSmile"] > 0.3
