"""Database presets: naming, validation of every file, exclusions, the contract of ingest."""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facedialect.databases import (
    FACS_COLUMN,
    IMAGE_COLUMNS,
    PRESETS,
    REASON_CATEGORIES,
    ingest,
    reason_category,
    summarize,
)
from facedialect.errors import InputError
from facedialect.vocab import EXPRESSIONS, JAFFE_CODES, KDEF_CODES, KRC_CODES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "databases.md"
_seed = itertools.count(1)


# ------------------------------------------------------------------------------------ helpers
def write_image(path: Path, mode: str = "L", fmt: str | None = None) -> Path:
    """A 24x24 image with its own random pixels (so every file's bytes differ)."""
    rng = np.random.default_rng(next(_seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (24, 24), dtype=np.uint16))
    else:
        im = Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).convert(mode)
    im.save(path, format=fmt)
    return path


def rows(df: pd.DataFrame) -> dict[str, dict]:
    """Rows keyed by file name (names are unique in these trees)."""
    return {Path(p).name: r for p, r in zip(df["path"], df.to_dict("records"), strict=True)}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under root with size and mtime (ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            out[p.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def make_kdef(root: Path, subjects=("F01", "M01"), views=("S",), sessions=("A",),
              codes=tuple(KDEF_CODES)) -> Path:
    for session, subject, code, view in itertools.product(sessions, subjects, codes, views):
        name = f"{session}{subject}{code}{view}.JPG"
        write_image(root / f"{session}{subject}" / name, fmt="JPEG")
    return root


def make_krc(root: Path, posers=("fd19", "md02"), views=("d",)) -> Path:
    for poser, code, view in itertools.product(posers, KRC_CODES, views):
        write_image(root / f"{poser}_{code}_{view}.jpg", fmt="JPEG")
    return root


def make_jaffe(root: Path, posers=("KA", "YM")) -> Path:
    number = itertools.count(1)
    for poser, code in itertools.product(posers, JAFFE_CODES):
        write_image(root / f"{poser}.{code}1.{next(number)}.tiff", fmt="TIFF")
    return root


CK_EMOTIONS = {1: "angry", 3: "disgusted", 4: "fearful", 5: "happy", 6: "sad", 7: "surprised"}


def ck_sequence(root: Path, subject: str, seq: str, label: float | None, frames: int = 3,
                facs: str | None = None) -> list[Path]:
    paths = [write_image(root / "cohn-kanade-images" / subject / seq /
                         f"{subject}_{seq}_{i:08d}.png") for i in range(1, frames + 1)]
    last = paths[-1].stem
    if label is not None:
        e = root / "Emotion" / subject / seq / f"{last}_emotion.txt"
        e.parent.mkdir(parents=True, exist_ok=True)
        e.write_text(f"   {label:.7e}\n")
    if facs is not None:
        f = root / "FACS" / subject / seq / f"{last}_facs.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(facs)
    return paths


def make_ckplus(root: Path, subjects=("S005", "S010")) -> Path:
    for subject in subjects:
        for k, code in enumerate(CK_EMOTIONS, 1):
            ck_sequence(root, subject, f"{k:03d}", float(code))
    return root


def make_folder(root: Path, subjects=("S01", "S02")) -> Path:
    for subject, expression in itertools.product(subjects, EXPRESSIONS):
        write_image(root / expression / f"img_{subject}_{expression}.png")
    return root


def make_manifest(root: Path, subjects=("p1", "p2")) -> Path:
    lines = ["path,subject,expression,rating"]
    for subject, expression in itertools.product(subjects, EXPRESSIONS):
        rel = f"imgs/{subject}_{expression}.png"
        write_image(root / rel)
        lines.append(f"{rel},{subject},{expression},3.5")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root


#: Options that give each preset's sample tree subject ids.
OPTIONS = {"folder": {"subject_regex": r"_(S\d+)_"}}
MAKERS = {"kdef": make_kdef, "krc": make_krc, "jaffe": make_jaffe, "ckplus": make_ckplus,
          "folder": make_folder, "manifest": make_manifest}


# --------------------------------------------------------------------------- contract (all)
@pytest.mark.parametrize("preset", PRESETS)
def test_contract_every_preset(preset, tmp_path):
    root = MAKERS[preset](tmp_path / "db")
    stray = root / "cohn-kanade-images" if preset == "ckplus" else root
    (stray / "notes.txt").write_text("not an image")
    write_image(stray / "zz_unfit.png")
    (root / ".DS_Store").write_bytes(b"\0\0")
    before = snapshot(root)

    df = ingest(preset, root, db="X", n_subjects=None, options=OPTIONS.get(preset))
    again = ingest(preset, str(root), db="X", n_subjects=None, options=OPTIONS.get(preset))

    extra = [FACS_COLUMN] if preset == "ckplus" else []
    assert list(df.columns) == IMAGE_COLUMNS + extra
    pd.testing.assert_frame_equal(df, again)
    assert snapshot(root) == before  # nothing written, nothing touched
    assert df["path"].tolist() == sorted(df["path"])
    assert df["included"].dtype == bool
    for col in [c for c in df.columns if c != "included"]:
        assert all(isinstance(v, str) for v in df[col]), col
    assert all(Path(p).is_absolute() and "\\" not in p for p in df["path"])
    assert (df["db"] == "X").all()
    assert not any(Path(p).name.startswith(".") for p in df["path"])
    assert (df["included"] == (df["reason"] == "")).all()
    assert set(df["reason"].map(reason_category)) <= set(REASON_CATEGORIES) | {""}
    inc = df[df["included"]]
    assert set(inc["expression"]) == set(EXPRESSIONS)
    assert inc["sha256"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert inc["subject"].nunique() == 2 and (inc["subject"] != "").all()
    # one image per expression, but CK+'s first frames: a neutral take per sequence (takes =
    # "all" is its default; "first" keeps one)
    per = inc.groupby(["subject", "expression"]).size()
    assert (per.drop("neutral", level="expression") == 1).all()
    assert (per.xs("neutral", level="expression") == (6 if preset == "ckplus" else 1)).all()
    first = ingest(preset, root, db="X", n_subjects=None,
                   options={**OPTIONS.get(preset, {}), "takes": "first"})
    assert (first[first["included"]].groupby("subject").size() == 7).all()
    if preset != "manifest":  # the manifest lists its files; stray files are not rows
        assert rows(df)["notes.txt"]["reason"].startswith("not an image: notes.txt")
        assert not rows(df)["zz_unfit.png"]["included"]


@pytest.mark.parametrize("preset", PRESETS)
def test_unknown_option_lists_allowed(preset, tmp_path):
    root = MAKERS[preset](tmp_path / "db")
    with pytest.raises(InputError, match=r"unknown option.*'colour'.*allowed"):
        ingest(preset, root, db="X", options={"colour": "red"})


@pytest.mark.parametrize("preset", PRESETS)
def test_missing_and_empty_root(preset, tmp_path):
    with pytest.raises(InputError, match=r"does not exist"):
        ingest(preset, tmp_path / "nowhere", db="X")
    (tmp_path / "empty").mkdir()
    expect = r"manifest .* does not exist" if preset == "manifest" else r"is empty; expected"
    with pytest.raises(InputError, match=expect) as info:
        ingest(preset, tmp_path / "empty", db="X")
    assert str(tmp_path / "empty") in str(info.value)


@pytest.mark.parametrize("preset", ["kdef", "krc", "jaffe", "folder"])
def test_root_without_images(preset, tmp_path):
    (tmp_path / "happy").mkdir()
    (tmp_path / "README.txt").write_text("hello")
    (tmp_path / "happy" / "list.csv").write_text("a,b")
    with pytest.raises(InputError, match=r"no image files found in .*expected"):
        ingest(preset, tmp_path, db="X")


def test_root_is_a_file_and_bad_arguments(tmp_path):
    f = tmp_path / "f.jpg"
    write_image(f, fmt="JPEG")
    with pytest.raises(InputError, match="is a file, not a folder"):
        ingest("folder", f, db="X")
    root = make_folder(tmp_path / "db")
    with pytest.raises(InputError, match="unknown database preset 'kdf'"):
        ingest("kdf", root, db="X")
    with pytest.raises(InputError, match="n_subjects"):
        ingest("folder", root, db="X", n_subjects=0)
    with pytest.raises(InputError, match="database name"):
        ingest("folder", root, db="")


# ------------------------------------------------------------------------------------- kdef
def test_kdef_parses_and_filters_view_and_session(tmp_path):
    root = make_kdef(tmp_path, subjects=("F01", "M02"), views=("S", "HL"), sessions=("A", "B"))
    write_image(root / "AF01" / "af01nes.jpg", fmt="JPEG")  # lower case: still fits
    write_image(root / "AF01" / "AF01XXS.JPG", fmt="JPEG")
    write_image(root / "AF01" / "AF01NEQ.JPG", fmt="JPEG")
    write_image(root / "AF01" / "portrait.JPG", fmt="JPEG")
    write_image(root / "AF01" / "._AF01NES.JPG", fmt="JPEG")
    df = ingest("kdef", root, db="KDEF")
    r = rows(df)
    assert {k: r["AF01NES.JPG"][k] for k in ("subject", "expression", "view", "session", "sex",
                                             "included")} == {
        "subject": "F01", "expression": "neutral", "view": "S", "session": "A", "sex": "F",
        "included": True}
    assert r["AM02AFS.JPG"]["expression"] == "fearful" and r["AM02AFS.JPG"]["sex"] == "M"
    assert r["AF01HAHL.JPG"]["reason"] == "not frontal view: HL (only S is used)"
    assert r["BF01HAS.JPG"]["reason"].startswith("not first session: B")
    assert r["af01nes.jpg"]["expression"] == "neutral"
    assert r["af01nes.jpg"]["reason"].startswith("extra take: subject F01 already has a "
                                                 "neutral image (AF01NES.JPG)")
    assert r["AF01XXS.JPG"]["reason"].startswith("unknown expression code: 'XX'")
    assert r["AF01XXS.JPG"]["expression"] == ""
    assert r["AF01NEQ.JPG"]["reason"].startswith("name does not fit preset: 'AF01NEQ.JPG'")
    assert r["portrait.JPG"]["reason"].startswith("name does not fit preset")
    assert r["portrait.JPG"]["subject"] == r["portrait.JPG"]["expression"] == ""
    assert "._AF01NES.JPG" not in r
    assert set(df.loc[df["included"], "subject"]) == {"F01", "M02"}
    assert len(df[df["included"]]) == 14


def test_kdef_options_choose_view_and_session(tmp_path):
    root = make_kdef(tmp_path, subjects=("F01",), views=("S", "HL"), sessions=("A", "B"))
    df = ingest("kdef", root, db="KDEF", options={"view": "hl", "session": "B"})
    inc = df[df["included"]]
    assert set(inc["view"]) == {"HL"} and set(inc["session"]) == {"B"} and len(inc) == 7
    assert rows(df)["AF01HAHL.JPG"]["reason"].startswith("not first session: A")
    with pytest.raises(InputError, match="option view = 'up'"):
        ingest("kdef", root, db="KDEF", options={"view": "up"})


# -------------------------------------------------------------------------------------- krc
def test_krc_parses_sex_view_and_codes(tmp_path):
    root = make_krc(tmp_path, posers=("fd19", "md02", "x07"), views=("d", "l"))
    write_image(root / "fd19_joy_d.jpg", fmt="JPEG")
    write_image(root / "fd19-neu-d.jpg", fmt="JPEG")
    df = ingest("krc", root, db="KRC")
    r = rows(df)
    assert {k: r["fd19_fea_d.jpg"][k] for k in ("subject", "expression", "view", "sex")} == {
        "subject": "fd19", "expression": "fearful", "view": "d", "sex": "F"}
    assert r["md02_dis_d.jpg"]["sex"] == "M" and r["x07_sur_d.jpg"]["sex"] == ""
    assert r["fd19_hap_l.jpg"]["reason"] == "not frontal view: l (only d is used)"
    assert r["fd19_joy_d.jpg"]["reason"].startswith("unknown expression code: 'joy'")
    assert r["fd19-neu-d.jpg"]["reason"].startswith("name does not fit preset")
    assert df["included"].sum() == 21
    left = ingest("krc", root, db="KRC", options={"view": "L"})
    assert set(left.loc[left["included"], "view"]) == {"l"}


# ------------------------------------------------------------------------------------ jaffe
def test_jaffe_keeps_first_take(tmp_path):
    root = make_jaffe(tmp_path)
    write_image(root / "KA.HA2.90.tiff", fmt="TIFF")
    write_image(root / "TM.HA2.60.tiff", fmt="TIFF")
    write_image(root / "TM.HA10.61.tiff", fmt="TIFF")  # sorts first by name, but take 10 > 2
    write_image(root / "KA.XX1.92.tiff", fmt="TIFF")
    write_image(root / "KA_HA1_93.tiff", fmt="TIFF")
    df = ingest("jaffe", root, db="JAFFE")
    r = rows(df)
    ka = next(k for k in r if k.startswith("KA.HA1."))
    assert {k: r[ka][k] for k in ("subject", "expression", "session", "included")} == {
        "subject": "KA", "expression": "happy", "session": "1", "included": True}
    assert r["KA.HA2.90.tiff"]["reason"] == (
        f"extra take: subject KA already has a happy image ({ka})")
    assert r["TM.HA10.61.tiff"]["reason"] == (
        "extra take: subject TM already has a happy image (TM.HA2.60.tiff)")
    assert r["TM.HA10.61.tiff"]["session"] == "10"
    assert r["TM.HA2.60.tiff"]["reason"].startswith("subject incomplete: lacks neutral, fearful")
    assert r["KA.XX1.92.tiff"]["reason"].startswith("unknown expression code: 'XX'")
    assert r["KA_HA1_93.tiff"]["reason"].startswith("name does not fit preset")
    assert df["included"].sum() == 14


# ----------------------------------------------------------------------------------- ckplus
def test_ckplus_peak_neutral_facs_contempt_unlabelled(tmp_path):
    root = make_ckplus(tmp_path, subjects=("S005",))
    s010 = ck_sequence(root, "S010", "001", 5.0, facs="   6.0000000e+00   3.0000000e+00\n"
                                                     "   1.2000000e+01   4.0000000e+00\n")
    contempt = ck_sequence(root, "S010", "002", 2.0)
    unlabelled = ck_sequence(root, "S010", "003", None)
    single = ck_sequence(root, "S011", "001", 7.0, frames=1)
    write_image(root / "cohn-kanade-images" / "S010" / "stray.png")
    (root / "Emotion" / "S099" / "001").mkdir(parents=True)
    (root / "Emotion" / "S099" / "001" / "S099_001_00000005_emotion.txt").write_text("1\n")
    df = ingest("ckplus", root, db="CK+", n_subjects=None)
    r = rows(df)
    peak, first = s010[-1].name, s010[0].name
    assert {k: r[peak][k] for k in ("subject", "expression", "session", "facs")} == {
        "subject": "S010", "expression": "happy", "session": "001", "facs": "6:3 12:4"}
    assert r[first]["expression"] == "neutral" and r[first]["facs"] == ""
    assert s010[1].name not in r  # middle frames are not rows
    assert r[contempt[-1].name]["reason"].startswith(
        "expression not studied: contempt is not among the study's expressions")
    assert r[contempt[-1].name]["expression"] == "contempt"
    assert r[contempt[0].name]["expression"] == "neutral"  # a second neutral take
    assert r[contempt[0].name]["reason"].startswith("subject incomplete")
    assert r[unlabelled[-1].name]["reason"] == (
        "no emotion label: sequence S010/003 has no Emotion file")
    assert unlabelled[0].name not in r
    assert r[single[0].name]["expression"] == "surprised"
    assert r["stray.png"]["reason"].startswith("name does not fit preset")
    assert r["S099_001_00000005_emotion.txt"]["reason"].startswith("missing file: label")
    # S005 has all six emotions plus neutral (a first frame per sequence: 6 neutral
    # takes); S010 and S011 lack some.
    inc = df[df["included"]]
    assert set(inc["subject"]) == {"S005"} and len(inc) == 12
    assert r[peak]["reason"] == ("subject incomplete: lacks fearful, sad, angry, surprised, "
                                 "disgusted")
    assert (df.loc[~df["path"].str.contains("S010_001"), FACS_COLUMN] == "").all()


def test_ckplus_bad_label_file(tmp_path):
    root = make_ckplus(tmp_path, subjects=("S005",))
    seq = ck_sequence(root, "S006", "001", 9.0)
    df = ingest("ckplus", root, db="CK+")
    assert rows(df)[seq[-1].name]["reason"].startswith("bad label file: ")
    assert "'9.0000000e+00'" in rows(df)[seq[-1].name]["reason"]


def test_ckplus_folder_per_emotion_crops(tmp_path):
    for emotion in ("neutral", "anger", "disgust", "fear", "happy", "sadness", "surprise"):
        for subject in ("S005", "S010"):
            write_image(tmp_path / emotion / f"{subject}_001_00000011.png")
    write_image(tmp_path / "contempt" / "S005_002_00000011.png")
    write_image(tmp_path / "happy" / "frame.png")
    df = ingest("ckplus", tmp_path, db="CK+")
    r = rows(df)
    assert set(df.loc[df["included"], "subject"]) == {"S005", "S010"}
    assert df["included"].sum() == 14
    assert set(df.loc[df["included"], "expression"]) == set(EXPRESSIONS)
    assert r["S005_002_00000011.png"]["reason"].startswith("expression not studied: contempt")
    assert r["frame.png"]["reason"].startswith("name does not fit preset")


def test_ckplus_neither_layout(tmp_path):
    write_image(tmp_path / "pics" / "a.png")
    with pytest.raises(InputError, match="cohn-kanade-images"):
        ingest("ckplus", tmp_path, db="CK+")


# ----------------------------------------------------------------------------------- folder
def test_folder_names_regex_and_unknown_folders(tmp_path):
    root = make_folder(tmp_path, subjects=("S1", "S2", "S10"))
    write_image(root / "Afraid" / "deeper" / "img_S3_x.png")
    write_image(root / "xyz" / "img_S1_q.png")
    write_image(root / "contempt" / "img_S1_c.png")
    write_image(root / "happy" / "no_id_here.png")
    write_image(root / "loose_S1.png")
    df = ingest("folder", root, db="F", options={"subject_regex": r"_(?P<subject>S\d+)_"},
                n_subjects=2)
    r = rows(df)
    assert r["img_S3_x.png"]["expression"] == "fearful" and r["img_S3_x.png"]["subject"] == "S3"
    assert r["img_S3_x.png"]["reason"].startswith("subject incomplete: lacks neutral, happy")
    assert r["img_S1_q.png"]["reason"].startswith("unknown expression folder: 'xyz'")
    assert r["img_S1_c.png"]["reason"].startswith("expression not studied: contempt")
    assert r["no_id_here.png"]["reason"].startswith("name does not fit preset: subject_regex")
    assert r["loose_S1.png"]["reason"].startswith("name does not fit preset")
    # natural order: S1, S2 kept; S10 beyond the first two
    assert set(df.loc[df["included"], "subject"]) == {"S1", "S2"}
    assert r["img_S10_happy.png"]["reason"] == (
        "not selected: beyond the first 2 complete subjects")
    group1 = ingest("folder", root, db="F", options={"subject_regex": r"img_(S\d+)"})
    assert rows(group1)["img_S3_x.png"]["subject"] == "S3"


def test_folder_without_subject_ids_keeps_all(tmp_path):
    root = make_folder(tmp_path, subjects=("a", "b", "c"))
    write_image(root / "sad" / "extra.png")
    df = ingest("folder", root, db="web", n_subjects=1)
    assert df["included"].all() and (df["subject"] == "").all() and len(df) == 22
    s = summarize(df)["web"]
    assert s["has_subject_ids"] is False and s["n_subjects_selected"] is None
    assert s["images_per_expression"]["sad"] == 4


@pytest.mark.parametrize("regex, message", [("S(\\d+", "not a valid regular expression"),
                                            ("S\\d+", "has no group"),
                                            (5, "expected a regular expression")])
def test_folder_bad_regex(tmp_path, regex, message):
    root = make_folder(tmp_path)
    with pytest.raises(InputError, match=message):
        ingest("folder", root, db="F", options={"subject_regex": regex})


# ------------------------------------------------------------------------ bad and odd images
def _corrupt(p: Path) -> None:
    p.write_bytes(np.random.default_rng(7).integers(0, 256, 500, dtype=np.uint8).tobytes())


def _truncated_png(p: Path) -> None:
    write_image(p.with_suffix(".tmp.png"), mode="RGB")
    data = p.with_suffix(".tmp.png").read_bytes()
    p.with_suffix(".tmp.png").unlink()
    p.write_bytes(data[: len(data) // 2])


def _truncated_jpeg(p: Path) -> None:
    rng = np.random.default_rng(3)
    tmp = p.parent / "full.bin"
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(tmp, format="JPEG")
    data = tmp.read_bytes()
    tmp.unlink()
    p.write_bytes(data[: len(data) // 2])


BAD = {
    "corrupt.jpg": _corrupt,
    "truncated.png": _truncated_png,
    "truncated.jpg": _truncated_jpeg,
    "text.png": lambda p: p.write_text("this is text, not a PNG"),
    "empty.jpg": lambda p: p.write_bytes(b""),
}
GOOD = {
    "gray.png": ("L", "PNG"), "gray16.png": ("I;16", "PNG"), "gray16.tif": ("I;16", "TIFF"),
    "rgba.png": ("RGBA", "PNG"), "cmyk.jpg": ("CMYK", "JPEG"), "palette.gif": ("P", "GIF"),
    "palette.png": ("P", "PNG"), "la.png": ("LA", "PNG"), "rgb.bmp": ("RGB", "BMP"),
    "bilevel.tiff": ("1", "TIFF"),
}


def test_bad_images_are_exclusions_and_odd_modes_are_included(tmp_path):
    for name, make in BAD.items():
        p = tmp_path / "happy" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        make(p)
    for name, (mode, fmt) in GOOD.items():
        write_image(tmp_path / "happy" / name, mode=mode, fmt=fmt)
    (tmp_path / "happy" / "README.txt").write_text("about")
    df = ingest("folder", tmp_path, db="F")
    r = rows(df)
    for name in BAD:
        assert r[name]["reason"].startswith("unreadable image: "), (name, r[name]["reason"])
        assert str(tmp_path) not in r[name]["reason"]
    assert r["empty.jpg"]["reason"] == "unreadable image: empty file (0 bytes)"
    assert "truncated" in r["truncated.png"]["reason"] or "corrupt" in r["truncated.png"][
        "reason"]
    for name in GOOD:
        assert r[name]["included"], (name, r[name]["reason"])
    assert r["README.txt"]["reason"].startswith("not an image: README.txt has no image suffix")
    assert r["README.txt"]["sha256"] == ""
    assert summarize(df)["F"]["exclusions"] == {"unreadable image": 5, "not an image": 1}


def test_duplicates_keep_first_in_path_order(tmp_path):
    root = make_folder(tmp_path)
    original = root / "happy" / "img_S01_happy.png"
    shutil.copyfile(original, root / "sad" / "copy.png")
    shutil.copyfile(original, root / "angry" / "a_copy.png")
    df = ingest("folder", root, db="F")
    r = rows(df)
    first = (root / "angry" / "a_copy.png").as_posix()  # angry/ sorts before happy/
    assert r["a_copy.png"]["included"]
    assert r["img_S01_happy.png"]["reason"] == f"duplicate file: same bytes as {first}"
    assert r["copy.png"]["reason"] == f"duplicate file: same bytes as {first}"
    assert r["copy.png"]["sha256"] == r["a_copy.png"]["sha256"]


def test_excluded_file_never_displaces_a_usable_duplicate(tmp_path):
    root = make_folder(tmp_path)
    (root / "aaa").mkdir()  # not an expression folder, and sorts before sad/
    shutil.copyfile(root / "sad" / "img_S01_sad.png", root / "aaa" / "x.png")
    df = ingest("folder", root, db="F")
    r = rows(df)
    assert r["x.png"]["reason"].startswith("unknown expression folder")
    assert r["img_S01_sad.png"]["included"]


def test_symlink_loop_and_broken_link(tmp_path):
    root = make_folder(tmp_path / "db")
    try:
        os.symlink(root / "happy", root / "happy" / "loop")
        os.symlink(tmp_path / "gone.png", root / "sad" / "broken.png")
    except OSError:  # pragma: no cover - no symlinks on this system
        pytest.skip("symbolic links not available")
    df = ingest("folder", root, db="F")
    assert rows(df)["broken.png"]["reason"].startswith("unreadable image")
    assert df["included"].sum() == 14


# --------------------------------------------------------------------------------- manifest
def test_manifest_columns_paths_and_exclusions(tmp_path):
    root = make_manifest(tmp_path / "db")
    outside = write_image(tmp_path / "elsewhere" / "out.png")
    inside_abs = write_image(root / "imgs" / "abs.png")
    lines = (root / "manifest.csv").read_text().splitlines()
    lines += [
        "../elsewhere/out.png,p3,happy,1",
        f"{inside_abs},p3,sad,1",
        "imgs/missing.png,p3,angry,1",
        "imgs/p1_happy.png,p1,happy,1",
        "imgs/p9.png,p9,jolly,1",
        "imgs/sub/../p2_sad.png,p2,sad,1",
        "notes.txt,p3,happy,1",
    ]
    (root / "notes.txt").write_text("x")
    write_image(root / "imgs" / "p9.png")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    df = ingest("manifest", root, db="M", n_subjects=None)
    assert len(df) == 14 + 7
    r = df.groupby("path").agg(list)
    out = r.loc[outside.as_posix()]
    assert out["reason"][0].startswith("outside root: ../elsewhere/out.png (line 16")
    assert "allow_outside_root" in out["reason"][0]
    assert r.loc[inside_abs.as_posix(), "expression"] == ["sad"]
    missing = r.loc[(root / "imgs" / "missing.png").as_posix(), "reason"][0]
    assert missing.startswith("missing file: imgs/missing.png (line 18 of manifest.csv)")
    happy = r.loc[(root / "imgs" / "p1_happy.png").as_posix(), "reason"]
    assert happy[0] == "" and happy[1].startswith("duplicate file: imgs/p1_happy.png is listed "
                                                  "again on line 19")
    assert r.loc[(root / "imgs" / "p9.png").as_posix(), "reason"][0].startswith(
        "unknown expression code: 'jolly' (line 20")
    assert r.loc[(root / "imgs" / "p2_sad.png").as_posix(), "reason"][1].startswith(
        "duplicate file")
    assert r.loc[(root / "notes.txt").as_posix(), "reason"][0].startswith("not an image")
    # p3 has only sad (inside) -> incomplete; p1, p2 complete
    assert set(df.loc[df["included"], "subject"]) == {"p1", "p2"}
    allowed = ingest("manifest", root, db="M", options={"allow_outside_root": True})
    assert rows(allowed)["out.png"]["reason"].startswith("subject incomplete")
    assert rows(allowed)["out.png"]["expression"] == "happy"


def test_manifest_symlink_out_of_root_is_outside(tmp_path):
    root = make_manifest(tmp_path / "db")
    target = write_image(tmp_path / "secret.png")
    try:
        os.symlink(target, root / "imgs" / "link.png")
    except OSError:  # pragma: no cover
        pytest.skip("symbolic links not available")
    with open(root / "manifest.csv", "a") as f:
        f.write("imgs/link.png,p1,happy,1\n")
    df = ingest("manifest", root, db="M")
    assert rows(df)["link.png"]["reason"].startswith("outside root")


def test_manifest_optional_columns_and_other_file(tmp_path):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png")
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "m.csv").write_text(
        "Expression, Path ,sex,session,view,culture\nHappy,a.png,F,2,front,x\nafraid,b.png,,,,\n")
    df = ingest("manifest", tmp_path, db="M", options={"file": "lists/m.csv"})
    r = rows(df)
    assert {k: r["a.png"][k] for k in ("expression", "sex", "session", "view", "subject")} == {
        "expression": "happy", "sex": "F", "session": "2", "view": "front", "subject": ""}
    assert r["b.png"]["expression"] == "fearful"
    assert df["included"].all()
    assert "culture" not in df.columns


def test_manifest_blank_subject_when_others_have_one(tmp_path):
    root = make_manifest(tmp_path)
    write_image(root / "anon.png")
    with open(root / "manifest.csv", "a") as f:
        f.write("anon.png,,happy,\n")
    assert rows(ingest("manifest", root, db="M"))["anon.png"]["reason"].startswith(
        "no subject id: line 16")


@pytest.mark.parametrize("content, message", [
    ("path,subject\na.png,p1\n", r"lacks the column\(s\) expression.*path,subject,expression"),
    ("file,label\na.png,happy\n", r"lacks the column\(s\) path, expression"),
    ("path,expression\n", r"lists no images"),
    ("path,expression\na.png,happy,1,2,3\nb.png\n", r"line 2: 5 fields but the header has 2"),
    (b"path,expression\n\xff\xfe\x00bad,happy\n", r"cannot read manifest"),
    ("path,expression\n,happy\n", r"empty path on line\(s\) 2"),
    ("path,expression\nnope.png,happy\n", r"none of the 1 files"),
])
def test_manifest_errors_name_the_file(tmp_path, content, message):
    write_image(tmp_path / "a.png")
    m = tmp_path / "manifest.csv"
    m.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(InputError, match=message) as info:
        ingest("manifest", tmp_path, db="M")
    assert str(m) in str(info.value)


def test_manifest_bad_option_values(tmp_path):
    root = make_manifest(tmp_path)
    with pytest.raises(InputError, match="allow_outside_root"):
        ingest("manifest", root, db="M", options={"allow_outside_root": "yes"})
    with pytest.raises(InputError, match="manifest .*other.csv does not exist"):
        ingest("manifest", root, db="M", options={"file": "other.csv"})


# ------------------------------------------------------------------------------- summary
def test_summarize_counts_after_ingest(tmp_path):
    root = make_kdef(tmp_path, subjects=("F01", "F02", "M01"), views=("S", "HL"))
    (root / "AM01" / "AM01SAS.JPG").unlink()
    _corrupt(root / "AF02" / "AF02HAS.JPG")
    s = summarize(ingest("kdef", root, db="KDEF"))["KDEF"]
    assert s["n_subjects_selected"] == 1 and s["has_subject_ids"] is True
    assert s["images_per_expression"] == dict.fromkeys(EXPRESSIONS, 1)
    assert s["exclusions"] == {"not frontal view": 21, "subject incomplete": 12,
                               "unreadable image": 1}
    assert s["n_files"] == 41 and s["n_included"] == 7


# ---------------------------------------------------------------------------------- docs
def test_docs_list_every_reason_preset_and_option():
    from facedialect.databases import get_preset

    text = DOCS.read_text()
    for category in REASON_CATEGORIES:
        assert f"`{category}`" in text, category
    for preset in PRESETS:
        assert f"`{preset}`" in text, preset
        for option in get_preset(preset).options:
            assert f"`{option}`" in text, (preset, option)
    for column in [*IMAGE_COLUMNS, FACS_COLUMN]:
        assert f"`{column}`" in text, column
