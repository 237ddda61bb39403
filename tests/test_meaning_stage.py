"""End-to-end: synthetic faces -> features -> per-culture heads -> PPCA and preservation."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from facedialect.api import Study
from facedialect.cli import app
from facedialect.meaning.ppca import LOADING_COLUMNS
from facedialect.meaning.preservation import PRESERVATION_COLUMNS
from facedialect.report.html import Figure, render_html
from facedialect.run.store import RunDir
from facedialect.stages.meaning import (
    ACCURACY_COLUMNS,
    IMAGE_COLUMNS,
    MEANING_TABLES,
    PPCA_COMPONENT_COLUMNS,
    PPCA_LOADING_COLUMNS,
    PPCA_SUMMARY_COLUMNS,
    meaning_section,
)

runner = CliRunner()
DOCS = Path(__file__).resolve().parents[1] / "docs"

STUDY = """
[study]
name = "meaning e2e"
output = "run"
seed = 3

[[databases]]
name = "faces"
preset = "kdef"
root = "data/faces"
n_subjects = 3

[model]
backbone = "alexnet"
weights = "random"

[training]
protocol = "quick"

[meaning]
ratings = "ratings.csv"
raters = "raters.csv"
hidden = 0
iterations = 60
dropout = 0.0
test_share = 0.34
folds = 3
permutations = 19
"""


def test_images_to_shared_dimensions(tmp_path):
    res = runner.invoke(app, ["synth-ratings", "--out", str(tmp_path), "--subjects", "3",
                              "--raters", "6"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "ratings.csv").exists() and (tmp_path / "truth.json").exists()
    study_file = tmp_path / "e2e.toml"
    study_file.write_text(STUDY)
    study = Study.from_toml(study_file)
    done = study.run(["ingest", "preprocess"], progress=False)
    assert [s.stage for s in done.summaries] == ["ingest", "preprocess"]
    run = RunDir(study.study.output)

    res = runner.invoke(app, ["meaning", str(study_file), "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "A vs B:" in res.output and "mean preservation" in res.output
    for name in MEANING_TABLES:
        assert run.has_table(name), name
    images = run.read_table("meaning_images")
    assert list(images.columns) == IMAGE_COLUMNS
    assert images["used"].all() and len(images) == 21
    # 3 subjects, 3 folds, 4 runs: every image is held out once or twice
    assert images["runs_held_out"].between(1, 2).all()
    acc = run.read_table("rating_accuracy")
    assert list(acc.columns) == ACCURACY_COLUMNS
    assert set(acc["culture"]) == {"A", "B", "C"} and (acc["runs"] == 4).all()
    assert acc["reliability"].between(0.3, 1).all()  # raters given: a ceiling per concept
    comps = run.read_table("ppca_components")
    assert list(comps.columns) == PPCA_COMPONENT_COLUMNS
    summary = run.read_table("ppca_summary")
    assert list(summary.columns) == PPCA_SUMMARY_COLUMNS
    assert set(summary["culture_pair"]) == {"A vs B", "A vs C", "B vs C", "A vs A ratings",
                                            "B vs B ratings", "C vs C ratings"}
    loads = run.read_table("ppca_loadings")
    assert list(loads.columns) == PPCA_LOADING_COLUMNS
    assert set(LOADING_COLUMNS) - {"side"} <= set(loads.columns)
    ab = loads[(loads["culture_pair"] == "A vs B") & (loads["component"] == 1)]
    assert sorted(set(ab["culture"])) == ["A", "B"] and len(ab) == 10 + 10
    rat = loads[loads["culture_pair"] == "A vs A ratings"]
    assert set(rat["source"]) == {"prediction", "rating"}
    pres = run.read_table("meaning_preservation")
    assert list(pres.columns) == PRESERVATION_COLUMNS
    diag = pres[pres["source"] == pres["target"]]
    assert (diag["preserved"] > 0.95).all()
    preds = run.read_table("meaning_predictions")
    assert preds["image"].nunique() == 21 and preds["mean_rating"].notna().all()
    assert run.read_manifest()["meaning"]["backbone"] == "alexnet|random"

    section = meaning_section(run)
    assert section is not None
    assert sum(isinstance(b, Figure) for b in section.blocks) >= 4
    html = render_html("t", [section])
    assert "Shared dimensions of meaning" in html and "RANDOM weights" in html

    # same seed, same numbers; features come from the cache the second time
    first = run.read_table("ppca_components")
    res = runner.invoke(app, ["meaning", str(study_file), "--device", "cpu"])
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    res = runner.invoke(app, ["meaning", str(study_file), "--device", "cpu", "--force"])
    assert res.exit_code == 0 and "mean preservation" in res.output, res.output
    pd.testing.assert_frame_equal(first, run.read_table("ppca_components"))
    assert run.read_manifest()["stages"]["meaning"]["features_computed"] == 0


def _unrated_study(tmp_path: Path) -> Path:
    """A study without [meaning] ratings, of a folder database with two small images."""
    for i, expr in enumerate(("neutral", "happy")):
        (tmp_path / "db" / expr).mkdir(parents=True)
        Image.fromarray(np.full((64, 64), 60 * (i + 1), np.uint8)).save(
            tmp_path / "db" / expr / f"{i}_a.png")
    study = tmp_path / "s.toml"
    study.write_text('[study]\nname = "x"\noutput = "o"\n[[databases]]\nname = "D"\n'
                     'preset = "folder"\nroot = "db"\n')
    return study


def test_meaning_without_ratings_is_a_one_line_error(tmp_path):
    study = _unrated_study(tmp_path)
    for stage in ("ingest", "preprocess"):
        res = runner.invoke(app, [stage, str(study)])
        assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["meaning", str(study)])
    assert res.exit_code == 2
    assert "no [meaning] ratings" in res.output and "Traceback" not in res.output


def test_meaning_without_ratings_says_so_before_any_work(tmp_path):
    study = _unrated_study(tmp_path)
    res = runner.invoke(app, ["meaning", str(study)])
    assert res.exit_code == 2
    assert "no [meaning] ratings" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()  # nothing was written


def test_every_meaning_table_and_column_is_documented():
    outputs = (DOCS / "outputs.md").read_text()
    for name in MEANING_TABLES:
        assert f"tables/{name}.csv" in outputs, name
    cols = set(IMAGE_COLUMNS + ACCURACY_COLUMNS + PPCA_COMPONENT_COLUMNS
               + PPCA_LOADING_COLUMNS + PPCA_SUMMARY_COLUMNS + PRESERVATION_COLUMNS)
    section = outputs.split("## Shared dimensions of meaning")[1].split("\n## ")[0]
    documented = {c.strip() for line in section.splitlines()
                  for span in re.findall(r"`([^`]+)`", line) for c in span.split(",")}
    assert not cols - documented, sorted(cols - documented)
