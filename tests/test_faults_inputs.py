"""Fault injection: bad study files and command-line values (issue 14, items 1, 7 and 8).

Every case must end in a clear message (exit code 2 on the command line), never a Python
traceback, never a write into a database folder, and never a silently changed meaning.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import BaseModel
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.config import Study, load_study, parse_study
from facedialect.errors import InputError, StudyFileError
from facedialect.run.store import RunDir

runner = CliRunner()
CODES = ["NE", "HA", "AF", "SA", "AN", "SU", "DI"]
NO_USER = "~facedialect-no-such-user-14"


def _kdef(root: Path, subjects: tuple[str, ...] = ("F01", "F02")) -> Path:
    """A tiny KDEF-named database of distinct noise images (ingest needs no faces)."""
    rng = np.random.default_rng(14)
    for sid in subjects:
        folder = root / f"A{sid}"
        folder.mkdir(parents=True)
        for code in CODES:
            pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"A{sid}{code}S.png")
    return root


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _study(folder: Path, *, output: str = "run", root: str = "db", extra: str = "",
           db_extra: str = "") -> Path:
    path = folder / "study.toml"
    path.write_text(f'[study]\nname = "faults"\noutput = "{output}"\n{extra}\n'
                    f'[[databases]]\nname = "K"\npreset = "kdef"\nroot = "{root}"\n'
                    f'{db_extra}\n', encoding="utf-8")
    return path


def _one_clear_error(res, *fragments: str) -> None:
    """Exit code 2, no traceback, and every fragment in the output."""
    text = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    for f in fragments:
        assert f in text, f"{f!r} not in {text!r}"


# ------------------------------------------------------ item 1: output into the database
@pytest.mark.parametrize("output", ["db", "db/run", "db/AF01/deeper"])
def test_output_inside_a_database_root_is_refused(tmp_path, output):
    db = _kdef(tmp_path / "db")
    before = _snapshot(db)
    study = _study(tmp_path, output=output)
    with pytest.raises(StudyFileError, match=r"\[study\] output .* is inside the root of "
                       r"database 'K'"):
        load_study(study)
    for cmd in ("validate", "run", "train", "meaning"):
        res = runner.invoke(app, [cmd, str(study)])
        _one_clear_error(res, "is inside the root of database 'K'", "never writes into")
    assert _snapshot(db) == before


@pytest.mark.parametrize("root", ["run/data/KDEF", "run/tables", "run"])
def test_database_root_inside_the_output_is_refused(tmp_path, root):
    db = _kdef(tmp_path / root)
    before = _snapshot(db)
    study = _study(tmp_path, output="run", root=root)
    res = runner.invoke(app, ["validate", str(study)])
    _one_clear_error(res, "database 'K'")
    assert _snapshot(db) == before


def test_cache_inside_a_database_root_is_refused(tmp_path):
    _kdef(tmp_path / "db")
    study = _study(tmp_path, extra='cache_dir = "db/cache"')
    with pytest.raises(StudyFileError, match=r"cache_dir .* is inside the root of "
                       r"database 'K'"):
        load_study(study)


def test_output_beside_the_database_is_fine(tmp_path):
    _kdef(tmp_path / "data" / "db")
    study = load_study(_study(tmp_path, output="runs/one", root="data/db",
                              extra='cache_dir = "cache"'))
    assert study.study.output == tmp_path / "runs" / "one"
    # a name that merely starts like the root is not inside it
    _kdef(tmp_path / "x")
    assert load_study(_study(tmp_path, output="x-run", root="x")).study.output.name == "x-run"


_SEGMENTS = st.lists(st.sampled_from(["a", "b", "tables"]), min_size=1, max_size=3)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(out=_SEGMENTS, root=_SEGMENTS)
def test_output_and_root_nest_iff_refused(tmp_path, out, root):
    base = tmp_path / "h"
    (base / Path(*root)).mkdir(parents=True, exist_ok=True)
    data = {"study": {"name": "h", "output": "/".join(out)},
            "databases": [{"name": "K", "preset": "kdef", "root": "/".join(root)}]}
    o, r = base / Path(*out), base / Path(*root)
    nested = o.is_relative_to(r) or r.is_relative_to(o)
    if nested:
        with pytest.raises(StudyFileError, match="database 'K'"):
            parse_study(data, base)
    else:
        assert parse_study(data, base).study.output == o


@pytest.mark.parametrize("out", ["db", "db/run"])
def test_ingest_out_inside_the_database_is_refused(tmp_path, out):
    db = _kdef(tmp_path / "db")
    before = _snapshot(db)
    res = runner.invoke(app, ["inspect", str(db), "--preset", "kdef", "--out",
                              str(tmp_path / out)])
    _one_clear_error(res, "--out", "is inside the root of database 'KDEF'")
    assert _snapshot(db) == before


def test_ingest_database_inside_out_is_refused(tmp_path):
    db = _kdef(tmp_path / "run" / "db")
    res = runner.invoke(app, ["inspect", str(db), "--preset", "kdef", "--out",
                              str(tmp_path / "run")])
    _one_clear_error(res, "database 'KDEF'", "inside the run directory")
    assert not (tmp_path / "run" / ".lock").exists()


@pytest.mark.parametrize(("cmd", "refusal"), [("report", "is not a run directory"),
                                              ("preprocess", "study file not found")])
def test_commands_on_a_run_only_write_into_a_run_directory(tmp_path, cmd, refusal):
    # report takes a study file or a run directory; every stage command a study file
    db = _kdef(tmp_path / "db")
    before = _snapshot(db)
    res = runner.invoke(app, [cmd, str(db)])
    _one_clear_error(res, str(db), refusal)
    assert _snapshot(db) == before
    res = runner.invoke(app, [cmd, str(tmp_path / "nothing")])
    _one_clear_error(res, "nothing")
    assert not (tmp_path / "nothing").exists()


def test_report_still_works_on_an_ingested_run(tmp_path):
    db = _kdef(tmp_path / "db")
    res = runner.invoke(app, ["inspect", str(db), "--preset", "kdef", "--out",
                              str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["report", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run" / "report.html").is_file()


# ------------------------------------------------------------------- item 7: CLI values
def test_preset_in_any_case_is_accepted(tmp_path):
    db = _kdef(tmp_path / "db")
    res = runner.invoke(app, ["inspect", str(db), "--preset", "KDEF", "--out",
                              str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert RunDir(tmp_path / "run").has_table("images")


@pytest.mark.parametrize(("args", "fragments"), [
    (["--preset", "kdf"], ["--preset 'kdf':", "'kdef', 'krc', 'jaffe', 'ckplus', 'folder'"]),
    (["--preset", "kdef", "--subjects", "-5"], ["--subjects"]),
    (["--preset", "kdef", "--name", "<b>x"], ["--name:", "is not a usable database name"]),
    (["--preset", "kdef", "--expressions", "joy,happy"], ["--expressions:", "'joy'"]),
    (["--preset", "kdef", "--expressions", "happy"], ["--expressions", "at least 2"]),
    (["--preset", "kdef", "-o", "colour=blue"], ["--option:", "unknown option(s) 'colour'"]),
])
def test_bad_ingest_values_are_one_clear_line(tmp_path, args, fragments):
    db = _kdef(tmp_path / "db")
    res = runner.invoke(app, ["inspect", str(db), "--out", str(tmp_path / "run"), *args])
    _one_clear_error(res, *fragments)
    assert not (tmp_path / "run").exists()


def test_unknown_user_in_a_path_is_a_clear_error(tmp_path):
    db = _kdef(tmp_path / "db")
    res = runner.invoke(app, ["inspect", f"{NO_USER}/db", "--preset", "kdef", "--out",
                              str(tmp_path / "run")])
    _one_clear_error(res, "ROOT:", NO_USER, "names no home folder")
    res = runner.invoke(app, ["inspect", str(db), "--preset", "kdef", "--out",
                              f"{NO_USER}/run"])
    _one_clear_error(res, "--out:", NO_USER)
    res = runner.invoke(app, ["report", f"{NO_USER}/run"])
    _one_clear_error(res, NO_USER, "names no home folder")
    study = _study(tmp_path, output=f"{NO_USER}/run")
    for cmd in ("validate", "preprocess", "evaluate"):
        res = runner.invoke(app, [cmd, str(study)])
        _one_clear_error(res, "study.output:", NO_USER, "names no home folder")
    with pytest.raises(InputError, match="names no home folder"):
        RunDir(f"{NO_USER}/run")


@pytest.mark.parametrize("cmd", ["preprocess", "evaluate", "validate"])
def test_unknown_user_in_a_study_file_path_is_a_clear_error(cmd):
    res = runner.invoke(app, [cmd, f"{NO_USER}/study.toml"])
    _one_clear_error(res, NO_USER, "names no home folder")


@pytest.mark.parametrize(("args", "fragments"), [
    (["stimuli", "--out", "OUT", "--size", "0", "--aus", "12", "--levels", "2"],
     ["size must be an integer in 32..4096, got 0"]),
    (["stimuli", "--out", "OUT", "--size", "99999", "--aus", "12", "--levels", "2"],
     ["size must be an integer in 32..4096"]),
    (["stimuli", "--out", "OUT", "--size", "40", "--base-face", "3d", "--aus", "12",
      "--levels", "2"], ["64..2048"]),
    (["preprocess", "STUDY", "--workers", "-3"], ["--workers"]),
    (["train", "STUDY", "--device", "gpu"], ["--device", "'gpu'", "cpu, cuda"]),
    (["evaluate", "STUDY", "--device", "tpu"], ["--device", "'tpu'"]),
    (["synth-ratings", "--out", "OUT", "--subjects", "-1"], ["--subjects"]),
    (["synth-ratings", "--out", "OUT", "--raters", "0"], ["--raters"]),
    (["synth-ratings", "--out", "OUT", "--seed", "-1"], ["--seed"]),
    (["demo", "--out", "OUT", "--subjects", "-1"], ["--subjects"]),
    (["demo", "--out", "OUT", "--seed", "-2"], ["--seed"]),
])
def test_bad_command_values_are_clear_errors(tmp_path, args, fragments):
    _kdef(tmp_path / "db")
    study = _study(tmp_path)
    subs = {"OUT": str(tmp_path / "out"), "RUN": str(tmp_path / "run"), "STUDY": str(study)}
    res = runner.invoke(app, [subs.get(a, a) for a in args])
    _one_clear_error(res, *fragments)
    assert not (tmp_path / "out").exists()


def test_saliency_images_per_class_is_checked_before_work(tmp_path):
    """What was ``saliency --images-per-class`` is the study's [saliency] images_per_class."""
    _kdef(tmp_path / "db")
    path = _study(tmp_path)
    path.write_text("[saliency]\nimages_per_class = -3\n" + path.read_text(encoding="utf-8"),
                    encoding="utf-8")
    res = runner.invoke(app, ["saliency", str(path)])
    _one_clear_error(res, "saliency.images_per_class")
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------- item 8: silent wrong meanings
def _number_fields() -> list[tuple[str, str]]:
    """Every (section, key) of the study file whose value is a number (int or float)."""
    out = []
    for section, field in Study.model_fields.items():
        model = field.annotation
        if typing.get_origin(model) is list:
            model = typing.get_args(model)[0]
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key, f in model.model_fields.items():
            if typing.get_origin(f.annotation) in (list, tuple, typing.Annotated):
                continue
            args = {f.annotation, *typing.get_args(f.annotation)}
            if bool not in args and args & {int, float}:
                out.append((section, key))
    return out


