"""Principal preserved components analysis (PPCA) with a cross-validated permutation test.

docs/method.md §9. Two matrices ``X`` (n x p) and ``Y`` (n x q) describe the same n items (two
cultures' predicted ratings of the same images, or one culture's predictions and its
ratings). Their columns are centred (optionally standardized); the components are the
eigenvectors ``w`` of the symmetric cross-covariance ``(X'Y + Y'X) / 2 / (n - 1)``, in
order of decreasing eigenvalue, and each eigenvalue is the covariance ``cov(Xw, Yw)``
along its component.

PPCA needs the columns of ``X`` and ``Y`` to live in one space. Where the two sides use
the same concepts (``shared_concepts=True``: concepts of the same name are the same
variable, as for predictions vs ratings of one culture), this is the classic PPCA. Where
the concepts of two cultures are not translated into each other (the default between
cultures), every concept is its own variable: ``X`` and ``Y`` are placed side by side in
the union of the two concept lists (``X`` filled with zeros in ``Y``'s columns and vice
versa) and the same formula applies. Then ``(X'Y + Y'X) / 2`` is the block matrix
``[[0, C], [C', 0]] / 2`` with ``C = X'Y``; its eigenvectors are ``[u; v] / sqrt(2)`` for
the singular vectors ``u, v`` of ``C``, and the component pairs the pattern ``u`` of the
first culture's concepts with the pattern ``v`` of the second's, without assuming any
translation between them.

Significance: the components are fitted on training folds and applied to the held-out
fold; the held-out covariance of each component's scores is compared with its
distribution when the rows of ``Y`` are permuted (the whole cross-validation repeated per
permutation). The number of shared dimensions is the number of leading components that
are significant, counted until the first one that is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Scale = Literal["centre", "standardize"]

#: Columns of :attr:`PPCAResult.components`.
COMPONENT_COLUMNS = ["component", "eigenvalue", "cov_heldout", "r_heldout", "p_value",
                     "significant", "shared", "n_images"]
#: Columns of :attr:`PPCAResult.loadings`.
LOADING_COLUMNS = ["component", "side", "concept", "weight", "loading"]
#: Columns of :attr:`PPCAResult.scores`.
SCORE_COLUMNS = ["component", "image", "score_x", "score_y"]

_CHUNK = 64  # permutations per vectorized batch


@dataclass(frozen=True)
class PPCAFit:
    """Components fitted on one data set.

    Attributes
    ----------
    eigenvalues : numpy.ndarray
        ``(m,)`` in decreasing order: the in-sample covariance along each component.
    weights_x, weights_y : numpy.ndarray
        ``(p, m)`` and ``(q, m)``: each component's weights on the columns of ``X`` and
        ``Y`` (the parts of one unit eigenvector in the joint concept space).
    mean_x, scale_x, mean_y, scale_y : numpy.ndarray
        Column means and scales (1 for ``scale="centre"``) the data were prepared with.
    """

    eigenvalues: np.ndarray
    weights_x: np.ndarray
    weights_y: np.ndarray
    mean_x: np.ndarray
    scale_x: np.ndarray
    mean_y: np.ndarray
    scale_y: np.ndarray

    def scores(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Component scores ``(n, m)`` of new rows of ``X`` and ``Y``."""
        xs = (np.asarray(x, float) - self.mean_x) / self.scale_x
        ys = (np.asarray(y, float) - self.mean_y) / self.scale_y
        return xs @ self.weights_x, ys @ self.weights_y


@dataclass
class PPCAResult:
    """What :func:`ppca` returns.

    Attributes
    ----------
    components : pandas.DataFrame
        :data:`COMPONENT_COLUMNS`, one row per component: the eigenvalue of the fit on all
        rows, the cross-validated held-out covariance and correlation of the two sides'
        scores, the permutation p-value, whether it is significant at ``alpha`` and
        whether it counts as a shared dimension (leading significant components).
    loadings : pandas.DataFrame
        :data:`LOADING_COLUMNS`: per component, side (``x``/``y``) and concept, the
        weight and the loading (Pearson correlation of the concept's column with the
        side's component scores, fit on all rows).
    scores : pandas.DataFrame
        :data:`SCORE_COLUMNS`: every item's scores on every component (fit on all rows).
    n_shared : int
        The number of shared dimensions.
    fit : PPCAFit
        The components fitted on all rows.
    """

    components: pd.DataFrame
    loadings: pd.DataFrame
    scores: pd.DataFrame
    n_shared: int
    fit: PPCAFit


