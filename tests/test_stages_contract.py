"""One contract for every stage of ``facedialect.pipeline.STAGES`` (as scikit-learn checks
every estimator): a missing input is a clear error naming the stage, the tables it writes
have the columns docs/outputs.md documents, a second run is a no-op, the manifest records
it, and its report section is empty before it ran.

The study runs once (module fixture) on the messy synthetic preset with every stage on:
several takes, a 5-class database without subject ids, ratings for the meaning stage.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from facedialect.api import Run, Study
from facedialect.cli import app
from facedialect.errors import InputError
from facedialect.pipeline import STAGES, check_inputs, run_stages
from facedialect.run.store import RunDir
from facedialect.stages.base import Context
from facedialect.synthetic.raters import au_matrix, shared_dims_simulator, simulate_ratings

DOCS = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"
NAMES = [s.name for s in STAGES]

STUDY = """
[study]
name = "contract"
output = "run"
seed = 3

[[databases]]
name = "A"
preset = "manifest"
root = "data/A"
n_subjects = 4

[[databases]]
name = "B"
preset = "manifest"
root = "data/B"
n_subjects = 4

[[databases]]
name = "C"
preset = "manifest"
root = "data/C"

[model]
backbone = "mobilenet_v2"

[training]
protocol = "quick"
runs = 2
iterations = 120

[tuning]
base_face = "builtin"
levels = 3
aus = [1, 4, 12, 15]
robustness = true

[saliency]
enable = true
methods = ["gradient"]
images_per_class = 1
resamples = 99
modify_steps = 2

[mental_models]
enable = true
trials = 120
identities = 2
permutations = 19
bootstrap = 19
size = 160
modify = true
modify_evaluations = 20

