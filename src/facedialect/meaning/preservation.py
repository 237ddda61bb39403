"""Preservation of meaning between cultures, rating reliability and prediction accuracy.

docs/method.md §9. The *preservation* from culture A to culture B is the share of B's
predicted-meaning variance (summed over B's concepts) that a cross-validated linear
(ridge) map from A's predicted meanings explains. The *split-half reliability* of mean
ratings (raters of each image split at random into halves, Spearman-Brown corrected) is
the share of a mean rating's variance that is not rater noise: no model can explain more
of the ratings than that, so it is the ceiling of accuracy and of preservation measured
against ratings.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from facedialect.meaning.ppca import fold_ids

#: Columns of :func:`meaning_preservation`'s table.
PRESERVATION_COLUMNS = ["source", "target", "n_images", "preserved", "n_images_rated",
                        "preserved_ratings", "ceiling"]
#: Columns of :func:`split_half_reliability`'s table.
RELIABILITY_COLUMNS = ["culture", "concept", "n_images", "r_half", "reliability"]
#: Columns of :func:`prediction_correlations`'s table (plus the grouping columns first).
CORRELATION_COLUMNS = ["n_images", "r"]

#: Ridge penalties tried (times the number of training rows, on standardized predictors).
RIDGE_GRID = tuple(float(a) for a in np.logspace(-5, 2, 15))


def _ridge_alpha(xs: np.ndarray, yc: np.ndarray, grid: tuple[float, ...]) -> float:
    """The penalty with the smallest leave-one-out error (closed form via the SVD)."""
    u, s, _ = np.linalg.svd(xs, full_matrices=False)
    uy = u.T @ yc
    n = xs.shape[0]
    best, best_err = grid[0] * n, np.inf
    for a in grid:
        alpha = a * n
        shrink = s ** 2 / (s ** 2 + alpha)
        fitted = u @ (shrink[:, None] * uy)
        h = (u ** 2) @ shrink + 1.0 / n  # + the intercept's leverage
        err = float((((yc - fitted) / (1.0 - np.minimum(h, 0.999))[:, None]) ** 2).sum())
        if err < best_err:
            best, best_err = alpha, err
    return best


def ridge_cv_r2(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0,
                grid: tuple[float, ...] = RIDGE_GRID) -> float:
    """Cross-validated share of ``y``'s total variance explained by a ridge map from ``x``.

    Parameters
    ----------
    x : array_like
        ``(n, p)`` predictors.
    y : array_like
        ``(n, q)`` targets.
    folds : int
        Outer folds; each fold's rows are predicted by a map fitted on the others.
    seed : int
        Seed of the fold assignment.
    grid : tuple of float
        Ridge penalties (times the training rows) searched by leave-one-out within each
        training part (nested, so the held-out fold never chooses its own penalty).

    Returns
    -------
    float
        ``1 - SSE / SST``, with SSE the squared error of the out-of-fold predictions
        summed over rows and columns and SST the squared deviations from the column means;
        can be negative when the map predicts worse than the mean.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"ridge needs (n, p) and (n, q) arrays, got {x.shape}, {y.shape}")
    fid = fold_ids(x.shape[0], folds, seed)
    sse = 0.0
    for f in range(folds):
        tr, te = fid != f, fid == f
        mx, sx = x[tr].mean(0), x[tr].std(0)
        sx = np.where(sx > 1e-12, sx, 1.0)
        my = y[tr].mean(0)
        xs = (x[tr] - mx) / sx
        alpha = _ridge_alpha(xs, y[tr] - my, grid)
        coef = np.linalg.solve(xs.T @ xs + alpha * np.eye(xs.shape[1]), xs.T @ (y[tr] - my))
        pred = ((x[te] - mx) / sx) @ coef + my
        sse += float(((y[te] - pred) ** 2).sum())
    sst = float(((y - y.mean(0)) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def weighted_reliability(ratings: pd.DataFrame, reliability: Mapping[str, float]) -> float:
    """Share of a ratings matrix's total variance that is reliable (the R² ceiling).

    Parameters
    ----------
    ratings : pandas.DataFrame
        Images x concepts mean ratings.
    reliability : mapping
        Concept -> Spearman-Brown split-half reliability.

    Returns
    -------
    float
        ``sum_k rel_k var_k / sum_k var_k`` (NaN when a concept has no reliability).
    """
    var = ratings.var(ddof=1)
    rel = pd.Series({c: reliability.get(c, np.nan) for c in ratings.columns}, dtype=float)
    if rel.isna().any() or var.sum() <= 0:
        return float("nan")
    return float((rel.clip(lower=0) * var).sum() / var.sum())


def meaning_preservation(predictions: Mapping[str, pd.DataFrame],
                         ratings: Mapping[str, pd.DataFrame] | None = None,
                         ceilings: Mapping[str, float] | None = None, *, folds: int = 5,
                         seed: int = 0) -> pd.DataFrame:
    """Preservation of predicted meaning for every ordered pair of cultures.

    Parameters
    ----------
    predictions : mapping
        Culture -> images x concepts predicted ratings (held-out predictions).
    ratings : mapping, optional
        Culture -> images x concepts mean ratings (for ``preserved_ratings``).
    ceilings : mapping, optional
        Culture -> share of its ratings' variance that is reliable
        (:func:`weighted_reliability`).
    folds, seed
        Cross-validation of the ridge maps (:func:`ridge_cv_r2`).

    Returns
    -------
    pandas.DataFrame
        :data:`PRESERVATION_COLUMNS`, one row per ordered pair (source, target), the
        diagonal included: ``preserved`` is the cross-validated share of the target's
        predicted-meaning variance explained by the source's predictions (docs/method.md §9; on
        the diagonal about 1, a check); ``preserved_ratings`` the share of the target's
        mean-rating variance explained (on images the target rated); ``ceiling`` the
        target's reliable share of rating variance, the most ``preserved_ratings`` can
        reach.
    """
    rows = []
    for src, xs in predictions.items():
        for tgt, yt in predictions.items():
            common = xs.index[xs.index.isin(yt.index)]
            row = {"source": src, "target": tgt, "n_images": len(common),
                   "preserved": np.nan, "n_images_rated": 0, "preserved_ratings": np.nan,
                   "ceiling": (ceilings or {}).get(tgt, np.nan)}
            if len(common) >= 2 * folds:
                row["preserved"] = ridge_cv_r2(xs.loc[common].to_numpy(),
                                               yt.loc[common].to_numpy(), folds=folds,
                                               seed=seed)
            if ratings is not None and tgt in ratings:
                rt = ratings[tgt].dropna()
                rc = xs.index[xs.index.isin(rt.index)]
                row["n_images_rated"] = len(rc)
                if len(rc) >= 2 * folds:
                    row["preserved_ratings"] = ridge_cv_r2(
                        xs.loc[rc].to_numpy(), rt.loc[rc].to_numpy(), folds=folds, seed=seed)
            rows.append(row)
    return pd.DataFrame(rows, columns=PRESERVATION_COLUMNS)


def mean_preservation(table: pd.DataFrame) -> float:
    """Mean ``preserved`` over ordered pairs of different cultures (NaN when none)."""
    off = table[table["source"] != table["target"]]["preserved"].dropna()
    return float(off.mean()) if len(off) else float("nan")


def split_half_reliability(raters: pd.DataFrame, *, splits: int = 50, seed: int = 0,
                           images: pd.Index | None = None) -> pd.DataFrame:
    """Split-half reliability of mean ratings, Spearman-Brown corrected, per concept.

    For each of ``splits`` random splits, the raters of every image (per culture) are
    shuffled and cut into two halves; each half's mean rating per image and concept is
    computed and the two halves are correlated across images (Pearson). The mean
    correlation ``r`` over splits is corrected to the full number of raters with
    Spearman-Brown, ``2 r / (1 + r)``.

    Parameters
    ----------
    raters : pandas.DataFrame
        Columns ``image``, ``culture``, ``concept``, ``rater``, ``rating``: one rating by
        one rater.
    splits : int
        Random splits averaged.
    seed : int
        Seed of the splits.
    images : pandas.Index, optional
        Only these images (e.g. the held-out images the accuracy is measured on).

    Returns
    -------
    pandas.DataFrame
        :data:`RELIABILITY_COLUMNS`; images with fewer than 2 raters are left out, and
        concepts with fewer than 3 such images get NaN.
    """
    df = raters[["image", "culture", "concept", "rater", "rating"]]
    if images is not None:
        df = df[df["image"].isin(images)]
    who = df[["culture", "image", "rater"]].drop_duplicates().reset_index(drop=True)
    who["n"] = who.groupby(["culture", "image"])["rater"].transform("size")
    who = who[who["n"] >= 2].reset_index(drop=True)
    rng = np.random.default_rng(seed)
    sums: dict[tuple[str, str], list[float]] = {}
    counts: dict[tuple[str, str], int] = {}
    for _ in range(splits):
        key = rng.random(len(who))
        rank = (who.assign(k=key).groupby(["culture", "image"])["k"]
                .rank(method="first").to_numpy())
        half = (rank > who["n"].to_numpy() // 2).astype(int)
        lab = who[["culture", "image", "rater"]].assign(half=half)
        merged = df.merge(lab, on=["culture", "image", "rater"], how="inner")
        means = (merged.groupby(["culture", "concept", "image", "half"])["rating"].mean()
                 .unstack("half").dropna())
        for (cult, concept), part in means.groupby(level=["culture", "concept"]):
            if len(part) < 3 or part[0].std() == 0 or part[1].std() == 0:
                continue
            r = float(np.corrcoef(part[0], part[1])[0, 1])
            sums.setdefault((cult, concept), []).append(r)
            counts[(cult, concept)] = len(part)
    rows = []
    for cult, concept in df[["culture", "concept"]].drop_duplicates().itertuples(index=False):
        rs = sums.get((cult, concept))
        r = float(np.mean(rs)) if rs else np.nan
        rows.append({"culture": cult, "concept": concept,
                     "n_images": counts.get((cult, concept), 0), "r_half": r,
                     "reliability": 2 * r / (1 + r) if rs and r > -1 else np.nan})
    return pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)


def prediction_correlations(predicted: pd.DataFrame, rated: pd.DataFrame,
                            by: list[str]) -> pd.DataFrame:
    """Pearson r between predicted and rated values within groups.

    Parameters
    ----------
    predicted : pandas.DataFrame
        Columns ``by`` + ``image`` + ``predicted``.
    rated : pandas.DataFrame
        Columns ``image``, ``culture``, ``concept``, ``mean_rating``.
    by : list of str
        Grouping columns (e.g. ``["culture", "concept", "run"]``); must include
        ``culture`` and ``concept``.

    Returns
    -------
    pandas.DataFrame
        ``by`` + :data:`CORRELATION_COLUMNS`: the number of rated images and r (NaN with
        fewer than 3 images or no variance).
    """
    m = predicted.merge(rated[["image", "culture", "concept", "mean_rating"]],
                        on=["image", "culture", "concept"], how="inner")
    rows = []
    for key, part in m.groupby(by, sort=False):
        p, t = part["predicted"].to_numpy(float), part["mean_rating"].to_numpy(float)
        ok = len(part) >= 3 and p.std() > 0 and t.std() > 0
        rows.append((*key, len(part), float(np.corrcoef(p, t)[0, 1]) if ok else np.nan))
    return pd.DataFrame(rows, columns=[*by, *CORRELATION_COLUMNS])


__all__ = ["CORRELATION_COLUMNS", "PRESERVATION_COLUMNS", "RELIABILITY_COLUMNS",
           "mean_preservation", "meaning_preservation", "prediction_correlations",
           "ridge_cv_r2", "split_half_reliability", "weighted_reliability"]
