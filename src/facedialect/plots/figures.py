"""Figures drawn from the run directory's tables (never from state in memory).

Every figure function is decorated with :func:`figure_function` and returns its image from
:func:`render`: PNG bytes (the files in ``figures/``), or, inside ``figure_format("svg")``
as the report uses it, SVG whose text stays text, so the reader's browser draws labels in
any script (Chinese or Japanese concepts, Arabic culture names) with its own fonts. A
figure function returns ``None`` when its table has nothing to draw.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import re
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from facedialect.imageio import read_gray  # noqa: E402
from facedialect.vocab import VOCABULARY, expression_index, in_order  # noqa: E402

FIG_DPI = 110

#: Font families with Chinese, Japanese and Korean glyphs, used as fallbacks after
#: matplotlib's own font (DejaVu Sans has none) where the system has them: Noto / Source
#: Han (Linux: ``fonts-noto-cjk``), WenQuanYi, IPA, and those of Windows and macOS.
CJK_FAMILIES: tuple[str, ...] = (
    "Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
    "Source Han Sans", "Source Han Sans SC", "Noto Sans JP", "Noto Sans SC", "Noto Sans TC",
    "Noto Sans KR", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Droid Sans Fallback",
    "IPAexGothic", "IPAGothic", "TakaoGothic", "Microsoft YaHei", "Microsoft JhengHei",
    "Yu Gothic", "Meiryo", "MS Gothic", "Malgun Gothic", "PingFang SC", "Hiragino Sans",
    "Hiragino Sans GB", "Apple SD Gothic Neo", "Arial Unicode MS")

_FORMAT: ContextVar[str] = ContextVar("facedialect_figure_format", default="png")
_GLYPH_MISSING = r"Glyph \d+ .*missing from font"
F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def fallback_families() -> tuple[str, ...]:
    """The families of :data:`CJK_FAMILIES` installed on this system, in that order.

    When matplotlib's cached font list has none, the system's font files it does not know
    (installed after the cache was written) are added for this process.
    """
    manager = font_manager.fontManager
    names = {f.name for f in manager.ttflist}
    if not names.intersection(CJK_FAMILIES):
        known = {f.fname for f in manager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                with contextlib.suppress(Exception):  # a file FreeType cannot read
                    manager.addfont(path)
        names = {f.name for f in manager.ttflist}
    return tuple(f for f in CJK_FAMILIES if f in names)


@contextlib.contextmanager
def figure_format(fmt: str) -> Iterator[None]:
    """Make the figure functions return ``"png"`` (the default) or ``"svg"`` in the block.

    SVG keeps text as text (``svg.fonttype = 'none'``): the report inlines it, and the
    browser draws every label with its own fonts, in any script.
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"figure format must be 'png' or 'svg', not {fmt!r}")
    token = _FORMAT.set(fmt)
    try:
        yield
    finally:
        _FORMAT.reset(token)


