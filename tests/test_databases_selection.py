"""Subject selection, summaries and reason categories on plain tables (no files)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from facedialect.databases import (
    IMAGE_COLUMNS,
    SELECTION_CATEGORIES,
    reason_category,
    select_subjects,
    summarize,
)
from facedialect.errors import InputError
from facedialect.vocab import EXPRESSIONS


def table(spec: dict[str, list[str]], db: str = "D", reasons: dict | None = None,
          ) -> pd.DataFrame:
    """Rows for each subject's expressions; ``reasons`` maps (subject, expression) to a reason."""
    reasons = reasons or {}
    rows = []
    for subject, expressions in spec.items():
        for e in expressions:
            why = reasons.get((subject, e), "")
            rows.append({"db": db, "path": f"/{db}/{subject}_{e}.png", "subject": subject,
                         "expression": e, "view": "", "session": "", "sex": "",
                         "included": why == "", "reason": why, "sha256": f"{subject}{e}"})
    return pd.DataFrame(rows, columns=IMAGE_COLUMNS)


ALL = list(EXPRESSIONS)


def kept(df: pd.DataFrame) -> set[str]:
    return set(df.loc[df["included"], "subject"])


def test_natural_order_and_n_subjects():
    df = table({"S10": ALL, "S2": ALL, "S1": ALL, "s3": ALL[:-1]})
    out = select_subjects(df, 2)
    assert kept(out) == {"S1", "S2"}
    assert set(out.loc[out["subject"] == "S10", "reason"]) == {
        "not selected: beyond the first 2 complete subjects"}
    assert set(out.loc[out["subject"] == "s3", "reason"]) == {
        "subject incomplete: lacks disgusted"}
    assert kept(select_subjects(df, None)) == {"S1", "S2", "S10"}
    assert kept(select_subjects(df, 60)) == {"S1", "S2", "S10"}  # fewer than asked: all


def test_lacks_lists_expressions_in_canonical_order():
    df = table({"A": ["neutral", "happy", "angry", "disgusted"], "B": ALL})
    out = select_subjects(df, None)
    assert set(out.loc[out["subject"] == "A", "reason"]) == {
        "subject incomplete: lacks fearful, sad, surprised"}


def test_complete_means_every_expression_the_database_has():
    five = ["happy", "fearful", "sad", "angry", "surprised"]
    df = table({"S1": five, "S2": five[:4], "S3": five + ["happy", "sad"]})
    out = select_subjects(df, None)
    assert kept(out) == {"S1", "S3"}  # takes of S3 all kept; S2 lacks surprised
    assert out.loc[out["subject"] == "S3", "included"].sum() == 7
    assert set(out.loc[out["subject"] == "S2", "reason"]) == {
        "subject incomplete: lacks surprised"}
    # an expression whose images are all unusable still counts as one the database has
    bad = table({"S1": five, "S2": five}, reasons={("S1", "sad"): "no face detected: 0",
                                                   ("S2", "sad"): "unreadable image: x"})
    assert kept(select_subjects(bad, None)) == set()
    # ... but not one excluded from the study's label set
    contempt = table({"S1": [*five, "contempt"]},
                     reasons={("S1", "contempt"): "expression not studied: contempt"})
    assert kept(select_subjects(contempt, None)) == {"S1"}
    # the study's label set restricts what counts
    assert kept(select_subjects(df, None, expressions=five[:4])) == {"S1", "S2", "S3"}


def test_other_exclusions_stay_and_do_not_count():
    df = table({"S1": ALL, "S2": ALL},
               reasons={("S1", "sad"): "unreadable image: truncated"})
    out = select_subjects(df, None)
    assert kept(out) == {"S2"}
    s1 = out[out["subject"] == "S1"].set_index("expression")["reason"]
    assert s1["sad"] == "unreadable image: truncated"
    assert s1["happy"] == "subject incomplete: lacks sad"


def test_rerun_reconsiders_selection_only():
    first = select_subjects(table({"S1": ALL, "S2": ALL, "S3": ALL}), 2)
    assert kept(first) == {"S1", "S2"}
    # face detection fails on one of S1's images: S3 takes S1's place
    after = first.copy()
    hit = (after["subject"] == "S1") & (after["expression"] == "happy")
    after.loc[hit, ["included", "reason"]] = [False, "no face detected: 0 faces"]
    again = select_subjects(after, 2)
    assert kept(again) == {"S2", "S3"}
    assert again.loc[hit, "reason"].item() == "no face detected: 0 faces"
    assert set(again.loc[(again["subject"] == "S1") & ~hit, "reason"]) == {
        "subject incomplete: lacks happy"}
    # and back: an earlier incomplete subject that is complete again is reconsidered
    restored = again.copy()
    restored.loc[hit, ["included", "reason"]] = [True, ""]
    assert kept(select_subjects(restored, 2)) == {"S1", "S2"}


def test_no_subject_ids_keeps_all_valid():
    df = table({"": ALL + ["happy", "happy"]},
               reasons={("", "sad"): "duplicate file: same bytes as /x"})
    out = select_subjects(df, 1)
    assert out["included"].sum() == len(df) - 1
    assert (out["included"] == (out["reason"] == "")).all()


