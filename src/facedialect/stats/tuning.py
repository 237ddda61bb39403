"""AU tuning: responses of the networks' output units to AU stimuli, and their comparison.

docs/method.md §7. Every function takes DataFrames (or arrays) and returns DataFrames.

- :func:`tuning_responses`: FC3 responses minus the null image's, per run, unit, AU, level;
- :func:`tuning_profiles`: mean and SD over runs (a unit's profile: AUs x levels);
- :func:`profile_similarity`: Spearman r_s between every unit of database A and every unit
  of database B, null level excluded, with p and Bonferroni-corrected p (over the 7
  same-expression pairs, or the 49 pairs of the matrix; with other label sets, the
  units both databases have);
- :func:`similarity_vs_confusion`: the 7 x 7 r_s matrix against the swapped confusion
  matrix over the 49 cells (over the cells both tables have with other label sets);
- :func:`profile_pca`: peak-or-trough per AU, PCA with the profiles as samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from facedialect.vocab import EXPRESSIONS, in_order

RESPONSE_COLUMNS = ["db", "run", "unit", "au", "level", "response"]
PROFILE_COLUMNS = ["db", "unit", "au", "level", "mean", "sd"]
SIMILARITY_COLUMNS = ["db_a", "db_b", "unit_a", "unit_b", "spearman_r", "p", "p_bonferroni"]


def tuning_responses(logits: np.ndarray, stimuli: pd.DataFrame, *, db: str,
                     runs: list[int], units: Sequence[str] = EXPRESSIONS) -> pd.DataFrame:
    """FC3 responses to the stimuli, minus the response to the null image.

    Parameters
    ----------
    logits : numpy.ndarray
        ``(R, S, U)`` FC3 values before softmax of R runs for S stimuli and U units.
    stimuli : pandas.DataFrame
        One row per stimulus in the same order, columns ``au`` and ``level``; level 0 is
        the null image (the same image for every AU; its first row is used).
    db : str
        The database the networks were trained on.
    runs : list of int
        Run indices of the R runs.
    units : sequence of str
        The expression of each unit (the networks' label set; default the seven).

    Returns
    -------
    pandas.DataFrame
        :data:`RESPONSE_COLUMNS`, with ``response`` 0 at level 0.
    """
    logits = np.asarray(logits, dtype=np.float64)
    levels = stimuli["level"].to_numpy()
    null_rows = np.flatnonzero(levels == 0)
    if len(null_rows) == 0:
        raise ValueError("the stimuli have no null image (level 0)")
    rel = logits - logits[:, null_rows[0]:null_rows[0] + 1, :]
    r_count, s_count, u_count = rel.shape
    if len(runs) != r_count or s_count != len(stimuli) or u_count != len(units):
        raise ValueError(f"logits {logits.shape} do not fit {len(runs)} runs x "
                         f"{len(stimuli)} stimuli x {len(units)} units")
    return pd.DataFrame({
        "db": db,
        "run": np.repeat(np.asarray(runs), s_count * u_count),
        "unit": np.tile(np.asarray(list(units), dtype=object), r_count * s_count),
        "au": np.tile(np.repeat(stimuli["au"].to_numpy(), u_count), r_count),
        "level": np.tile(np.repeat(levels, u_count), r_count),
        "response": rel.ravel(),
    })[RESPONSE_COLUMNS]


def tuning_profiles(responses: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD over runs of each unit's response per AU and level."""
    g = responses.groupby(["db", "unit", "au", "level"], sort=False)["response"]
    out = g.agg(mean="mean", sd="std").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    return out[PROFILE_COLUMNS]


#: A profile whose values span less than this (FC3 units, null image subtracted) is flat:
#: the network answers every stimulus alike (e.g. a backbone with random weights, whose
#: features are all about 0), and its rank correlations would rank float round-off.
FLAT_PROFILE = 1e-6


def _spearman(x: pd.Series, y: pd.Series) -> tuple[float, float]:
    """Spearman r_s and p; NaN for both when either profile is flat."""
    if np.ptp(np.asarray(x, float)) < FLAT_PROFILE or np.ptp(np.asarray(y, float)) < FLAT_PROFILE:
        return float("nan"), float("nan")
    res = stats.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def _profile_vectors(profiles: pd.DataFrame, db: str) -> pd.DataFrame:
    p = profiles[(profiles["db"] == db) & (profiles["level"] > 0)]
    wide = p.pivot_table(index=["au", "level"], columns="unit", values="mean")
    return wide.reindex(columns=in_order(wide.columns))


def profile_similarity(profiles: pd.DataFrame, db_a: str, db_b: str) -> pd.DataFrame:
    """Spearman r_s between every unit of ``db_a`` and every unit of ``db_b``.

    The null level is excluded (it is 0 by construction). ``p_bonferroni`` multiplies p by
    the number of same-expression pairs for those (the paper's 7 tests: the units both
    databases have) and by the number of pairs of the matrix for the others (49 with seven
    units each). A flat profile (range below :data:`FLAT_PROFILE`) gives NaN.
    """
    a, b = _profile_vectors(profiles, db_a), _profile_vectors(profiles, db_b)
    common = a.index.intersection(b.index)
    a, b = a.loc[common], b.loc[common]
    n_same = len(set(a.columns) & set(b.columns))
    n_other = len(a.columns) * len(b.columns)
    rows = []
    for ua in a.columns:
        for ub in b.columns:
            r, p = _spearman(a[ua], b[ub])
            m = n_same if ua == ub else n_other
            rows.append({"db_a": db_a, "db_b": db_b, "unit_a": ua, "unit_b": ub,
                         "spearman_r": r, "p": p, "p_bonferroni": float(np.minimum(1.0, p * m))})
    return pd.DataFrame(rows, columns=SIMILARITY_COLUMNS)


def similarity_vs_confusion(similarity: pd.DataFrame, confusion_mean: pd.DataFrame,
                            trained: str, tested: str) -> tuple[dict[str, float], pd.DataFrame]:
    """Correlate profile similarity with the swapped confusion matrix over 49 cells.

    For networks trained on ``trained`` and tested on ``tested``, cell (i, j) pairs
    r_s(``tested``'s unit i, ``trained``'s unit j) with the rate at which ``tested``'s
    expression i was called j (docs/method.md §7, Fig. 9).

    Returns
    -------
    summary : dict
        ``spearman_r`` and ``p`` over the 49 cells.
    cells : pandas.DataFrame
        ``true, predicted, profile_r, confusion_rate``.
    """
    fwd = similarity[(similarity["db_a"] == tested) & (similarity["db_b"] == trained)]
    rev = similarity[(similarity["db_a"] == trained) & (similarity["db_b"] == tested)]
    r = {(y, x): v for x, y, v in zip(rev["unit_a"], rev["unit_b"], rev["spearman_r"],
                                       strict=True)}
    r.update({(x, y): v for x, y, v in zip(fwd["unit_a"], fwd["unit_b"], fwd["spearman_r"],
                                            strict=True)})
    c = confusion_mean[(confusion_mean["train_db"] == trained)
                       & (confusion_mean["test_db"] == tested)]
    rate = {(t, p): v for t, p, v in zip(c["true"], c["predicted"], c["rate"], strict=True)}
    tested_units = in_order(similarity.loc[similarity["db_a"] == tested, "unit_a"].tolist()
                            + similarity.loc[similarity["db_b"] == tested, "unit_b"].tolist())
    trained_units = in_order(similarity.loc[similarity["db_a"] == trained, "unit_a"].tolist()
                             + similarity.loc[similarity["db_b"] == trained, "unit_b"].tolist())
    cells = pd.DataFrame([{"true": i, "predicted": j, "profile_r": r.get((i, j), np.nan),
                           "confusion_rate": rate.get((i, j), np.nan)}
                          for i in tested_units for j in trained_units],
                         columns=["true", "predicted", "profile_r", "confusion_rate"])
    ok = cells.dropna()
    if len(ok) < 3:
        return {"spearman_r": float("nan"), "p": float("nan")}, cells
    res = stats.spearmanr(ok["profile_r"], ok["confusion_rate"])
    return {"spearman_r": float(res.statistic), "p": float(res.pvalue)}, cells


def peak_or_trough(profiles: pd.DataFrame) -> pd.DataFrame:
    """Reduce each profile to one number per AU: the response of largest magnitude.

    Returns a wide table, index ``au``, columns ``(db, unit)``.
    """
    p = profiles[profiles["level"] > 0]
    idx = p.groupby(["db", "unit", "au"], sort=False)["mean"].apply(lambda s: s.abs().idxmax())
    pick = p.loc[idx.to_numpy(), ["db", "unit", "au", "mean"]]
    wide = pick.pivot_table(index="au", columns=["db", "unit"], values="mean")
    order = list(dict.fromkeys(zip(pick["db"], pick["unit"], strict=True)))
    return wide.reindex(columns=pd.MultiIndex.from_tuples(order, names=["db", "unit"]))


def profile_pca(profiles: pd.DataFrame, n_components: int = 3
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """PCA of the peak-or-trough profiles, with the profiles (db x unit) as samples.

    The AU x profile matrix (20 x 14 for two databases) is centred over profiles, and
    the principal components come from its SVD (the same as scikit-learn's PCA).

    Returns
    -------
    scores : pandas.DataFrame
        ``db, unit, pc, score`` (pc from 1).
    variance : pandas.DataFrame
        ``pc, explained_variance, explained_variance_ratio``.
    """
    mat = peak_or_trough(profiles)  # au x (db, unit)
    x = mat.T.to_numpy(dtype=np.float64)  # samples x AUs
    x = x - x.mean(axis=0, keepdims=True)
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    # fix signs like scikit-learn (largest |loading| positive) for reproducibility
    signs = np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])
    signs[signs == 0] = 1
    u, vt = u * signs, vt * signs[:, None]
    k = min(n_components, len(s))
    scores = u[:, :k] * s[:k]
    var = s**2 / max(1, x.shape[0] - 1)
    rows = [{"db": db, "unit": unit, "pc": c + 1, "score": float(scores[i, c])}
            for i, (db, unit) in enumerate(mat.columns) for c in range(k)]
    variance = pd.DataFrame({"pc": np.arange(1, len(s) + 1), "explained_variance": var,
                             "explained_variance_ratio": var / var.sum()})
    return pd.DataFrame(rows), variance