def figure_function(func: F) -> F:
    """Decorator of a figure function: fonts for labels in any script, labels taken literally.

    Adds the installed :func:`fallback_families` after the default font, so PNG figures
    draw CJK labels where the system has such a font, and turns off mathtext (a concept
    named ``costs $5-$10`` is shown as written). In SVG the browser draws the text, so
    matplotlib's "Glyph ... missing" warnings, which concern its own fonts only, are
    silenced there.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        rc = {"font.family": [*plt.rcParams["font.family"], *fallback_families()],
              "text.parse_math": False}
        with plt.rc_context(rc), warnings.catch_warnings():
            if _FORMAT.get() == "svg":
                warnings.filterwarnings("ignore", message=_GLYPH_MISSING)
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def fig_to_png(fig: plt.Figure) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIG_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def fig_to_svg(fig: plt.Figure) -> bytes:
    """Render a matplotlib figure to an ``<svg>`` element for inlining in HTML; close it.

    Text stays text (the browser draws it with its own fonts); images larger than 64 x 64
    are rasterized at :data:`FIG_DPI`, as in the PNG, so the size stays about the PNG's.
    The XML prolog and metadata are dropped and every id is prefixed with a hash of the
    figure, so several figures can share one HTML page; the output is deterministic.
    """
    for im in fig.findobj(AxesImage):
        arr = im.get_array()
        if arr is not None and arr.shape[0] * arr.shape[1] > 64 * 64:
            im.set_rasterized(True)
    buf = io.BytesIO()
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "facedialect",
                         "svg.image_inline": True}):
        fig.savefig(buf, format="svg", dpi=FIG_DPI, bbox_inches="tight",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    plt.close(fig)
    text = buf.getvalue().decode("utf-8")
    text = text[text.index("<svg"):]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    # matplotlib names its whole sans-serif list on every text: one font and the generic
    # family say the same (the browser falls back per glyph to a font that has it)
    text = re.sub(r"font-family: [^;\"]*", "font-family: 'DejaVu Sans', sans-serif", text)
    text = re.sub(r">\s+<", "><", text)  # the indentation between elements
    prefix = "f" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8] + "-"
    text = re.sub(r'(\bid="|url\(#|href="#)', lambda m: m[1] + prefix, text)
    return text.encode("utf-8")


def render(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, or as SVG inside ``figure_format("svg")``; closes it."""
    return fig_to_svg(fig) if _FORMAT.get() == "svg" else fig_to_png(fig)


def safe_name(text: str) -> str:
    """A file-name-safe version of ``text`` (for per-database figure names).

    Letters and digits of any script are kept (``日本`` stays ``日本``), so databases whose
    names differ only in non-Latin letters get different files.
    """
    return re.sub(r"[^\w.-]+", "_", text)


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


