"""Checks of a study's findings against the known answers of synthetic cultures.

The method: docs/method.md §10.

Every function takes the study's tables (DataFrames) and returns numbers or DataFrames;
no I/O. docs/validation.md defines the criteria and records measured values.

"Tunes positively" (:func:`au_tuning_tests`): for database ``db``, output unit ``unit`` and
AU ``au``, take each run's response at the top level (intensity 1, null image
subtracted). The unit tunes positively to the AU when

1. the mean over runs is at least ``k`` SDs (over runs) above 0, and
2. the mean is at least ``min_share`` of the unit's largest absolute top-level mean over
   all AUs (so a consistent but negligible response does not count).

A planted AU (:func:`planted_au_check`) must tune positively in the culture that uses it,
not in the culture that does not, and its top-level response must be larger in the first
(Welch t-test over runs, one-sided p < ``alpha``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from facedialect.vocab import EXPRESSIONS

__all__ = [
    "au_tuning_tests",
    "planted_au_check",
    "same_unit_similarity",
    "swapped_accuracy_by_expression",
]


def _top(responses: pd.DataFrame) -> pd.DataFrame:
    top = responses["level"].max()
    return responses[responses["level"] == top]


def au_tuning_tests(responses: pd.DataFrame, *, k: float = 2.0,
                    min_share: float = 0.1) -> pd.DataFrame:
    """Which units tune positively to which AUs, by the criterion of the module docstring.

    Parameters
    ----------
    responses : pandas.DataFrame
        ``tables/au_responses`` (``db, run, unit, au, level, response``).
    k : float
        Required mean / SD over runs.
    min_share : float
        Required mean / the unit's largest absolute top-level mean.

    Returns
    -------
    pandas.DataFrame
        ``db, unit, au, mean, sd, runs, z, share, positive``, one row per db, unit, AU.
    """
    top = _top(responses)
    g = top.groupby(["db", "unit", "au"], sort=False)["response"]
    out = g.agg(mean="mean", sd="std", runs="count").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    out["z"] = out["mean"] / out["sd"].where(out["sd"] > 0, np.nan)
    scale = out.groupby(["db", "unit"])["mean"].transform(lambda s: s.abs().max())
    out["share"] = out["mean"] / scale.where(scale > 0, np.nan)
    out["positive"] = ((out["mean"] > 0) & (out["mean"] >= k * out["sd"])
                       & (out["share"] >= min_share))
    return out


def planted_au_check(responses: pd.DataFrame, *, unit: str, au: int, present: str,
                     absent: str, k: float = 2.0, min_share: float = 0.1,
                     alpha: float = 0.05) -> dict[str, Any]:
    """Test one planted AU: positive tuning in ``present``'s unit, not in ``absent``'s.

    Parameters
    ----------
    responses : pandas.DataFrame
        ``tables/au_responses``.
    unit : str
        The expression unit (e.g. ``"angry"``).
    au : int
        The AU that ``present`` uses for this expression and ``absent`` does not.
    present, absent : str
        Database names.
    k, min_share : float
        See :func:`au_tuning_tests`.
    alpha : float
        Level of the one-sided Welch t-test ``present > absent`` over runs.

    Returns
    -------
    dict
        ``mean_present``, ``sd_present``, ``share_present``, ``positive_present`` (and the
        same for ``absent``), ``t``, ``p`` (one-sided) and ``passed`` (positive in
        ``present``, not positive in ``absent``, p < alpha).
    """
    tests = au_tuning_tests(responses, k=k, min_share=min_share)
    out: dict[str, Any] = {"unit": unit, "au": int(au), "present": present, "absent": absent}
    for role, db in (("present", present), ("absent", absent)):
        row = tests[(tests["db"] == db) & (tests["unit"] == unit) & (tests["au"] == au)]
        if row.empty:
            raise ValueError(f"no top-level responses of {db!r} unit {unit!r} to AU{au}")
        r = row.iloc[0]
        out.update({f"mean_{role}": float(r["mean"]), f"sd_{role}": float(r["sd"]),
                    f"share_{role}": float(r["share"]),
                    f"positive_{role}": bool(r["positive"])})
    top = _top(responses)
    x = [top[(top["db"] == db) & (top["unit"] == unit) & (top["au"] == au)]["response"]
         .to_numpy() for db in (present, absent)]
    res = stats.ttest_ind(x[0], x[1], equal_var=False, alternative="greater")
    out["t"], out["p"] = float(res.statistic), float(res.pvalue)
    out["passed"] = bool(out["positive_present"] and not out["positive_absent"]
                         and out["p"] < alpha)
    return out


def swapped_accuracy_by_expression(accuracy: pd.DataFrame, *, variants: str = "all"
                                   ) -> pd.DataFrame:
    """Mean correct rate per training database, condition and expression (over runs).

    Parameters
    ----------
    accuracy : pandas.DataFrame
        ``tables/accuracy`` (``train_db, test_db, condition, variants, run, expression,
        correct_rate``).
    variants : str
        ``all`` or ``plain``.

    Returns
    -------
    pandas.DataFrame
        ``train_db, condition, expression, correct_rate``.
    """
    a = accuracy[accuracy["variants"] == variants]
    return (a.groupby(["train_db", "condition", "expression"], sort=False)["correct_rate"]
            .mean().reset_index())


def same_unit_similarity(similarity: pd.DataFrame, changed: Sequence[str]
                         ) -> dict[str, float]:
    """Cross-culture r_s of the same expression's profiles, unchanged vs changed.

    Parameters
    ----------
    similarity : pandas.DataFrame
        ``tables/profile_similarity`` for one database pair.
    changed : sequence of str
        The expressions whose prototypes differ between the cultures.

    Returns
    -------
    dict
        ``{expression: r_s}`` for the 7 expressions, plus ``mean_unchanged`` and
        ``mean_changed``.
    """
    same = similarity[similarity["unit_a"] == similarity["unit_b"]]
    r = {str(u): float(v) for u, v in zip(same["unit_a"], same["spearman_r"], strict=True)}
    out = {e: r[e] for e in EXPRESSIONS if e in r}
    out["mean_unchanged"] = float(np.mean([v for e, v in r.items() if e not in changed]))
    out["mean_changed"] = float(np.mean([v for e, v in r.items() if e in changed]))
    return out
