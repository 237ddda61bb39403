"""Real photos end to end: the London set (102 people, neutral and smiling) as a 2-class study.

The database is read where it lies in ../shared (never written to), with the `folder`
preset: folders `neutral/` and `smiling/` (mapped onto happy with a label map), `.tem`
landmark files beside the photos (excluded as "not an image") and a `composite/` folder
that is no expression (excluded). `facedialect run` does everything, with quick settings.
"""

from __future__ import annotations

from scipy import stats
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.run.store import RunDir

runner = CliRunner()


def test_london_two_class_study_end_to_end(tmp_path, london):
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "London: neutral vs smiling"
output = "run"
expressions = ["neutral", "happy"]

[[databases]]
name = "London"
preset = "folder"
root = "{london}"
n_subjects = 40
label_map = {{ smiling = "happy" }}
options = {{ subject_regex = '^(\\d+)_' }}

[model]
backbone = "mobilenet_v2"

[training]
protocol = "quick"
runs = 3

[tuning]
levels = 6
robustness = false
""")
    res = runner.invoke(app, ["run", str(study)])
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "run")
    images = run.read_table("images")
    inc = images[images["included"]]
    assert inc["subject"].nunique() == 40
    per_subject = inc.groupby("subject")["expression"].agg(lambda e: tuple(sorted(e)))
    assert per_subject.map(lambda e: e == ("happy", "neutral")).all(), per_subject
    reasons = images.loc[~images["included"], "reason"].str.split(":").str[0]
    assert {"not an image", "unknown expression folder", "not selected"} <= set(reasons)

    classes = run.read_table("classes")
    assert classes["expression"].tolist() == ["neutral", "happy"] and classes["unit"].all()
    acc = run.read_table("accuracy")
    acc = acc[acc["variants"] == "all"]
    assert set(acc["expression"]) == {"neutral", "happy"}
    matched = acc.groupby("run")["correct_rate"].mean()
    assert matched.mean() > 0.7, matched  # neutral vs smiling, chance 0.5

    # the happy unit tunes to the smile's AUs: lip corner puller and cheek raiser
    resp = run.read_table("au_responses")
    top = resp[(resp["unit"] == "happy") & (resp["level"] == resp["level"].max())]
    per_au = top.groupby("au")["response"].mean()
    for au in (12, 6):
        runs = top.loc[top["au"] == au, "response"]
        assert runs.mean() > 0 and stats.ttest_1samp(runs, 0).pvalue < 0.05, (au, runs)
        assert per_au[au] > per_au.median(), per_au.sort_values()
    # with two units the neutral unit mirrors the happy one
    neutral = resp[(resp["unit"] == "neutral") & (resp["level"] == resp["level"].max())]
    assert neutral.groupby("au")["response"].mean()[12] < 0
    assert len(run.read_table("au_profiles")["unit"].unique()) == 2

    html = (run.path / "report.html").read_text()
    assert "label set neutral, happy instead of the paper" in html  # a listed deviation
    assert 'id="tuning"' in html
