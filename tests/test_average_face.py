"""The landmark-aligned average face, its CLI, and average / photo base faces for stimuli."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.errors import InputError
from facedialect.faces.average import (
    average_face,
    collect_images,
    neutral_images,
    write_average_face,
)
from facedialect.faces.base import BaseFace
from facedialect.landmarks import detect_landmarks
from facedialect.stages.tuning import cached_run_average, run_neutral_images

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
LONDON = SHARED / "datasets" / "london-frl"
MODEL = SHARED / "assets" / "ict-facekit" / "ict_facekit_light.npz"

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def neutral() -> list[Path]:
    folder = LONDON / "neutral"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found: the shared London face set sits beside the "
                    "project checkout in CI (../shared)")
    return sorted(folder.glob("*.jpg"))


def _listing(folder: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in folder.iterdir()}


def test_average_of_the_102_london_faces_is_an_aligned_face(neutral):
    before = _listing(neutral[0].parent)
    face = average_face(neutral, size=384)
    assert face.n_used == 102 and face.sources["used"].all()
    assert face.image.shape == (384, 384) and face.image.dtype == np.uint8
    # dlib finds a face in the average, with its landmarks where the mean shape says:
    # the warp really aligned the faces (a blurred mix of misaligned faces would not)
    found = detect_landmarks(face.image)
    assert found is not None
    err = np.linalg.norm(found - face.landmarks, axis=1)
    assert np.median(err[17:]) < 4.0
    # eyes level and where the frame puts them
    eyes = face.landmarks[36:42].mean(0), face.landmarks[42:48].mean(0)
    assert abs(eyes[0][1] - eyes[1][1]) < 0.5
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(0.17 * 384, rel=0.01)
    # sharper than the plain, unaligned pixel average of the same photos
    plain = np.mean([cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (384, 384),
                                interpolation=cv2.INTER_AREA) for p in neutral], axis=0)

    def sharp(img: np.ndarray) -> float:
        return float(cv2.Laplacian(np.asarray(img, np.float64), cv2.CV_64F).var())

    assert sharp(face.image) > 1.5 * sharp(plain)
    assert _listing(neutral[0].parent) == before          # input folder untouched


def test_images_without_a_face_are_reported_and_left_out(neutral, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200), 127, np.uint8))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    face = average_face([*neutral[:3], blank, junk], size=256, color=True)
    assert face.n_used == 3 and face.image.shape == (256, 256, 3)
    why = dict(zip(face.sources["path"], face.sources["reason"], strict=True))
    assert why[str(blank)] == "no face detected"
    assert why[str(junk)].startswith("unreadable")


def test_fewer_than_two_faces_is_a_clear_error(neutral, tmp_path):
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((200, 200), 127, np.uint8))
    with pytest.raises(InputError, match="at least 2 images.*1 of 2 usable.*blank.png"):
        average_face([neutral[0], blank])
    with pytest.raises(InputError, match="size"):
        average_face(neutral[:2], size=10)
    with pytest.raises(InputError, match="no such file"):
        collect_images([tmp_path / "nowhere"])


def test_write_average_face_files(neutral, tmp_path):
    face = average_face(neutral[:4], size=256)
    files = write_average_face(face, tmp_path / "out" / "avg.png")
    img = cv2.imread(str(files["image"]), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(img, face.image)
    lm = pd.read_csv(files["landmarks"])
    assert list(lm.columns) == ["point", "x", "y"] and len(lm) == 68
    np.testing.assert_allclose(lm[["x", "y"]].to_numpy(), face.landmarks, atol=1e-3)
    assert pd.read_csv(files["sources"])["used"].all()
    with pytest.raises(InputError, match="PNG"):
        write_average_face(face, tmp_path / "avg.jpg")


def _fake_run(tmp_path: Path, neutral: list[Path], smiling: list[Path]) -> Path:
    """A run directory whose tables/images.csv lists London faces of two databases."""
    rows = []
    for i, p in enumerate(neutral):
        rows.append({"db": "A" if i % 2 else "B", "path": str(p), "subject": f"s{i}",
                     "expression": "neutral", "included": i != 0, "reason": "",
                     "sha256": ""})
    for i, p in enumerate(smiling):
        rows.append({"db": "A", "path": str(p), "subject": f"s{i}", "expression": "happy",
                     "included": True, "reason": "", "sha256": ""})
    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run / "tables" / "images.csv", index=False)
    return run


def test_run_neutral_images_and_the_cached_average(neutral, tmp_path):
    smiling = sorted((LONDON / "smiling").glob("*.jpg"))[:2]
    run = _fake_run(tmp_path, neutral[:5], smiling)
    got = run_neutral_images(run)
    assert got == neutral[1:5]                       # included neutral only, every db
    assert run_neutral_images(run, ["A"]) == [neutral[1], neutral[3]]
    with pytest.raises(InputError, match="no included neutral"):
        run_neutral_images(run, ["C"])
    table = pd.read_csv(run / "tables" / "images.csv")
    assert neutral_images(table, ["A"]) == [neutral[1], neutral[3]]   # no run directory
    out = cached_run_average(run)
    assert out == run.resolve() / "faces" / "average_neutral.png"
    stamp = out.stat().st_mtime_ns
    assert cached_run_average(run) == out and out.stat().st_mtime_ns == stamp   # reused
    cached_run_average(run, dbs=["A"])               # another set: rebuilt
    assert out.stat().st_mtime_ns != stamp
    assert pd.read_csv(out.with_name("average_neutral_sources.csv"))["path"].tolist() == [
        str(neutral[1]), str(neutral[3])]


def test_cli_average_face(neutral, tmp_path):
    runner = CliRunner()
    folder = tmp_path / "in"
    folder.mkdir()
    for p in neutral[:3]:
        os.symlink(p, folder / p.name)
    (folder / "notes.txt").write_text("ignored: not an image")
    out = tmp_path / "avg.png"
    res = runner.invoke(app, ["average-face", str(folder), "--out", str(out), "--size", "200"])
    assert res.exit_code == 0, res.output
    assert cv2.imread(str(out)).shape == (200, 200, 3)
    assert (tmp_path / "avg_landmarks.csv").is_file()
    smiling = sorted((LONDON / "smiling").glob("*.jpg"))[:1]
    run = _fake_run(tmp_path, neutral[:3], smiling)
    res = runner.invoke(app, ["average-face", "--from-run", str(run), "--out",
                              str(tmp_path / "r.png"), "--size", "128"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "r_sources.csv")["path"].tolist() == [
        str(p) for p in neutral[1:3]]
    res = runner.invoke(app, ["average-face", "--out", str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "either IMAGES or --from-run" in res.output
    res = runner.invoke(app, ["average-face", str(neutral[0]), "--out", str(tmp_path / "y.png")])
    assert res.exit_code == 2 and "at least 2" in res.output and "Traceback" not in res.output


# ------------------------------------------------------------------- stimuli base faces
@pytest.fixture
def model_present() -> None:
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} not found: the ICT face model sits in ../shared in CI")


def test_renderer_for_photo_and_average(neutral, tmp_path, model_present):
    from facedialect.faces.stimuli import render_stimuli, renderer_for, stimulus_table
    from facedialect.stages.tuning import base_face_renderer

    photo = LONDON / "composite" / "m_multi.jpg"
    r = renderer_for(str(photo), size=128)
    table = stimulus_table([12, 27], levels=3)
    imgs = render_stimuli(table, r)
    assert all(i.shape == (128, 128) for i in imgs)
    again = render_stimuli(table, renderer_for(str(photo), size=128))
    assert all(np.array_equal(a, b) for a, b in zip(imgs, again, strict=True))
    # the null image is one image for every AU: level 0 of any AU renders the same bytes
    assert np.array_equal(r({}), r({12: 0.0})) and np.array_equal(r({}), r({27: 0.0}))
    assert not np.array_equal(imgs[0], imgs[-1])
    smiling = sorted((LONDON / "smiling").glob("*.jpg"))[:1]
    run = _fake_run(tmp_path, neutral[:4], smiling)
    ra, image = base_face_renderer(f"average:{run}", size=128)
    assert (run / "faces" / "average_neutral.png").is_file()
    assert image == str(run.resolve() / "faces" / "average_neutral.png")
    assert ra({12: 1.0}).shape == (128, 128)
    rb, _ = base_face_renderer("average", size=128, run_dir=run, dbs=["A"])
    assert not np.array_equal(ra({}), rb({}))         # a different set of faces
    # the pure renderer takes the average face itself, as a file or an array (the file
    # now holds rb's average: the same run directory, another set of databases)
    gray = cv2.imread(image, cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(renderer_for("average", size=128, image=gray)({}), rb({}))
    assert np.array_equal(renderer_for("average", size=128, image=image)({}), rb({}))
    with pytest.raises(ValueError, match="average:RUN_DIR"):
        renderer_for("average")
    with pytest.raises(ValueError, match="average:RUN_DIR"):
        base_face_renderer("average")
    with pytest.raises(ValueError, match="PHOTO"):
        renderer_for(str(tmp_path / "no-such.jpg"))


def test_study_file_base_face_validation(tmp_path):
    from facedialect.config import TuningConfig

    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), np.zeros((20, 20), np.uint8))
    ctx = {"base_dir": tmp_path}
    assert TuningConfig.model_validate({"base_face": "face.jpg"},
                                       context=ctx).base_face == str(photo.resolve())
    for ok in ("average", "builtin", "3d"):
        assert TuningConfig.model_validate({"base_face": ok}, context=ctx).base_face == ok
    (tmp_path / "run" / "tables").mkdir(parents=True)
    (tmp_path / "run" / "tables" / "images.csv").write_text("db,path\n")
    got = TuningConfig.model_validate({"base_face": "average:run"}, context=ctx).base_face
    assert got == f"average:{(tmp_path / 'run').resolve()}"
    for bad, msg in (("averag", "neither a photo"), ("missing.jpg", "not found"),
                     ("average:elsewhere", "not a run directory")):
        with pytest.raises(ValueError, match=msg):
            TuningConfig.model_validate({"base_face": bad}, context=ctx)


def test_base_face_parse(tmp_path):
    photo = tmp_path / "face.jpg"
    cv2.imwrite(str(photo), np.zeros((20, 20), np.uint8))
    for text in ("builtin", " 3d ", "average"):
        face = BaseFace.parse(text)
        assert face.path is None and str(face) == text.strip() == face.kind
    assert BaseFace.parse("face.jpg", tmp_path) == BaseFace("photo", photo.resolve())
    assert str(BaseFace.parse(str(photo))) == str(photo.resolve())
    (tmp_path / "run" / "tables").mkdir(parents=True)
    (tmp_path / "run" / "tables" / "images.csv").write_text("db,path\n")
    face = BaseFace.parse("average: run", tmp_path)
    assert face == BaseFace("average", (tmp_path / "run").resolve())
    assert str(face) == f"average:{(tmp_path / 'run').resolve()}"
    assert BaseFace.parse(str(face)) == face            # str() reads back
    # without the checks (a manifest's text): a photo that is gone still describes
    gone = BaseFace.parse("/nowhere/x.png", must_exist=False)
    assert gone.describe() == "the photo-textured 3D face of /nowhere/x.png"
    assert gone.describe("/a/b.png") == "the photo-textured 3D face of /a/b.png"
    assert BaseFace.parse("builtin").describe() == "the built-in procedural face"
    assert BaseFace.parse("3d").describe() == "the ICT 3D model's own face"
    assert BaseFace.parse("average").describe("/r/faces/average_neutral.png") == (
        "the average neutral face of the databases as a photo-textured 3D face: "
        "/r/faces/average_neutral.png")
    # RUN_DIR is not looked into by the parser (the study file's validation does)
    assert BaseFace.parse("average:elsewhere", tmp_path).path == (tmp_path / "elsewhere").resolve()
    for bad, msg in (("", "empty"), ("averag", "neither a photo"), ("x.png", "not found"),
                     ("~nosuchuser_h14/x.jpg", "no user")):
        with pytest.raises(ValueError, match=msg):
            BaseFace.parse(bad, tmp_path)
    with pytest.raises(ValueError, match="kind"):
        BaseFace("photograph")  # type: ignore[arg-type]


def test_cli_stimuli_with_a_photo_base_face(tmp_path, model_present):
    runner = CliRunner()
    photo = LONDON / "composite" / "f_multi.jpg"
    out = tmp_path / "stim"
    res = runner.invoke(app, ["stimuli", "--out", str(out), "--base-face", str(photo),
                              "--aus", "12,26", "--levels", "3", "--size", "128"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "stimuli.csv")
    assert len(table) == 5 and (out / "contact_sheet.png").is_file()
    null = cv2.imread(str(out / "null.png"), cv2.IMREAD_UNCHANGED)
    assert null.shape == (128, 128)
    wall = tmp_path / "wall.png"
    cv2.imwrite(str(wall), np.full((200, 200), 100, np.uint8))
    res = runner.invoke(app, ["stimuli", "--out", str(tmp_path / "x"), "--base-face",
                              str(wall), "--aus", "12", "--levels", "2"])
    assert res.exit_code == 2 and "no face detected" in res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["stimuli", "--out", str(tmp_path / "y"), "--base-face",
                              "averge", "--levels", "2"])
    assert res.exit_code == 2 and "average:RUN_DIR" in res.output
