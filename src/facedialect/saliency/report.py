"""The report's saliency and modification section (built from the run directory)."""

from __future__ import annotations

from facedialect.report.html import Figure, Section, Table, Text
from facedialect.run.store import RunDir

__all__ = ["saliency_section"]


def _figure(run: RunDir, name: str, caption: str) -> Figure | None:
    path = run.figures / f"{name}.png"
    return Figure(path.read_bytes(), caption, name) if path.exists() else None


def saliency_section(run: RunDir) -> Section | None:
    """Saliency grids, differences, region shares and statistics; the modification grid."""
    has_sal = run.has_table("saliency_regions")
    has_mod = run.has_table("modification")
    if not (has_sal or has_mod):
        return None
    blocks: list = []
    if has_sal:
        regions = run.read_table("saliency_regions")
        images = run.read_table("saliency_images")
        methods = list(dict.fromkeys(regions["method"]))
        missing = images[~images["landmarks"].astype(bool)]
        blocks.append(Text(
            "Saliency: the gradient of each test image's own-class probability with respect "
            "to its pixels, through the frozen backbone and the head of every run that "
            "tested it (matched testing), as plain gradients and with guided "
            "back-propagation (negative gradients stopped at every ReLU). Each |map| is "
            "normalized to sum 1, averaged over runs, warped to the mean face shape by the "
            "image's 68 landmarks and averaged over images (SCIENCE §8, docs/saliency.md). "
            f"{len(images)} test images, {int(images['landmarks'].astype(bool).sum())} with "
            f"landmarks" + (f"; {len(missing)} without landmarks were left out "
                            "(tables/saliency_images.csv)." if len(missing) else ".")))
        for method in methods:
            for fig in (_figure(run, f"saliency_grid_{method}",
                                f"Mean saliency ({method}) per expression (rows) and "
                                "database (columns), over the average test face, from "
                                "saliency/maps.npz."),):
                if fig:
                    blocks.append(fig)
            for path in sorted(run.figures.glob(f"saliency_difference_{method}_*.png")):
                blocks.append(Figure(path.read_bytes(), f"Difference of the mean maps "
                                     f"({method}); red: the first database's networks look "
                                     "there more.", path.stem))
            fig = _figure(run, f"saliency_regions_{method}",
                          f"Share of |saliency| ({method}) per face region: per unit "
                          "(subject) mean over runs and images, mean ± SE over units, "
                          "from tables/saliency_regions.csv.")
            if fig:
                blocks.append(fig)
        if run.has_table("saliency_stats"):
            stats = run.read_table("saliency_stats")
            blocks.append(Text(
                "Region differences between databases per expression: subject means "
                "(shares averaged over runs, then over a subject's images) compared by a "
                "two-sided permutation test of the difference of means; Hedges' g; p "
                "corrected by Benjamini-Hochberg over the expressions and regions of each "
                "method and pair of databases. Rows with p_fdr < 0.05 first."))
            order = stats.assign(_s=stats["p_fdr"].fillna(2.0)).sort_values(
                ["_s", "method", "expression"]).drop(columns="_s")
            blocks.append(Table(order, "Saliency share differences between databases "
                                "(tables/saliency_stats.csv).", "saliency_stats",
                                max_rows=40))
    if has_mod:
        table = run.read_table("modification")
        blocks.append(Text(
            "Emotion modification: gradient ascent on the pre-processed face toward each "
            "target expression of a database's networks (mean log-probability over runs), "
            "with a total-variation penalty, pixels kept in 0..255 and the background "
            "outside the face oval unchanged. Above each image: the target probability "
            "(mean over runs) before → after."))
        fig = _figure(run, "modification_grid", "A neutral face converted to each "
                      "expression by each database's networks, from "
                      "tables/modification.csv and modify/grid/.")
        if fig:
            blocks.append(fig)
        last = table[table["step"] == table["step"].max()]
        last = last[last["target"] == last["expression"]]
        first = table[(table["step"] == 0) & (table["target"] == table["expression"])]
        summary = first.merge(last, on=["db", "image", "target"], suffixes=("_start", "_end"))
        blocks.append(Table(summary[["db", "target", "probability_start", "probability_end"]],
                            "Target probability before and after the ascent.",
                            "modification_summary"))
    return Section("saliency", "Saliency and emotion modification", blocks)
