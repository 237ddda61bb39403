"""Fault injection: odd file names, odd files and odd paths never crash a stage (issue 14).

Every table round-trips any file name (control characters, quotes, commas, bytes that are
not UTF-8, long names); odd files (1-pixel images, symbolic-link loops, unreadable folders,
decompression bombs, impossible manifest paths) become reported exclusions or one clear
line; outputs honour the umask; report images carry alt text; a whole-study rerun forgets
databases that left the study. docs/reliability.md lists what the user sees for each.
"""

from __future__ import annotations

import contextlib
import errno
import html
import io
import itertools
import os
import stat
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.config import DatabaseConfig
from facedialect.databases import ingest, reason_category
from facedialect.databases.schema import STRING_COLUMNS, as_text
from facedialect.errors import ImageReadError
from facedialect.files import ArrayCache, atomic_write_bytes, atomic_write_text
from facedialect.imageio import read_gray, read_rgb
from facedialect.run.store import RunDir
from facedialect.stages.ingest import ingest_databases
from facedialect.vocab import EXPRESSIONS

runner = CliRunner()
_seed = itertools.count(1)


# ------------------------------------------------------------------------------------ helpers
def write_png(path: Path, shape: tuple[int, int] = (24, 24)) -> Path:
    """A small grayscale PNG with its own random pixels."""
    rng = np.random.default_rng(next(_seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def write_face(path: Path, k: int) -> Path:
    """A detectable synthetic face (procedural renderer), different for every ``k``."""
    from facedialect.faces.procedural.identity import FaceIdentity
    from facedialect.faces.procedural.render import render_face

    ident = FaceIdentity.random(np.random.default_rng(k), pose=False)
    img = render_face(ident, {12: 0.3 * (k % 3), 4: 0.2 * (k % 2)}, size=192, color=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A tiny PNG whose header claims ``side`` x ``side`` pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def make_folder_db(root: Path, subjects=("S01", "S02")) -> Path:
    for subject, expression in itertools.product(subjects, EXPRESSIONS):
        write_png(root / expression / f"img_{subject}_{expression}.png")
    return root


def odd_name(folder: Path, name: str) -> Path:
    """``folder / name``, or a skip when this file system refuses such a name."""
    p = folder / name
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        p.unlink()
    except (OSError, UnicodeEncodeError) as exc:  # pragma: no cover - e.g. a strict file system
        pytest.skip(f"this file system does not allow the name {name!r}: {exc}")
    return p


def by_name(df: pd.DataFrame) -> dict[str, dict]:
    return {Path(p).name: r for p, r in zip(df["path"], df.to_dict("records"), strict=True)}


def same_table(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The images table as ingested equals the one read back (strings exact)."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        if col in STRING_COLUMNS:
            assert as_text(a[col]).tolist() == as_text(b[col]).tolist(), col
        else:
            assert a[col].tolist() == b[col].tolist(), col


def folder_study(folder: Path, root: Path, output: Path, name: str = "F") -> Path:
    """A study file over one folder database, every subject, writing into ``output``."""
    path = folder / "study.toml"
    path.write_text(f'[study]\nname = "odd"\noutput = "{output.as_posix()}"\n'
                    f'[[databases]]\nname = "{name}"\npreset = "folder"\n'
                    f'root = "{root.as_posix()}"\nn_subjects = "all"\n', encoding="utf-8")
    return path


def no_traceback(res) -> None:
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------------- item 3: tables and file names
#: Characters file names bring: controls (Icon\r from a Mac, \n, \t, ESC), quotes, commas,
#: CSV-ish and unicode line breaks, and the lone surrogates os.listdir gives for bytes
#: that are not UTF-8.
ODD_CHARS = st.sampled_from(["\r", "\n", "\t", "\x1b", '"', "'", ",", ";", " ", "\x0b",
                             "\x0c", "\x85", "\u2028", "\ufeff", "#", "\\", "é", "日",
                             "\x00", *(chr(c) for c in range(0xDC80, 0xDD00, 7))])
ODD_TEXT = st.text(st.one_of(ODD_CHARS, st.characters(blacklist_categories=("Cs",))),
                   min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(ODD_TEXT, min_size=1, max_size=6), long=st.booleans())
def test_tables_round_trip_any_string(values, long):
    if long:
        values = [v * 40 for v in values]
    df = pd.DataFrame({"db": ["A"] * len(values), "path": values, "subject": values,
                       "reason": values, "n": range(len(values)),
                       "included": [True] * len(values)})
    with tempfile.TemporaryDirectory() as d:
        run = RunDir(d)
        run.write_table("t", df)
        back = run.read_table("t")
    assert len(back) == len(df)
    for col in ("path", "subject", "reason"):
        assert back[col].tolist() == values
    assert back["n"].tolist() == list(range(len(values)))
    assert back["included"].tolist() == [True] * len(values)


def test_icon_carriage_return_stays_one_row(tmp_path):
    root = make_folder_db(tmp_path / "db")
    (root / "happy" / "Icon\r").write_bytes(b"")  # what a Mac leaves in a copied folder
    df = ingest("folder", root, db="F")
    run = RunDir(tmp_path / "run")
    run.write_table("images", df)
    back = run.read_table("images")
    same_table(df, back)
    row = by_name(back)["Icon\r"]
    assert reason_category(row["reason"]) == "not an image"
    assert back["included"].sum() == 14


FILE_NAME = st.text(st.one_of(ODD_CHARS, st.characters(blacklist_categories=("Cs",),
                                                       blacklist_characters="/\x00")),
                    min_size=1, max_size=30).filter(lambda s: "/" not in s and "\x00" not in s)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(st.tuples(FILE_NAME, st.sampled_from(["", ".png", ".PNG", "\r"])),
                      min_size=1, max_size=5))
def test_folder_database_with_random_file_names_round_trips(names):
    with tempfile.TemporaryDirectory() as d:
        root = make_folder_db(Path(d) / "db")
        made = set()
        for stem, suffix in names:
            name = (stem + suffix).lstrip(".") or "x"
            if len(os.fsencode(name)) > 255 or name in made:
                continue
            try:
                path = root / "happy" / name
                if suffix.lower() == ".png":
                    write_png(path)
                else:
                    path.write_bytes(b"not an image")
            except (OSError, UnicodeEncodeError):  # pragma: no cover - strict file systems
                continue
            made.add(os.fsdecode(os.fsencode(name)))  # as os.listdir gives it back
        df = ingest("folder", root, db="F", n_subjects=None)
        run = RunDir(Path(d) / "run")
        run.write_table("images", df)
        back = run.read_table("images")
        same_table(df, back)
        assert made <= set(by_name(back))


def test_odd_names_through_ingest_and_preprocess_cli(tmp_path):
    root = tmp_path / "db"
    faces = iter(range(1, 100))
    for expression in ("happy", "sad"):
        for name in ("plain.png", "tab\tname.png", 'quo"te,comma.png', "esc\x1b[31m.png",
                     "new\nline.png", "é" * 60 + ".png"):
            write_face(root / expression / f"{expression}_{name}", next(faces))
    (root / "happy" / "Icon\r").write_bytes(b"")
    latin1 = odd_name(root / "sad", os.fsdecode(b"caf\xe9.png"))  # not UTF-8
    write_face(latin1, next(faces))
    notes = odd_name(root / "sad", os.fsdecode(b"notes\xff.txt"))  # excluded: in the report
    notes.write_bytes(b"notes")
    out = tmp_path / "run"
    res = runner.invoke(app, ["inspect", str(root), "--preset", "folder", "--out", str(out),
                              "--name", "F", "--subjects", "0"])
    no_traceback(res)
    assert res.exit_code == 0, res.output
    images = RunDir(out).read_table("images")
    files = [p for p in root.rglob("*") if p.is_file()]
    assert len(images) == len(files)
    assert {p.as_posix() for p in files} == set(images["path"])
    study = folder_study(tmp_path, root, out)
    res = runner.invoke(app, ["ingest", str(study)])
    no_traceback(res)
    assert res.exit_code == 0, res.output
    same_table(images, RunDir(out).read_table("images"))
    res = runner.invoke(app, ["preprocess", str(study)])
    no_traceback(res)
    assert res.exit_code == 0, res.output
    images = RunDir(out).read_table("images")
    rows = by_name(images)
    assert reason_category(rows["Icon\r"]["reason"]) == "not an image"
    assert rows[latin1.name]["included"], rows[latin1.name]
    assert rows["happy_new\nline.png"]["included"]
    prep = RunDir(out).read_table("preprocess")
    assert latin1.as_posix() in set(prep["path"])
    res = runner.invoke(app, ["report", str(out)])
    no_traceback(res)
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    assert "notes\\xff.txt" in page  # the undecodable byte is shown, escaped


# ------------------------------------------------------------------ item 5: odd files, paths
def test_tiny_images_are_excluded_not_a_crash(tmp_path):
    root = tmp_path / "db"
    write_face(root / "happy" / "face1.png", 1)
    write_face(root / "happy" / "face2.png", 2)
    write_png(root / "happy" / "dot.png", (1, 1))
    write_png(root / "happy" / "line.png", (1, 30))
    write_png(root / "happy" / "column.png", (30, 1))
    out = tmp_path / "run"
    study = folder_study(tmp_path, root, out)
    res = runner.invoke(app, ["ingest", str(study)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["preprocess", str(study)])
    no_traceback(res)
    assert res.exit_code == 0, res.output
    rows = by_name(RunDir(out).read_table("images"))
    for name, size in (("dot.png", "1x1"), ("line.png", "30x1"), ("column.png", "1x30")):
        assert not rows[name]["included"]
        assert rows[name]["reason"].startswith("no face detected"), rows[name]
        assert f"{size} pixels" in rows[name]["reason"]
    assert rows["face1.png"]["included"] and rows["face2.png"]["included"]


def test_symlink_to_itself_and_loops_in_a_folder_database(tmp_path):
    root = make_folder_db(tmp_path / "db")
    happy = root / "happy"
    try:
        os.symlink("self.png", happy / "self.png")
        os.symlink("selfdir", happy / "selfdir")
        os.symlink("b.png", happy / "a.png")
        os.symlink("a.png", happy / "b.png")
    except OSError:  # pragma: no cover - no symbolic links here
        pytest.skip("symbolic links not available")
    df = ingest("folder", root, db="F")
    rows = by_name(df)
    for name in ("self.png", "a.png", "b.png"):
        assert reason_category(rows[name]["reason"]) == "unreadable image", rows[name]
        assert "symbolic link" in rows[name]["reason"]
    assert reason_category(rows["selfdir"]["reason"]) == "unreadable image"
    assert df["included"].sum() == 14


def test_non_utf8_file_name_through_ingest_databases(tmp_path):
    root = make_folder_db(tmp_path / "db")
    bad = odd_name(root / "happy", os.fsdecode(b"img_S03_\xff\xfe.png"))
    write_png(bad)
    run = RunDir(tmp_path / "run")
    db = DatabaseConfig.model_validate({"name": "F", "preset": "folder", "root": root,
                                        "n_subjects": None})
    images = ingest_databases(run, [db])
    assert bad.as_posix() in set(images["path"])
    back = run.read_table("images")
    same_table(images, back)
    assert by_name(back)[bad.name]["included"]
    with open(bad, "rb"):  # the name read back opens the file
        pass


@pytest.mark.parametrize("locked, left", [("happy/locked", 14), ("sad", 13)])
def test_unlistable_subfolder_is_reported_and_ingest_goes_on(tmp_path, monkeypatch, locked,
                                                             left):
    root = make_folder_db(tmp_path / "db")
    write_png(root / "happy" / "locked" / "x.png")
    real = os.scandir

    def scandir(path="."):  # root reads any folder: simulate one without permission
        if os.fspath(path).endswith(locked):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    df = ingest("folder", root, db="F")
    row = by_name(df)[Path(locked).name]
    assert reason_category(row["reason"]) == "unreadable image"
    assert "Permission denied" in row["reason"] and "cannot list" in row["reason"]
    assert df["included"].sum() == left


def test_odd_manifest_rows_are_exclusions(tmp_path, monkeypatch):
    root = tmp_path / "db"
    for k in range(len(EXPRESSIONS)):
        write_png(root / f"img{k}.png")
    write_png(root / "locked" / "x.png")
    with contextlib.suppress(OSError):
        os.symlink("loop2.png", root / "loop1.png")
        os.symlink("loop1.png", root / "loop2.png")
        os.symlink("me.png", root / "me.png")
    odd = {
        "~nosuchuser_h14/x.png": "missing file",
        "y" * 300 + ".png": "missing file",
        "nul\x00name.png": "missing file",
        "loop1.png": "missing file",
        "me.png": "missing file",
        "locked/x.png": "unreadable image",
        "sub/" * 1100 + "deep.png": "missing file",
    }
    lines = ["path,expression"] + [f"img{k}.png,{e}" for k, e in enumerate(EXPRESSIONS)]
    lines += [f'"{p}",happy' for p in odd]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    real_stat = os.stat

    def fake_stat(path, *args, **kwargs):  # root reads any folder: simulate a locked one
        if "/locked/" in os.fsdecode(os.fspath(path)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", fake_stat)
    df = ingest("manifest", root, db="M", n_subjects=None)
    rows = {p[len(root.as_posix()) + 1:]: r for p, r in zip(df["path"], df["reason"],
                                                            strict=True)}
    for raw, category in odd.items():
        assert reason_category(rows[raw]) == category, (raw[:40], rows[raw])
        assert "manifest.csv" in rows[raw], rows[raw]
    assert int(df["included"].sum()) == len(EXPRESSIONS)
    monkeypatch.undo()
    run = RunDir(tmp_path / "run")
    run.write_table("images", df)
    same_table(df, run.read_table("images"))


def test_unknown_user_home_is_named(tmp_path):
    root = tmp_path / "db"
    for k in range(len(EXPRESSIONS)):
        write_png(root / f"img{k}.png")
    lines = ["path,expression", "~nosuchuser_h14/x.png,happy"]
    lines += [f"img{k}.png,{e}" for k, e in enumerate(EXPRESSIONS)]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    df = ingest("manifest", root, db="M", n_subjects=None)
    why = df.loc[df["path"].str.contains("nosuchuser"), "reason"].item()
    assert "'~nosuchuser_h14', but there is no such user" in why and "line 2" in why


def test_decompression_bomb_is_an_image_read_error(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    for read in (read_gray, read_rgb):
        with pytest.raises(ImageReadError, match="too large") as info:
            read(bomb)
        assert str(bomb) in str(info.value)
    root = make_folder_db(tmp_path / "db")
    bomb_png(root / "happy" / "bomb.png")
    row = by_name(ingest("folder", root, db="F"))["bomb.png"]
    assert reason_category(row["reason"]) == "unreadable image"
    assert "too large" in row["reason"]


def test_decompression_bomb_as_base_face_is_one_line(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    res = runner.invoke(app, ["stimuli", "--out", str(tmp_path / "stim"), "--base-face",
                              str(bomb), "--aus", "12", "--levels", "2"])
    no_traceback(res)
    assert res.exit_code == 2, res.output
    assert "too large" in res.output and "bomb.png" in res.output
    assert not (tmp_path / "stim").exists()


@pytest.mark.parametrize("base, words", [("~nosuchuser_h14/me.jpg", "no user"),
                                         ("y" * 300 + ".jpg", "too long")])
def test_impossible_base_face_paths_are_one_line(tmp_path, base, words):
    res = runner.invoke(app, ["stimuli", "--out", str(tmp_path / "stim"), "--base-face",
                              base, "--aus", "12", "--levels", "2"])
    no_traceback(res)
    assert res.exit_code == 2, res.output
    assert words in res.output and res.output.startswith("error:")


def test_decompression_bomb_in_average_face_is_skipped(tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    tiny = write_png(tmp_path / "tiny.png", (1, 1))
    res = runner.invoke(app, ["average-face", str(bomb), str(tiny), "--out",
                              str(tmp_path / "avg.png")])
    no_traceback(res)
    assert res.exit_code == 2, res.output
    assert "too large" in res.output


def test_average_face_odd_command_line_paths(tmp_path, monkeypatch):
    res = runner.invoke(app, ["average-face", "~nosuchuser_h14/x.png", "--out",
                              str(tmp_path / "avg.png")])
    no_traceback(res)
    assert res.exit_code == 2 and "nosuchuser_h14" in res.output
    res = runner.invoke(app, ["average-face", str(tmp_path / ("y" * 300 + ".png")), "--out",
                              str(tmp_path / "avg.png")])
    no_traceback(res)
    assert res.exit_code == 2 and "too long" in res.output
    folder = tmp_path / "locked"
    write_png(folder / "a.png")
    real = Path.iterdir

    def iterdir(self):
        if self.name == "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    res = runner.invoke(app, ["average-face", str(folder), "--out", str(tmp_path / "a.png")])
    no_traceback(res)
    assert res.exit_code == 2 and "Permission denied" in res.output


# ------------------------------------------------------------------------------ item 11: misc
@pytest.fixture
def umask():
    """Set the process umask for a test; restored afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o027, 0o077])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mask):
    umask(mask)
    want = 0o666 & ~mask
    paths = [atomic_write_bytes(tmp_path / "a.bin", b"x"),
             atomic_write_text(tmp_path / "b.txt", "y")]
    run = RunDir(tmp_path / "run")
    paths.append(run.write_table("t", pd.DataFrame({"a": [1]})))
    cache = ArrayCache(tmp_path / "cache")
    cache.put("ab" * 32, x=np.zeros(3))
    paths.append(cache.path("ab" * 32))
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == want, p


def test_report_images_have_their_caption_as_alt_text():
    from facedialect.report.html import Figure, Section, render_html

    caption = 'Confusion <matrix> of "A" & B'
    page = render_html("t", [Section("s", "S", [Figure(b"\x89PNG", caption, "conf")])])
    assert f'alt="{html.escape(caption, quote=True)}"' in page


def _db(name: str, root: Path) -> DatabaseConfig:
    return DatabaseConfig.model_validate({"name": name, "preset": "folder", "root": root,
                                          "n_subjects": None})


def test_whole_study_ingest_forgets_databases_no_longer_in_the_study(tmp_path):
    a = make_folder_db(tmp_path / "a")
    b = make_folder_db(tmp_path / "b", subjects=("S07", "S08"))
    run = RunDir(tmp_path / "run")
    ingest_databases(run, [_db("A", a), _db("OLD", b)], prune=True)
    images = ingest_databases(run, [_db("A", a), _db("NEW", b)], prune=True)  # OLD renamed
    assert set(images["db"]) == {"A", "NEW"}
    assert set(run.read_table("images")["db"]) == {"A", "NEW"}
    m = run.read_manifest()
    assert set(m["databases"]) == {"A", "NEW"}
    assert {k for k in m["inputs"] if k.startswith("database:")} == {"database:A",
                                                                   "database:NEW"}
    # one database at a time (facedialect ingest) keeps the others
    ingest_databases(run, [_db("C", b)])
    assert set(run.read_table("images")["db"]) == {"A", "NEW", "C"}


def test_run_prunes_renamed_database(tmp_path, monkeypatch):
    import facedialect.stages.preprocess as preprocess_mod
    from facedialect.config import load_study
    from facedialect.pipeline import run_stages

    make_folder_db(tmp_path / "a")
    study_file = tmp_path / "study.toml"

    def write(name: str) -> None:
        study_file.write_text(f'[study]\nname = "s"\noutput = "run"\n[[databases]]\n'
                              f'name = "{name}"\npreset = "folder"\nroot = "a"\n')

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(preprocess_mod, "preprocess_images", stop)
    for name in ("OLD", "NEW"):
        write(name)
        with pytest.raises(Stop):
            run_stages(load_study(study_file))
    assert set(RunDir(tmp_path / "run").read_table("images")["db"]) == {"NEW"}

