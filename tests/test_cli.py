"""End-to-end: the CLI on real faces (London set) laid out with KDEF naming."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.run.store import RunDir

runner = CliRunner()
CODES = ["NE", "HA", "AF", "SA", "AN", "SU", "DI"]


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def kdef_tree(tmp_path, london) -> Path:
    """4 complete subjects from London photos; F01's sad image has no face."""
    root = tmp_path / "KDEF"
    photos = sorted((london / "neutral").glob("*.jpg"))
    i = 0
    for sid in ("F01", "F02", "F03", "F04"):
        folder = root / f"A{sid}"
        folder.mkdir(parents=True)
        for code in CODES:
            target = folder / f"A{sid}{code}S.JPG"
            if sid == "F01" and code == "SA":
                Image.fromarray(np.full((300, 300), 90, np.uint8)).save(target)
            else:
                shutil.copy(photos[i], target)
                i += 1
    (root / "README.txt").write_text("not an image")
    return root


#: The stage commands: each takes the study file.
STAGE_COMMANDS = ("ingest", "preprocess", "features", "train", "evaluate", "tune",
                  "robustness", "saliency", "meaning", "mental-models", "run", "modify")


def _study_file(tmp_path: Path, root: Path, *, n_subjects: int = 2, preset: str = "kdef",
                output: str = "run") -> Path:
    """A one-database study file (database KDEF, the name `inspect` gives by default)."""
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "one db"
output = "{output}"

