"""Report: the self-contained HTML report, from every stage's section.

The report stage builds the summary (headline numbers first, the databases at a glance,
every deviation from the reference study), then each stage's section in the pipeline's
order, then provenance, and writes ``report.html`` (:func:`~facedialect.report.write_report`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from facedialect.config import Study
from facedialect.databases import summarize
from facedialect.report.html import (
    Code,
    Section,
    SectionBuilder,
    Table,
    Text,
    pretty_json,
    write_report,
)
from facedialect.run.store import RunDir
from facedialect.stages.base import Context, Stage, Summary, recorded_study
from facedialect.stages.evaluate import tested_in
from facedialect.stats.classification import overall_correct
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS, VOCABULARY, in_order


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Write ``report.html`` from the summary, the stages' sections and provenance."""
    with run.stage("report") as info:
        path = build_report(run, ctx.stages)
        info["path"] = str(path)
    return Summary("report", [f"report: {path}"], {"path": str(path)})


def build_report(run: RunDir, stages: Sequence[Stage], out: str | Path | None = None) -> Path:
    """Assemble the report of ``run`` from the sections of ``stages`` (their order).

    Parameters
    ----------
    run : RunDir
        The run directory.
    stages : sequence of Stage
        The pipeline's stages (:data:`facedialect.pipeline.STAGES`).
    out : path, optional
        Where to write (default ``RUN/report.html``).
    """
    builders: list[SectionBuilder] = [summary_section]
    builders += [s.section for s in stages if s.name != "report"]
    builders.append(provenance_section)
    return write_report(run, builders, out)


#: The reference study's numbers (KDEF vs KRC, AlexNet; docs/method.md §6-7), shown beside
#: the study's own for orientation.
PAPER_MATCHED_SWAPPED: dict[str, tuple[float, float]] = {"KDEF": (0.76, 0.41),
                                                          "KRC": (0.75, 0.50)}


PAPER_SAME_EXPRESSION_R: dict[str, float] = {
    "happy": 0.71, "surprised": 0.69, "disgusted": 0.49, "fearful": 0.39, "neutral": 0.25,
    "sad": 0.18, "angry": 0.12}


PAPER_SIMILARITY_CONFUSION_R: tuple[float, float] = (0.59, 0.49)


