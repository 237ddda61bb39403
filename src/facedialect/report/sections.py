"""The report's sections for databases, pre-processing and provenance.

Each builder reads tables and figures from the run directory and returns a
:class:`~facedialect.report.html.Section`, or ``None`` when its stage has not run.
"""

from __future__ import annotations

import pandas as pd

from facedialect.databases import reason_category, summarize
from facedialect.report.figures import exclusions_figure
from facedialect.report.html import (
    Code,
    Figure,
    Section,
    Table,
    Text,
    figure_block,
    pretty_json,
    register_section,
)
from facedialect.run.store import RunDir
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS, VOCABULARY, in_order


def _images(run: RunDir) -> pd.DataFrame | None:
    return run.read_table("images") if run.has_table("images") else None


#: The reference study's numbers (KDEF vs KRC, AlexNet; SCIENCE.md §6-7), shown beside
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
    from facedialect.analysis.classification import overall_correct

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
    import tomllib

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
    cfg_path = run.path / "config.toml"
    if cfg_path.exists():
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            cfg = {}
        exprs = cfg.get("study", {}).get("expressions", list(EXPRESSIONS))
        if list(exprs) != list(EXPRESSIONS):
            out.append(f"label set {', '.join(exprs)} instead of the paper's seven "
                       "expressions")
        for db in cfg.get("databases", []):
            n = db.get("n_subjects")
            if n != DEFAULT_SUBJECTS:
                out.append(f"database {db.get('name')}: "
                           f"{'all' if n is None else n} subjects instead of {DEFAULT_SUBJECTS}")
            if db.get("exclude_expressions") or db.get("label_map"):
                out.append(f"database {db.get('name')}: label map {db.get('label_map', {})}, "
                           f"excluded expressions {db.get('exclude_expressions', [])}")
        if images is None and run.has_table("images"):
            images = run.read_table("images")
        if images is not None:
            for name, info in summarize(images).items():
                takes = info["takes"]
                if takes and takes["max"] > 1:
                    out.append(f"database {name}: several images per subject and expression "
                               f"({takes['min']}-{takes['max']}; the paper used one)")
        base = cfg.get("tuning", {}).get("base_face")
        if base and run.has_table("au_profiles"):
            out.append(f"AU stimuli made by facedialect on base face {base!r}, not with "
                       "FaceGen on the average neutral female KDEF face")
    for stage, note in m.get("skipped", {}).items():
        out.append(f"{stage}: {note}")
    return out


