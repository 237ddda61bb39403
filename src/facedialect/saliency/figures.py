"""Saliency and modification figures, drawn from the run directory's files.

Every function takes what the stage wrote (``saliency/maps.npz`` as
:class:`~facedialect.saliency.maps.AlignedMaps`, ``tables/saliency_regions.csv``,
``tables/modification.csv`` and the images under ``modify/``) and returns PNG bytes
(SVG in the report, see :func:`facedialect.plots.figures.render`), or ``None`` when
there is nothing to draw.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from facedialect.imageio import read_gray  # noqa: E402
from facedialect.plots.figures import figure_function, render  # noqa: E402
from facedialect.saliency.maps import AlignedMaps  # noqa: E402
from facedialect.saliency.regions import REGIONS, region_polygons  # noqa: E402
from facedialect.saliency.stats import unit_means  # noqa: E402
from facedialect.vocab import in_order  # noqa: E402

__all__ = [
    "difference_figure",
    "modification_grid_figure",
    "modification_strip",
    "region_outline",
    "region_shares_figure",
    "saliency_grid_figure",
]

_REGION_COLORS = dict(zip(REGIONS, plt.get_cmap("tab10").colors, strict=False))


def region_outline(ax: plt.Axes, shape: np.ndarray, color: str = "white",
                   lw: float = 0.5) -> None:
    """Draw the region polygons of a landmark shape on an axes."""
    for polys in region_polygons(shape).values():
        for p in polys:
            closed = np.vstack([p, p[:1]])
            ax.plot(closed[:, 0], closed[:, 1], color=color, lw=lw, alpha=0.6)


def _face_axes(ax: plt.Axes, face: np.ndarray) -> None:
    ax.imshow(face, cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


@figure_function
def saliency_grid_figure(maps: AlignedMaps, method: str) -> bytes | None:
    """Mean saliency per expression (rows) and database (columns) over the average face.

    Each cell is the mean normalized ``|map|`` on the mean face shape, as a heat overlay
    with one colour scale for the whole figure (0 to the 99.5th percentile of all
    cells); region outlines in white. ``None`` without databases or expressions.
    """
    m = maps.methods.index(method)
    data = maps.mean[m]
    finite = data[np.isfinite(data)]
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    vmax = vmax or 1.0
    n_e, n_d = len(maps.expressions), len(maps.dbs)
    if not n_e or not n_d:
        return None
    fig, axes = plt.subplots(n_e, n_d, figsize=(1.9 * n_d + 1.2, 1.9 * n_e + 0.4),
                             squeeze=False, layout="constrained")
    im = None
    for e, expr in enumerate(maps.expressions):
        for d, db in enumerate(maps.dbs):
            ax = axes[e, d]
            _face_axes(ax, maps.face)
            if np.isfinite(data[d, e]).all():
                im = ax.imshow(data[d, e], cmap="inferno", alpha=0.65, vmin=0, vmax=vmax)
            region_outline(ax, maps.shape)
            ax.text(0.03, 0.03, f"n={maps.images[d, e]}", transform=ax.transAxes,
                    fontsize=6, color="white")
            if e == 0:
                ax.set_title(str(db), fontsize=9)
            if d == 0:
                ax.set_ylabel(expr, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.4, label="mean normalized |saliency|")
    fig.suptitle(f"Where the networks look ({method})", fontsize=10)
    return render(fig)


@figure_function
def difference_figure(maps: AlignedMaps, method: str, a: str, b: str) -> bytes | None:
    """Mean map of database ``a`` minus that of ``b``, per expression, on the average face.

    Red: ``a``'s networks look there more; blue: ``b``'s. One symmetric colour scale.
    ``None`` without expressions.
    """
    m = maps.methods.index(method)
    ia, ib = maps.dbs.index(a), maps.dbs.index(b)
    diff = maps.mean[m, ia] - maps.mean[m, ib]
    finite = np.abs(diff[np.isfinite(diff)])
    vmax = float(np.percentile(finite, 99.5)) if finite.size else 1.0
    vmax = vmax or 1.0
    n_e = len(maps.expressions)
    if not n_e:
        return None
    cols = min(n_e, 4)
    rows = -(-n_e // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.1 * cols + 0.8, 2.2 * rows),
                             squeeze=False)
    im = None
    for ax in axes.ravel():
        ax.axis("off")
    for e, expr in enumerate(maps.expressions):
        ax = axes.ravel()[e]
        ax.axis("on")
        _face_axes(ax, maps.face)
        if np.isfinite(diff[e]).all():
            im = ax.imshow(diff[e], cmap="RdBu_r", alpha=0.7, vmin=-vmax, vmax=vmax)
        region_outline(ax, maps.shape, color="black", lw=0.4)
        ax.set_title(expr, fontsize=9)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label=f"{a} minus {b}")
    fig.suptitle(f"Saliency difference {a} - {b} ({method})", fontsize=10)
    return render(fig)


@figure_function
def region_shares_figure(regions: pd.DataFrame, method: str) -> bytes | None:
    """Share of |saliency| per region and expression, databases side by side.

    Bars: mean over units (subjects, or images without subject ids) of the share
    averaged over runs and images; error bars: standard error over units. ``None`` when
    the method has no row.
    """
    units = unit_means(regions[regions["method"] == method])
    dbs = list(dict.fromkeys(units["db"]))
    exprs = in_order(units["expression"])
    if not dbs or not exprs:
        return None
    summ = (units.groupby(["expression", "region", "db"])["share"]
            .agg(["mean", "sem"]).reset_index())
    cols = min(len(exprs), 4)
    rows = -(-len(exprs) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.4 * rows), squeeze=False,
                             sharey=True)
    for ax in axes.ravel()[len(exprs):]:
        ax.axis("off")
    width = 0.8 / max(1, len(dbs))
    x = np.arange(len(REGIONS))
    colors = plt.get_cmap("tab10").colors
    for k, expr in enumerate(exprs):
        ax = axes.ravel()[k]
        for j, db in enumerate(dbs):
            s = summ[(summ["expression"] == expr) & (summ["db"] == db)]
            s = s.set_index("region").reindex(list(REGIONS))
            ax.bar(x + (j - (len(dbs) - 1) / 2) * width, s["mean"], width,
                   yerr=s["sem"].fillna(0), color=colors[j % 10], label=str(db),
                   error_kw={"lw": 0.6})
        ax.set_title(expr, fontsize=9)
        ax.set_xticks(x)
        ax.set_xticklabels(REGIONS, rotation=60, fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
    axes[0, 0].set_ylabel("share of |saliency|", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"Saliency per face region ({method}), mean ± SE over units", fontsize=10)
    fig.tight_layout()
    return render(fig)


@figure_function
def modification_strip(images: np.ndarray, probabilities: pd.DataFrame, target: str,
                       db: str, frames: int = 6) -> bytes | None:
    """A strip of ``frames`` images along the ascent, with the class probabilities below.

    Parameters
    ----------
    images : numpy.ndarray
        ``(steps + 1, H, W)`` the sequence.
    probabilities : pandas.DataFrame
        Columns ``step, expression, probability`` of this sequence.
    target : str
        The raised expression.
    db : str
        Whose networks.

    Returns
    -------
    bytes or None
        The figure; ``None`` without images or probabilities.
    """
    if len(images) == 0 or probabilities.empty:
        return None
    steps = len(images) - 1
    picks = sorted({int(round(i)) for i in np.linspace(0, steps, min(frames, steps + 1))})
    fig = plt.figure(figsize=(1.7 * len(picks), 3.6))
    grid = fig.add_gridspec(2, len(picks), height_ratios=[1.0, 0.8])
    p = probabilities.pivot_table(index="step", columns="expression", values="probability")
    for k, s in enumerate(picks):
        ax = fig.add_subplot(grid[0, k])
        _face_axes(ax, images[s])
        prob = p.at[s, target] if s in p.index and target in p.columns else float("nan")
        ax.set_title(f"step {s}\np({target})={prob:.2f}", fontsize=8)
    ax = fig.add_subplot(grid[1, :])
    for e in in_order(p.columns):
        ax.plot(p.index, p[e], lw=2.0 if e == target else 0.9, label=e)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel("probability", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=6, ncol=4)
    fig.suptitle(f"Raising {target} with {db}'s networks", fontsize=10)
    return render(fig)


@figure_function
def modification_grid_figure(table: pd.DataFrame, folder: str | Path) -> bytes | None:
    """The modification grid: a neutral face converted to each expression by each database.

    Rows: databases; first column the original face, then one column per target with
    the last step and the target probability before -> after (mean over runs).
    Reads ``modify/grid/original.png`` and ``modify/grid/{db}_{target}.png``. ``None``
    when the table is empty.
    """
    folder = Path(folder)
    dbs = list(dict.fromkeys(table["db"]))
    targets = in_order(table["target"])
    if not dbs or not targets:
        return None
    last = table["step"].max()
    fig, axes = plt.subplots(len(dbs), len(targets) + 1,
                             figsize=(1.55 * (len(targets) + 1), 1.85 * len(dbs)),
                             squeeze=False)
    original = read_gray(folder / "original.png")
    for r, db in enumerate(dbs):
        _face_axes(axes[r, 0], original)
        axes[r, 0].set_ylabel(str(db), fontsize=9)
        if r == 0:
            axes[r, 0].set_title("original", fontsize=8)
        for c, target in enumerate(targets, start=1):
            ax = axes[r, c]
            sel = table[(table["db"] == db) & (table["target"] == target)
                        & (table["expression"] == target)]
            if sel.empty:  # the database's networks have no unit for this expression
                ax.axis("off")
                ax.set_title(f"{target}\n(no unit)", fontsize=7)
                continue
            _face_axes(ax, read_gray(folder / f"{db}_{target}.png"))
            p0 = float(sel.loc[sel["step"] == 0, "probability"].iloc[0])
            p1 = float(sel.loc[sel["step"] == last, "probability"].iloc[0])
            ax.set_title(f"{target}\n{p0:.2f}→{p1:.2f}", fontsize=7)
    fig.suptitle(f"A neutral face raised toward each expression ({last} steps)", fontsize=10)
    return render(fig)
