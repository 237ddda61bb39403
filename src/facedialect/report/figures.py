"""Figures drawn from the run directory's tables (never from state in memory)."""

from __future__ import annotations

import io
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from facedialect.imageio import read_gray  # noqa: E402
from facedialect.labels import EXPRESSIONS  # noqa: E402
from facedialect.store import ArrayCache, RunDir  # noqa: E402

FIG_DPI = 110


def fig_to_png(fig: plt.Figure) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIG_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (for per-database figure names)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def _before(path: str, box: tuple[int, int, int, int] | None, size: int) -> np.ndarray:
    gray = read_gray(path)
    h, w = gray.shape
    if box is not None:  # a square view around the detected face, 1.6x its width
        x, y, bw, bh = box
        cx, cy, side = x + bw / 2, y + bh / 2, int(1.6 * max(bw, bh))
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        gray = gray[y0:min(h, y0 + side), x0:min(w, x0 + side)]
    import cv2

    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def contact_sheets(run: RunDir, cache: ArrayCache, per_expression: int = 4) -> list[str]:
    """Draw one contact sheet per database: rows expressions, pairs of before / after.

    Uses ``tables/images.csv`` (which faces are included) and ``tables/preprocess.csv``
    (boxes and cache keys). Writes ``figures/contact_sheet_{db}.png``.

    Returns
    -------
    list of str
        The figure names written.
    """
    images = run.read_table("images")
    prep = run.read_table("preprocess")
    merged = images.merge(prep[["path", "detected", "x", "y", "w", "h", "cache_key"]],
                          on="path", how="inner")
    merged = merged[merged["included"].astype(bool) & merged["detected"].astype(bool)]
    names = []
    for db, part in merged.groupby("db", sort=False):
        exprs = [e for e in EXPRESSIONS if (part["expression"] == e).any()]
        if not exprs:
            continue
        k = per_expression
        fig, axes = plt.subplots(len(exprs), 2 * k, figsize=(2 * k * 1.2, len(exprs) * 1.3),
                                 squeeze=False)
        for ax in axes.ravel():
            ax.axis("off")
        for r, expr in enumerate(exprs):
            rows = part[part["expression"] == expr].sort_values(["subject", "path"]).head(k)
            axes[r, 0].set_title("", fontsize=7)
            axes[r, 0].text(-0.15, 0.5, expr, transform=axes[r, 0].transAxes, ha="right",
                            va="center", fontsize=9)
            for c, (_, row) in enumerate(rows.iterrows()):
                box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
                hit = cache.get(str(row["cache_key"]))
                after = hit["image"] if hit is not None and "image" in hit else None
                axes[r, 2 * c].imshow(_before(row["path"], box, 112), cmap="gray",
                                      vmin=0, vmax=255)
                if after is not None:
                    axes[r, 2 * c + 1].imshow(after, cmap="gray", vmin=0, vmax=255)
                if r == 0:
                    axes[r, 2 * c].set_title("before", fontsize=7)
                    axes[r, 2 * c + 1].set_title("after", fontsize=7)
        fig.suptitle(f"{db}: faces before and after pre-processing", fontsize=10)
        name = f"contact_sheet_{safe_name(str(db))}"
        run.write_figure(name, fig_to_png(fig))
        names.append(name)
    return names


def exclusions_figure(images: pd.DataFrame) -> bytes | None:
    """Bar chart of included images per expression and database (from ``images.csv``)."""
    inc = images[images["included"].astype(bool)]
    if inc.empty:
        return None
    counts = (inc.groupby(["db", "expression"]).size().unstack(fill_value=0)
              .reindex(columns=[e for e in EXPRESSIONS], fill_value=0))
    fig, ax = plt.subplots(figsize=(7, 2.8))
    counts.T.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("included images")
    ax.set_xlabel("")
    ax.legend(title="database", fontsize=8)
    ax.tick_params(axis="x", rotation=0, labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return fig_to_png(fig)