NUMBER_FIELDS = _number_fields()


def test_the_number_fields_are_found():
    assert {("study", "seed"), ("databases", "n_subjects"), ("training", "iterations"),
            ("meaning", "lr"), ("preprocess", "crop_scale"),
            ("screening", "min_sharpness")} <= set(NUMBER_FIELDS)


@pytest.mark.parametrize(("section", "key"), NUMBER_FIELDS)
@pytest.mark.parametrize("value", [True, False, "3"])
def test_a_boolean_or_string_is_not_a_number(tmp_path, section, key, value):
    (tmp_path / "db").mkdir()
    data: dict = {"study": {"name": "s", "output": "run"},
                  "databases": [{"name": "K", "preset": "kdef", "root": "db"}]}
    target = data["databases"][0] if section == "databases" else data.setdefault(section, {})
    target[key] = value
    with pytest.raises(StudyFileError, match=rf"\.{key}: Input should be a valid"):
        parse_study(data, tmp_path, "s.toml")


@pytest.mark.parametrize(("section", "key", "value"), [
    ("tuning", "aus", [True, 12]),
    ("meaning", "rating_range", [True, 7]),
    ("preprocess", "variant_scales", [True, 0.9, 0.95, 1.05, 1.1]),
    ("saliency", "enable", 1),
    ("model", "allow_download", "yes"),
])
def test_booleans_and_numbers_do_not_stand_in_for_each_other(tmp_path, section, key, value):
    (tmp_path / "db").mkdir()
    data = {"study": {"name": "s", "output": "run"},
            "databases": [{"name": "K", "preset": "kdef", "root": "db"}], section: {key: value}}
    with pytest.raises(StudyFileError, match=rf"{section}\.{key}"):
        parse_study(data, tmp_path, "s.toml")