def test_blank_subject_in_database_with_ids():
    df = pd.concat([table({"S1": ALL}), table({"": ["happy"]})], ignore_index=True)
    out = select_subjects(df, None)
    assert out.loc[out["subject"] == "", "reason"].item().startswith(
        "subject incomplete: no subject id")
    assert kept(out) == {"S1"}


def test_each_database_selected_on_its_own():
    df = pd.concat([table({"a": ALL, "b": ALL}, db="X"),
                    table({"a": ALL[:3], "b": ALL}, db="Y", reasons={
                        ("b", e): "unreadable image: x" for e in ALL}),
                    table({"": ["sad"]}, db="Z")], ignore_index=True)
    out = select_subjects(df, 1)
    assert set(out.loc[out["included"], "db"] + out.loc[out["included"], "subject"]) == {
        "Xa", "Z"}
    s = summarize(out)
    assert list(s) == ["X", "Y", "Z"]
    assert s["X"]["n_subjects_selected"] == 1 and s["X"]["exclusions"] == {"not selected": 7}
    assert s["Y"]["n_subjects_selected"] == 0 and s["Y"]["exclusions"] == {
        "subject incomplete": 3, "unreadable image": 7}
    assert s["Z"]["has_subject_ids"] is False and s["Z"]["n_subjects_selected"] is None
    assert s["Z"]["images_per_expression"] == {"sad": 1}
    assert s["Z"]["images_per_subject"] == {} and s["Z"]["takes"] == {}
    assert s["X"]["images_per_subject"] == {"min": 7, "median": 7.0, "max": 7}
    assert s["X"]["takes"] == {"min": 1, "median": 1.0, "max": 1}


def test_keeps_index_order_and_extra_columns():
    df = table({"S2": ALL, "S1": ALL}).iloc[::-1]
    df.index = df.index * 10 + 5
    df["facs"] = "1:2"
    out = select_subjects(df, 1)
    assert list(out.index) == list(df.index)
    assert list(out.columns) == list(df.columns)
    assert (out["facs"] == "1:2").all() and list(out["path"]) == list(df["path"])
    assert kept(out) == {"S1"}
    assert kept(df) == {"S1", "S2"}  # input unchanged


def test_table_read_back_from_csv():
    """As the stages do: write the table, read it back (blanks become NaN), select again."""
    df = select_subjects(table({"S1": ALL, "S2": ALL[:2]}), None)
    back = pd.read_csv(io.StringIO(df.to_csv(index=False)), keep_default_na=False,
                       na_values=[""], dtype={"subject": str, "reason": str})
    out = select_subjects(back, None)
    assert kept(out) == {"S1"}
    assert all(isinstance(v, str) for v in out["reason"]) and (out["view"] == "").all()
    assert summarize(back) == summarize(df)


@pytest.mark.parametrize("n", [0, -3, 2.5, True, "60"])
def test_bad_n_subjects(n):
    with pytest.raises(InputError, match="n_subjects"):
        select_subjects(table({"S1": ALL}), n)


def test_missing_columns():
    with pytest.raises(InputError, match="lacks the column\\(s\\) subject"):
        select_subjects(table({"S1": ALL}).drop(columns=["subject"]), None)


@pytest.mark.parametrize("reason, category", [
    ("", ""), ("unreadable image: corrupt (x: y)", "unreadable image"),
    ("not selected: beyond the first 60 complete subjects", "not selected"),
    ("contempt", "contempt"), (float("nan"), ""), (None, ""),
])
def test_reason_category(reason, category):
    assert reason_category(reason) == category


# ------------------------------------------------------------------------- property test
OTHER = ["unreadable image: x", "duplicate file: same bytes as /a", "no face detected: 0"]
row = st.tuples(st.sampled_from(["S1", "S2", "S3", "S10", "S11"]), st.sampled_from(ALL),
                st.sampled_from(["", "", "", *OTHER, "not selected: old", "subject incomplete: x"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(row, max_size=60), st.one_of(st.none(), st.integers(1, 4)))
def test_selection_invariants(rows, n):
    df = pd.DataFrame([{"db": "D", "path": f"/{i}.png", "subject": s, "expression": e,
                        "view": "", "session": "", "sex": "", "included": r == "",
                        "reason": r, "sha256": str(i)} for i, (s, e, r) in enumerate(rows)],
                      columns=IMAGE_COLUMNS)
    out = select_subjects(df, n)
    assert (out["included"] == (out["reason"] == "")).all()
    before = df["reason"].map(reason_category)
    keep = ~before.isin(SELECTION_CATEGORIES) & (df["reason"] != "")
    assert (out.loc[keep, "reason"] == df.loc[keep, "reason"]).all()
    live = df[(df["reason"] == "") | before.isin(SELECTION_CATEGORIES)]
    has = set(df["expression"])  # every labelled row counts, usable or not
    complete = sorted((s for s, part in live.groupby("subject")
                       if set(part["expression"]) == has), key=lambda s: int(s[1:]))
    expected = set(complete if n is None else complete[:n])
    assert kept(out) == expected
    assert len(out[out["included"]]) == len(live[live["subject"].isin(expected)])
    pd.testing.assert_frame_equal(select_subjects(out, n), out)  # idempotent