def _embedding(x_names: Sequence[str], y_names: Sequence[str], shared_concepts: bool
               ) -> tuple[np.ndarray, np.ndarray]:
    """One-hot maps of X's and Y's columns into the joint concept space ``(p, u), (q, u)``."""
    if shared_concepts:
        union = list(dict.fromkeys([*x_names, *y_names]))
        pos = {c: i for i, c in enumerate(union)}
        ix = [pos[c] for c in x_names]
        iy = [pos[c] for c in y_names]
    else:
        union_size = len(x_names) + len(y_names)
        ix = list(range(len(x_names)))
        iy = list(range(len(x_names), union_size))
        union = [None] * union_size
    ex = np.zeros((len(x_names), len(union)))
    ex[np.arange(len(x_names)), ix] = 1.0
    ey = np.zeros((len(y_names), len(union)))
    ey[np.arange(len(y_names)), iy] = 1.0
    return ex, ey


def _stats(a: np.ndarray, scale: Scale) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales over axis -2 (rows), for a batch ``(..., n, k)``."""
    mean = a.mean(axis=-2, keepdims=True)
    if scale == "standardize":
        sd = a.std(axis=-2, ddof=1, keepdims=True)
        sd = np.where(sd > 1e-12, sd, 1.0)
    else:
        sd = np.ones_like(mean)
    return mean, sd


def _fit_batch(xc: np.ndarray, yc: np.ndarray, ex: np.ndarray, ey: np.ndarray, m: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """Top-``m`` eigenpairs of the joint symmetric cross-covariance, batched.

    ``xc`` ``(n, p)`` or ``(B, n, p)``, ``yc`` ``(B, n, q)``, both prepared. Returns
    eigenvalues ``(B, m)`` and eigenvectors ``(B, u, m)``.
    """
    n = yc.shape[-2]
    cxy = np.einsum("...np,bnq->bpq", xc, yc) / (n - 1)
    half = ex.T @ cxy @ ey
    c = (half + np.swapaxes(half, -1, -2)) / 2.0
    vals, vecs = np.linalg.eigh(c)
    return vals[:, ::-1][:, :m], vecs[:, :, ::-1][:, :, :m]


def _fix_signs(w: np.ndarray) -> np.ndarray:
    """Make each column's largest-magnitude entry positive (a deterministic sign)."""
    idx = np.argmax(np.abs(w), axis=0)
    signs = np.sign(w[idx, np.arange(w.shape[1])])
    signs[signs == 0] = 1.0
    return w * signs


