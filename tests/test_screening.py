"""Screening of web-collected sets: near duplicates, face size, blur (SCIENCE §1)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

import test_cli
from facedialect.config import DatabaseConfig, ScreeningConfig, parse_study
from facedialect.errors import InputError, StudyFileError
from facedialect.imageio import read_gray
from facedialect.preprocess import PreprocessParams, preprocess_face
from facedialect.preprocess.screening import (
    DEFAULT_HASH_DISTANCE,
    DUPLICATE_COLUMNS,
    HASH_BITS,
    group_near_duplicates,
    hash_distances,
    perceptual_hash,
    quality_reasons,
    sharpness,
    study_order,
)
from facedialect.run.store import RunDir
from facedialect.stages.ingest import ingest_databases
from facedialect.stages.preprocess import preprocess_images

kdef_tree = test_cli.kdef_tree  # the fixture: 4 KDEF-named subjects of London faces


# ------------------------------------------------------------------------------------ helpers
def jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def resized(gray: np.ndarray, f: float) -> np.ndarray:
    h, w = gray.shape
    return np.asarray(Image.fromarray(gray).resize((round(w * f), round(h * f)),
                                                   Image.Resampling.BICUBIC))


def mirrored(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(gray[:, ::-1])


def save(path: Path, gray: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(gray).save(path, quality=95)


def manifest_db(root: Path, images: dict[tuple[str, str], np.ndarray]) -> Path:
    """A manifest database: (subject, expression) -> image, files ``{subject}_{expr}.jpg``."""
    lines = ["path,subject,expression"]
    for (subject, expr), gray in images.items():
        save(root / f"{subject}_{expr}.jpg", gray)
        lines.append(f"{subject}_{expr}.jpg,{subject},{expr}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


def db(name: str, root: Path, preset: str = "manifest") -> DatabaseConfig:
    return DatabaseConfig.model_validate({"name": name, "preset": preset, "root": root,
                                          "n_subjects": None}, context={"base_dir": root})


def photo(london: Path, kind: str, k: int) -> np.ndarray:
    return read_gray(sorted((london / kind).glob("*.jpg"))[k])


def hashes_of(*grays: np.ndarray) -> np.ndarray:
    return np.stack([perceptual_hash(g) for g in grays])


def fake_hashes(bits: list[int]) -> np.ndarray:
    """Hashes that differ from all-zero in the first ``b`` bits (mirror: all ones)."""
    out = np.zeros((len(bits), 2, HASH_BITS // 64), dtype=np.uint64)
    for k, b in enumerate(bits):
        packed = np.packbits(np.arange(HASH_BITS) < b).view(">u8").astype(np.uint64)
        out[k, 0] = packed
        out[k, 1] = ~np.uint64(0)
    return out


# ------------------------------------------------------------------------------ pure functions
def test_hash_shape_and_mirror():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (90, 120), dtype=np.uint8), (0, 0), 3)
    h = perceptual_hash(img)
    assert h.shape == (2, HASH_BITS // 64) and h.dtype == np.uint64
    m = perceptual_hash(mirrored(img))
    assert (m[0] == h[1]).all() and (m[1] == h[0]).all()
    assert hash_distances(h[None], m[None])[0, 0] == 0  # a mirror copy is at distance 0
    with pytest.raises(ValueError, match="grayscale"):
        perceptual_hash(np.zeros((0, 5), np.uint8))


def test_grouping_keeps_first_nearest_and_does_not_chain():
    items = pd.DataFrame({"db": ["A"] * 5, "path": [f"/a/{k}.jpg" for k in range(5)]})
    # distance of two fake hashes: the difference of their bit counts. Image 2 is 10 from
    # image 1 (a copy of 0) but 20 from image 0 (kept): it is kept, not chained to 0.
    groups = group_near_duplicates(items, fake_hashes([0, 10, 20, 30, 5]), threshold=12)
    assert list(groups.columns[:5]) == DUPLICATE_COLUMNS
    assert groups["path"].tolist() == ["/a/0.jpg", "/a/1.jpg", "/a/4.jpg",  # group 1
                                       "/a/2.jpg", "/a/3.jpg"]              # group 2
    assert groups["group"].tolist() == [1, 1, 1, 2, 2]
    assert groups["kept"].tolist() == [True, False, False, True, False]
    assert groups["distance"].tolist() == [0, 10, 5, 0, 10]
    assert groups["kept_path"].tolist() == ["/a/0.jpg"] * 3 + ["/a/2.jpg"] * 2
    assert group_near_duplicates(items, fake_hashes([0, 20, 40, 60, 80]), 12).empty


def test_grouping_joins_the_nearest_kept_image():
    items = pd.DataFrame({"db": ["A"] * 3, "path": ["x", "y", "z"]})
    groups = group_near_duplicates(items, fake_hashes([0, 16, 10]), threshold=10)
    # z is 10 from x and 6 from y (both kept): it joins y
    assert groups.loc[groups["path"] == "z", "kept_path"].item() == "y"
    assert groups.loc[groups["path"] == "z", "distance"].item() == 6


def test_grouping_within_subject_only_when_asked():
    items = pd.DataFrame({"db": ["A", "A", "B", "A", "A"], "path": list("vwxyz"),
                          "subject": ["s1", "s1", "s1", "", np.nan]})
    h = fake_hashes([0, 3, 1, 40, 42])
    groups = group_near_duplicates(items, h, threshold=4, within_subject=False)
    # w is s1 of A like v: not compared; x is s1 of another database; y, z have no subject
    assert groups["path"].tolist() == ["v", "x", "y", "z"]
    assert groups["kept"].tolist() == [True, False, True, False]
    groups = group_near_duplicates(items, h, threshold=4)
    assert groups["path"].tolist() == ["v", "w", "x", "y", "z"]


def test_study_order_first_database_then_natural_path():
    items = pd.DataFrame({"db": ["B", "A", "A", "B"],
                          "path": ["/b/1.jpg", "/a/img10.jpg", "/a/img2.jpg", "/b/0.jpg"]})
    ordered = study_order(items, ["A", "B"])
    assert ordered["path"].tolist() == ["/a/img2.jpg", "/a/img10.jpg", "/b/0.jpg", "/b/1.jpg"]
    # a copy across databases is excluded in the later database: /b/1.jpg (row 0) is an
    # exact copy of /a/img10.jpg (row 1), /b/0.jpg (row 3) 2 bits from both
    h = fake_hashes([0, 0, 60, 2])
    groups = group_near_duplicates(ordered, h[ordered.index.to_numpy()], threshold=4)
    kept = groups[groups["kept"]]
    assert kept[["db", "path"]].values.tolist() == [["A", "/a/img10.jpg"]]
    assert sorted(groups.loc[~groups["kept"], "path"]) == ["/b/0.jpg", "/b/1.jpg"]


def test_quality_reasons():
    table = pd.DataFrame({"w": [30, 200, 200, 30], "sharpness": [500.0, 80.0, 500.0, 10.0]})
    r = quality_reasons(table, min_face=40, min_sharpness=100).tolist()
    assert r == ["face too small: width 30 px < 40 px", "blurred: sharpness 80.0 < 100", "",
                 "face too small: width 30 px < 40 px"]
    assert (quality_reasons(table, 0, 0) == "").all()


def test_sharpness_flat_sharp_blurred():
    rng = np.random.default_rng(1)
    tex = rng.integers(0, 256, (300, 300), dtype=np.uint8)
    assert sharpness(np.full((300, 300), 90, np.uint8), (50, 50, 200, 200)) == 0.0
    assert sharpness(tex, (400, 400, 50, 50)) == 0.0  # outside the image
    assert sharpness(tex, (290, 290, 50, 50)) > 0  # clipped to 10x10
    sharp = sharpness(tex, (50, 50, 200, 200))
    assert sharpness(cv2.GaussianBlur(tex, (0, 0), 4), (50, 50, 200, 200)) < 0.2 * sharp
    # contrast does not matter (the region is scaled to SD 32)
    low = (tex.astype(np.float32) * 0.3 + 90).astype(np.uint8)
    assert sharpness(low, (50, 50, 200, 200)) == pytest.approx(sharp, rel=0.1)


def test_screening_section_defaults_and_errors(tmp_path):
    (tmp_path / "db").mkdir()  # the output may not lie inside a database folder
    base = {"study": {"name": "s", "output": "o"},
            "databases": [{"name": "A", "preset": "folder", "root": str(tmp_path / "db")}]}
    study = parse_study(base, tmp_path)
    assert study.screening == ScreeningConfig()
    assert (study.screening.near_duplicates, study.screening.hash_distance,
            study.screening.within_subject, study.screening.min_face,
            study.screening.min_sharpness) == (True, DEFAULT_HASH_DISTANCE, False, 40, 0.0)
    assert "[screening]" in study.to_toml()
    with pytest.raises(StudyFileError, match="screening.hash_distance"):
        parse_study({**base, "screening": {"hash_distance": -1}}, tmp_path)
    with pytest.raises(StudyFileError, match="min_sharpness"):
        parse_study({**base, "screening": {"min_sharp": 3}}, tmp_path)


# ----------------------------------------------------------------- real photos (London set)
LONDON = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "london-frl"


@pytest.fixture(scope="module")
def faces() -> dict[str, list[np.ndarray]]:
    """All 204 London photos (102 people, neutral and smiling), decoded."""
    if not (LONDON / "neutral").is_dir():
        pytest.skip(f"{LONDON} not found: the shared London face set sits beside the project "
                    "checkout in CI (../shared)")
    return {kind: [read_gray(f) for f in sorted((LONDON / kind).glob("*.jpg"))]
            for kind in ("neutral", "smiling")}


@pytest.mark.shared
def test_copies_are_found(faces):
    originals = faces["neutral"][:12] + faces["smiling"][:12]
    h = hashes_of(*originals)
    for name, fn in {"resized x0.5": lambda g: resized(g, 0.5),
                     "resized x0.25": lambda g: resized(g, 0.25),
                     "JPEG quality 20": lambda g: jpeg(g, 20),
                     "mirrored": mirrored,
                     "x0.5, JPEG 50, mirrored": lambda g: mirrored(jpeg(resized(g, 0.5), 50))
                     }.items():
        d = np.diag(hash_distances(h, hashes_of(*(fn(g) for g in originals))))
        assert d.max() <= DEFAULT_HASH_DISTANCE, (name, d)


@pytest.mark.shared
def test_other_photos_are_not_duplicates(faces):
    neutral, smiling = hashes_of(*faces["neutral"]), hashes_of(*faces["smiling"])
    n = len(neutral)
    d = hash_distances(np.concatenate([neutral, smiling]), np.concatenate([neutral, smiling]))
    person = np.tile(np.arange(n), 2)
    other = person[:, None] != person[None, :]
    assert d[other].min() > 4 * DEFAULT_HASH_DISTANCE  # different people: 134 and more
    same = np.diag(hash_distances(neutral, smiling))  # one person, neutral vs smiling
    assert same.min() > 2 * DEFAULT_HASH_DISTANCE  # 88 and more


@pytest.mark.shared
def test_sharpness_does_not_depend_on_image_size(faces):
    params = PreprocessParams()
    for gray in faces["neutral"][:5]:
        box = preprocess_face(gray, params).box
        s = sharpness(gray, box)
        big = sharpness(cv2.resize(gray, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC),
                        tuple(2 * v for v in box))
        assert big == pytest.approx(s, rel=0.15)
        blurred = sharpness(cv2.GaussianBlur(gray, (0, 0), 4), box)
        assert blurred < 0.4 * s


# -------------------------------------------------------------------------------- the stage
@pytest.fixture
def two_webs(tmp_path, london) -> tuple[RunDir, list[DatabaseConfig]]:
    """KDEF-like tree + a web set holding a mirrored copy of a KDEF image and an inner copy."""
    kdef = sorted((london / "neutral").glob("*.jpg"))
    web = manifest_db(tmp_path / "web", {
        ("w1", "neutral"): mirrored(jpeg(read_gray(kdef[1]), 60)),   # copy of KDEF's 2nd
        ("w1", "happy"): photo(london, "smiling", 60),
        ("w2", "neutral"): photo(london, "neutral", 60),             # same person as w1 happy
        ("w2", "happy"): photo(london, "smiling", 61),
        ("w3", "neutral"): jpeg(resized(photo(london, "neutral", 60), 0.5), 70),  # copy of w2
        ("w3", "happy"): photo(london, "smiling", 62),
    })
    base = manifest_db(tmp_path / "base", {("b1", "neutral"): read_gray(kdef[0]),
                                           ("b1", "happy"): photo(london, "smiling", 0),
                                           ("b2", "neutral"): read_gray(kdef[1]),
                                           ("b2", "happy"): photo(london, "smiling", 1)})
    run = RunDir(tmp_path / "run")
    dbs = [db("BASE", base), db("WEB", web)]
    ingest_databases(run, dbs)
    return run, dbs


@pytest.mark.shared
def test_stage_excludes_copies_writes_duplicates_and_caches(two_webs):
    run, _ = two_webs
    s = preprocess_images(run, PreprocessParams(), workers=2)
    assert (s.near_duplicates, s.duplicate_groups) == (2, 2)
    dups = run.read_table("duplicates")
    assert list(dups.columns) == DUPLICATE_COLUMNS
    names = [(r.group, r.db, Path(r.path).name, bool(r.kept)) for r in dups.itertuples()]
    assert names == [(1, "BASE", "b2_neutral.jpg", True), (1, "WEB", "w1_neutral.jpg", False),
                     (2, "WEB", "w2_neutral.jpg", True), (2, "WEB", "w3_neutral.jpg", False)]
    assert (dups["distance"] <= DEFAULT_HASH_DISTANCE).all()
    images = run.read_table("images").set_index("path")
    reason = {Path(p).name: r for p, r in images["reason"].items() if isinstance(r, str)}
    d = int(dups.loc[dups["path"].str.endswith("w1_neutral.jpg"), "distance"].item())
    assert reason["w1_neutral.jpg"] == f"near duplicate: BASE/b2_neutral.jpg (distance {d})"
    assert reason["w3_neutral.jpg"].startswith("near duplicate: WEB/w2_neutral.jpg (distance")
    assert reason["w1_happy.jpg"].startswith("subject incomplete")  # lost its neutral
    included = images[images["included"].astype(bool)]
    assert sorted(Path(p).name for p in included.index) == [
        "b1_happy.jpg", "b1_neutral.jpg", "b2_happy.jpg", "b2_neutral.jpg", "w2_happy.jpg",
        "w2_neutral.jpg"]
    screen = run.read_table("screening")
    assert len(screen) == 10 and (screen["sharpness"] > 0).all()
    assert (screen["face_width"] > 40).all()

    # second run: hashes and sharpness come from the cache, nothing is decoded
    s2 = preprocess_images(run, PreprocessParams(), workers=2)
    stage = run.read_manifest()["stages"]["preprocess"]
    assert stage["from_cache"] == 10 and stage["screening_from_cache"] == 10
    assert s2.near_duplicates == 2
    # switched off: the copies are candidates again and included
    s3 = preprocess_images(run, PreprocessParams(), screen=ScreeningConfig(near_duplicates=False))
    assert s3.near_duplicates == 0 and run.read_table("duplicates").empty
    assert run.read_table("images")["included"].astype(bool).sum() == 10


@pytest.mark.shared
def test_stage_face_size_and_blur_before_duplicates(tmp_path, london):
    n0, s0 = photo(london, "neutral", 5), photo(london, "smiling", 5)
    root = manifest_db(tmp_path / "q", {
        ("q1", "neutral"): resized(n0, 0.3),                       # face about 60 px wide
        ("q1", "happy"): cv2.GaussianBlur(s0, (0, 0), 6),
        ("q2", "neutral"): n0, ("q2", "happy"): s0})
    run = RunDir(tmp_path / "run")
    ingest_databases(run, [db("Q", root)])
    s = preprocess_images(run, PreprocessParams(), workers=1,
                         screen=ScreeningConfig(min_face=100, min_sharpness=150))
    assert (s.too_small, s.blurred, s.near_duplicates) == (1, 1, 0)
    assert run.read_table("duplicates").empty  # excluded for quality first
    reason = {Path(p).name: r for p, r in run.read_table("images")[["path", "reason"]].values}
    assert reason["q1_neutral.jpg"].startswith("face too small: width ")
    assert reason["q1_neutral.jpg"].endswith(" px < 100 px")
    assert reason["q1_happy.jpg"].startswith("blurred: sharpness ")
    assert reason["q1_happy.jpg"].endswith(" < 150")
    # thresholds are re-decided on every run
    preprocess_images(run, PreprocessParams(), workers=1, screen=ScreeningConfig(
        near_duplicates=False))
    assert run.read_table("images")["included"].astype(bool).all()


@pytest.mark.shared
def test_database_of_copies_is_a_clear_error(tmp_path, kdef_tree):
    run = RunDir(tmp_path / "run")
    ingest_databases(run, [db("KDEF", kdef_tree, "kdef"), db("AGAIN", kdef_tree, "kdef")])
    with pytest.raises(InputError, match=r"database 'AGAIN': screening left no image .*"
                       r"27 near duplicate.*near duplicates of images in KDEF .*"
                       r"near_duplicates = false"):
        preprocess_images(run, PreprocessParams(), workers=2)
    dups = run.read_table("duplicates")
    assert len(dups) == 54 and dups.groupby("group").size().eq(2).all()
    assert set(dups.loc[dups["kept"], "db"]) == {"KDEF"}