@register_section
def summary_section(run: RunDir) -> Section | None:
    """Headline numbers first, then the databases at a glance and every deviation."""
    images = _images(run)
    if images is None:
        return None
    blocks: list = []
    acc = _headline_accuracy(run)
    if acc is not None:
        paper = ", ".join(f"{k} {v[0]:.2f} matched / {v[1]:.2f} swapped"
                          for k, v in PAPER_MATCHED_SWAPPED.items())
        blocks.append(Table(acc, "Mean correct rate over the expressions "
                            f"({_tested_in(run)}; swapped: those both databases have), "
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


@register_section
def database_section(run: RunDir) -> Section | None:
    """Counts per expression, exclusions by reason, and every excluded file."""
    images = _images(run)
    if images is None:
        return None
    inc = images[images["included"].astype(bool)]
    counts = (inc.groupby(["db", "expression"]).size().unstack(fill_value=0)
              .reindex(columns=in_order(inc["expression"]), fill_value=0).reset_index())
    takes = []
    for db, info in summarize(images).items():
        if info["images_per_subject"]:
            s, t = info["images_per_subject"], info["takes"]
            takes.append({"db": db, "subjects": info["n_subjects_selected"],
                          "images per subject: range": f"{s['min']}-{s['max']}",
                          "images per subject: median": s["median"],
                          "per subject and expression: range": f"{t['min']}-{t['max']}",
                          "per subject and expression: median": t["median"]})
        else:
            takes.append({"db": db, "subjects": "no subject ids"})
    exc = images[~images["included"].astype(bool)].copy()
    exc["category"] = exc["reason"].fillna("").map(reason_category)
    by_reason = (exc.groupby(["db", "category"]).size().rename("files").reset_index()
                 if len(exc) else pd.DataFrame(columns=["db", "category", "files"]))
    blocks: list = [
        Text("Each database was parsed with its preset; files that do not fit the naming, "
             "cannot be read, repeat another file's bytes, have an expression outside the "
             "study's label set, or belong to subjects without an image of every expression "
             "the database has (in the frontal view) are excluded and listed here "
             "(SCIENCE §1)."),
        Table(counts, "Included images per expression (rows: databases).", "images_per_expression"),
        Table(pd.DataFrame(takes), "Images per subject, and per subject and expression "
              "(several takes of one expression are all used unless the database's option "
              "takes = 'first'; every take of a subject stays in one split part).",
              "images_per_subject"),
    ]
    blocks.append(figure_block(exclusions_figure, images, caption="Included images per "
                               "expression and database, from tables/images.csv.",
                               name="images_per_expression",
                               missing="No image is included: no figure of images per "
                               "expression."))
    blocks.append(Table(by_reason, "Excluded files by reason.", "exclusions_by_reason"))
    if len(exc):
        blocks.append(Table(exc[["db", "path", "expression", "subject", "reason"]],
                            "Every excluded file and why.", "excluded_files", max_rows=40))
    return Section("databases", "Databases", blocks)


@register_section
def preprocess_section(run: RunDir) -> Section | None:
    """Detection results, contact sheets and faces that were not detected."""
    if not run.has_table("preprocess"):
        return None
    prep = run.read_table("preprocess")
    rate = (prep.groupby("db", sort=False)
            .agg(candidates=("detected", "size"), detected=("detected", "sum"))
            .reset_index())
    rate["detection_rate"] = rate["detected"] / rate["candidates"]
    several = prep[prep["reason"].fillna("").str.startswith("several faces")]
    rate["several_faces"] = rate["db"].map(several.groupby("db").size()).fillna(0).astype(int)
    blocks: list = [
        Text("Every candidate image was converted to grayscale, the largest face found by "
             "OpenCV's Haar frontal-face cascade was cropped, its histogram set to mean 128 "
             "and SD 32, everything outside a feathered oval set to 128, and the result "
             "resized to 224x224 (SCIENCE §2). Training uses 50 deterministic variants of "
             "each face (5 sizes x 5 positions x 2 reflections, SCIENCE §3)."),
        Table(rate, "Face detection per database.", "detection"),
    ]
    for fig in sorted(run.figures.glob("contact_sheet_*.png")):
        db = fig.stem.removeprefix("contact_sheet_")
        blocks.append(Figure(fig.read_bytes(), f"{db}: included faces per expression, the "
                             "original (around the detected box) beside the pre-processed "
                             "face.", fig.stem))
    missed = prep[~prep["detected"].astype(bool)]
    if len(missed):
        blocks.append(Table(missed[["db", "path", "reason"]], "Images without a usable face "
                            "(excluded).", "faces_not_detected"))
    return Section("preprocessing", "Pre-processing", blocks)


def _training_facts(run: RunDir) -> dict:
    return run.read_manifest().get("training", {})


def _tested_in(run: RunDir) -> str:
    """The variants each test image was tested in, in words (the protocol's test_variants)."""
    n = _training_facts(run).get("protocol", {}).get("test_variants", 50)
    return "all 50 variants" if n == 50 else f"{n} of the 50 variants"


@register_section
def training_section(run: RunDir) -> Section | None:
    """Training curves (paper Fig. 2) and the protocol with its deviations."""
    if not run.has_table("training_curves"):
        return None
    from facedialect.report.figures import training_curves_figure

    curves = run.read_table("training_curves")
    facts = _training_facts(run)
    proto = facts.get("protocol", {})
    blocks: list = []
    if facts.get("weights_random"):
        blocks.append(Text("WARNING: the backbone has RANDOM weights (weights = 'random'): "
                           "these numbers test the software, not the science."))
    blocks.append(Text(
        f"Backbone {facts.get('backbone', '?')}, frozen; new head FC 4096-4096-7 with "
        f"dropout {proto.get('dropout')} and He initialisation, trained with SGD "
        f"(momentum {proto.get('momentum')}, batch {proto.get('batch_size')}, learning "
        f"rates {proto.get('lr_schedule')}) for {proto.get('iterations')} iterations, "
        f"{proto.get('runs')} runs per database, each with its own split, order, dropout "
        f"and initialisation seeds. Protocol '{proto.get('name')}'."))
    for note in proto.get("notes", []):
        blocks.append(Text(f"Deviation from the paper: {note}."))
    blocks.append(figure_block(
        training_curves_figure, curves, caption="Correct rate and loss during training "
        "(blue: mini-batches, moving average of 25 iterations, mean ± SD across runs) and on "
        "the validation subjects after each epoch (red), from tables/training_curves.csv.",
        name="training_curves", missing="No training curves to draw: "
        "tables/training_curves.csv has no rows."))
    last = curves[curves["split"] == "validation"].sort_values("iteration")
    last = last.groupby(["db", "run"]).tail(1)
    blocks.append(Table(last.groupby("db")["correct_rate"].agg(["mean", "std", "count"])
                        .reset_index(), "Final validation correct rate per database "
                        "(mean, SD across runs).", "final_validation"))
    if run.has_table("splits"):
        sp = run.read_table("splits")
        counts = (sp.groupby(["db", "run", "part", "expression"]).size()
                  .groupby(["db", "part", "expression"]).mean().unstack(fill_value=0)
                  .reindex(columns=in_order(sp["expression"]), fill_value=0).round(1)
                  .reset_index())
        blocks.append(Table(counts, "Images per expression in each part (mean over runs); "
                            f"split unit: {facts.get('split_by', 'auto')} (auto: by subject "
                            "where the database has subject ids, else by image, stratified "
                            "by expression); class balance: "
                            f"{facts.get('class_balance', 'none')} (oversample: each "
                            "expression's training images repeated up to the largest "
                            "count).", "split_counts"))
    return Section("training", "Training", blocks)


@register_section
def classification_section(run: RunDir) -> Section | None:
    """Matched and swapped testing: confusion matrices, correct rates, statistics."""
    if not run.has_table("accuracy"):
        return None
    from facedialect.analysis.classification import mean_confusion, overall_correct
    from facedialect.report.figures import confusion_figure, correct_rate_figure

    conf = run.read_table("confusion")
    acc = run.read_table("accuracy")
    stats = run.read_table("stats_classification")
    per_run = overall_correct(acc)
    summary = (per_run.groupby(["train_db", "test_db", "condition", "variants"])
               ["correct_rate"].agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"count": "runs"}))
    blocks: list = [
        Text("Each network was tested on the test subjects of its own run: of its own "
             "database (matched) and of every other database (swapped), on "
             f"{_tested_in(run)} of each test image (variants = all) and on the plain "
             "image alone (variants = plain). SCIENCE §6."),
        Table(summary, "Mean correct rate (over expressions) per network, mean and SD "
              "across runs.", "correct_rate_summary"),
        figure_block(confusion_figure, mean_confusion(conf[conf["variants"] == "all"]),
                     caption="Confusion matrices averaged over runs (rows: true expression, "
                     f"columns: chosen; rows sum to 1), {_tested_in(run)}, from "
                     "tables/confusion.csv.", name="confusion",
                     missing="No confusion matrices to draw: tables/confusion.csv has no "
                     "rows."),
        figure_block(correct_rate_figure, acc[acc["variants"] == "all"], caption="Correct "
                     "rate per expression, matched vs swapped (mean ± SD across runs), from "
                     "tables/accuracy.csv.", name="correct_rate",
                     missing="No correct rates to draw: tables/accuracy.csv has no rows."),
        Table(stats, "t-tests and two-way ANOVAs on per-run correct rates (runs as "
              "replicates; scipy / statsmodels; ANOVAs over the expressions every compared "
              "group has).", "stats_classification"),
    ]
    if run.has_table("classes"):
        classes = run.read_table("classes")
        units = {db: set(g.loc[g["unit"].astype(bool), "expression"])
                 for db, g in classes.groupby("db", sort=False)}
        if len({frozenset(u) for u in units.values()}) > 1:
            wide = (classes.assign(cell=[f"{n}" if u else "absent" for n, u in
                                         zip(classes["images"], classes["unit"].astype(bool),
                                             strict=True)])
                    .pivot(index="db", columns="expression", values="cell"))
            wide = wide[in_order(wide.columns)].reset_index()
            absent = [f"{a}-trained networks have no unit for {b}'s "
                      f"{', '.join(in_order(units[b] - units[a]))}"
                      for a in units for b in units if a != b and units[b] - units[a]]
            blocks.insert(1, Table(
                wide, "Label sets: included images per expression and database; 'absent': "
                "the database has no such expression and its networks no such unit "
                "(tables/classes.csv). Swapped correct rates are over the expressions both "
                "databases have; the confusion matrices span both label sets (grey: no unit "
                "or no test image). " + "; ".join(absent) + ".", "label_sets"))
    return Section("classification", "Classification: matched and swapped", blocks)


