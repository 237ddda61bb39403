"""Label sets: study expressions, label maps, exclusions, takes, and heads with fewer units."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from facedialect.config import parse_study
from facedialect.databases import ingest
from facedialect.errors import InputError, StudyFileError
from facedialect.stats.classification import (
    accuracy_from_confusion,
    classification_stats,
    confusion_rows,
)
from facedialect.stats.tuning import profile_similarity, tuning_profiles, tuning_responses
from facedialect.training.plan import class_table, database_units
from facedialect.vocab import EXPRESSIONS, VOCABULARY, in_order

FIVE = ["happy", "fearful", "sad", "angry", "surprised"]


def write_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(str(path).encode()))  # unique bytes per file
    Image.fromarray(rng.integers(0, 255, (40, 40), dtype=np.uint8)).save(path)


def folder_db(root: Path, folders: dict[str, list[str]]) -> Path:
    """ROOT/{folder}/img_{subject}_{take}.png for each subject listed under a folder."""
    for folder, subjects in folders.items():
        for k, s in enumerate(subjects):
            write_image(root / folder / f"img_{s}_{k}.png")
    return root


REGEX = {"subject_regex": r"_(S\d+)_"}


def _study(tmp_path: Path, extra: str = "", db: str = "") -> str:
    (tmp_path / "db").mkdir(exist_ok=True)
    return f"""
[study]
name = "x"
output = "out"
{extra}