def _headline_accuracy(run: RunDir) -> pd.DataFrame | None:
    if not run.has_table("accuracy"):
        return None
    per_run = overall_correct(run.read_table("accuracy"))
    per_run = per_run[per_run["variants"] == "all"]
    rows = []
    for train_db, part in per_run.groupby("train_db", sort=False):
        row: dict = {"trained on": train_db}
        for cond in ("matched", "swapped"):
            c = part[part["condition"] == cond]
            if len(c):
                # per network: mean over the databases it was tested on in this condition
                net = c.groupby("run")["correct_rate"].mean()
                row[cond] = f"{net.mean():.2f} ± {net.std(ddof=1) if len(net) > 1 else 0:.2f}"
        row["runs"] = int(part["run"].nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def _headline_similarity(run: RunDir) -> pd.DataFrame | None:
    if not run.has_table("profile_similarity"):
        return None
    sim = run.read_table("profile_similarity")
    same = sim[sim["unit_a"] == sim["unit_b"]].copy()
    if same.empty:
        return None
    same["pair"] = same["db_a"] + " vs " + same["db_b"]
    table = same.pivot_table(index="unit_a", columns="pair", values="spearman_r",
                             sort=False, dropna=False
                             ).reset_index().rename(columns={"unit_a": "expression"})
    table["paper (KDEF vs KRC)"] = table["expression"].map(PAPER_SAME_EXPRESSION_R)
    first = [c for c in table.columns if " vs " in c][0]
    return table.sort_values(first, ascending=False).round(2)


def _headline_links(run: RunDir) -> pd.DataFrame | None:
    if not run.has_table("similarity_vs_confusion"):
        return None
    links = run.read_table("similarity_vs_confusion")
    return (links[["trained", "tested", "spearman_r", "p"]].drop_duplicates()
            .reset_index(drop=True))


def deviations(run: RunDir, images: pd.DataFrame | None = None) -> list[str]:
    """Every way this run departs from the reference study's protocol (for the summary).

    Read from the manifest (training protocol notes, weights, backbone, skipped stages)
    and the resolved study file (subjects per database, base face); ``images`` is
    ``tables/images.csv`` when the caller has read it already (else it is read here).
    """
    m = run.read_manifest()
    out: list[str] = []
    training = m.get("training", {})
    if training.get("weights_random"):
        out.append("the backbone has RANDOM weights: these numbers test the software, "
                   "not the science")
    backbone = str(training.get("backbone", ""))
    if backbone and not backbone.startswith("alexnet"):
        out.append(f"backbone {backbone.split('|')[0]} instead of the paper's AlexNet")
    out.extend(training.get("protocol", {}).get("notes", []))
    for db, scale in training.get("lr_scale", {}).items():
        if scale < 1.0:
            out.append(f"database {db}: learning rates scaled by {scale:.3g} (the protocol's "
                       "lr_cap: its features are larger than the rates were chosen for)")
    study = recorded_study(run)
    if study is not None:
        exprs = study.study.expressions
        if list(exprs) != list(EXPRESSIONS):
            out.append(f"label set {', '.join(exprs)} instead of the paper's seven "
                       "expressions")
        for db in study.databases:
            n = db.n_subjects
            if n != DEFAULT_SUBJECTS:
                out.append(f"database {db.name}: "
                           f"{'all' if n is None else n} subjects instead of {DEFAULT_SUBJECTS}")
            if db.exclude_expressions or db.label_map:
                out.append(f"database {db.name}: label map {db.label_map}, "
                           f"excluded expressions {db.exclude_expressions}")
        if images is None and run.has_table("images"):
            images = run.read_table("images")
        if images is not None:
            for name, info in summarize(images).items():
                takes = info["takes"]
                if takes and takes["max"] > 1:
                    out.append(f"database {name}: several images per subject and expression "
                               f"({takes['min']}-{takes['max']}; the paper used one)")
        if run.has_table("au_profiles"):
            out.append(f"AU stimuli made by facedialect on base face "
                       f"{study.tuning.base_face!r}, not with FaceGen on the average neutral "
                       "female KDEF face")
    for stage, note in m.get("skipped", {}).items():
        out.append(f"{stage}: {note}")
    return out


def summary_section(run: RunDir) -> Section | None:
    """Headline numbers first, then the databases at a glance and every deviation."""
    if not run.has_table("images"):
        return None
    images = run.read_table("images")
    blocks: list = []
    acc = _headline_accuracy(run)
    if acc is not None:
        paper = ", ".join(f"{k} {v[0]:.2f} matched / {v[1]:.2f} swapped"
                          for k, v in PAPER_MATCHED_SWAPPED.items())
        blocks.append(Table(acc, "Mean correct rate over the expressions "
                            f"({tested_in(run)}; swapped: those both databases have), "
                            "mean ± SD across runs: tested on its own database (matched) "
                            f"and on the other(s) (swapped). The paper: {paper}.",
                            "headline_accuracy"))
    sim = _headline_similarity(run)
    if sim is not None:
        blocks.append(Table(sim, "Spearman r_s between the two databases' AU tuning profiles "
                            "of the same expression unit (high: the networks read that "
                            "expression from the same facial movements), beside the paper's "
                            "values.", "headline_profile_r"))
    links = _headline_links(run)
    if links is not None:
        blocks.append(Table(links, "Does profile similarity predict confusion? Spearman r_s "
                            "over the 49 cells between the 7 x 7 profile correlations and "
                            "the swapped confusion rates (paper: "
                            f"{PAPER_SIMILARITY_CONFUSION_R[0]} and "
                            f"{PAPER_SIMILARITY_CONFUSION_R[1]}).", "headline_links"))
    if run.has_table("robustness"):
        rob = run.read_table("robustness")
        wide = rob.pivot_table(index=["db", "subjects_main", "subjects_all"], columns="unit",
                               values="spearman_r", sort=False, dropna=False
                               ).round(2).reset_index()
        wide = wide[[c for c in wide.columns if c not in VOCABULARY]
                    + in_order(wide.columns)]
        blocks.append(Table(wide, "Robustness: Spearman r_s between each unit's profile from "
                            "networks trained on all complete subjects and from the main "
                            "selection (tables/robustness.csv).", "headline_robustness"))
    rows = []
    prep = run.read_table("preprocess") if run.has_table("preprocess") else None
    for db, part in images.groupby("db", sort=False):
        inc = part[part["included"].astype(bool)]
        has_ids = bool((part["subject"].fillna("") != "").any())
        row = {"database": db, "files found": len(part), "images included": len(inc),
               "subjects included": inc["subject"].nunique() if has_ids else "no subject ids",
               "expressions": ", ".join(in_order(inc["expression"])),
               "excluded": len(part) - len(inc)}
        if prep is not None:
            p = prep[prep["db"] == db]
            row["faces detected"] = (f"{int(p['detected'].sum())}/{len(p)} "
                                     f"({p['detected'].mean():.1%})" if len(p) else "n/a")
        rows.append(row)
    blocks.append(Table(pd.DataFrame(rows), "Databases at a glance (exclusions: see "
                        "Databases and Pre-processing).", "summary"))
    if prep is None:
        blocks.append(Text("Pre-processing has not run yet (`facedialect preprocess`)."))
    devs = deviations(run, images)
    if devs:
        blocks.append(Table(pd.DataFrame({"deviation from the reference study": devs}),
                            "Every way this run departs from the paper's protocol.",
                            "deviations"))
    return Section("summary", "Summary", blocks)


def provenance_section(run: RunDir) -> Section | None:
    """Versions, seed, input hashes, stage timings, and the resolved study file."""
    if not run.manifest_path.exists():
        return None
    m = run.read_manifest()
    blocks: list = []
    stages = m.get("stages", {})
    if stages:
        blocks.append(Table(pd.DataFrame([{"stage": k, **v} for k, v in stages.items()]),
                            "Stage timings (seconds) and counts.", "stages"))
    cfg = run.path / "config.toml"
    if cfg.exists():
        blocks.append(Code(cfg.read_text(encoding="utf-8"), "The resolved study file "
                           "(config.toml, defaults filled in)."))
    blocks.append(Code(pretty_json({k: m.get(k) for k in ("versions", "seed", "inputs",
                                                          "databases")}),
                       "Package versions, seed and input hashes (manifest.json)."))
    return Section("provenance", "Provenance", blocks)


STAGE = Stage(
    name="report", title="write the HTML report", reads=(), writes=("report.html",),
    run=run, section=summary_section, always=True)
