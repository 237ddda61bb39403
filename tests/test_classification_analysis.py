import numpy as np
import pandas as pd
import pytest
from scipy import stats

from facedialect.stats.classification import (
    accuracy_from_confusion,
    classification_stats,
    confusion_rows,
    mean_confusion,
)
from facedialect.vocab import EXPRESSIONS


def test_confusion_rows_sum_to_one_and_diagonal_is_accuracy():
    true = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 1, 0])
    df = confusion_rows(true, pred, train_db="A", test_db="A", condition="matched",
                        variants="all", run=0)
    assert len(df) == 49
    sums = df.groupby("true")["rate"].sum()
    assert sums["neutral"] == pytest.approx(1) and sums["happy"] == pytest.approx(1)
    assert np.isnan(df.loc[df["true"] == "sad", "rate"]).all()  # no sample: NaN, not 0
    cell = df[(df["true"] == "neutral") & (df["predicted"] == "happy")]["rate"].item()
    assert cell == pytest.approx(1 / 3)
    acc = accuracy_from_confusion(df).set_index("expression")["correct_rate"]
    assert acc["neutral"] == pytest.approx(2 / 3) and acc["happy"] == 1 and acc["fearful"] == 0


def _accuracy(seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for train in ("A", "B"):
        for test in ("A", "B"):
            for run in range(6):
                for k, e in enumerate(EXPRESSIONS):
                    base = 0.8 if train == test else 0.45
                    rows.append({"train_db": train, "test_db": test,
                                 "condition": "matched" if train == test else "swapped",
                                 "variants": "all", "run": run, "expression": e,
                                 "correct_rate": base + 0.02 * k + rng.normal(0, 0.05)})
    return pd.DataFrame(rows)


def test_stats_match_scipy_and_statsmodels():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    acc = _accuracy()
    out = classification_stats(acc)
    per_run = acc.groupby(["train_db", "condition", "run"])["correct_rate"].mean()
    ref = stats.ttest_ind(per_run["A", "matched"], per_run["B", "matched"], equal_var=False)
    row = out[(out["test"] == "t-test matched correct rate")].iloc[0]
    assert row["statistic"] == pytest.approx(ref.statistic)
    assert row["p"] == pytest.approx(ref.pvalue)
    sw = out[(out["test"] == "t-test matched vs swapped") & (out["effect"] == "A-trained")]
    assert sw["p"].item() < 1e-6  # 0.8 vs 0.45 is found
    m = acc[acc["condition"] == "matched"]
    table = anova_lm(smf.ols("correct_rate ~ C(train_db) * C(expression)", m).fit(), typ=2)
    an = out[out["test"] == "ANOVA database x expression (matched)"].set_index("effect")
    assert an.loc["expression", "statistic"] == pytest.approx(table.loc["C(expression)", "F"])
    assert an.loc["expression", "p"] < 0.05  # the planted expression effect


def test_mean_confusion_averages_runs():
    a = confusion_rows(np.array([0, 1]), np.array([0, 1]), train_db="A", test_db="A",
                       condition="matched", variants="all", run=0)
    b = confusion_rows(np.array([0, 1]), np.array([1, 1]), train_db="A", test_db="A",
                       condition="matched", variants="all", run=1)
    m = mean_confusion(pd.concat([a, b]))
    cell = m[(m["true"] == "neutral") & (m["predicted"] == "neutral")]["rate"].item()
    assert cell == pytest.approx(0.5)