def ppca_fit(x: np.ndarray, y: np.ndarray, *, x_names: Sequence[str] | None = None,
             y_names: Sequence[str] | None = None, shared_concepts: bool = False,
             scale: Scale = "centre", n_components: int | None = None) -> PPCAFit:
    """Fit principal preserved components to two matrices of the same items.

    Parameters
    ----------
    x, y : array_like
        ``(n, p)`` and ``(n, q)``: rows are the same items in the same order.
    x_names, y_names : sequence of str, optional
        Column (concept) names; needed when ``shared_concepts`` is True.
    shared_concepts : bool
        Treat columns of the same name as the same variable (classic PPCA when both
        sides have the same columns). False: every column is its own variable.
    scale : {"centre", "standardize"}
        Centre the columns (docs/method.md §9), or also divide them by their SD.
    n_components : int, optional
        Components to keep (default: ``min(p, q)``, at most ``n - 1``).

    Returns
    -------
    PPCAFit
        Eigenvalues in decreasing order and the weights on both sides.

    Raises
    ------
    ValueError
        On mismatched row counts, fewer than 3 rows, or non-finite values.
    """
    x, y = _check_xy(x, y)
    xn, yn = _names(x, y, x_names, y_names)
    ex, ey = _embedding(xn, yn, shared_concepts)
    m = _n_components(x, y, n_components)
    mx, sx = _stats(x, scale)
    my, sy = _stats(y, scale)
    vals, vecs = _fit_batch((x - mx) / sx, ((y - my) / sy)[None], ex, ey, m)
    w = _fix_signs(vecs[0])
    return PPCAFit(eigenvalues=vals[0], weights_x=ex @ w, weights_y=ey @ w,
                   mean_x=mx[0], scale_x=sx[0], mean_y=my[0], scale_y=sy[0])


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"PPCA needs two 2-D matrices, got shapes {x.shape} and {y.shape}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"PPCA needs the same items (rows) on both sides, got {x.shape[0]} "
                         f"and {y.shape[0]} rows")
    if x.shape[0] < 3:
        raise ValueError(f"PPCA needs at least 3 items, got {x.shape[0]}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("PPCA input has missing or non-finite values; drop those items")
    return x, y


def _names(x: np.ndarray, y: np.ndarray, x_names: Sequence[str] | None,
           y_names: Sequence[str] | None) -> tuple[list[str], list[str]]:
    xn = [str(c) for c in x_names] if x_names is not None else [
        f"x{i}" for i in range(x.shape[1])]
    yn = [str(c) for c in y_names] if y_names is not None else [
        f"y{i}" for i in range(y.shape[1])]
    if len(xn) != x.shape[1] or len(yn) != y.shape[1]:
        raise ValueError("x_names / y_names must name every column")
    if len(set(xn)) != len(xn) or len(set(yn)) != len(yn):
        raise ValueError("column names must be unique on each side")
    return xn, yn


def _n_components(x: np.ndarray, y: np.ndarray, n_components: int | None) -> int:
    m = min(x.shape[1], y.shape[1], x.shape[0] - 1)
    if n_components is not None:
        m = min(m, int(n_components))
    if m < 1:
        raise ValueError("PPCA needs at least one component")
    return m


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    """Balanced random fold numbers ``0..folds-1`` for ``n`` items (seeded)."""
    if not 2 <= folds <= n:
        raise ValueError(f"cross-validation needs 2 <= folds <= items, got {folds} folds "
                         f"for {n} items")
    return np.random.default_rng(seed).permutation(n) % folds


def _heldout(x: np.ndarray, yb: np.ndarray, ex: np.ndarray, ey: np.ndarray,
             folds: np.ndarray, m: int, scale: Scale) -> tuple[np.ndarray, np.ndarray]:
    """Held-out covariance and correlation ``(B, m)`` of each component's scores.

    ``yb`` is a batch ``(B, n, q)`` of versions of ``Y`` (permutations); ``x`` is shared.
    Components are fitted on the training folds; the held-out fold is prepared with the
    training folds' means (and SDs) and scored; the covariance is over all held-out scores.
    """
    b, n, _ = yb.shape
    sx_all = np.empty((b, n, m))
    sy_all = np.empty((b, n, m))
    for f in np.unique(folds):
        tr, te = folds != f, folds == f
        mx, sx = _stats(x[tr], scale)
        my, sy = _stats(yb[:, tr], scale)
        _, w = _fit_batch((x[tr] - mx) / sx, (yb[:, tr] - my) / sy, ex, ey, m)
        sx_all[:, te] = ((x[te] - mx) / sx) @ (ex @ w)
        sy_all[:, te] = np.einsum("bnq,bqm->bnm", (yb[:, te] - my) / sy, ey @ w)
    dx = sx_all - sx_all.mean(1, keepdims=True)
    dy = sy_all - sy_all.mean(1, keepdims=True)
    cov = (dx * dy).sum(1) / (n - 1)
    den = np.sqrt((dx ** 2).sum(1) * (dy ** 2).sum(1))
    r = np.divide((dx * dy).sum(1), den, out=np.zeros_like(cov), where=den > 0)
    return cov, r


def ppca_test(x: np.ndarray, y: np.ndarray, *, x_names: Sequence[str] | None = None,
              y_names: Sequence[str] | None = None, shared_concepts: bool = False,
              scale: Scale = "centre", folds: int = 5, permutations: int = 1000,
              alpha: float = 0.05, n_components: int | None = None, seed: int = 0
              ) -> pd.DataFrame:
    """Cross-validated held-out covariance of each component and its permutation p-value.

    Parameters
    ----------
    x, y, x_names, y_names, shared_concepts, scale, n_components
        As in :func:`ppca_fit`.
    folds : int
        Cross-validation folds over the items.
    permutations : int
        Permutations of the rows of ``y`` (the null distribution).
    alpha : float
        Significance level of each component's test.
    seed : int
        Seed of the folds and the permutations.

    Returns
    -------
    pandas.DataFrame
        Columns ``component`` (1-based), ``cov_heldout``, ``r_heldout``, ``p_value``,
        ``significant`` and ``shared``. ``p_value`` is ``(1 + #{null >= observed}) /
        (1 + permutations)``, the null being the same component's held-out covariance
        under permutation; ``shared`` marks the leading run of significant components.
    """
    x, y = _check_xy(x, y)
    if permutations < 1:
        raise ValueError("permutations must be at least 1")
    xn, yn = _names(x, y, x_names, y_names)
    ex, ey = _embedding(xn, yn, shared_concepts)
    n = x.shape[0]
    m = _n_components(x, y, n_components)
    fid = fold_ids(n, folds, seed)
    m = max(1, min(m, n - int(np.bincount(fid).max()) - 1))  # fits on the training folds
    obs_cov, obs_r = _heldout(x, y[None], ex, ey, fid, m, scale)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    exceed = np.zeros(m)
    done = 0
    while done < permutations:
        k = min(_CHUNK, permutations - done)
        perms = np.stack([rng.permutation(n) for _ in range(k)])
        null_cov, _ = _heldout(x, y[perms], ex, ey, fid, m, scale)
        exceed += (null_cov >= obs_cov - 1e-12 * np.abs(obs_cov)).sum(0)
        done += k
    p = (1.0 + exceed) / (1.0 + permutations)
    sig = (p <= alpha) & (obs_cov[0] > 0)
    shared = np.cumprod(sig).astype(bool)
    return pd.DataFrame({"component": np.arange(1, m + 1), "cov_heldout": obs_cov[0],
                         "r_heldout": obs_r[0], "p_value": p, "significant": sig,
                         "shared": shared})


def ppca(x: pd.DataFrame, y: pd.DataFrame, *, shared_concepts: bool = False,
         scale: Scale = "centre", folds: int = 5, permutations: int = 1000,
         alpha: float = 0.05, n_components: int | None = None, seed: int = 0
         ) -> PPCAResult:
    """PPCA between two tables of the same items, with significance and loadings.

    Parameters
    ----------
    x, y : pandas.DataFrame
        Items (images) as the index, concepts as columns. Only items in both are used,
        in ``x``'s order.
    shared_concepts, scale, n_components
        As in :func:`ppca_fit`.
    folds, permutations, alpha, seed
        As in :func:`ppca_test`.

    Returns
    -------
    PPCAResult
        Components with held-out covariance and p-values, loadings, scores and the
        number of shared dimensions.

    Raises
    ------
    ValueError
        When fewer than ``2 * folds`` items are common to both tables or a value is
        missing.
    """
    common = x.index[x.index.isin(y.index)]
    if len(common) < max(3, 2 * folds):
        raise ValueError(f"PPCA with {folds} folds needs at least {2 * folds} items rated "
                         f"on both sides, got {len(common)}")
    xv = x.loc[common].to_numpy(float)
    yv = y.loc[common].to_numpy(float)
    xn, yn = [str(c) for c in x.columns], [str(c) for c in y.columns]
    test = ppca_test(xv, yv, x_names=xn, y_names=yn, shared_concepts=shared_concepts,
                     scale=scale, folds=folds, permutations=permutations, alpha=alpha,
                     n_components=n_components, seed=seed)
    fit = ppca_fit(xv, yv, x_names=xn, y_names=yn, shared_concepts=shared_concepts,
                   scale=scale, n_components=len(test))
    comps = test.assign(eigenvalue=fit.eigenvalues, n_images=len(common))[COMPONENT_COLUMNS]
    sx, sy = fit.scores(xv, yv)
    rows = []
    for side, data, names, weights, sc in (("x", xv, xn, fit.weights_x, sx),
                                           ("y", yv, yn, fit.weights_y, sy)):
        corr = _column_correlations(data, sc)
        for j in range(len(test)):
            rows.append(pd.DataFrame({"component": j + 1, "side": side, "concept": names,
                                      "weight": weights[:, j], "loading": corr[:, j]}))
    loadings = pd.concat(rows, ignore_index=True)[LOADING_COLUMNS]
    scores = pd.DataFrame({
        "component": np.repeat(np.arange(1, len(test) + 1), len(common)),
        "image": np.tile(np.asarray(common, dtype=object), len(test)),
        "score_x": sx.T.ravel(), "score_y": sy.T.ravel()})
    return PPCAResult(components=comps, loadings=loadings, scores=scores,
                      n_shared=int(test["shared"].sum()), fit=fit)


def _column_correlations(data: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Pearson r between every column of ``data`` ``(n, k)`` and of ``scores`` ``(n, m)``."""
    d = data - data.mean(0)
    s = scores - scores.mean(0)
    den = np.outer(np.sqrt((d ** 2).sum(0)), np.sqrt((s ** 2).sum(0)))
    return np.divide(d.T @ s, den, out=np.zeros((d.shape[1], s.shape[1])), where=den > 0)


__all__ = ["COMPONENT_COLUMNS", "LOADING_COLUMNS", "SCORE_COLUMNS", "PPCAFit", "PPCAResult",
           "fold_ids", "ppca", "ppca_fit", "ppca_test"]