#: Columns of ``tables/robustness.csv``.
ROBUSTNESS_COLUMNS = ["db", "unit", "subjects_main", "subjects_all", "spearman_r", "p"]


def profile_robustness(main: pd.DataFrame, alternative: pd.DataFrame,
                       subjects_main: dict[str, int], subjects_all: dict[str, int]
                       ) -> pd.DataFrame:
    """Spearman r_s between each unit's main profile and its all-subjects profile.

    docs/method.md §7 robustness: the networks are trained again on all complete subjects of each
    database instead of the first N, the same stimuli are passed through them, and each
    unit's profile (null level excluded) is correlated with the main one.

    Parameters
    ----------
    main, alternative : pandas.DataFrame
        ``au_profiles`` tables (columns ``db, unit, au, level, mean, sd``).
    subjects_main, subjects_all : dict
        Database -> number of subjects behind each table.

    Returns
    -------
    pandas.DataFrame
        One row per database and unit (:data:`ROBUSTNESS_COLUMNS`).
    """
    rows = []
    for db in dict.fromkeys(alternative["db"]):
        a, b = _profile_vectors(main, db), _profile_vectors(alternative, db)
        common = a.index.intersection(b.index)
        for unit in [u for u in a.columns if u in b.columns]:
            r, p = _spearman(a.loc[common, unit], b.loc[common, unit])
            rows.append({"db": db, "unit": unit, "subjects_main": subjects_main.get(db),
                         "subjects_all": subjects_all.get(db), "spearman_r": r, "p": p})
    return pd.DataFrame(rows, columns=ROBUSTNESS_COLUMNS)
