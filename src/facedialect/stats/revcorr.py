"""Reverse correlation: each network's mental model of each expression, from random AU faces.

After Jack et al. (2012, PNAS): faces with random combinations of action units are shown,
and the AU pattern of the trials that evoke an answer is the observer's model of it. Here
the observers are trained networks, and their answers are their output units' responses
(e.g. class probabilities). Every function takes DataFrames and returns DataFrames.

- :func:`sample_trials`: random AU combinations (1-6 active AUs, intensities in [0.1, 1]);
- :func:`au_models`: a unit's model: response-weighted mean AU pattern minus the mean
  pattern (``"weighted"``), or ridge coefficients on the standardized AUs (``"ridge"``);
- :func:`model_test`: the models with permutation p values and bootstrap intervals;
- :func:`models_over_runs`: a database's model, the mean over its runs;
- :func:`model_similarity`: Spearman r_s between two databases' models of each unit;
- :func:`model_distinctness`: how well the models (left out trial by trial) classify the
  trials by the unit that answered them most.

Tables: trials ``trial, AU1, AU2, ...`` (wide, one column per AU, 0 when inactive);
responses ``trial, unit, response`` (long); models ``unit, au, weight`` with ``au`` the AU
number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from facedialect.stats.tuning import _spearman

Method = Literal["weighted", "ridge"]

MODEL_COLUMNS = ["unit", "au", "weight"]
TEST_COLUMNS = ["unit", "au", "weight", "p", "ci_low", "ci_high"]
OVER_RUNS_COLUMNS = ["db", "unit", "au", "mean", "sd", "runs"]
MODEL_SIMILARITY_COLUMNS = ["db_a", "db_b", "unit", "spearman_r", "p"]
DISTINCTNESS_COLUMNS = ["unit", "trials", "correct_rate"]

#: Intensity range of an active AU in :func:`sample_trials`.
INTENSITY_RANGE: tuple[float, float] = (0.1, 1.0)

_AU_COLUMN = re.compile(r"^AU(\d+)([LR]?)$")
#: An AU of a trials table: its number, or ``"12L"`` / ``"12R"`` for one side of it.
AULabel = int | str
_METHODS = ("weighted", "ridge")


# --------------------------------------------------------------------------- trials


def au_label(column: str) -> AULabel:
    """The AU of a trials column: ``"AU12"`` -> 12, ``"AU12L"`` -> ``"12L"``.

    Raises
    ------
    ValueError
        For a column not named like ``AU12`` or ``AU12L``.
    """
    m = _AU_COLUMN.match(column)
    if m is None:
        raise ValueError(f"{column!r} is not an AU column (AU12, AU12L or AU12R)")
    return int(m.group(1)) if not m.group(2) else f"{int(m.group(1))}{m.group(2)}"


def au_order(label: AULabel) -> tuple[int, str]:
    """Sort key of AU labels: by number, the two-sided AU before its left and right."""
    text = str(label)
    return (int(text.rstrip("LR")), text[len(text.rstrip("LR")):])


def sample_trials(n_trials: int, aus: Sequence[int], *, min_aus: int = 1, max_aus: int = 6,
                  seed: int = 0, sided: Sequence[int] = ()) -> pd.DataFrame:
    """Random AU combinations, one row per trial.

    Per trial, a number k of active AUs is drawn uniformly from ``[min_aus, max_aus]``
    (both capped at ``len(aus)``), k distinct AUs are drawn uniformly, and each gets an
    intensity uniform in :data:`INTENSITY_RANGE`.

    Parameters
    ----------
    n_trials : int
        Number of trials.
    aus : sequence of int
        The AU numbers (e.g. :data:`facedialect.vocab.STUDY_AUS`).
    min_aus, max_aus : int
        Fewest and most active AUs per trial.
    seed : int
        Seed of :func:`numpy.random.default_rng`; the same seed gives the same table.
    sided : sequence of int
        AUs of ``aus`` that can be shown on one side of the face: each active one is shown
        on both sides, the left only or the right only, with equal chances (Jack et al.'s
        face grammar). Drawn after everything else, so the AUs and intensities are those
        of the same seed without ``sided``.

    Returns
    -------
    pandas.DataFrame
        ``trial`` (0 .. n_trials - 1) and ``AU{n}`` for each AU (float intensities); a
        sided AU has two columns instead, ``AU{n}L`` and ``AU{n}R`` (the subject's left and
        right), both set when it is shown on both sides.
    """
    aus = [int(a) for a in aus]
    if n_trials < 0:
        raise ValueError(f"n_trials must be >= 0, got {n_trials}")
    if not aus or len(set(aus)) != len(aus):
        raise ValueError(f"aus must be distinct AU numbers, got {aus}")
    if min_aus < 0 or max_aus < min_aus:
        raise ValueError(f"need 0 <= min_aus <= max_aus, got min_aus={min_aus}, "
                         f"max_aus={max_aus}")
    rng = np.random.default_rng(seed)
    n_au = len(aus)
    lo, hi = min(min_aus, n_au), min(max_aus, n_au)
    k = rng.integers(lo, hi + 1, size=n_trials)
    # k distinct AUs per trial: the k smallest of a random key per AU (a uniform k-subset)
    ranks = np.argsort(np.argsort(rng.random((n_trials, n_au)), axis=1), axis=1)
    active = ranks < k[:, None]
    intensity = rng.uniform(*INTENSITY_RANGE, size=(n_trials, n_au))
    x = np.where(active, intensity, 0.0)
    bad = sorted(set(int(a) for a in sided) - set(aus))
    if bad:
        raise ValueError(f"sided AUs {bad} are not among the trials' AUs {aus}")
    if not sided:
        out = pd.DataFrame(x, columns=[f"AU{a}" for a in aus])
    else:
        side = rng.integers(0, 3, size=(n_trials, n_au))  # 0 both, 1 left, 2 right
        cols: dict[str, np.ndarray] = {}
        for j, a in enumerate(aus):
            if a in set(int(b) for b in sided):
                cols[f"AU{a}L"] = np.where(side[:, j] != 2, x[:, j], 0.0)
                cols[f"AU{a}R"] = np.where(side[:, j] != 1, x[:, j], 0.0)
            else:
                cols[f"AU{a}"] = x[:, j]
        out = pd.DataFrame(cols)
    out.insert(0, "trial", np.arange(n_trials))
    return out


# --------------------------------------------------------------------------- inputs


def _au_matrix(trials: pd.DataFrame) -> tuple[np.ndarray, list[AULabel], np.ndarray]:
    """Trial ids, AU numbers and the trials x AUs intensity matrix of a trials table."""
    if "trial" not in trials.columns:
        raise ValueError("trials has no 'trial' column (see sample_trials)")
    cols = [c for c in trials.columns if isinstance(c, str) and _AU_COLUMN.match(c)]
    if not cols:
        raise ValueError(f"trials has no AU columns named like 'AU12'; it has "
                         f"{list(trials.columns)}")
    ids = trials["trial"].to_numpy()
    if len(pd.unique(ids)) != len(ids):
        raise ValueError("trials has repeated trial ids")
    x = trials[cols].to_numpy(dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError("trials has missing or infinite AU intensities")
    return ids, [au_label(c) for c in cols], x


def _response_matrix(responses: pd.DataFrame, trial_ids: np.ndarray,
                     units: Sequence[str] | None, unit_col: str = "unit"
                     ) -> tuple[list[str], np.ndarray]:
    """Units and the trials x units response matrix, rows in the trials table's order."""
    missing = {"trial", unit_col, "response"} - set(responses.columns)
    if missing:
        raise ValueError(f"responses lacks columns {sorted(missing)}; it needs "
                         f"trial, {unit_col}, response")
    if units is None:
        units = list(dict.fromkeys(responses[unit_col]))
    units = list(units)
    if not units:
        raise ValueError("no units: responses is empty and units was not given")
    if responses.duplicated(["trial", unit_col]).any():
        raise ValueError("responses has several rows for one trial and unit: pass one "
                         "network's responses, or average the runs first")
    wide = responses.pivot(index="trial", columns=unit_col, values="response")
    absent = [u for u in units if u not in wide.columns]
    if absent:
        raise ValueError(f"responses has no rows for units {absent}")
    r = wide.reindex(index=trial_ids, columns=units).to_numpy(dtype=np.float64)
    if np.isnan(r).any():
        bad = int(np.isnan(r).any(axis=1).sum())
        raise ValueError(f"{bad} trials lack a response for some unit (responses must have "
                         f"every trial x unit of the trials table, without NaN)")
    return units, r


