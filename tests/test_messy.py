"""The whole study on messy data: several takes, unbalanced classes, missing expressions,
a 5-class database without subject ids, and ratings for the meaning stage.

`facedialect synth --preset messy` makes three cultures (A and B as east-west, C with A's
prototypes but 5 classes and no subject ids); `facedialect run` does every stage
(training, evaluation, AU tuning, robustness, saliency, meaning) on them.
"""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from facedialect.cli import app
from facedialect.run.store import RunDir
from facedialect.synthetic.raters import au_matrix, shared_dims_simulator, simulate_ratings

runner = CliRunner()
FIVE = ["happy", "fearful", "sad", "angry", "surprised"]

STUDY = """
[study]
name = "messy"
output = "run"
seed = 2

[[databases]]
name = "A"
preset = "manifest"
root = "data/A"
n_subjects = 5

[[databases]]
name = "B"
preset = "manifest"
root = "data/B"
n_subjects = 5

[[databases]]
name = "C"
preset = "manifest"
root = "data/C"

[model]
backbone = "mobilenet_v2"

[training]
protocol = "quick"
runs = 2
iterations = 240

[tuning]
base_face = "builtin"
levels = 3

[saliency]
enable = true
methods = ["gradient"]
images_per_class = 1
resamples = 99
modify_steps = 3

[meaning]
ratings = "ratings.csv"
hidden = 0
iterations = 60
runs = 2
dropout = 0.0
folds = 3
permutations = 19
"""


def test_whole_study_on_messy_data(tmp_path):
    res = runner.invoke(app, ["synth", "--preset", "messy", "--subjects", "7", "--renderer",
                              "builtin", "--out", str(tmp_path / "data")])
    assert res.exit_code == 0, res.output
    truth = pd.read_csv(tmp_path / "data" / "A" / "truth.csv")
    sim = shared_dims_simulator(1, 1, cultures=("X", "Y"), concepts=3, raters=4, seed=1)
    ratings = simulate_ratings(au_matrix(truth), sim).ratings.assign(db="A")
    ratings.to_csv(tmp_path / "ratings.csv", index=False)
    (tmp_path / "study.toml").write_text(STUDY)

    res = runner.invoke(app, ["run", str(tmp_path / "study.toml")])
    assert res.exit_code == 0, res.output
    run = RunDir(tmp_path / "run")
    images = run.read_table("images")
    inc = images[images["included"]]
    takes = inc[inc["db"] != "C"].groupby(["db", "subject", "expression"]).size()
    assert takes.max() > 1  # several takes per poser and expression are used
    assert (inc.loc[inc["db"] == "C", "subject"].fillna("") == "").all()
    reasons = set(images.loc[~images["included"], "reason"].str.split(":").str[0])
    assert "subject incomplete" in reasons  # posers missing an expression

    classes = run.read_table("classes")
    units = {db: list(g.loc[g["unit"], "expression"]) for db, g in classes.groupby("db")}
    assert units["C"] == FIVE and len(units["A"]) == len(units["B"]) == 7

    splits = run.read_table("splits")
    per_subject = splits[splits["db"] != "C"].groupby(["db", "run", "subject"])["part"]
    assert (per_subject.nunique() == 1).all()  # every take of a subject in one part
    train = splits[splits["part"] == "train"].groupby(["db", "run"]).size()
    assert train.loc["A"].nunique() > 1 or train.loc["B"].nunique() > 1  # unequal sets

    acc = run.read_table("accuracy")
    acc = acc[acc["variants"] == "all"]
    c_on_a = acc[(acc["train_db"] == "C") & (acc["test_db"] == "A")]
    assert set(c_on_a["expression"]) == set(FIVE)  # scored on the shared classes
    conf = run.read_table("confusion")
    c_net = conf[(conf["train_db"] == "C") & (conf["test_db"] == "A")]
    assert c_net.loc[c_net["predicted"] == "neutral", "rate"].isna().all()  # no unit
    assert c_net.loc[(c_net["true"] == "neutral") & c_net["rate"].notna(), "rate"].sum() > 0
    matched = acc[acc["condition"] == "matched"].groupby("train_db")["correct_rate"].mean()
    assert (matched > 1 / 7).all(), matched

    prof = run.read_table("au_profiles")
    assert set(prof.loc[prof["db"] == "C", "unit"]) == set(FIVE)
    sim_ac = run.read_table("profile_similarity")
    sim_ac = sim_ac[(sim_ac["db_a"] == "A") & (sim_ac["db_b"] == "C")]
    assert set(sim_ac.loc[sim_ac["unit_a"] == sim_ac["unit_b"], "unit_a"]) == set(FIVE)
    assert run.has_table("robustness")
    assert set(run.read_table("saliency_regions")["db"]) == {"A", "B", "C"}
    mod = run.read_table("modification")
    assert set(mod.loc[mod["db"] == "C", "target"]) == set(FIVE)
    assert run.has_table("meaning_predictions") or run.has_table("rating_accuracy")

    html = (run.path / "report.html").read_text()
    assert 'id="classification"' in html and "Label sets" in html
    assert "Images per subject" in html