def test_numbers_and_lists_still_parse_from_toml(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "r.csv").write_text("image,culture,concept,mean_rating,n_raters\n")
    study = load_study(_study(tmp_path, extra="seed = 3", db_extra="n_subjects = 5"))
    assert (study.study.seed, study.databases[0].n_subjects) == (3, 5)
    path = tmp_path / "s2.toml"
    path.write_text(path.with_name("study.toml").read_text() + """
[meaning]
ratings = "r.csv"
rating_range = [1, 7]
test_share = 0.5
[training]
momentum = 0
[preprocess]
crop_scale = 2
variant_scales = [1, 0.9, 0.95, 1.05, 1.1]
[tuning]
aus = [12, 26]
""")
    s = load_study(path)
    assert s.meaning.rating_range == (1.0, 7.0)
    assert all(isinstance(v, float) for v in s.meaning.rating_range)
    assert isinstance(s.training.momentum, float) and s.tuning.aus == [12, 26]
    assert isinstance(s.preprocess.crop_scale, float)
    assert s.preprocess.variant_scales[0] == 1.0
    # the resolved config.toml round-trips (paths as strings, tuples as lists)
    again = tmp_path / "again.toml"
    again.write_text(s.to_toml())
    assert load_study(again).model_dump() == s.model_dump()