def _check_method(method: str) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")


def _check_weighted(r: np.ndarray, units: list[str]) -> None:
    """The weighted method needs responses >= 0 with a positive sum per unit."""
    if (r < 0).any():
        raise ValueError("method='weighted' needs responses >= 0 (e.g. probabilities); "
                         "use method='ridge' for logits")
    dead = [u for u, s in zip(units, r.sum(axis=0), strict=True) if not s > 0]
    if dead:
        raise ValueError(f"units {dead} respond 0 to every trial: no weighted model")


# --------------------------------------------------------------------------- the maths


def _weighted(x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Units x AUs: sum_i r_i x_i / sum_i r_i - mean_i x_i."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return (r.T @ x) / r.sum(axis=0)[:, None] - x.mean(axis=0)[None, :]


def _ridge_operator(x: np.ndarray, alpha: float) -> np.ndarray:
    """AUs x trials matrix H with coef = H @ y for ridge on the standardized AUs.

    The same fit as ``StandardScaler`` then ``sklearn.linear_model.Ridge(alpha)`` with an
    intercept: z = (x - mean) / sd (population sd; a constant AU gets z = 0, coefficient
    0), coef = (z'z + alpha I)^-1 z'(y - mean y). z is centred, so H @ 1 = 0 and y needs
    no centring.
    """
    sd = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    gram = z.T @ z + alpha * np.eye(z.shape[1])
    return np.linalg.solve(gram, z.T)


def _fit(x: np.ndarray, r: np.ndarray, method: str, alpha: float) -> np.ndarray:
    """Units x AUs model weights."""
    if method == "weighted":
        return _weighted(x, r)
    return (_ridge_operator(x, alpha) @ r).T


def _long(units: list[str], aus: list[AULabel], values: dict[str, np.ndarray]
          ) -> pd.DataFrame:
    """A long table ``unit, au, <values>`` from units x AUs arrays."""
    out = pd.DataFrame({"unit": np.repeat(np.asarray(units, dtype=object), len(aus)),
                        "au": np.tile(np.asarray(aus, dtype=None if all(
                            isinstance(a, int) for a in aus) else object), len(units))})
    for name, v in values.items():
        out[name] = np.asarray(v, dtype=np.float64).ravel()
    return out


# --------------------------------------------------------------------------- models


def au_models(trials: pd.DataFrame, responses: pd.DataFrame, *,
              units: Sequence[str] | None = None, method: Method = "weighted",
              alpha: float = 1.0) -> pd.DataFrame:
    """Each unit's AU model from one network's (or averaged) responses to the trials.

    Parameters
    ----------
    trials : pandas.DataFrame
        ``trial, AU{n}...`` as :func:`sample_trials` returns it.
    responses : pandas.DataFrame
        ``trial, unit, response``: one row per trial and unit.
    units : sequence of str, optional
        The units to model, in output order (default: all, in order of appearance).
    method : {"weighted", "ridge"}
        ``"weighted"``: sum_i r_i x_i / sum_i r_i - mean_i x_i, the response-weighted mean
        AU pattern minus the mean pattern (responses must be >= 0, e.g. probabilities);
        ``"ridge"``: coefficients of a ridge regression of the response on the
        standardized AU intensities (as ``sklearn.linear_model.Ridge(alpha)`` after
        ``StandardScaler``; in response units per SD of the AU).
    alpha : float
        Ridge penalty (``"ridge"`` only).

    Returns
    -------
    pandas.DataFrame
        :data:`MODEL_COLUMNS` (``au`` the AU number), units x AUs rows.
    """
    _check_method(method)
    ids, aus, x = _au_matrix(trials)
    units, r = _response_matrix(responses, ids, units)
    if method == "weighted":
        _check_weighted(r, units)
    return _long(units, aus, {"weight": _fit(x, r, method, alpha)})


def model_test(trials: pd.DataFrame, responses: pd.DataFrame, *,
               units: Sequence[str] | None = None, n_permutations: int = 199,
               n_boot: int = 199, seed: int = 0, method: Method = "weighted",
               alpha: float = 1.0) -> pd.DataFrame:
    """The AU models with a permutation p value and a bootstrap interval per weight.

    p: the responses are shuffled across trials (one permutation of the trials for all
    units: within each unit, a shuffle of its responses), the model is refitted, and
    ``p = (1 + #{|w_perm| >= |w|}) / (1 + n_permutations)`` (two-sided). The interval is
    the 95% percentile bootstrap over trials resampled with replacement. p values are per
    cell, not corrected for the units x AUs tests.

    Parameters
    ----------
    trials, responses, units, method, alpha
        As in :func:`au_models`.
    n_permutations : int
        Permutations (p cannot go below ``1 / (1 + n_permutations)``).
    n_boot : int
        Bootstrap resamples (0: the interval is NaN).
    seed : int
        Seed; permutations and resamples come from independent streams of it.

    Returns
    -------
    pandas.DataFrame
        :data:`TEST_COLUMNS`.
    """
    _check_method(method)
    if n_permutations < 1 or n_boot < 0:
        raise ValueError(f"need n_permutations >= 1 and n_boot >= 0, got "
                         f"{n_permutations} and {n_boot}")
    ids, aus, x = _au_matrix(trials)
    units, r = _response_matrix(responses, ids, units)
    if method == "weighted":
        _check_weighted(r, units)
    n = len(ids)
    obs = _fit(x, r, method, alpha)  # units x AUs
    perm_rng, boot_rng = (np.random.default_rng(s)
                          for s in np.random.SeedSequence(seed).spawn(2))

    # permutations: the model is linear in the responses for fixed trials, so a chunk of
    # permutations is one batched matmul
    if method == "weighted":
        op = x.T  # AUs x trials; the response sums do not change under permutation
        scale = r.sum(axis=0)[None, None, :]
        shift = x.mean(axis=0)[None, :, None]
    else:
        op = _ridge_operator(x, alpha)
        scale, shift = 1.0, 0.0
    exceed = np.zeros_like(obs)
    threshold = np.abs(obs).T[None] * (1 - 1e-12)  # 1 x AUs x units
    chunk = max(1, int(2_000_000 // max(1, n * len(units))))
    done = 0
    while done < n_permutations:
        m = min(chunk, n_permutations - done)
        idx = np.argsort(perm_rng.random((m, n)), axis=1)
        w = op @ r[idx] / scale - shift  # m x AUs x units
        exceed += (np.abs(w) >= threshold).sum(axis=0).T
        done += m
    p = (1.0 + exceed) / (1.0 + n_permutations)

    # bootstrap: the fit changes with the trials (mean, scaling), so one refit per resample
    boots = np.empty((n_boot, *obs.shape))
    for b in range(n_boot):
        i = boot_rng.integers(0, n, size=n)
        boots[b] = _fit(x[i], r[i], method, alpha)
    if n_boot:
        with np.errstate(all="ignore"):
            lo, hi = np.nanpercentile(boots, [2.5, 97.5], axis=0)
    else:
        lo = hi = np.full_like(obs, np.nan)
    return _long(units, aus, {"weight": obs, "p": p, "ci_low": lo, "ci_high": hi})


def models_over_runs(per_run: pd.DataFrame) -> pd.DataFrame:
    """A database's model of each unit: the mean over its runs' models.

    Parameters
    ----------
    per_run : pandas.DataFrame
        ``db, run, unit, au, weight``: one model per network.

    Returns
    -------
    pandas.DataFrame
        :data:`OVER_RUNS_COLUMNS`: mean and SD (ddof 1; 0 with one run, as in
        :func:`facedialect.stats.tuning.tuning_profiles`) over runs, and the number of runs.
    """
    missing = {"db", "run", "unit", "au", "weight"} - set(per_run.columns)
    if missing:
        raise ValueError(f"per_run lacks columns {sorted(missing)}")
    g = per_run.groupby(["db", "unit", "au"], sort=False)
    out = g["weight"].agg(mean="mean", sd="std").reset_index()
    out["sd"] = out["sd"].fillna(0.0)
    out["runs"] = g["run"].nunique().to_numpy()
    return out[OVER_RUNS_COLUMNS]


def _model_vectors(models: pd.DataFrame, db: str, value: str) -> pd.DataFrame:
    m = models[models["db"] == db]
    if m.empty:
        raise ValueError(f"models has no rows for db {db!r}")
    wide = m.pivot(index="au", columns="unit", values=value)
    return wide.reindex(columns=list(dict.fromkeys(m["unit"])))


def model_similarity(models: pd.DataFrame, db_a: str, db_b: str, *,
                     value: str = "mean") -> pd.DataFrame:
    """Spearman r_s between ``db_a``'s and ``db_b``'s model of each unit both have.

    Over the AUs both models of the unit have. A flat model (range below
    :data:`facedialect.stats.tuning.FLAT_PROFILE`) gives NaN for r_s and p.

    Parameters
    ----------
    models : pandas.DataFrame
        ``db, unit, au`` and ``value``, as :func:`models_over_runs` returns it.
    db_a, db_b : str
        The two databases.
    value : str
        The column holding the weights (``"mean"``; ``"weight"`` for a per-network table
        with a ``db`` column).

    Returns
    -------
    pandas.DataFrame
        :data:`MODEL_SIMILARITY_COLUMNS`, one row per unit (``db_a``'s order).
    """
    missing = {"db", "unit", "au", value} - set(models.columns)
    if missing:
        raise ValueError(f"models lacks columns {sorted(missing)}")
    a, b = _model_vectors(models, db_a, value), _model_vectors(models, db_b, value)
    common = a.index.intersection(b.index)
    rows = []
    for unit in [u for u in a.columns if u in b.columns]:
        pair = pd.concat([a.loc[common, unit], b.loc[common, unit]], axis=1).dropna()
        r, p = _spearman(pair.iloc[:, 0], pair.iloc[:, 1])
        rows.append({"db_a": db_a, "db_b": db_b, "unit": unit, "spearman_r": r, "p": p})
    return pd.DataFrame(rows, columns=MODEL_SIMILARITY_COLUMNS)


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis (broadcast); NaN where either side is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def model_distinctness(trials: pd.DataFrame, responses: pd.DataFrame,
                       models: pd.DataFrame | None = None, *,
                       units: Sequence[str] | None = None,
                       unit_col: str = "unit") -> pd.DataFrame:
    """How distinct the models are: how well they tell which unit answered each trial.

    A trial's label is the unit with the highest response. Each trial is classified by
    the nearest model: the highest Pearson r, over AUs, between its AU vector minus the
    mean trial and each unit's model. Chance is 1 / number of units (for ``"all"``, the
    share of the most frequent label is the rate of always answering it).

    With ``models`` None (or the weighted models of these very trials and responses, as
    :func:`au_models` returns them), each trial's models and mean trial are the weighted
    ones of the other trials (exact leave-one-out, in closed form). Other ``models`` (e.g.
    another database's, or fitted on other trials) are used as given for every trial.

    Parameters
    ----------
    trials, responses
        As in :func:`au_models` (responses >= 0).
    models : pandas.DataFrame, optional
        ``unit_col, au, weight`` (or ``mean``): fixed models to classify with.
    units : sequence of str, optional
        Units to label and classify with (default: those of ``models``, else all).
    unit_col : str
        Name of the unit column in ``responses`` and ``models``.

    Returns
    -------
    pandas.DataFrame
        :data:`DISTINCTNESS_COLUMNS`: per unit, the trials labelled with it and the share
        of them classified as it (NaN with none); last, ``unit="all"`` over every trial.
    """
    ids, aus, x = _au_matrix(trials)
    if units is None and models is not None:
        units = list(dict.fromkeys(models[unit_col]))
    units, r = _response_matrix(responses, ids, units, unit_col)
    _check_weighted(r, units)
    n = len(ids)
    if n < 2:
        raise ValueError("model_distinctness needs at least 2 trials")
    own = _weighted(x, r)  # units x AUs
    fixed = None
    if models is not None:
        value = "weight" if "weight" in models.columns else "mean"
        if value not in models.columns:
            raise ValueError("models needs a 'weight' or 'mean' column")
        wide = models.pivot(index=unit_col, columns="au", values=value)
        absent = [u for u in units if u not in wide.index]
        if absent:
            raise ValueError(f"models has no model of units {absent}")
        if set(aus) - set(wide.columns):
            raise ValueError(f"models lack AUs {sorted(set(aus) - set(wide.columns))}")
        given = wide.loc[units, aus].to_numpy(dtype=np.float64)
        if not np.allclose(given, own, rtol=1e-9, atol=1e-12):
            fixed = given
    if fixed is None:
        # leave trial i out: s_u = sum_j r_ju x_j, t_u = sum_j r_ju, mean over n - 1 trials
        s, t, tot = r.T @ x, r.sum(axis=0), x.sum(axis=0)
        mean_loo = (tot[None, :] - x) / (n - 1)  # trials x AUs
        with np.errstate(invalid="ignore", divide="ignore"):
            models_loo = ((s[None] - r[:, :, None] * x[:, None, :])
                          / (t[None, :, None] - r[:, :, None]))  # trials x units x AUs
        models_loo -= mean_loo[:, None, :]
        corr = _row_corr((x - mean_loo)[:, None, :], models_loo)
    else:
        corr = _row_corr((x - x.mean(axis=0))[:, None, :], fixed[None])
    corr = np.where(np.isnan(corr), -np.inf, corr)
    predicted = corr.argmax(axis=1)
    predicted[np.isneginf(corr).all(axis=1)] = -1  # no model to compare with: a miss
    label = r.argmax(axis=1)
    hit = predicted == label
    rows = []
    for k, unit in enumerate(units):
        mine = label == k
        rows.append({"unit": unit, "trials": int(mine.sum()),
                     "correct_rate": float(hit[mine].mean()) if mine.any() else np.nan})
    rows.append({"unit": "all", "trials": n, "correct_rate": float(hit.mean())})
    return pd.DataFrame(rows, columns=DISTINCTNESS_COLUMNS)


def maximize_aus(objective: Callable[[np.ndarray], np.ndarray], x0: np.ndarray, *,
                 evaluations: int = 200, sparsity: float = 0.02, sigma: float = 0.25,
                 seed: int = 0) -> tuple[np.ndarray, float]:
    """The AU intensities in [0, 1] that maximise ``objective`` minus a sparsity penalty.

    CMA-ES (the ``cmaes`` package) minimises ``-objective(x) + sparsity * sum(x)`` within
    the bounds, starting from ``x0`` (e.g. a reverse-correlation model scaled to [0, 1]).

    Parameters
    ----------
    objective : callable
        ``objective(X)`` for a ``(P, A)`` batch of AU vectors returns ``(P,)`` values to
        maximise (e.g. a target probability averaged over a database's networks).
    x0 : numpy.ndarray
        ``(A,)`` start, clipped to [0, 1].
    evaluations : int
        Most objective evaluations (rounded down to whole generations, at least one).
    sparsity : float
        Penalty per unit of summed intensity.
    sigma : float
        CMA-ES's initial step size.
    seed : int
        Seed of the search.

    Returns
    -------
    tuple
        The best AU vector found and its objective value (without the penalty).
    """
    from cmaes import CMA

    x0 = np.clip(np.asarray(x0, dtype=np.float64), 0.0, 1.0)
    n = len(x0)
    opt = CMA(mean=x0, sigma=sigma, bounds=np.tile([0.0, 1.0], (n, 1)), seed=seed)
    best_x, best_value = x0, float(objective(x0[None])[0])
    best_score = best_value - sparsity * float(x0.sum())
    for _ in range(max(1, (evaluations - 1) // opt.population_size)):
        xs = np.stack([opt.ask() for _ in range(opt.population_size)])
        values = np.asarray(objective(xs), dtype=np.float64)
        scores = values - sparsity * xs.sum(axis=1)
        opt.tell([(x, -s) for x, s in zip(xs, scores, strict=True)])
        k = int(np.argmax(scores))
        if scores[k] > best_score:
            best_x, best_value, best_score = xs[k], float(values[k]), float(scores[k])
    return best_x, best_value