@figure_function
def contact_sheet(faces: pd.DataFrame, db: str, face_of: Callable[[str], np.ndarray | None],
                  per_expression: int = 4) -> bytes | None:
    """One database's contact sheet: rows expressions, pairs of before / after pre-processing.

    Parameters
    ----------
    faces : pandas.DataFrame
        The database's included faces with a detected face: ``path, subject, expression,
        x, y, w, h, cache_key``.
    db : str
        The database name (title).
    face_of : callable
        ``face_of(cache_key)``: the pre-processed face (224x224 uint8), or None.
    per_expression : int
        Faces per expression.

    Returns
    -------
    bytes or None
        PNG, or None when ``faces`` has no known expression.
    """
    exprs = in_order(faces["expression"])
    if not exprs:
        return None
    k = per_expression
    fig, axes = plt.subplots(len(exprs), 2 * k, figsize=(2 * k * 1.2, len(exprs) * 1.3),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, expr in enumerate(exprs):
        rows = faces[faces["expression"] == expr].sort_values(["subject", "path"]).head(k)
        axes[r, 0].set_title("", fontsize=7)
        axes[r, 0].text(-0.15, 0.5, expr, transform=axes[r, 0].transAxes, ha="right",
                        va="center", fontsize=9)
        for c, (_, row) in enumerate(rows.iterrows()):
            box = (int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"]))
            after = face_of(str(row["cache_key"]))
            axes[r, 2 * c].imshow(_before(row["path"], box, 112), cmap="gray",
                                  vmin=0, vmax=255)
            if after is not None:
                axes[r, 2 * c + 1].imshow(after, cmap="gray", vmin=0, vmax=255)
            if r == 0:
                axes[r, 2 * c].set_title("before", fontsize=7)
                axes[r, 2 * c + 1].set_title("after", fontsize=7)
    fig.suptitle(f"{db}: faces before and after pre-processing", fontsize=10)
    return fig_to_png(fig)


@figure_function
def exclusions_figure(images: pd.DataFrame) -> bytes | None:
    """Bar chart of included images per expression and database (from ``images.csv``)."""
    inc = images[images["included"].astype(bool)]
    if inc.empty:
        return None
    counts = (inc.groupby(["db", "expression"]).size().unstack(fill_value=0)
              .reindex(columns=in_order(inc["expression"]), fill_value=0))
    fig, ax = plt.subplots(figsize=(7, 2.8))
    counts.T.plot.bar(ax=ax, width=0.8)
    ax.set_ylabel("included images")
    ax.set_xlabel("")
    ax.legend(title="database", fontsize=8)
    ax.tick_params(axis="x", rotation=0, labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return render(fig)


@figure_function
def training_curves_figure(curves: pd.DataFrame, window: int = 25) -> bytes | None:
    """Training and validation correct rate and loss, mean and SD across runs (paper Fig. 2).

    Training values are per iteration (mini-batch), smoothed per run with a moving average
    of ``window`` iterations before the mean and SD across runs; validation values are
    per epoch. ``None`` when the table is empty.
    """
    dbs = list(dict.fromkeys(curves["db"]))
    if not dbs:
        return None
    fig, axes = plt.subplots(2, len(dbs), figsize=(4.2 * len(dbs), 5.2), squeeze=False,
                             sharex="col")
    for c, db in enumerate(dbs):
        part = curves[curves["db"] == db]
        for r, metric in enumerate(("correct_rate", "loss")):
            ax = axes[r, c]
            tr = part[part["split"] == "train"].pivot(index="iteration", columns="run",
                                                      values=metric)
            tr = tr.rolling(window, min_periods=1).mean()
            m, s = tr.mean(axis=1), tr.std(axis=1).fillna(0)
            ax.plot(m.index, m.values, color="C0", lw=1.2, label="training")
            ax.fill_between(m.index, m - s, m + s, color="C0", alpha=0.25, lw=0)
            # runs with training sets of different sizes end their epochs at different
            # iterations: average the k-th validation of every run, at its mean iteration
            val = part[part["split"] == "validation"].sort_values("iteration")
            val = val.assign(epoch=val.groupby("run").cumcount())
            va = val.groupby("epoch")
            vm, vs = va[metric].mean(), va[metric].std().fillna(0)
            vx = va["iteration"].mean()
            ax.errorbar(vx.values, vm.values, yerr=vs.values, color="C3", fmt="o-", ms=3,
                        lw=1, capsize=2, label="validation")
            ax.set_ylabel("correct rate" if metric == "correct_rate" else "loss")
            if metric == "correct_rate":
                ax.set_ylim(0, 1)
                ax.set_title(f"{db} ({tr.shape[1]} runs)")
            ax.spines[["top", "right"]].set_visible(False)
        axes[1, c].set_xlabel("iteration")
    axes[0, 0].legend(fontsize=8, loc="lower right")
    return render(fig)


@figure_function
def confusion_figure(mean_conf: pd.DataFrame) -> bytes | None:
    """Mean confusion matrices, one panel per (trained on, tested on) pair (Figs. 3-4).

    ``None`` when the table is empty.
    """
    pairs = list(dict.fromkeys(zip(mean_conf["train_db"], mean_conf["test_db"], strict=True)))
    dbs = list(dict.fromkeys([*mean_conf["train_db"], *mean_conf["test_db"]]))
    if not pairs:
        return None
    n = len(dbs)
    fig, axes = plt.subplots(n, n, figsize=(3.6 * n, 3.9 * n), squeeze=False,
                             layout="constrained")
    for ax in axes.ravel():
        ax.axis("off")
    for a, b in pairs:
        part = mean_conf[(mean_conf["train_db"] == a) & (mean_conf["test_db"] == b)]
        rows = in_order(part["true"])
        cols = in_order(part["predicted"])
        mat = (part.pivot(index="true", columns="predicted", values="rate")
               .reindex(index=rows, columns=cols).to_numpy())
        ax = axes[dbs.index(a), dbs.index(b)]
        ax.axis("on")
        ax.set_facecolor("0.85")  # NaN: no unit for that expression, or no test image
        ax.imshow(np.ma.masked_invalid(mat), cmap="Blues", vmin=0, vmax=1)
        for i in range(len(rows)):
            for j in range(len(cols)):
                v = mat[i, j]
                if np.isfinite(v):
                    txt = f"{v:.2f}"
                    ax.text(j, i, "1" if txt.startswith("1") else txt[1:], ha="center",
                            va="center", fontsize=6.5, color="white" if v > 0.6 else "black")
        ax.set_xticks(range(len(cols)), [e[:3] for e in cols], fontsize=7, rotation=90)
        ax.set_yticks(range(len(rows)), [e[:3] for e in rows], fontsize=7)
        cond = "matched" if a == b else "swapped"
        ax.set_title(f"trained {a}, tested {b}\n({cond})", fontsize=8)
        ax.set_xlabel("chosen", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
    return render(fig)


@figure_function
def correct_rate_figure(accuracy: pd.DataFrame) -> bytes | None:
    """Correct rate per expression, matched vs swapped, per training database (mean, SD).

    ``None`` when the table is empty.
    """
    dbs = list(dict.fromkeys(accuracy["train_db"]))
    if not dbs:
        return None
    fig, axes = plt.subplots(1, len(dbs), figsize=(4.6 * len(dbs), 3.0), squeeze=False,
                             sharey=True)
    for c, db in enumerate(dbs):
        ax = axes[0, c]
        part = accuracy[accuracy["train_db"] == db]
        g = (part.groupby(["condition", "expression"])["correct_rate"]
             .agg(["mean", "std"]).reset_index())
        exprs = in_order(g["expression"])
        x = np.arange(len(exprs))
        for k, cond in enumerate(("matched", "swapped")):
            sub = g[g["condition"] == cond].set_index("expression").reindex(exprs)
            if sub["mean"].isna().all():
                continue
            ax.bar(x + (k - 0.5) * 0.38, sub["mean"], 0.38, yerr=sub["std"].fillna(0),
                   capsize=2, label=cond, color=("C0", "C1")[k])
        ax.set_xticks(x, [e[:4] for e in exprs], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"networks trained on {db}", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("correct rate")
    if axes[0, 0].get_legend_handles_labels()[0]:
        axes[0, 0].legend(fontsize=8)
    return render(fig)


_MARKERS = dict(zip(VOCABULARY, ["o", "^", "s", "v", "D", "P", "X", "*"], strict=True))


@figure_function
def stimuli_sheet(stimuli: pd.DataFrame, every: int = 2) -> bytes | None:
    """Contact sheet of the AU stimuli (rows: AUs; columns: every ``every``-th level).

    ``None`` when there is no AU stimulus.
    """
    import cv2

    aus = [a for a in dict.fromkeys(stimuli["au"]) if a != 0]
    if not aus:
        return None
    levels = sorted(int(v) for v in stimuli["level"].unique())
    cols = levels[::every] if levels[-1] in levels[::every] else levels[::every] + levels[-1:]
    null = stimuli[stimuli["au"] == 0]["path"].iloc[0]
    fig, axes = plt.subplots(len(aus), len(cols), figsize=(0.9 * len(cols) + 0.6,
                                                           0.9 * len(aus)), squeeze=False)
    for r, au in enumerate(aus):
        for c, lv in enumerate(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            row = stimuli[(stimuli["au"] == au) & (stimuli["level"] == lv)]
            path = null if lv == 0 else row["path"].iloc[0]
            ax.imshow(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cmap="gray", vmin=0,
                      vmax=255)
            if c == 0:
                ax.set_ylabel(f"AU{au}", fontsize=7)
            if r == 0:
                inten = 0.0 if lv == 0 else float(row["intensity"].iloc[0])
                ax.set_title(f"{inten:.1f}", fontsize=7)
    fig.subplots_adjust(wspace=0.03, hspace=0.03)
    return render(fig)


def _profile_matrix(unit_profile: pd.DataFrame) -> pd.DataFrame:
    """AU x level means of one unit; the null image (AU 0) becomes level 0 of every AU."""
    p = unit_profile[unit_profile["au"] != 0]
    mat = p.pivot(index="au", columns="level", values="mean")
    if 0 not in mat.columns:
        mat.insert(0, 0, 0.0)  # the null response is 0 by construction
    return mat.sort_index(axis=1)


@figure_function
def profile_heatmaps(profiles: pd.DataFrame, similarity: pd.DataFrame | None
                     ) -> bytes | None:
    """Every unit's AU x level profile, normalised by its largest |value| (paper Fig. 7).

    ``None`` when the table has no profile.
    """
    dbs = list(dict.fromkeys(profiles["db"]))
    units = in_order(profiles["unit"])
    if not dbs or not units:
        return None
    fig, axes = plt.subplots(len(dbs), len(units), figsize=(2 * len(units), 3.3 * len(dbs)),
                             squeeze=False, layout="constrained")
    same = {}
    if similarity is not None and len(similarity):
        s = similarity[similarity["unit_a"] == similarity["unit_b"]]
        same = dict(zip(s["unit_a"], s["spearman_r"], strict=True))
    im = None
    for r, db in enumerate(dbs):
        for c, unit in enumerate(units):
            ax = axes[r, c]
            p = profiles[(profiles["db"] == db) & (profiles["unit"] == unit)]
            if p.empty:  # the database has no such unit
                ax.axis("off")
                ax.set_title(f"{db}: no {unit} unit", fontsize=8)
                continue
            mat = _profile_matrix(p)
            vals = mat.to_numpy()
            top = np.nanmax(np.abs(vals)) or 1.0
            im = ax.imshow(vals / top, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
            ax.set_yticks(range(len(mat.index)), [str(a) for a in mat.index], fontsize=6)
            ax.set_xticks([0, len(mat.columns) - 1], ["0", "1"], fontsize=6)
            title = f"{db}: {unit}"
            if r == 0 and unit in same:  # NaN: a flat profile (or a single value)
                r_s = same[unit]
                title += f"\nr_s = {r_s:.2f}" if np.isfinite(r_s) else "\nr_s: n/a (flat)"
            ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel("AU", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="response / max |response|")
    return render(fig)


@figure_function
def tuning_curves_figure(profiles: pd.DataFrame, top: int = 3) -> bytes | None:
    """Example tuning curves (paper Figs. 5-6): response against AU intensity.

    One panel per expression unit; for each unit the ``top`` AUs with the largest mean
    |response| at any level (over all databases), one colour per AU, one line style per
    database, mean ± SD across runs as a band. ``None`` when the table has no profile.
    """
    dbs = list(dict.fromkeys(profiles["db"]))
    styles = ["-", "--", ":", "-."]
    units = in_order(profiles["unit"])
    if not dbs or not units:
        return None
    fig, axes = plt.subplots(1, len(units), figsize=(2.45 * len(units), 3.2), squeeze=False,
                             layout="constrained")
    axes = axes[0]
    n_levels = int(profiles["level"].max())
    for ax, unit in zip(axes, units, strict=True):
        u = profiles[profiles["unit"] == unit]
        strength = u[u["au"] != 0].assign(a=lambda d: d["mean"].abs()).groupby("au")["a"].max()
        aus = list(strength.sort_values(ascending=False).index[:top])
        for k, au in enumerate(aus):
            color = plt.get_cmap("tab10")(k)
            for d, db in enumerate(dbs):
                c = u[(u["au"].isin([au, 0])) & (u["db"] == db)].sort_values("level")
                x = c["level"] / max(n_levels, 1)
                ax.plot(x, c["mean"], styles[d % len(styles)], color=color,
                        label=f"AU{au} {db}")
                ax.fill_between(x, c["mean"] - c["sd"], c["mean"] + c["sd"], color=color,
                                alpha=0.12, linewidth=0)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_title(f"{unit} unit", fontsize=9)
        ax.set_xlabel("AU intensity", fontsize=8)
        ax.tick_params(labelsize=7)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="best")
    axes[0].set_ylabel("FC3 response − null", fontsize=8)
    return render(fig)


@figure_function
def sum_difference_figure(profiles: pd.DataFrame, db_a: str, db_b: str) -> bytes | None:
    """Sum and difference of the same unit's profiles in two databases (paper Fig. 8).

    Each database's profile is first normalised by its largest |value| (as in Fig. 7);
    rows: the sum (A + B, what both share) and the difference (A − B, what differs).
    ``None`` when the two databases have no unit in common.
    """
    units = [u for u in in_order(profiles.loc[profiles["db"] == db_a, "unit"])
             if (profiles.loc[profiles["db"] == db_b, "unit"] == u).any()]
    if not units:
        return None
    fig, axes = plt.subplots(2, len(units), figsize=(2 * len(units), 6.4), squeeze=False,
                             layout="constrained")
    im = None
    for c, unit in enumerate(units):
        mats = []
        for db in (db_a, db_b):
            p = profiles[(profiles["db"] == db) & (profiles["unit"] == unit)]
            mat = _profile_matrix(p)
            mats.append(mat / (np.nanmax(np.abs(mat.to_numpy())) or 1.0))
        for r, (name, val) in enumerate((("sum", mats[0] + mats[1]),
                                         ("difference", mats[0] - mats[1]))):
            ax = axes[r, c]
            im = ax.imshow(val.to_numpy(), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
            ax.set_yticks(range(len(val.index)), [str(a) for a in val.index], fontsize=6)
            ax.set_xticks([0, len(val.columns) - 1], ["0", "1"], fontsize=6)
            ax.set_title(f"{unit}: {name}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{db_a} {'+' if r == 0 else '−'} {db_b}\nAU", fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="normalised response")
    return render(fig)


@figure_function
def similarity_confusion_figure(links: pd.DataFrame) -> bytes | None:
    """Profile r_s matrix beside the swapped confusion matrix, and their scatter (Fig. 9).

    ``None`` when the table is empty.
    """
    pairs = list(dict.fromkeys(zip(links["trained"], links["tested"], strict=True)))
    if not pairs:
        return None
    fig, axes = plt.subplots(len(pairs), 3, figsize=(11, 3.5 * len(pairs)), squeeze=False,
                             layout="constrained")
    for k, (a, b) in enumerate(pairs):
        part = links[(links["trained"] == a) & (links["tested"] == b)]
        rows, cols = in_order(part["true"]), in_order(part["predicted"])
        for col, (value, title, cmap, lo) in enumerate((
                ("profile_r", f"r_s: {b} unit (row) vs {a} unit (col)", "RdBu_r", -1),
                ("confusion_rate", f"trained {a}, tested {b}: rate", "Blues", 0))):
            mat = (part.pivot(index="true", columns="predicted", values=value)
                   .reindex(index=rows, columns=cols))
            ax = axes[k, col]
            ax.set_facecolor("0.85")
            ax.imshow(np.ma.masked_invalid(mat.to_numpy(dtype=float)), cmap=cmap, vmin=lo,
                      vmax=1)
            ax.set_xticks(range(len(cols)), [e[:3] for e in cols], fontsize=7, rotation=90)
            ax.set_yticks(range(len(rows)), [e[:3] for e in rows], fontsize=7)
            ax.set_title(title, fontsize=8)
        ax = axes[k, 2]
        ax.scatter(part["profile_r"], part["confusion_rate"], s=12)
        ax.set_xlabel("profile r_s", fontsize=8)
        ax.set_ylabel("confusion rate", fontsize=8)
        ax.set_title(f"r_s = {part['spearman_r'].iloc[0]:.2f} (p = {part['p'].iloc[0]:.2g})",
                     fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    return render(fig)


@figure_function
def pca_figure(scores: pd.DataFrame, variance: pd.DataFrame) -> bytes | None:
    """PC1-2 and PC1-3 of the profiles: symbol per expression, filled/open per database.

    With a single component (one AU in the study: ``[tuning] aus = [12]``) the profiles'
    PC1 scores are shown on one axis, a row per database. ``None`` when the table is empty.
    """
    dbs = list(dict.fromkeys(scores["db"]))
    if not dbs:
        return None
    wide = scores.pivot_table(index=["db", "unit"], columns="pc", values="score")
    ratio = dict(zip(variance["pc"], variance["explained_variance_ratio"], strict=True))
    pcs = [c for c in (2, 3) if c in wide.columns]
    fig, axes = plt.subplots(1, max(1, len(pcs)), figsize=(5 * max(1, len(pcs)), 4),
                             squeeze=False)
    for ax, pc in zip(axes[0], pcs or [None], strict=True):
        for (db, unit), row in wide.iterrows():
            filled = dbs.index(db) == 0
            y = row[pc] if pc is not None else dbs.index(db)
            ax.scatter(row[1], y, marker=_MARKERS[unit], s=60,
                       facecolors=f"C{expression_index(unit)}" if filled else "none",
                       edgecolors=f"C{expression_index(unit)}", linewidths=1.4)
        ax.set_xlabel(f"PC1 ({ratio.get(1, 0):.0%})")
        if pc is None:  # one component: a row per database
            ax.set_yticks(range(len(dbs)), [str(d) for d in dbs])
            ax.set_ylim(len(dbs) - 0.5, -0.5)
            ax.set_title("one principal component (the profiles span one AU)", fontsize=9)
        else:
            ax.set_ylabel(f"PC{pc} ({ratio.get(pc, 0):.0%})")
            ax.axhline(0, color="0.8", lw=0.8)
        ax.axvline(0, color="0.8", lw=0.8)
    handles = [plt.Line2D([], [], marker=_MARKERS[e], ls="", color=f"C{expression_index(e)}",
                          label=e) for e in in_order(scores["unit"])]
    handles += [plt.Line2D([], [], marker="o", ls="", color="k", label=f"{dbs[0]} (filled)")]
    if len(dbs) > 1:
        handles += [plt.Line2D([], [], marker="o", ls="", mfc="none", color="k",
                               label=f"{', '.join(map(str, dbs[1:]))} (open)")]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="center left",
                       bbox_to_anchor=(1.02, 0.5))
    return render(fig)


@figure_function
def sweep_figure(summary: pd.DataFrame) -> bytes | None:
    """Matched and swapped correct rate per backbone of a sweep (mean, 95 % interval).

    One panel per group of databases and protocol; ``None`` when no study has numbers.
    """
    summary = summary[summary["seeds"] > 0]
    if summary.empty:
        return None
    panels = list(dict.fromkeys(zip(summary["databases"], summary["protocol"], strict=True)))
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.2, 1.3 * summary["backbone"]
                                                          .nunique() + 1.6) * len(panels),
                                                      3.0), squeeze=False, sharey=True)
    for c, (dbs, protocol) in enumerate(panels):
        ax = axes[0, c]
        part = summary[(summary["databases"] == dbs) & (summary["protocol"] == protocol)]
        x = np.arange(len(part))
        for k, cond in enumerate(("matched", "swapped")):
            mean = part[f"{cond}_mean"].to_numpy(dtype=float)
            low = np.nan_to_num(mean - part[f"{cond}_low"].to_numpy(dtype=float))
            high = np.nan_to_num(part[f"{cond}_high"].to_numpy(dtype=float) - mean)
            ax.bar(x + (k - 0.5) * 0.38, mean, 0.38, yerr=[low, high], capsize=2,
                   label=cond, color=("C0", "C1")[k])
        ax.set_xticks(x, list(part["backbone"]), fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"{dbs} ({protocol})", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0, 0].set_ylabel("correct rate")
    axes[0, 0].legend(fontsize=8)
    return render(fig)