def test_relative_weights_are_resolved_against_the_study_folder(tmp_path, monkeypatch):
    study_dir, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    _kdef(study_dir / "db")
    elsewhere.mkdir()
    (study_dir / "mine.pth").write_bytes(b"the study's")
    (elsewhere / "mine.pth").write_bytes(b"another one")
    monkeypatch.chdir(elsewhere)
    study = load_study(_study(study_dir, extra='[model]\nweights = "mine.pth"\n'))
    assert study.model.weights == str(study_dir / "mine.pth")
    for keyword in ("imagenet", "random"):
        s = load_study(_study(study_dir, extra=f'[model]\nweights = "{keyword}"\n'))
        assert s.model.weights == keyword
    (study_dir / "mine.pth").unlink()
    with pytest.raises(StudyFileError, match=r"model\.weights: .*mine\.pth.* does not exist"):
        load_study(_study(study_dir, extra='[model]\nweights = "mine.pth"\n'))


@pytest.mark.parametrize(("db_extra", "fragments"), [
    ('options = { colour = "blue" }',
     ["databases[0].options:", "unknown option(s) 'colour' for preset 'kdef'"]),
    ('options = { view = "Q" }', ["databases[0].options:", "view"]),
    ('options = { takes = "some" }', ["databases[0].options:", "takes"]),
])
def test_validate_checks_preset_options(tmp_path, db_extra, fragments):
    _kdef(tmp_path / "db")
    res = runner.invoke(app, ["validate", str(_study(tmp_path, db_extra=db_extra))])
    _one_clear_error(res, *fragments)


def test_validate_accepts_good_preset_options(tmp_path):
    _kdef(tmp_path / "db")
    study = load_study(_study(tmp_path, db_extra='options = { view = "s", takes = "all" }'))
    assert study.databases[0].options == {"view": "s", "takes": "all"}


def test_validate_refuses_a_root_that_is_a_file(tmp_path):
    (tmp_path / "db").write_text("not a folder")
    res = runner.invoke(app, ["validate", str(_study(tmp_path))])
    _one_clear_error(res, "databases[0].root:", "is a file, not a folder")
    (tmp_path / "db").unlink()
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "list.csv").write_text("path,expression\n")
    path = tmp_path / "m.toml"
    path.write_text('[study]\nname = "m"\noutput = "run"\n[[databases]]\nname = "M"\n'
                    'preset = "manifest"\nroot = "db/list.csv"\n')
    res = runner.invoke(app, ["validate", str(path)])
    _one_clear_error(res, "databases[0].root:", "is a file, not a folder")