[[databases]]
name = "KDEF"
preset = "{preset}"
root = "{root}"
n_subjects = {n_subjects}
""")
    return study


def _stage_block(output: str, stage: str) -> list[str]:
    """The lines a stage printed: its `NAME: title` line, then its indented lines."""
    lines = output.splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith(f"{stage}: ")]
    assert len(start) == 1, (stage, output)
    block = [lines[start[0]]]
    for line in lines[start[0] + 1:]:
        if not line.startswith("  "):
            break
        block.append(line)
    return block


def test_help_lists_every_command():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("validate", "inspect", "report", "demo", *STAGE_COMMANDS):
        assert cmd in res.output


@pytest.mark.parametrize("cmd", STAGE_COMMANDS)
def test_every_stage_command_takes_the_study_file(cmd):
    res = runner.invoke(app, [cmd, "--help"])
    assert res.exit_code == 0, res.output
    assert "study_file" in res.output.lower() and "The TOML study file" in res.output
    assert ("--force" in res.output) == (cmd != "modify")


def test_report_command_takes_the_study_file_or_a_run_directory():
    res = runner.invoke(app, ["report", "--help"])
    assert res.exit_code == 0 and "The study file, or a run directory" in res.output


def test_inspect_ingest_preprocess_report(tmp_path, kdef_tree):
    before = _snapshot(kdef_tree)
    res = runner.invoke(app, ["inspect", str(kdef_tree), "--preset", "kdef", "--out",
                              str(tmp_path / "inspected"), "--subjects", "2"])
    assert res.exit_code == 0, res.output
    assert "KDEF" in res.output and "excluded" in res.output
    inspected = RunDir(tmp_path / "inspected").read_table("images")
    assert list(inspected.columns[:9]) == ["db", "path", "subject", "expression", "view",
                                           "session", "sex", "included", "reason"]
    assert sorted(inspected.loc[inspected["included"], "subject"].unique()) == ["F01", "F02"]

    out = tmp_path / "run"
    study = _study_file(tmp_path, kdef_tree, n_subjects=2)
    res = runner.invoke(app, ["ingest", str(study)])
    assert res.exit_code == 0, res.output
    assert "KDEF" in res.output and "excluded" in res.output
    run = RunDir(out)
    images = run.read_table("images")
    assert list(images.columns) == list(inspected.columns)
    assert sorted(images.loc[images["included"], "subject"].unique()) == ["F01", "F02"]

    res = runner.invoke(app, ["preprocess", str(study)])
    assert res.exit_code == 0, res.output
    prep = run.read_table("preprocess")
    assert len(prep) == 28  # every image of the 4 complete subjects is a candidate
    missed = prep[~prep["detected"]]
    assert missed["path"].str.endswith("AF01SAS.JPG").tolist() == [True]
    assert missed["reason"].iloc[0].startswith("no face detected")
    images = run.read_table("images")
    # F01 lost its sad face, so F03 takes its place
    assert sorted(images.loc[images["included"], "subject"].unique()) == ["F02", "F03"]
    f01 = images[images["subject"] == "F01"]
    assert not f01["included"].any()
    assert (run.figures / "contact_sheet_KDEF.png").stat().st_size > 10_000

    res = runner.invoke(app, ["preprocess", str(study)])  # second run: everything cached
    assert res.exit_code == 0, res.output
    stage = run.read_manifest()["stages"]["preprocess"]
    assert stage["from_cache"] == stage["processed"] == 28
    assert "28 from cache" in res.output

    res = runner.invoke(app, ["report", str(out)])
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text()
    # the contact sheet (PNG) and the images per expression (inline SVG, text kept as text)
    assert html.count("data:image/png;base64,") + html.count('<div class="svg"') >= 2
    assert "AF01SAS.JPG" in html
    assert _snapshot(kdef_tree) == before  # nothing written inside the database


def test_run_study_file(tmp_path, kdef_tree):
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "one db"
output = "out"
seed = 1

[[databases]]
name = "K"
preset = "kdef"
root = "{kdef_tree}"
n_subjects = 3

[model]
backbone = "mobilenet_v2"
weights = "random"

[training]
protocol = "quick"
runs = 2
iterations = 6

[tuning]
aus = [12, 26]
levels = 3
""")
    res = runner.invoke(app, ["validate", str(study)])
    assert res.exit_code == 0 and "ok" in res.output
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "out")
    assert (run.path / "report.html").exists()
    assert (run.path / "config.toml").exists()
    m = run.read_manifest()
    assert m["seed"] == 1
    assert {"ingest", "preprocess", "features", "train", "evaluate"} <= set(m["stages"])
    assert m["training"]["weights_random"] is True
    # [model] runtime = "auto": ONNX Runtime when the fast extra is installed
    from facedialect.models.runtime import onnx_installed

    assert m["training"]["runtime"] == m["stages"]["features"]["runtime"] == (
        "onnx" if onnx_installed() else "torch")
    acc = run.read_table("accuracy")
    assert set(acc["condition"]) == {"matched"} and set(acc["run"]) == {0, 1}
    curves = run.read_table("training_curves")
    assert curves[curves["split"] == "train"].groupby("run").size().tolist() == [6, 6]
    html = (run.path / "report.html").read_text()
    assert "RANDOM weights" in html and 'id="classification"' in html
    # the default base face: the average neutral face of the study's database
    assert m["stages"]["tuning"]["base_face"] == "average"
    assert (run.path / "faces" / "average_neutral.png").exists()
    assert len(run.read_table("au_profiles")) == 7 * (1 + 2 * 2)
    # F01 lost its sad image to face detection: all complete subjects = the 3 used
    assert "robustness" in m.get("skipped", {})
    # a second run: training, evaluation and tuning are up to date (skipped), the features
    # all come from the cache (the features stage always checks it), the report is written
    # again
    report = run.path / "report.html"
    os.utime(report, ns=(0, 0))
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    for stage in ("train", "evaluate", "tuning"):
        assert _stage_block(res.output, stage)[1:] == ["  up to date"], (stage, res.output)
    assert "features of 0 face(s) computed" in " ".join(_stage_block(res.output, "features"))
    assert run.read_manifest()["stages"]["features"]["computed"] == 0
    assert _stage_block(res.output, "report")[1:] == [f"  report: {report}"], res.output
    assert report.stat().st_mtime_ns > 0
    assert f"done: report at {report}" in res.output
    res = runner.invoke(app, ["train", str(study)])
    assert res.exit_code == 0 and _stage_block(res.output, "train")[1:] == [
        "  up to date"], res.output
    # forced, the heads file is kept (same splits and settings) and evaluation runs again
    res = runner.invoke(app, ["train", str(study), "--force"])
    assert res.exit_code == 0 and "K: 2 runs (up to date)" in res.output, res.output
    res = runner.invoke(app, ["evaluate", str(study), "--force"])
    assert res.exit_code == 0 and "K -> K (matched)" in res.output, res.output


def test_stage_with_missing_input_names_the_stage_that_writes_it(tmp_path):
    root = tmp_path / "db"
    root.mkdir()
    study = _study_file(tmp_path, root, preset="folder", output="fresh")
    res = runner.invoke(app, ["evaluate", str(study)])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    text = " ".join(res.output.split())
    assert "stage 'evaluate' needs" in text
    assert "tables/splits.csv, which the features stage writes" in text
    assert "heads/*.pt, which the train stage writes" in text
    assert "facedialect ingest STUDY_FILE" in text  # the first missing input's stage
    assert not (tmp_path / "fresh" / "tables").exists()