[meaning]
ratings = "ratings.csv"
hidden = 0
iterations = 40
runs = 2
dropout = 0.0
folds = 3
permutations = 19
"""


def documented_columns() -> dict[str, list[str]]:
    """Table name -> columns, as docs/outputs.md documents them (three layouts there).

    A column documented as present for one preset only (``CK+ only: ...``) is left out.
    """
    text = DOCS.read_text(encoding="utf-8")
    out: dict[str, list[str]] = {}
    for m in re.finditer(r"^\| `tables/(\w+)\.csv` \| `([^`]*)` \|", text, flags=re.M):
        out[m[1]] = [c.strip() for c in m[2].split(",")]
    for m in re.finditer(r"^## `tables/(\w+)\.csv`[^\n]*\n(.*?)(?=^## |\Z)", text,
                         flags=re.M | re.S):
        body = m[2]
        rows = re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|(?! CK\+ only)", body, flags=re.M)
        if rows:
            out[m[1]] = [c for row in rows for c in re.findall(r"`(\w+)`", row)]
        else:
            inline = re.search(r"^`([\w, ]+)`:", body, flags=re.M)
            if inline:
                out[m[1]] = [c.strip() for c in inline[1].split(",")]
    return out


def _hashes(run: RunDir) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.tables.glob("*.csv"))}


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    res = CliRunner().invoke(app, ["synth", "--preset", "messy", "--subjects", "6",
                                   "--renderer", "builtin", "--out", str(root / "data")])
    assert res.exit_code == 0, res.output
    truth = pd.read_csv(root / "data" / "A" / "truth.csv")
    sim = shared_dims_simulator(1, 1, cultures=("X", "Y"), concepts=3, raters=4, seed=1)
    simulate_ratings(au_matrix(truth), sim).ratings.assign(db="A").to_csv(
        root / "ratings.csv", index=False)
    (root / "study.toml").write_text(STUDY, encoding="utf-8")
    study = Study.from_toml(root / "study.toml")
    run = RunDir(study.study.output)
    before = {s.name: s.section(run) for s in STAGES}  # nothing has run yet
    first = run_stages(study, ctx=Context(device="cpu"))
    tables = _hashes(run)
    second = run_stages(study, ctx=Context(device="cpu"))
    return {"study": study, "run": run, "before": before, "first": first,
            "second": second, "tables": tables}


def test_every_stage_ran_once(study_run):
    assert [s.stage for s in study_run["first"]] == NAMES
    assert all(s.skipped is None for s in study_run["first"]), study_run["first"]


@pytest.mark.parametrize("name", NAMES)
def test_section_is_empty_before_the_stage_ran(study_run, name):
    assert study_run["before"][name] is None


READING = [s for s in STAGES if s.reads]  # ingest and report read no run-directory file


@pytest.mark.parametrize("stage", READING, ids=[s.name for s in READING])
def test_missing_input_names_the_stage(tmp_path, stage):
    with pytest.raises(InputError, match=rf"stage '{stage.name}' needs {re.escape(stage.reads[0])}"
                       r".*which the \w+ stage writes"):
        check_inputs(RunDir(tmp_path / "run"), stage)


@pytest.mark.parametrize("stage", STAGES, ids=NAMES)
def test_outputs_exist_and_match_the_documented_columns(study_run, stage):
    run: RunDir = study_run["run"]
    docs = documented_columns()
    for pattern in stage.writes:
        folder, _, name = pattern.rpartition("/")
        found = list((run.path / folder).glob(name))
        assert found, f"{stage.name} did not write {pattern}"
        for path in found:
            if path.parent.name == "tables" and path.suffix == ".csv":
                assert path.stem in docs, f"tables/{path.name} is not in docs/outputs.md"
                header = list(pd.read_csv(path, nrows=0).columns)
                assert header == docs[path.stem], path.name


def test_every_table_is_documented(study_run):
    docs = documented_columns()
    for path in sorted(study_run["run"].tables.glob("*.csv")):
        assert path.stem in docs, f"tables/{path.name} is not in docs/outputs.md"
        assert list(pd.read_csv(path, nrows=0).columns) == docs[path.stem], path.name


def test_the_documented_columns_are_parsed():
    docs = documented_columns()
    assert docs["images"][:4] == ["db", "path", "subject", "expression"]
    assert "facs" not in docs["images"]  # CK+ only
    assert docs["accuracy"][-1] == "correct_rate" and docs["splits"][-1] == "part"


@pytest.mark.parametrize("stage", STAGES, ids=NAMES)
def test_second_run_is_a_no_op(study_run, stage):
    second = {s.stage: s for s in study_run["second"]}
    if stage.always:  # checks its inputs itself: runs, from its caches, and changes nothing
        assert second[stage.name].skipped is None
    else:
        assert second[stage.name].skipped == "up to date"
    assert _hashes(study_run["run"]) == study_run["tables"]


@pytest.mark.parametrize("name", NAMES)
def test_manifest_records_the_stage(study_run, name):
    manifest = study_run["run"].read_manifest()
    assert name in manifest["stages"], sorted(manifest["stages"])
    assert manifest["stages"][name]["seconds"] >= 0
    stage = next(s for s in STAGES if s.name == name)
    if not stage.always:
        assert manifest["fingerprints"][name] == stage.fingerprint(study_run["run"],
                                                                   study_run["study"])


@pytest.mark.parametrize("name", NAMES)
def test_section_after_the_stage_ran(study_run, name):
    stage = next(s for s in STAGES if s.name == name)
    section = stage.section(study_run["run"])
    if section is not None:
        assert section.blocks and section.title


def test_a_changed_setting_reruns_only_the_stages_that_depend_on_it(study_run):
    study = study_run["study"].model_copy(deep=True)
    study.saliency.images_per_class = 2
    again = {s.stage: s for s in run_stages(study, ctx=Context(device="cpu"))}
    assert again["saliency"].skipped is None
    for name in ("train", "evaluate", "tuning", "robustness", "meaning", "mental_models"):
        assert again[name].skipped == "up to date", name


def test_api_run_reads_the_tables(study_run):
    run = Run(study_run["run"].path)
    assert "accuracy" in run.tables and len(run.tables) == len(study_run["tables"])
    assert list(run.tables["classes"].columns) == documented_columns()["classes"]
    assert run.stages == NAMES
    with pytest.raises(KeyError, match="no such table"):
        run.tables["nonexistent"]


def test_mental_models_are_drawn_on_every_show_on_face(study_run):
    run = study_run["run"]
    assert study_run["study"].mental_models.show_on == ["trials", "average"]
    assert run.read_manifest()["stages"]["mental_models"]["shown"] == ["trials", "average"]
    assert (run.path / "faces" / "average_neutral.png").is_file()  # built from the databases
    for prefix in ("mm_faces", "mm_modified_faces"):
        for face in ("trials", "average"):
            assert (run.figures / f"{prefix}_{face}.png").stat().st_size > 1000, (prefix, face)
    stage = next(s for s in STAGES if s.name == "mental_models")
    captions = " ".join(getattr(b, "caption", "") for b in stage.section(run).blocks)
    assert "average neutral face" in captions and "first face of the trials" in captions