def _base_face_text(run: RunDir) -> str:
    """The base face of the tuning stimuli, in words (from the manifest)."""
    from facedialect.faces.base import BaseFace

    info = run.read_manifest().get("stages", {}).get("tuning", {})
    base = str(info.get("base_face", "builtin"))
    image = info.get("base_face_image") or ""
    try:
        face = BaseFace.parse(base, must_exist=False)
    except ValueError:  # text no parser reads (e.g. a ~user of another computer)
        return f"the photo-textured 3D face of {image or base}"
    return face.describe(image)


@register_section
def tuning_section(run: RunDir) -> Section | None:
    """AU stimuli, tuning profiles, similarity vs confusion, PCA (paper Figs. 7-10)."""
    skipped = run.read_manifest().get("skipped", {}).get("tuning")
    if not run.has_table("au_profiles"):
        return Section("tuning", "AU tuning", [Text(skipped)]) if skipped else None
    from facedialect.report.figures import (
        pca_figure,
        profile_heatmaps,
        similarity_confusion_figure,
        stimuli_sheet,
        sum_difference_figure,
        tuning_curves_figure,
    )

    prof = run.read_table("au_profiles")
    sim = run.read_table("profile_similarity") if run.has_table("profile_similarity") else None
    blocks: list = [Text(
        f"Each AU rose from 0 to 1 in steps on the base face ({_base_face_text(run)}) "
        "while every other AU stayed off; level 0 is the same null image for all AUs. The "
        "stimuli were pre-processed like the training images and passed through every "
        "network; a unit's response is its FC3 value before softmax minus its value for "
        "the null image, averaged over runs (SCIENCE §7). Reading a profile: a unit "
        "that tunes to an AU finds that AU's appearance to be evidence for its expression; "
        "it does not show that the database's posers use that AU. AUs that look alike "
        "(AU23 lip tightener and AU24 lip pressor narrow the lips' red alike; AU15 and AU17 "
        "both turn the mouth down) tune the same units: on synthetic cultures, the angry "
        "unit of a culture that uses AU23 responds to AU24 nearly as strongly as that of "
        "a culture that uses AU24; the response falls when AU23 is taken out of its angry "
        "prototype and vanishes when sad's AU15 is taken out too (docs/validation.md). "
        "Compare databases by the difference of their profiles "
        "(below) rather than by single positive tunings.")]
    stim = run.path / "stimuli" / "stimuli.csv"
    if stim.exists():
        blocks.append(figure_block(stimuli_sheet, pd.read_csv(stim), caption="The stimuli: "
                                   "rows AUs, columns intensity (every second level), from "
                                   "stimuli/.", name="stimuli",
                                   missing="No AU stimuli to show: stimuli/stimuli.csv lists "
                                   "none."))
    null = run.path / "stimuli" / "null.png"
    if null.exists():
        blocks.append(Figure(null.read_bytes(), "The base face used for the stimuli (the "
                             "null image: every AU at 0), stimuli/null.png.", "base_face"))
    blocks.append(figure_block(
        tuning_curves_figure, prof, caption="Example tuning curves (paper Figs. 5-6): for "
        "each unit, the three AUs it responds to most; solid and dashed lines are the "
        "databases, bands ± SD across runs; from tables/au_profiles.csv.",
        name="tuning_curves", missing="No AU tuning profiles to draw: "
        "tables/au_profiles.csv has no rows."))
    blocks.append(figure_block(
        profile_heatmaps, prof, sim, caption="Tuning profiles (AU x level), each normalised "
        "by its largest absolute value; r_s: Spearman correlation of the same unit's profiles "
        "across databases (null level excluded), from tables/au_profiles.csv (paper Fig. 7).",
        name="profiles"))
    dbs = list(dict.fromkeys(prof["db"]))
    for i, a in enumerate(dbs):
        for b in dbs[i + 1:]:
            blocks.append(figure_block(
                sum_difference_figure, prof, a, b, caption=f"Sum ({a} + {b}: what both "
                f"databases' networks share) and difference ({a} − {b}) of each unit's "
                "normalised profiles (paper Fig. 8), from tables/au_profiles.csv.",
                name=f"sum_difference_{a}_{b}", missing=f"{a} and {b} have no expression "
                "unit in common: no sum and difference of their profiles."))
    if sim is not None:
        same = sim[sim["unit_a"] == sim["unit_b"]]
        blocks.append(Table(same, "Same-expression profile correlations with p and "
                            "Bonferroni-corrected p (over the units both databases have: the "
                            "paper's 7).", "profile_similarity"))
    if run.has_table("similarity_vs_confusion"):
        links = run.read_table("similarity_vs_confusion")
        blocks.append(figure_block(
            similarity_confusion_figure, links, caption="Profile similarity (7 x 7 r_s, or "
            "units x units with other label sets) beside the swapped confusion matrix and "
            "their scatter over the cells (paper Fig. 9: 49), from "
            "tables/similarity_vs_confusion.csv.", name="similarity_confusion",
            missing="No profile similarity to set against confusion: "
            "tables/similarity_vs_confusion.csv has no rows."))
        blocks.append(Table(links[["trained", "tested", "spearman_r", "p"]]
                            .drop_duplicates(), "Similarity vs confusion.",
                            "similarity_vs_confusion_summary"))
    if run.has_table("pca"):
        blocks.append(figure_block(
            pca_figure, run.read_table("pca"), run.read_table("pca_variance"),
            caption="PCA of the profiles reduced to their peak or trough per AU (paper Fig. "
            "10), from tables/pca.csv.", name="pca",
            missing="No PCA to draw: tables/pca.csv has no rows."))
    return Section("tuning", "AU tuning", blocks)


@register_section
def meaning_section(run: RunDir) -> Section | None:
    """Shared dimensions of meaning (SCIENCE §9), when the study has ratings."""
    from facedialect.meaning.report import meaning_section as build

    return build(run)


@register_section
def saliency_section(run: RunDir) -> Section | None:
    """Saliency per face region and emotion modification (SCIENCE §8)."""
    from facedialect.saliency.report import saliency_section as build

    return build(run)


@register_section
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