[[databases]]
name = "A"
preset = "folder"
root = "db"
{db}
"""


def _parse(text: str, base: Path):
    import tomllib

    return parse_study(tomllib.loads(text), base)


# ------------------------------------------------------------------------------ study file
def test_study_expressions_default_order_and_errors(tmp_path):
    s = _parse(_study(tmp_path), tmp_path)
    assert s.study.expressions == list(EXPRESSIONS)
    s = _parse(_study(tmp_path, 'expressions = ["Surprised", "contempt", "happy"]'), tmp_path)
    assert s.study.expressions == ["happy", "surprised", "contempt"]  # canonical order
    with pytest.raises(StudyFileError, match=r"unknown expression\(s\) \['joy'\]"):
        _parse(_study(tmp_path, 'expressions = ["joy", "happy"]'), tmp_path)
    with pytest.raises(StudyFileError, match="at least 2"):
        _parse(_study(tmp_path, 'expressions = ["happy"]'), tmp_path)
    with pytest.raises(StudyFileError, match="listed twice"):
        _parse(_study(tmp_path, 'expressions = ["happy", "happy", "sad"]'), tmp_path)


def test_label_map_targets_must_be_study_expressions(tmp_path):
    with pytest.raises(StudyFileError, match="'rage' to 'fury', which is not an expression"):
        _parse(_study(tmp_path, db='label_map = { rage = "fury" }'), tmp_path)
    with pytest.raises(StudyFileError, match=r"maps onto \['contempt'\], not among"):
        _parse(_study(tmp_path, db='label_map = { smirk = "contempt" }'), tmp_path)
    s = _parse(_study(tmp_path, db='label_map = { joy = "Happiness" }'), tmp_path)
    assert s.databases[0].label_map == {"joy": "happy"}
    with pytest.raises(StudyFileError, match="exclude_expressions leaves"):
        _parse(_study(tmp_path, 'expressions = ["happy", "sad"]',
                      'exclude_expressions = ["sad"]'), tmp_path)
    s = _parse(_study(tmp_path, db='n_subjects = "all"'), tmp_path)
    assert s.databases[0].n_subjects is None  # every complete subject
    assert 'n_subjects = "all"' in s.to_toml()  # and it survives config.toml (TOML: no null)
    s = _parse(_study(tmp_path, db='exclude_expressions = ["disgusted", "neutral"]'), tmp_path)
    assert s.database_expressions("A") == ["happy", "fearful", "sad", "angry", "surprised"]


# --------------------------------------------------------------------------------- ingest
def test_label_map_lifts_unknown_folders_and_refuses_silent_merges(tmp_path):
    root = folder_db(tmp_path / "db", {"joy": ["S1", "S2"], "sadness": ["S1", "S2"],
                                      "rage": ["S1", "S2"], "angry": ["S1"]})
    df = ingest("folder", root, db="W", options=REGEX, n_subjects=None)
    assert set(df.loc[df["path"].str.contains("/rage/"), "reason"].str[:25]) == {
        "unknown expression folder"}
    with pytest.raises(InputError, match=r"merges two labels.*'angry'.*merge_labels = true"):
        ingest("folder", root, db="W", options=REGEX, label_map={"rage": "angry"})
    df = ingest("folder", root, db="W", options=REGEX, label_map={"rage": "angry"},
                merge_labels=True, n_subjects=None)
    inc = df[df["included"]]
    assert in_order(inc["expression"]) == ["happy", "sad", "angry"]
    assert (inc["expression"] == "angry").sum() == 3  # 2 rage + 1 angry, all kept
    with pytest.raises(InputError, match=r"names label\(s\) \['fury'\] that no file"):
        ingest("folder", root, db="W", options=REGEX, label_map={"fury": "angry"})


def test_synonym_folders_are_not_a_merge(tmp_path):
    root = folder_db(tmp_path / "db", {"happy": ["S1"], "joy": ["S2"], "sad": ["S1", "S2"]})
    df = ingest("folder", root, db="W", options=REGEX, n_subjects=None)
    assert df["included"].all()


def test_contempt_kept_or_dropped_and_exclusions(tmp_path):
    root = folder_db(tmp_path / "db", {"happy": ["S1", "S2"], "contempt": ["S1", "S2"],
                                      "neutral": ["S1", "S2"]})
    seven = ingest("folder", root, db="C", options=REGEX)
    gone = seven[seven["expression"] == "contempt"]
    assert len(gone) == 2 and gone["reason"].str.startswith(
        "expression not studied: contempt is not among the study's expressions").all()
    assert seven.loc[seven["expression"] != "contempt", "included"].all()
    eight = ingest("folder", root, db="C", options=REGEX, expressions=VOCABULARY)
    assert eight["included"].all()
    dropped = ingest("folder", root, db="C", options=REGEX, expressions=VOCABULARY,
                     exclude_expressions=["neutral"])
    assert set(dropped.loc[~dropped["included"], "reason"].str[:40]) == {
        "expression not studied: neutral (exclude"}


def test_five_class_database_selects_complete_subjects_with_all_takes(tmp_path):
    folders = {e: ["S1", "S2", "S2", "S3"] for e in FIVE}
    folders["surprised"] = ["S1", "S2"]  # S3 lacks surprised
    root = folder_db(tmp_path / "db", folders)
    df = ingest("folder", root, db="Y", options=REGEX, n_subjects=None)
    inc = df[df["included"]]
    assert set(inc["subject"]) == {"S1", "S2"}
    assert (inc.groupby("subject").size().to_dict()) == {"S1": 5, "S2": 9}
    assert set(df.loc[df["subject"] == "S3", "reason"]) == {
        "subject incomplete: lacks surprised"}
    first = ingest("folder", root, db="Y", options={**REGEX, "takes": "first"},
                   n_subjects=None)
    assert first[first["included"]].groupby("subject").size().to_dict() == {"S1": 5, "S2": 5}
    with pytest.raises(InputError, match="takes = 'sometimes'.*'all', 'first'"):
        ingest("folder", root, db="Y", options={**REGEX, "takes": "sometimes"})


# ------------------------------------------------------------------------- units per database
def _faces(db: str, exprs: list[str], subjects: int = 3) -> pd.DataFrame:
    return pd.DataFrame([{"db": db, "subject": f"S{s}", "expression": e, "path": f"{db}{s}{e}"}
                         for s in range(subjects) for e in exprs])


def test_database_units_and_class_table():
    images = pd.concat([_faces("A", list(EXPRESSIONS)), _faces("B", FIVE)]).assign(reason="")
    faces = images.copy()
    units = database_units(images, faces, list(EXPRESSIONS))
    assert units == {"A": list(EXPRESSIONS), "B": FIVE}
    table = class_table(faces, units)
    b = table[table["db"] == "B"].set_index("expression")
    assert not b.loc["neutral", "unit"] and b.loc["neutral", "images"] == 0
    assert b.loc["happy", "unit"] and b.loc["happy", "subjects"] == 3
    # an expression the database has, but no usable image of: a clear error
    with pytest.raises(InputError, match="'B' has no usable image of sad.*exclude_expressions"):
        database_units(images, faces[(faces["db"] == "A") | (faces["expression"] != "sad")],
                       list(EXPRESSIONS))
    with pytest.raises(InputError, match="at least 2 expressions"):
        one = _faces("C", ["happy"]).assign(reason="")
        database_units(one, one, list(EXPRESSIONS))


# ------------------------------------------------------------------------- evaluation tables
def test_swapped_confusion_over_the_union_and_accuracy_on_shared_classes():
    units = FIVE  # a 5-class network tested on a 7-class database
    true = np.array(list(EXPRESSIONS) * 2, dtype=object)
    pred = np.array([e if e in units else "happy" for e in true], dtype=object)
    conf = confusion_rows(true, pred, classes=list(EXPRESSIONS), units=units,
                          train_db="B", test_db="A", condition="swapped", variants="all", run=0)
    assert len(conf) == 49
    wide = conf.pivot(index="true", columns="predicted", values="rate")
    assert np.isnan(wide["neutral"]).all() and np.isnan(wide["disgusted"]).all()
    assert wide.loc["neutral", "happy"] == 1.0  # what the network calls neutral faces
    acc = accuracy_from_confusion(conf)
    assert sorted(acc["expression"]) == sorted(FIVE)
    assert (acc["correct_rate"] == 1.0).all()
    # integer input still works (indices into classes)
    ints = confusion_rows(np.array([0, 1]), np.array([1, 1]), train_db="A", test_db="A",
                          condition="matched", variants="all", run=0)
    assert ints.set_index(["true", "predicted"]).loc[("neutral", "happy"), "rate"] == 1.0


def test_anova_uses_the_expressions_both_groups_have():
    rng = np.random.default_rng(0)
    rows = []
    for db, exprs in (("A", EXPRESSIONS), ("B", FIVE)):
        for r in range(4):
            for e in exprs:
                for cond, test_db in (("matched", db), ("swapped", "B" if db == "A" else "A")):
                    if cond == "swapped" and e not in FIVE:
                        continue
                    rows.append({"train_db": db, "test_db": test_db, "condition": cond,
                                 "variants": "all", "run": r, "expression": e,
                                 "correct_rate": rng.uniform(0.3, 0.9)})
    stats = classification_stats(pd.DataFrame(rows))
    anova = stats[stats["test"].str.startswith("ANOVA database")]
    assert len(anova) == 3
    # 2 databases x 5 shared expressions x 4 runs: residual df = 40 - 10
    assert anova["df"].str.endswith(", 30").all()


# ------------------------------------------------------------------------------- AU tuning
def test_tuning_with_other_label_sets_compares_shared_units():
    stim = pd.DataFrame({"au": [0, 12, 12, 6, 6], "level": [0, 1, 2, 1, 2]})
    rng = np.random.default_rng(1)
    a = tuning_responses(rng.normal(size=(2, 5, 7)), stim, db="A", runs=[0, 1],
                         units=list(EXPRESSIONS))
    b = tuning_responses(rng.normal(size=(2, 5, 2)), stim, db="B", runs=[0, 1],
                         units=["neutral", "happy"])
    assert set(b["unit"]) == {"neutral", "happy"}
    with pytest.raises(ValueError, match="2 units"):
        tuning_responses(rng.normal(size=(2, 5, 7)), stim, db="B", runs=[0, 1],
                         units=["neutral", "happy"])
    prof = tuning_profiles(pd.concat([a, b]))
    sim = profile_similarity(prof, "A", "B")
    assert len(sim) == 7 * 2
    same = sim[sim["unit_a"] == sim["unit_b"]]
    assert set(same["unit_a"]) == {"neutral", "happy"}
    ok = same.dropna()
    assert np.allclose(ok["p_bonferroni"], np.minimum(1, ok["p"] * 2))
