"""Confusion matrices, correct rates and the paper's statistics (docs/method.md §6)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from facedialect.vocab import EXPRESSIONS

#: Columns of ``tables/confusion.csv``.
CONFUSION_COLUMNS = ["train_db", "test_db", "condition", "variants", "run", "true",
                     "predicted", "rate", "n"]
#: Columns of ``tables/accuracy.csv``.
ACCURACY_COLUMNS = ["train_db", "test_db", "condition", "variants", "run", "expression",
                    "correct_rate"]
#: Columns of ``tables/stats_classification.csv``.
STATS_COLUMNS = ["test", "effect", "statistic", "df", "p"]


def confusion_rows(true: np.ndarray, predicted: np.ndarray, *,
                   classes: Sequence[str] = EXPRESSIONS, units: Sequence[str] | None = None,
                   **keys: object) -> pd.DataFrame:
    """Confusion matrix of one run as tidy rows (rows: true expression, sum to 1).

    Parameters
    ----------
    true, predicted : numpy.ndarray
        Expressions of every tested sample: names, or indices into ``classes``.
    classes : sequence of str
        The rows and columns: the union of the test database's expressions and the
        network's units (default the seven expressions).
    units : sequence of str, optional
        The network's output units (default: all ``classes``). Columns of expressions the
        network has no unit for get NaN rates: it cannot answer them.
    **keys
        Constant columns (train_db, test_db, condition, variants, run).

    Returns
    -------
    pandas.DataFrame
        ``len(classes)**2`` rows with :data:`CONFUSION_COLUMNS` (``n``: samples of the true
        expression); rows of an expression with no sample have NaN rates.
    """
    names = np.asarray(list(classes), dtype=object)
    pos = {c: i for i, c in enumerate(classes)}

    def index(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype.kind in "iu":
            return values.astype(np.int64)
        return np.array([pos[v] for v in values], dtype=np.int64)

    k = len(names)
    counts = np.zeros((k, k), dtype=np.float64)
    np.add.at(counts, (index(true), index(predicted)), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(1, keepdims=True)
    if units is not None:
        rates[:, [c not in set(units) for c in classes]] = np.nan
    t, p = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    df = pd.DataFrame({"true": names[t.ravel()],
                       "predicted": names[p.ravel()],
                       "rate": rates.ravel(),
                       "n": np.repeat(counts.sum(1), k).astype(int)})
    for name, value in keys.items():
        df[name] = value
    return df[CONFUSION_COLUMNS]


def accuracy_from_confusion(confusion: pd.DataFrame) -> pd.DataFrame:
    """Correct rate per expression and run: the diagonal of each confusion matrix.

    Expressions with no test sample, or no unit in the tested network (absent from the
    training database), have no correct rate and no row.
    """
    diag = confusion[(confusion["true"] == confusion["predicted"]) & confusion["rate"].notna()]
    out = diag.rename(columns={"true": "expression", "rate": "correct_rate"})
    return out[ACCURACY_COLUMNS].reset_index(drop=True)


def mean_confusion(confusion: pd.DataFrame) -> pd.DataFrame:
    """Confusion matrices averaged over runs (one row per cell)."""
    keys = ["train_db", "test_db", "condition", "variants", "true", "predicted"]
    return (confusion.groupby(keys, sort=False)["rate"].mean().reset_index())


def overall_correct(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Mean correct rate over expressions, per run (the paper's per-network score).

    Over the expressions that have a correct rate: for swapped testing, those both
    databases have.
    """
    keys = ["train_db", "test_db", "condition", "variants", "run"]
    return accuracy.groupby(keys, sort=False)["correct_rate"].mean().reset_index()


def _anova(df: pd.DataFrame, factor: str, label: str) -> list[dict[str, object]]:
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    data = df.rename(columns={factor: "factor"})
    # expressions every level of the factor has (databases with other label sets, swapped
    # testing on the shared classes only)
    levels = data["factor"].nunique()
    shared = data.groupby("expression")["factor"].nunique()
    data = data[data["expression"].isin(shared.index[shared == levels])]
    if data["factor"].nunique() < 2 or data["expression"].nunique() < 2:
        return []
    if data.groupby(["factor", "expression"]).size().min() < 2:
        return []  # runs are the replicates: at least 2 per cell
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.ols("correct_rate ~ C(factor) * C(expression)", data=data).fit()
        table = anova_lm(model, typ=2)
    names = {"C(factor)": factor, "C(expression)": "expression",
             "C(factor):C(expression)": f"{factor} x expression"}
    rows = []
    resid_df = float(table.loc["Residual", "df"])
    for term, name in names.items():
        if term in table.index:
            rows.append({"test": label, "effect": name,
                         "statistic": float(table.loc[term, "F"]),
                         "df": f"{table.loc[term, 'df']:g}, {resid_df:g}",
                         "p": float(table.loc[term, "PR(>F)"])})
    return rows


def classification_stats(accuracy: pd.DataFrame, variants: str = "all") -> pd.DataFrame:
    """The paper's tests on per-run correct rates (docs/method.md §6).

    - Welch t-test of the mean correct rate between every two databases (matched),
      and between matched and swapped testing of each database's networks;
    - two-way ANOVA database x expression on matched correct rates (runs as replicates);
    - two-way ANOVA condition (matched / swapped) x expression, per training database.

    Parameters
    ----------
    accuracy : pandas.DataFrame
        Table with :data:`ACCURACY_COLUMNS`.
    variants : str
        Which test set (``all`` or ``plain``).

    Returns
    -------
    pandas.DataFrame
        Rows with :data:`STATS_COLUMNS`.
    """
    acc = accuracy[(accuracy["variants"] == variants)].dropna(subset=["correct_rate"])
    per_run = overall_correct(acc)
    rows: list[dict[str, object]] = []
    matched = per_run[per_run["condition"] == "matched"]
    dbs = list(dict.fromkeys(matched["train_db"]))
    for i, a in enumerate(dbs):
        for b in dbs[i + 1:]:
            xa = matched.loc[matched["train_db"] == a, "correct_rate"]
            xb = matched.loc[matched["train_db"] == b, "correct_rate"]
            if len(xa) > 1 and len(xb) > 1:
                res = stats.ttest_ind(xa, xb, equal_var=False)
                rows.append({"test": "t-test matched correct rate", "effect": f"{a} vs {b}",
                             "statistic": float(res.statistic), "df": f"{res.df:.3g}",
                             "p": float(res.pvalue)})
    for db in dbs:
        own = per_run[(per_run["train_db"] == db) & (per_run["condition"] == "matched")]
        sw = per_run[(per_run["train_db"] == db) & (per_run["condition"] == "swapped")]
        if len(own) > 1 and len(sw) > 1:
            res = stats.ttest_ind(own["correct_rate"], sw["correct_rate"], equal_var=False)
            rows.append({"test": "t-test matched vs swapped", "effect": f"{db}-trained",
                         "statistic": float(res.statistic), "df": f"{res.df:.3g}",
                         "p": float(res.pvalue)})
    m = acc[acc["condition"] == "matched"].rename(columns={"train_db": "database"})
    rows += _anova(m, "database", "ANOVA database x expression (matched)")
    for db in dbs:
        part = acc[acc["train_db"] == db]
        rows += _anova(part, "condition", f"ANOVA condition x expression ({db}-trained)")
    return pd.DataFrame(rows, columns=STATS_COLUMNS)
