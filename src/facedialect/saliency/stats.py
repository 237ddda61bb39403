"""Region shares between databases, per expression: a test that respects the design.

Images are nested in subjects (posers) and every test image is seen by several runs'
networks. The unit of analysis is therefore the subject: a share is averaged over the
runs that tested an image, then over a subject's images of the expression; the two
databases' subject means are compared with a two-sided permutation test of the
difference of means (``scipy.stats.permutation_test``, exact when the relabellings are
few). Databases without subject ids (web-collected) use the image as the unit. Effect
size: Hedges' g of the subject means. p values are corrected for the false discovery
rate (Benjamini-Hochberg, ``statsmodels``) over all expressions and regions of a method
and pair of databases.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from facedialect.errors import InputError
from facedialect.saliency.regions import REGIONS
from facedialect.vocab import in_order

__all__ = ["REGION_COLUMNS", "STATS_COLUMNS", "hedges_g", "region_stats", "unit_means"]

#: Columns of ``tables/saliency_regions.csv``.
REGION_COLUMNS = ["db", "run", "image", "subject", "expression", "method", "region", "share"]
#: Columns of ``tables/saliency_stats.csv``.
STATS_COLUMNS = ["method", "expression", "region", "db_a", "db_b", "unit", "n_a", "n_b",
                 "mean_a", "mean_b", "diff", "hedges_g", "p", "p_fdr", "resamples"]


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g: the difference of means ``a - b`` over the pooled SD, bias-corrected.

    NaN with fewer than two values in either group or zero pooled variance.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return float("nan")
    pooled = ((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2)
    if pooled <= 0:
        return float("nan")
    j = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0)
    return float(j * (a.mean() - b.mean()) / np.sqrt(pooled))


def unit_means(shares: pd.DataFrame) -> pd.DataFrame:
    """Average the region shares over runs per image, then over images per subject.

    Parameters
    ----------
    shares : pandas.DataFrame
        Columns of :data:`REGION_COLUMNS` (``subject`` may be empty: the image is then
        its own unit).

    Returns
    -------
    pandas.DataFrame
        Columns ``db, method, expression, region, unit, kind, share, images``: one row per
        database, method, expression, region and unit, ``unit`` being
        ``"{db}/{subject}"`` (``kind`` ``subject``) or the image (``kind`` ``image``).
    """
    missing = [c for c in REGION_COLUMNS if c not in shares.columns]
    if missing:
        raise InputError(f"region shares table lacks column(s) {missing}")
    keys = ["db", "method", "expression", "region"]
    per_image = (shares.groupby([*keys, "image"], sort=False)
                 .agg(share=("share", "mean"), subject=("subject", "first"))
                 .reset_index())
    subj = per_image["subject"].fillna("").astype(str)
    per_image["unit"] = np.where(subj != "", per_image["db"] + "/" + subj,
                                 per_image["image"])
    per_image["kind"] = np.where(subj != "", "subject", "image")
    return (per_image.groupby([*keys, "unit", "kind"], sort=False)
            .agg(share=("share", "mean"), images=("image", "size")).reset_index())


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def region_stats(shares: pd.DataFrame, *, n_resamples: int = 9999, seed: int = 0
                 ) -> pd.DataFrame:
    """Test every region's share between every pair of databases, per expression.

    Parameters
    ----------
    shares : pandas.DataFrame
        ``tables/saliency_regions.csv`` (columns :data:`REGION_COLUMNS`).
    n_resamples : int
        Random relabellings of the permutation test (the test is exact when there are
        fewer distinct relabellings than this).
    seed : int
        Seed of the relabellings: the same seed gives the same p values.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`STATS_COLUMNS`: ``diff = mean_a - mean_b`` of the unit means,
        ``unit`` ``subject`` or ``image``, ``n_a`` / ``n_b`` units, ``p`` two-sided, and
        ``p_fdr`` Benjamini-Hochberg over the rows of the same method and database pair.
        Rows where a group has fewer than two units have NaN ``p``.
    """
    if n_resamples < 1:
        raise InputError(f"n_resamples must be at least 1, got {n_resamples}")
    units = unit_means(shares)
    dbs = list(dict.fromkeys(units["db"]))
    rows = []
    rng = np.random.default_rng(seed)
    for method in dict.fromkeys(units["method"]):
        um = units[units["method"] == method]
        for a, b in combinations(dbs, 2):
            block = []
            for expr in in_order(um["expression"]):
                for region in REGIONS:
                    sel = um[(um["expression"] == expr) & (um["region"] == region)]
                    xa = sel.loc[sel["db"] == a, "share"].to_numpy(float)
                    xb = sel.loc[sel["db"] == b, "share"].to_numpy(float)
                    xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
                    if len(xa) == 0 or len(xb) == 0:
                        continue
                    by_subject = (sel["kind"] == "subject").all()
                    p = float("nan")
                    if len(xa) >= 2 and len(xb) >= 2:
                        res = sps.permutation_test(
                            (xa, xb), _mean_diff, permutation_type="independent",
                            vectorized=True, n_resamples=n_resamples,
                            alternative="two-sided", rng=rng)
                        p = float(res.pvalue)
                    block.append({
                        "method": method, "expression": expr, "region": region, "db_a": a,
                        "db_b": b, "unit": "subject" if by_subject else "image",
                        "n_a": len(xa), "n_b": len(xb), "mean_a": xa.mean(),
                        "mean_b": xb.mean(), "diff": xa.mean() - xb.mean(),
                        "hedges_g": hedges_g(xa, xb), "p": p, "p_fdr": np.nan,
                        "resamples": n_resamples})
            if block:
                df = pd.DataFrame(block)
                ok = df["p"].notna()
                if ok.any():
                    df.loc[ok, "p_fdr"] = multipletests(df.loc[ok, "p"], method="fdr_bh")[1]
                rows.append(df)
    if not rows:
        return pd.DataFrame(columns=STATS_COLUMNS)
    return pd.concat(rows, ignore_index=True)[STATS_COLUMNS]