def test_errors_are_messages_not_tracebacks(tmp_path):
    res = runner.invoke(app, ["validate", str(tmp_path / "missing.toml")])
    assert res.exit_code == 2
    assert "study file not found" in res.output
    assert "Traceback" not in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(app, ["inspect", str(empty), "--preset", "kdef", "--out",
                              str(tmp_path / "r")])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    res = runner.invoke(app, ["preprocess", str(tmp_path / "nothing.toml")])
    assert res.exit_code == 2 and "study file not found" in res.output
    study = _study_file(tmp_path, empty, preset="folder", output="nothing")
    res = runner.invoke(app, ["preprocess", str(study)])  # not ingested yet
    assert res.exit_code == 2 and "images.csv" in res.output
    assert "Traceback" not in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[study]\nname='x'\noutput='o'\nsedd=1\n[[databases]]\nname='A'\n"
                   "preset='kdef'\nroot='nope'\n")
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2
    assert "study.sedd" in res.output and "databases[0].root" in res.output
    assert not (tmp_path / "o").exists()  # nothing done before validation passed


def test_inspect_rejects_bad_option(tmp_path, kdef_tree):
    res = runner.invoke(app, ["inspect", str(kdef_tree), "--preset", "kdef", "--out",
                              str(tmp_path / "r"), "-o", "colour=blue"])
    assert res.exit_code == 2
    assert "colour" in res.output and "Traceback" not in res.output
    assert not os.path.exists(tmp_path / "r" / "tables" / "images.csv")


def test_missing_alexnet_weights_stop_with_a_clear_message(tmp_path, kdef_tree, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "alexnet offline"
output = "out"

[[databases]]
name = "K"
preset = "kdef"
root = "{kdef_tree}"
n_subjects = 3
""")
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert "alexnet-owt-7be5be79.pth" in res.output
    assert str(tmp_path / "torch") in res.output.replace("\n", "")


@pytest.mark.parametrize("swapped", ["test", "all"])
def test_two_databases_swapped_testing(tmp_path, kdef_tree, swapped):
    study = tmp_path / "study.toml"
    dbs = "".join(f"""
[[databases]]
name = "{name}"
preset = "kdef"
root = "{kdef_tree}"
n_subjects = 3
""" for name in ("A", "B"))
    study.write_text(f"""
[study]
name = "two"
output = "out"
{dbs}
[screening]
near_duplicates = false  # A and B are the same photos

[model]
backbone = "mobilenet_v2"
weights = "random"

[training]
protocol = "quick"
runs = 2
iterations = 3

[evaluation]
swapped_subjects = "{swapped}"

[tuning]
base_face = "builtin"
aus = [1, 12, 26]
levels = 3
""")
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    conf = RunDir(tmp_path / "out").read_table("confusion")
    assert set(conf["condition"]) == {"matched", "swapped"}
    n = conf[conf["variants"] == "all"].groupby("condition")["n"].max()
    # one test subject x the quick protocol's 10 test variants per expression
    assert n["matched"] == 10
    assert n["swapped"] == (10 if swapped == "test" else 30)  # or all 3 subjects
    assert RunDir(tmp_path / "out").read_manifest()["stages"]["evaluate"]["test_variants"] == 10
    run = RunDir(tmp_path / "out")
    stats = run.read_table("stats_classification")
    assert "ANOVA condition x expression (A-trained)" in set(stats["test"])
    stim = (run.path / "stimuli" / "stimuli.csv").read_text().splitlines()
    assert len(stim) == 1 + 1 + 3 * 2  # header, null image, 3 AUs x 2 levels
    prof = run.read_table("au_profiles")
    assert len(prof) == 2 * 7 * (1 + 3 * 2)
    assert (prof.loc[prof["level"] == 0, "mean"] == 0).all()
    assert len(run.read_table("profile_similarity")) == 49
    links = run.read_table("similarity_vs_confusion")
    assert set(zip(links["trained"], links["tested"], strict=True)) == {("A", "B"), ("B", "A")}
    assert set(run.read_table("pca")["pc"]) == {1, 2, 3}
    assert 'id="tuning"' in (run.path / "report.html").read_text()


def test_stimuli_command(tmp_path):
    out = tmp_path / "stim"
    res = runner.invoke(app, ["stimuli", "--out", str(out), "--aus", "12,26", "--levels", "4",
                              "--size", "128"])
    assert res.exit_code == 0, res.output
    lines = (out / "stimuli.csv").read_text().splitlines()
    assert lines[0] == "au,level,intensity,path" and len(lines) == 1 + 1 + 2 * 3
    assert (out / "null.png").exists() and (out / "AU12_L03.png").exists()
    assert (out / "contact_sheet.png").stat().st_size > 5000
    bad = runner.invoke(app, ["stimuli", "--out", str(out), "--aus", "3"])
    assert bad.exit_code == 2 and "valid: [1, 2, 4" in bad.output
    bad = runner.invoke(app, ["stimuli", "--out", str(out), "--base-face", "me.jpg"])
    assert bad.exit_code == 2 and "not a photo file" in bad.output   # me.jpg does not exist
