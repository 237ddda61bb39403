"""The report section on shared dimensions of meaning, and its figures (drawn from tables).

Every figure function takes the run directory's tables and returns PNG bytes (SVG in the
report), or ``None`` when there is nothing to draw; the section builder reads the tables
the meaning stage wrote and returns ``None`` when the study has no ratings.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from facedialect.plots.figures import figure_function, plt, render

#: Shared dimensions shown per culture pair in the figures.
MAX_DIMS_SHOWN = 6


@figure_function
def accuracy_figure(accuracy: pd.DataFrame) -> bytes | None:
    """Correlation of held-out predictions with mean ratings per concept, with the ceiling.

    Bars: ``r_ensemble`` (held-out predictions averaged over runs); black ticks: the
    ceiling ``sqrt(reliability)`` where per-rater data exist; error bars: SD over runs of
    the per-run correlations (around ``r_mean``, grey dots). ``None`` when the table is
    empty.
    """
    cultures = list(dict.fromkeys(accuracy["culture"]))
    if not cultures:
        return None
    fig, axes = plt.subplots(len(cultures), 1, figsize=(8, 2.4 * len(cultures)),
                             squeeze=False, layout="constrained")
    for ax, c in zip(axes[:, 0], cultures, strict=True):
        part = accuracy[accuracy["culture"] == c]
        x = np.arange(len(part))
        ax.bar(x, part["r_ensemble"], color="C0", width=0.7, label="held-out (ensemble)")
        ax.errorbar(x, part["r_mean"], yerr=part["r_sd"].fillna(0), fmt="o", ms=3,
                    color="0.4", lw=0.8, capsize=2, label="per run (mean ± SD)")
        if part["ceiling"].notna().any():
            ax.scatter(x, part["ceiling"], marker="_", s=200, color="k", zorder=3,
                       label="ceiling √reliability")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_xticks(x, [str(c) for c in part["concept"]], fontsize=7, rotation=90)
        ax.set_ylim(-1, 1)
        ax.set_ylabel(f"{c}: r")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].legend(fontsize=7, ncol=3, loc="lower left")
    return render(fig)


@figure_function
def ppca_figure(components: pd.DataFrame) -> bytes | None:
    """Held-out covariance of every PPCA component per pair; shared components filled.

    ``None`` when the table is empty.
    """
    pairs = list(dict.fromkeys(components["culture_pair"]))
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(2.6 * len(pairs) + 0.5, 2.6),
                             squeeze=False)
    for ax, pair in zip(axes[0], pairs, strict=True):
        part = components[components["culture_pair"] == pair]
        shared = part["shared"].astype(bool).to_numpy()
        ax.bar(part["component"][shared], part["cov_heldout"][shared], color="C2",
               label="shared")
        ax.bar(part["component"][~shared], part["cov_heldout"][~shared], color="none",
               edgecolor="0.5", label="not shared")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_title(f"{pair}\n{int(shared.sum())} shared", fontsize=8)
        ax.set_xlabel("component", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("held-out covariance", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    return render(fig)


@figure_function
def loadings_figure(loadings: pd.DataFrame, components: pd.DataFrame, pair: str
                    ) -> bytes | None:
    """Loadings of both sides' concepts on the shared dimensions of one pair, side by side.

    ``None`` when the pair has no loadings.
    """
    comp = components[components["culture_pair"] == pair]
    n = max(1, min(int(comp["shared"].astype(bool).sum()), MAX_DIMS_SHOWN))
    part = loadings[(loadings["culture_pair"] == pair) & (loadings["component"] <= n)]
    if part.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(2.2 + 0.5 * n * 2, 0.9 + 0.22 * part.groupby(
        "side")["concept"].nunique().max()), squeeze=False, layout="constrained")
    im = None
    for ax, side in zip(axes[0], ("x", "y"), strict=True):
        s = part[part["side"] == side]
        if s.empty:
            ax.axis("off")
            continue
        mat = s.pivot(index="concept", columns="component", values="loading")
        mat = mat.reindex(list(dict.fromkeys(s["concept"])))
        im = ax.imshow(mat.to_numpy(), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_yticks(range(len(mat)), [str(c) for c in mat.index], fontsize=7)
        ax.set_xticks(range(len(mat.columns)), [f"D{c}" for c in mat.columns], fontsize=7)
        label = str(s["culture"].iloc[0]) + (" (ratings)" if (s["source"] == "rating").all()
                                        else "")
        ax.set_title(label, fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="loading (r with dimension score)")
    fig.suptitle(pair, fontsize=9)
    return render(fig)


@figure_function
def preservation_figure(preservation: pd.DataFrame) -> bytes | None:
    """The preservation matrix (rows: source culture, columns: target), with its mean.

    ``None`` when the table is empty.
    """
    from facedialect.meaning.preservation import mean_preservation

    cultures = list(dict.fromkeys([*preservation["source"], *preservation["target"]]))
    if not cultures:
        return None
    mat = (preservation.pivot(index="source", columns="target", values="preserved")
           .reindex(index=cultures, columns=cultures))
    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cultures), 1.0 + 0.7 * len(cultures)))
    ax.imshow(mat.to_numpy(), cmap="viridis", vmin=0, vmax=1)
    for i in range(len(cultures)):
        for j in range(len(cultures)):
            v = mat.iloc[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color="black" if v > 0.6 else "white")
    ax.set_xticks(range(len(cultures)), [str(c) for c in cultures], fontsize=8)
    ax.set_yticks(range(len(cultures)), [str(c) for c in cultures], fontsize=8)
    ax.set_xlabel("target (explained)", fontsize=8)
    ax.set_ylabel("source (predictor)", fontsize=8)
    mean = mean_preservation(preservation)
    ax.set_title(f"mean preserved {mean:.2f}" if np.isfinite(mean)
                 else "no pair of different cultures", fontsize=9)
    return render(fig)


@figure_function
def top_images_figure(scores: pd.DataFrame, images: pd.DataFrame, pair: str,
                      per_dim: int = 5) -> bytes | None:
    """The images scoring highest on each shared dimension of a pair (mean of both sides)."""
    from facedialect.imageio import read_gray

    part = scores[scores["culture_pair"] == pair].copy()
    if part.empty:
        return None
    part["score"] = (part["score_x"] + part["score_y"]) / 2
    dims = sorted(part["component"].unique())[:MAX_DIMS_SHOWN]
    paths = dict(zip(images["image"], images["path"], strict=True))
    fig, axes = plt.subplots(len(dims), per_dim, figsize=(1.3 * per_dim, 1.45 * len(dims)),
                             squeeze=False)
    for r, d in enumerate(dims):
        top = part[part["component"] == d].nlargest(per_dim, "score")
        for c in range(per_dim):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(top):
                ax.axis("off")
                continue
            row = top.iloc[c]
            try:
                ax.imshow(read_gray(paths[row["image"]]), cmap="gray", vmin=0, vmax=255)
            except Exception:  # noqa: BLE001 - a missing file must not stop the report
                ax.text(0.5, 0.5, "missing", ha="center", va="center", fontsize=7)
            ax.set_title(f"{row['score']:.2f}", fontsize=7)
            if c == 0:
                ax.set_ylabel(f"D{d}", fontsize=8)
    fig.suptitle(f"{pair}: highest-scoring images per dimension", fontsize=9)
    return render(fig)


def top_concepts(loadings: pd.DataFrame, components: pd.DataFrame, top: int = 3
                 ) -> pd.DataFrame:
    """The ``top`` concepts of each culture on each shared dimension (between cultures)."""
    rows = []
    shared = components[components["shared"].astype(bool) & (components["kind"] == "cultures")]
    for r in shared.itertuples(index=False):
        part = loadings[(loadings["culture_pair"] == r.culture_pair)
                        & (loadings["component"] == r.component)]
        row = {"culture_pair": r.culture_pair, "dimension": r.component,
               "r_heldout": r.r_heldout}
        for side in ("x", "y"):
            s = part[part["side"] == side].sort_values("loading", ascending=False).head(top)
            row[f"culture_{side}"] = s["culture"].iloc[0] if len(s) else ""
            row[f"top_{side}"] = ", ".join(f"{c} ({v:.2f})" for c, v in
                                           zip(s["concept"], s["loading"], strict=True))
        rows.append(row)
    return pd.DataFrame(rows, columns=["culture_pair", "dimension", "r_heldout", "culture_x",
                                       "top_x", "culture_y", "top_y"])


__all__ = ["accuracy_figure", "loadings_figure", "ppca_figure", "preservation_figure",
           "top_concepts", "top_images_figure"]
