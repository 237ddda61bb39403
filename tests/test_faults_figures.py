"""Fault injection for the figures and the report (issue 14, items 9 and 10).

Every figure function is called on minimal and degenerate tables, written in the column
layout of docs/outputs.md into a run directory and read back as the report reads them:
one AU with two levels (``[tuning] aus = [12]``, ``levels = 2``: levels 0 and 1), one
database, one run (SD NaN), heads of two units beside heads of five, one shared unit,
one rating concept, database / culture / concept names in Chinese and Japanese, and
header-only tables. No figure may fail; a figure returns an image, or ``None`` only where
it has nothing to draw, and then its report section says so in text. A report is still
written when a figure does fail (the failure is shown in the report), and labels in any
script reach the reader: the report's figures are inline SVG whose text stays text.
"""

from __future__ import annotations

import inspect
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from html import escape
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facedialect import pipeline
from facedialect.errors import ReportWarning
from facedialect.files import ArrayCache
from facedialect.meaning import figures as meaning_figures
from facedialect.meaning.preservation import PRESERVATION_COLUMNS
from facedialect.plots import figures as plot_figures
from facedialect.run.store import RunDir
from facedialect.saliency import figures as saliency_figures
from facedialect.saliency.maps import AlignedMaps
from facedialect.saliency.regions import REGIONS
from facedialect.saliency.stats import REGION_COLUMNS
from facedialect.stages import ingest as ingest_stage
from facedialect.stages import tuning as tuning_stage
from facedialect.stages.base import draw
from facedialect.stages.meaning import (
    ACCURACY_COLUMNS as RATING_ACCURACY_COLUMNS,
)
from facedialect.stages.meaning import (
    IMAGE_COLUMNS as MEANING_IMAGE_COLUMNS,
)
from facedialect.stages.meaning import (
    PPCA_COMPONENT_COLUMNS,
    PPCA_LOADING_COLUMNS,
    PPCA_SUMMARY_COLUMNS,
    draw_meaning_figures,
)
from facedialect.stages.preprocess import PREPROCESS_COLUMNS, draw_contact_sheets
from facedialect.stages.saliency import (
    IMAGE_COLUMNS as SALIENCY_IMAGE_COLUMNS,
)
from facedialect.stages.saliency import (
    MODIFICATION_COLUMNS,
    draw_saliency_figures,
    load_maps,
    save_maps,
)
from facedialect.stages.tuning import draw_tuning_figures
from facedialect.stats.classification import (
    ACCURACY_COLUMNS,
    CONFUSION_COLUMNS,
    mean_confusion,
)
from facedialect.stats.tuning import (
    ROBUSTNESS_COLUMNS,
    SIMILARITY_COLUMNS,
    profile_pca,
    profile_similarity,
    similarity_vs_confusion,
    tuning_profiles,
    tuning_responses,
)
from facedialect.vocab import EXPRESSIONS, in_order

FIVE = ("neutral", "happy", "sad", "angry", "surprised")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Shape:
    """The dimensions of a study's outputs."""

    dbs: tuple[tuple[str, tuple[str, ...]], ...] = (("west", EXPRESSIONS), ("east", EXPRESSIONS))
    aus: tuple[int, ...] = (1, 12, 26)
    levels: int = 4  # the study's `levels`: stimulus levels 0 .. levels - 1
    runs: int = 2
    cultures: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("west", ("pleasant", "aroused", "dominant")),
        ("east", ("pleasant", "aroused", "dominant")))
    empty: bool = False


CJK_CONCEPTS = ("快乐", "愤怒", "悲伤")
SHAPES: dict[str, Shape] = {
    "typical": Shape(),
    "one_au_two_levels": Shape(aus=(12,), levels=2),
    "one_database": Shape(dbs=(("west", EXPRESSIONS),),
                          cultures=(("west", ("pleasant", "aroused")),)),
    "one_run": Shape(runs=1),
    "two_unit_heads": Shape(dbs=(("A", ("neutral", "happy")), ("B", FIVE))),
    "one_shared_unit": Shape(dbs=(("A", ("neutral", "happy")), ("B", ("happy", "sad")))),
    "one_concept": Shape(cultures=(("west", ("pleasant",)), ("east", ("pleasant",)))),
    "cjk_names": Shape(dbs=(("西洋", EXPRESSIONS), ("東洋", EXPRESSIONS)),
                       cultures=(("中国", (*CJK_CONCEPTS, "costs $5-$10")),
                                 ("日本", ("嬉しい", "怒り", "悲しい", "한국어")))),
    "all_minimal": Shape(dbs=(("A", ("neutral", "happy")),), aus=(12,), levels=2, runs=1,
                         cultures=(("A", ("pleasant",)),)),
    "empty": Shape(empty=True),
}


# ------------------------------------------------------------------------ the run directory
def _png(path: Path, value: int, size: int = 48) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((size, size), value, np.uint8)
    cv2.circle(img, (size // 2, size // 2), size // 3, 255 - value, 2)
    cv2.imwrite(str(path), img)
    return str(path)


def _only_header(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k: v.iloc[0:0] for k, v in tables.items()}


def _classification(shape: Shape, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    conf, acc = [], []
    for a, units in shape.dbs:
        for b, tested in shape.dbs:
            cond = "matched" if a == b else "swapped"
            union = in_order([*units, *tested])
            for run in range(shape.runs):
                for true in union:
                    raw = rng.random(len(units))
                    probs = dict(zip(units, raw / raw.sum(), strict=True))
                    for pred in union:
                        rate = probs.get(pred, np.nan) if true in tested else np.nan
                        conf.append({"train_db": a, "test_db": b, "condition": cond,
                                     "variants": "all", "run": run, "true": true,
                                     "predicted": pred, "rate": rate,
                                     "n": 10 if true in tested else 0})
                    if true in tested and true in units:
                        acc.append({"train_db": a, "test_db": b, "condition": cond,
                                    "variants": "all", "run": run, "expression": true,
                                    "correct_rate": probs[true]})
    return {"confusion": pd.DataFrame(conf, columns=CONFUSION_COLUMNS),
            "accuracy": pd.DataFrame(acc, columns=ACCURACY_COLUMNS),
            "stats_classification": pd.DataFrame(
                columns=["test", "effect", "statistic", "df", "p", "variants"])}


def _tuning(shape: Shape, rng: np.random.Generator, conf: pd.DataFrame
            ) -> dict[str, pd.DataFrame]:
    stim = pd.DataFrame([{"au": 0, "level": 0}]
                        + [{"au": au, "level": lv} for au in shape.aus
                           for lv in range(1, shape.levels)])
    resp = pd.concat([tuning_responses(rng.normal(size=(shape.runs, len(stim), len(units))),
                                       stim, db=db, runs=list(range(shape.runs)), units=units)
                      for db, units in shape.dbs], ignore_index=True)
    prof = tuning_profiles(resp)
    dbs = [db for db, _ in shape.dbs]
    sims, links = [], []
    mean_conf = mean_confusion(conf)
    for i, a in enumerate(dbs):
        for b in dbs[i + 1:]:
            sim = profile_similarity(prof, a, b)
            sims.append(sim)
            for trained, tested in ((a, b), (b, a)):
                summary, cells = similarity_vs_confusion(sim, mean_conf, trained, tested)
                links.append(cells.assign(trained=trained, tested=tested,
                                          spearman_r=summary["spearman_r"], p=summary["p"]))
    scores, variance = profile_pca(prof)
    link_cols = ["trained", "tested", "spearman_r", "p", "true", "predicted", "profile_r",
                 "confusion_rate"]
    out = {"au_responses": resp, "au_profiles": prof, "pca": scores, "pca_variance": variance,
           "robustness": pd.DataFrame(
               [{"db": db, "unit": u, "subjects_main": 4, "subjects_all": 5,
                 "spearman_r": 0.5, "p": 0.01} for db, units in shape.dbs for u in units],
               columns=ROBUSTNESS_COLUMNS)}
    if sims:
        out["profile_similarity"] = pd.concat(sims, ignore_index=True)[SIMILARITY_COLUMNS]
        out["similarity_vs_confusion"] = pd.concat(links, ignore_index=True)[link_cols]
    return out


def _meaning(shape: Shape, rng: np.random.Generator, root: Path) -> dict[str, pd.DataFrame]:
    images = [f"img{i}.png" for i in range(8)]
    img_rows = [{"image": name, "db": shape.dbs[0][0],
                 "path": _png(root / "rated" / name, 40 + 20 * i), "group": "", "used": True,
                 "reason": "", "runs_held_out": shape.runs} for i, name in enumerate(images)]
    acc = [{"culture": c, "concept": k, "n_images": 8, "r_mean": rng.uniform(-1, 1),
            "r_sd": np.nan if shape.runs == 1 else 0.1, "runs": shape.runs,
            "r_ensemble": rng.uniform(-1, 1), "reliability": np.nan, "ceiling": np.nan}
           for c, concepts in shape.cultures for k in concepts]
    pairs = [(a, b, "cultures", ca, cb) for i, (a, ca) in enumerate(shape.cultures)
             for b, cb in shape.cultures[i + 1:]]
    pairs += [(c, f"{c} ratings", "ratings", cc, cc) for c, cc in shape.cultures]
    comps, loads, scores, summ = [], [], [], []
    for x, y, kind, cx, cy in pairs:
        name = f"{x} vs {y}"
        n_comp = min(len(cx), len(cy))
        for k in range(1, n_comp + 1):
            comps.append({"culture_pair": name, "x": x, "y": y, "kind": kind, "component": k,
                          "eigenvalue": 1.0 / k, "cov_heldout": 0.5 / k, "r_heldout": 0.4,
                          "p_value": 0.01 * k, "significant": k == 1, "shared": k == 1,
                          "n_images": 8})
            for side, culture, concepts in (("x", x, cx),
                                            ("y", y if kind == "cultures" else x, cy)):
                source = "rating" if kind == "ratings" and side == "y" else "prediction"
                for concept in concepts:
                    loads.append({"culture_pair": name, "component": k, "culture": culture,
                                  "side": side, "source": source, "concept": concept,
                                  "weight": rng.normal(), "loading": rng.uniform(-1, 1)})
        for image in images:
            scores.append({"culture_pair": name, "component": 1, "image": image,
                           "score_x": rng.normal(), "score_y": rng.normal()})
        summ.append({"culture_pair": name, "x": x, "y": y, "kind": kind, "n_images": 8,
                     "n_components": n_comp, "n_shared": 1})
    cultures = [c for c, _ in shape.cultures]
    pres = [{"source": s, "target": t, "n_images": 8,
             "preserved": 1.0 if s == t else rng.uniform(), "n_images_rated": 8,
             "preserved_ratings": rng.uniform(), "ceiling": np.nan}
            for s in cultures for t in cultures]
    return {"meaning_images": pd.DataFrame(img_rows, columns=MEANING_IMAGE_COLUMNS),
            "rating_accuracy": pd.DataFrame(acc, columns=RATING_ACCURACY_COLUMNS),
            "ppca_components": pd.DataFrame(comps, columns=PPCA_COMPONENT_COLUMNS),
            "ppca_loadings": pd.DataFrame(loads, columns=PPCA_LOADING_COLUMNS),
            "ppca_scores": pd.DataFrame(scores, columns=["culture_pair", "component", "image",
                                                         "score_x", "score_y"]),
            "ppca_summary": pd.DataFrame(summ, columns=PPCA_SUMMARY_COLUMNS),
            "meaning_preservation": pd.DataFrame(pres, columns=PRESERVATION_COLUMNS)}


def _saliency(shape: Shape, rng: np.random.Generator, run: RunDir) -> dict[str, pd.DataFrame]:
    from facedialect.faces.procedural.geometry import landmarks
    from facedialect.faces.procedural.identity import FaceIdentity

    dbs = tuple(db for db, _ in shape.dbs)
    exprs = tuple(in_order(e for _, units in shape.dbs for e in units))
    size = 64
    mean = rng.random((1, len(dbs), len(exprs), size, size)).astype(np.float32)
    for d, (_, units) in enumerate(shape.dbs):  # no image of an expression: NaN
        for e, expr in enumerate(exprs):
            if expr not in units:
                mean[:, d, e] = np.nan
    counts = np.array([[3 if e in units else 0 for e in exprs] for _, units in shape.dbs])
    if not shape.empty:
        save_maps(run, AlignedMaps(("gradient",), dbs, exprs, mean, counts,
                                   landmarks(FaceIdentity(), {}, size=size),
                                   np.full((size, size), 128, np.float32)))
    regions, sal_images = [], []
    for db, units in shape.dbs:
        for expr in units:
            for s in range(2):
                image = f"/data/{db}/{s}_{expr}.png"
                sal_images.append({"db": db, "image": image, "subject": str(s),
                                   "expression": expr, "runs": shape.runs, "landmarks": True,
                                   "reason": ""})
                for run_i in range(shape.runs):
                    shares = rng.dirichlet(np.ones(len(REGIONS)))
                    regions += [{"db": db, "run": run_i, "image": image, "subject": str(s),
                                 "expression": expr, "method": "gradient", "region": r,
                                 "share": v} for r, v in zip(REGIONS, shares, strict=True)]
    grid = run.path / "modify" / "grid"
    _png(grid / "original.png", 128, 64)
    mod = []
    for db, units in shape.dbs:
        for target in in_order(e for _, u in shape.dbs for e in u):
            if target not in units:
                continue
            _png(grid / f"{db}_{target}.png", 90, 64)
            for step in (0, 5):
                raw = rng.random(len(units))
                mod += [{"db": db, "image": "/data/neutral.png", "target": target, "step": step,
                         "expression": e, "probability": p}
                        for e, p in zip(units, raw / raw.sum(), strict=True)]
    return {"saliency_images": pd.DataFrame(sal_images, columns=SALIENCY_IMAGE_COLUMNS),
            "saliency_regions": pd.DataFrame(regions, columns=REGION_COLUMNS),
            "modification": pd.DataFrame(mod, columns=MODIFICATION_COLUMNS)}


def build_run(shape: Shape, root: Path) -> RunDir:
    """A run directory with every table of docs/outputs.md for ``shape``."""
    rng = np.random.default_rng(0)
    run = RunDir(root / "run")
    cache = ArrayCache(root / "cache")
    images, prep, classes, splits, curves = [], [], [], [], []
    for d, (db, units) in enumerate(shape.dbs):
        for e, expr in enumerate(units):
            for s in range(2):
                path = _png(root / "data" / db / f"{s}_{expr}.png", 30 * e + 10 * d + 20)
                key = f"{db}-{expr}-{s}"
                cache.put(key, image=np.full((224, 224), 60 + 20 * e, np.uint8))
                images.append({"db": db, "path": path, "subject": str(s), "expression": expr,
                               "view": "", "session": "", "sex": "", "included": True,
                               "reason": "", "sha256": key})
                prep.append({"db": db, "path": path, "detected": True, "x": 8, "y": 8,
                             "w": 32, "h": 32, "n_faces": 1, "reason": "", "cache_key": key})
                for r in range(shape.runs):
                    splits.append({"db": db, "path": path, "subject": str(s),
                                   "expression": expr, "run": r,
                                   "part": "train" if s == 0 else "test"})
            classes.append({"db": db, "expression": expr, "images": 2, "subjects": 2,
                            "unit": True})
        for r in range(shape.runs):
            for it in range(1, 7):
                curves.append({"db": db, "run": r, "iteration": it, "split": "train",
                               "loss": 2.0 / it, "correct_rate": rng.uniform()})
                if it % 3 == 0:
                    curves.append({"db": db, "run": r, "iteration": it, "split": "validation",
                                   "loss": 2.2 / it, "correct_rate": rng.uniform()})
    tables = {
        "images": pd.DataFrame(images, columns=["db", "path", "subject", "expression", "view",
                                                "session", "sex", "included", "reason",
                                                "sha256"]),
        "preprocess": pd.DataFrame(prep, columns=PREPROCESS_COLUMNS),
        "classes": pd.DataFrame(classes, columns=["db", "expression", "images", "subjects",
                                                  "unit"]),
        "splits": pd.DataFrame(splits, columns=["db", "path", "subject", "expression", "run",
                                                "part"]),
        "training_curves": pd.DataFrame(curves, columns=["db", "run", "iteration", "split",
                                                         "loss", "correct_rate"]),
    }
    tables.update(_classification(shape, rng))
    tables.update(_tuning(shape, rng, tables["confusion"]))
    tables.update(_meaning(shape, rng, root))
    tables.update(_saliency(shape, rng, run))
    if shape.empty:
        tables = _only_header(tables)
    for name, df in tables.items():
        run.write_table(name, df)
    stim_rows = [{"au": 0, "level": 0, "intensity": 0.0,
                  "path": _png(run.path / "stimuli" / "null.png", 128)}]
    for au in shape.aus:
        for lv in range(1, shape.levels):
            stim_rows.append({"au": au, "level": lv, "intensity": lv / (shape.levels - 1),
                              "path": _png(run.path / "stimuli" / f"AU{au}_L{lv:02d}.png",
                                           128 + 10 * lv)})
    stim = pd.DataFrame(stim_rows, columns=["au", "level", "intensity", "path"])
    (run.path / "stimuli" / "stimuli.csv").write_text(
        (stim.iloc[:0] if shape.empty else stim).to_csv(index=False))
    run.update_manifest(seed=1, study="degenerate", training={"protocol": {"runs": shape.runs}},
                        meaning={"backbone": "alexnet|random", "heads": {"runs": shape.runs}})
    return run


def draw_figures(run: RunDir) -> None:
    """Draw every figure of ``run`` from its tables, as each stage does when it runs."""
    images = run.read_table("images")
    draw(run, "images_per_expression", plot_figures.exclusions_figure, images)   # ingest
    draw_contact_sheets(run, ArrayCache(run.path.parent / "cache"))                 # preprocess
    draw(run, "training_curves", plot_figures.training_curves_figure,             # train
         run.read_table("training_curves"))
    conf, acc = run.read_table("confusion"), run.read_table("accuracy")           # evaluate
    draw(run, "confusion", plot_figures.confusion_figure,
         mean_confusion(conf[conf["variants"] == "all"]))
    draw(run, "correct_rate", plot_figures.correct_rate_figure,
         acc[acc["variants"] == "all"])
    draw_tuning_figures(run)
    draw_saliency_figures(run)
    mod = run.read_table("modification")
    if len(mod):   # the saliency stage draws its grid after computing it
        run.write_figure("modification_grid", saliency_figures.modification_grid_figure(
            mod, run.path / "modify" / "grid"))
    draw_meaning_figures(run)


# ----------------------------------------------------------------- every figure function
def _read(run: RunDir, name: str) -> pd.DataFrame:
    return run.read_table(name)


def _pairs(run: RunDir) -> list[str]:
    summ = _read(run, "ppca_summary")
    return list(summ.loc[summ["kind"] == "cultures", "culture_pair"])


def _db_pairs(run: RunDir) -> list[tuple[str, str]]:
    dbs = list(dict.fromkeys(_read(run, "au_profiles")["db"]))
    return [(a, b) for i, a in enumerate(dbs) for b in dbs[i + 1:]]


def _maps(run: RunDir) -> AlignedMaps | None:
    return load_maps(run)


def _strips(run: RunDir) -> list:
    """One strip per database (its last target), as ``facedialect modify`` draws one."""
    mod = _read(run, "modification")
    out = []
    for db, part in mod.groupby("db", sort=False):
        target = part["target"].iloc[-1]
        part = part[part["target"] == target]
        steps = sorted(part["step"].unique())
        frames = np.stack([np.full((32, 32), 20 * i, np.uint8) for i in range(len(steps))])
        out.append(saliency_figures.modification_strip(
            frames, part.assign(step=part["step"].map({s: i for i, s in enumerate(steps)})),
            target, db))
    if mod.empty:  # nothing to draw: an empty table still gives one call
        out.append(saliency_figures.modification_strip(
            np.zeros((1, 32, 32), np.uint8), mod[["step", "expression", "probability"]],
            "happy", "A"))
    return out


def _saliency_outputs(run: RunDir, func: Callable, per_pair: bool = False) -> list:
    maps = _maps(run)
    if maps is None:
        return []
    if per_pair:
        return [func(maps, m, a, b) for m in maps.methods for i, a in enumerate(maps.dbs)
                for b in maps.dbs[i + 1:]]
    return [func(maps, m) for m in maps.methods]


#: name -> what the stage calls with the run's tables (a list: one per call)
def _sweep_summary(run: RunDir) -> pd.DataFrame:
    """A sweep summary (docs/outputs.md) of two backbones, from the run's correct rates:
    one seed (no interval) for the first, the second's with an interval."""
    acc = _read(run, "accuracy")
    acc = acc[acc["variants"] == "all"] if "variants" in acc.columns else acc
    dbs = "+".join(dict.fromkeys(acc["train_db"].astype(str))) if len(acc) else ""
    rows = []
    for k, backbone in enumerate(("mobilenet_v2", "alexnet")):
        row = {"backbone": backbone, "protocol": "quick", "databases": dbs,
               "seeds": 0 if acc.empty else 1 + 2 * k}
        for cond in ("matched", "swapped"):
            mean = float(acc.loc[acc["condition"] == cond, "correct_rate"].mean()) \
                if len(acc) else float("nan")
            row[f"{cond}_mean"] = mean
            row[f"{cond}_low"] = mean - 0.05 if k else float("nan")
            row[f"{cond}_high"] = mean + 0.05 if k else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


FIGURES: dict[str, Callable[[RunDir], list]] = {
    "contact_sheet": lambda run: draw_contact_sheets(
        run, ArrayCache(run.path.parent / "cache")),
    "exclusions_figure": lambda run: [plot_figures.exclusions_figure(_read(run, "images"))],
    "training_curves_figure": lambda run: [
        plot_figures.training_curves_figure(_read(run, "training_curves"))],
    "confusion_figure": lambda run: [
        plot_figures.confusion_figure(mean_confusion(_read(run, "confusion")))],
    "correct_rate_figure": lambda run: [
        plot_figures.correct_rate_figure(_read(run, "accuracy"))],
    "stimuli_sheet": lambda run: [plot_figures.stimuli_sheet(
        pd.read_csv(run.path / "stimuli" / "stimuli.csv"))],
    "profile_heatmaps": lambda run: [plot_figures.profile_heatmaps(
        _read(run, "au_profiles"),
        _read(run, "profile_similarity") if run.has_table("profile_similarity") else None)],
    "tuning_curves_figure": lambda run: [
        plot_figures.tuning_curves_figure(_read(run, "au_profiles"))],
    "sum_difference_figure": lambda run: [
        plot_figures.sum_difference_figure(_read(run, "au_profiles"), a, b)
        for a, b in _db_pairs(run)],
    "similarity_confusion_figure": lambda run: [
        plot_figures.similarity_confusion_figure(_read(run, "similarity_vs_confusion"))
    ] if run.has_table("similarity_vs_confusion") else [],
    "pca_figure": lambda run: [
        plot_figures.pca_figure(_read(run, "pca"), _read(run, "pca_variance"))],
    "accuracy_figure": lambda run: [
        meaning_figures.accuracy_figure(_read(run, "rating_accuracy"))],
    "ppca_figure": lambda run: [meaning_figures.ppca_figure(_read(run, "ppca_components"))],
    "sweep_figure": lambda run: [plot_figures.sweep_figure(_sweep_summary(run))],
    "loadings_figure": lambda run: [
        meaning_figures.loadings_figure(_read(run, "ppca_loadings"),
                                        _read(run, "ppca_components"), pair)
        for pair in _pairs(run)],
    "preservation_figure": lambda run: [
        meaning_figures.preservation_figure(_read(run, "meaning_preservation"))],
    "top_images_figure": lambda run: [
        meaning_figures.top_images_figure(_read(run, "ppca_scores"),
                                          _read(run, "meaning_images"), pair)
        for pair in _pairs(run)],
    "saliency_grid_figure": lambda run: _saliency_outputs(
        run, saliency_figures.saliency_grid_figure),
    "difference_figure": lambda run: _saliency_outputs(
        run, saliency_figures.difference_figure, per_pair=True),
    "region_shares_figure": lambda run: [
        saliency_figures.region_shares_figure(_read(run, "saliency_regions"), m)
        for m in (dict.fromkeys(_read(run, "saliency_regions")["method"]) or ["gradient"])],
    "modification_strip": _strips,
    "modification_grid_figure": lambda run: [saliency_figures.modification_grid_figure(
        _read(run, "modification"), run.path / "modify" / "grid")],
}


def _figure_functions() -> dict[str, Callable]:
    """Every figure function of the three figure modules (they return image bytes)."""
    found = {}
    for module in (plot_figures, saliency_figures, meaning_figures):
        for name, obj in inspect.getmembers(module, inspect.isfunction):
            if (obj.__module__ != module.__name__ or name.startswith("_")
                    or name in ("fig_to_png", "fig_to_svg", "render")):
                continue
            ret = inspect.signature(obj).return_annotation
            if "bytes" in str(ret):
                found[name] = obj
    return found


def test_every_figure_function_is_exercised():
    found = _figure_functions()
    assert set(found) == set(FIGURES)
    # each draws with the fonts of any script and takes labels literally
    assert [n for n, f in found.items() if not hasattr(f, "__wrapped__")] == []


def _is_image(out: object) -> bool:
    return isinstance(out, bytes) and out.startswith(PNG_MAGIC)


@pytest.fixture(scope="module", params=list(SHAPES))
def shaped_run(request, tmp_path_factory) -> tuple[str, RunDir]:
    return request.param, build_run(SHAPES[request.param],
                                    tmp_path_factory.mktemp(request.param))


@pytest.mark.parametrize("figure", list(FIGURES))
def test_every_figure_copes_with_degenerate_tables(shaped_run, figure):
    shape_name, run = shaped_run
    outputs = FIGURES[figure](run)
    if figure == "contact_sheet":  # the stage writes figures/contact_sheet_{db}.png
        files = [run.figures / f"{n}.png" for n in outputs]
        assert len(files) == len(set(files)) == len(SHAPES[shape_name].dbs) * (
            not SHAPES[shape_name].empty)
        assert all(f.read_bytes().startswith(PNG_MAGIC) for f in files)
        return
    for out in outputs:
        if SHAPES[shape_name].empty:
            assert out is None, f"{figure}: drew a figure of empty tables"
        else:
            assert _is_image(out), f"{figure} on {shape_name}: {type(out)}"


def test_the_issue_pca_of_one_au_draws_pc1():
    """``aus = [12]``: the PCA has one component; the figure shows PC1 alone."""
    run_shape = SHAPES["one_au_two_levels"]
    rng = np.random.default_rng(0)
    conf = _classification(run_shape, rng)["confusion"]
    tun = _tuning(run_shape, rng, conf)
    assert set(tun["pca"]["pc"]) == {1}
    assert _is_image(plot_figures.pca_figure(tun["pca"], tun["pca_variance"]))


# ------------------------------------------------------------------------------ the report
def _notes(html: str) -> list[str]:
    return re.findall(r"figure [^<]* could not be drawn: [^<]*", html)


#: The report is built for these (every shape's figures are drawn above, one by one).
REPORT_SHAPES = ("one_au_two_levels", "two_unit_heads", "one_database", "all_minimal",
                 "empty")


@pytest.mark.parametrize("shape_name", REPORT_SHAPES)
def test_report_of_degenerate_run_draws_every_figure(shape_name, tmp_path):
    run = build_run(SHAPES[shape_name], tmp_path)
    with warnings.catch_warnings():  # a figure that fails is a ReportWarning: an error here
        warnings.filterwarnings("error", message=r"Glyph \d+ .*missing from font")
        draw_figures(run)
    assert run.read_manifest().get("figure_notes", {}) == {}
    html = pipeline.build_report(run).read_text(encoding="utf-8")
    assert _notes(html) == []
    assert "could not be built" not in html
    for sid in ("summary", "databases", "training", "classification", "tuning", "meaning",
                "saliency", "provenance"):
        assert f'<section id="{sid}">' in html, sid
    # every figure a stage drew is in its section
    drawn = sorted(run.figures.glob("*.svg"))
    for path in drawn:
        assert f'data-name="{escape(path.stem)}"' in html, path.stem
    if SHAPES[shape_name].empty:
        assert [p.stem for p in drawn] == []
        for what in ("No training curves to draw", "No confusion matrices to draw",
                     "No AU tuning profiles to draw", "No rating accuracy to draw",
                     "No AU stimuli to show"):
            assert what in html, what
    else:
        assert {"images_per_expression", "training_curves", "confusion", "correct_rate",
                "tuning_curves", "profiles", "pca", "rating_accuracy"} <= {
                    p.stem for p in drawn}


def test_a_drawing_replaces_a_stale_figure_with_nothing_to_draw(tmp_path):
    """A figure drawn before, whose table is empty now: the section says so, no old image."""
    run = build_run(SHAPES["all_minimal"], tmp_path)
    draw_figures(run)
    assert (run.figures / "training_curves.svg").exists()
    run.write_table("training_curves", run.read_table("training_curves").iloc[0:0])
    draw_figures(run)
    assert not (run.figures / "training_curves.svg").exists()
    html = pipeline.build_report(run).read_text(encoding="utf-8")
    training = html[html.index('<section id="training">'):]
    training = training[:training.index("</section>")]
    assert "No training curves to draw" in training
    assert "data-name" not in training


# ------------------------------------------------------------------ labels in any script
GLYPH_MISSING = r"Glyph \d+ .*missing from font"
NON_LATIN = ("快乐", "愤怒", "悲伤", "嬉しい", "怒り", "悲しい", "한국어", "中国", "日本", "西洋",
             "東洋")


def _cjk_font_for_chromium() -> bool:
    """Whether fontconfig knows a font with Chinese glyphs (what Chromium falls back to)."""
    fc = shutil.which("fc-list")
    if fc is None:
        return False
    out = subprocess.run([fc, ":lang=zh", "family"], capture_output=True, text=True)
    return bool(out.stdout.strip())


def test_report_figures_keep_labels_as_text(tmp_path):
    """The report's figures are inline SVG: every label is a text node, written as given."""
    run = build_run(SHAPES["cjk_names"], tmp_path)
    draw_figures(run)
    html = pipeline.build_report(run).read_text(encoding="utf-8")
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", html)
    for label in NON_LATIN:
        assert any(label in t for t in texts), label
    assert any("costs $5-$10" in t for t in texts)  # literal, not mathtext
    svgs = re.findall(r'<div class="svg"[^>]*>(.*?)</div>', html, re.S)
    assert any("data:image/png" in svg for svg in svgs)  # images stay raster inside the SVG
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "two figures share an id"
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', html):
        assert ref in ids, ref


def test_png_figures_use_an_installed_cjk_font():
    """PNG figures (``figures/``) fall back to a CJK font where the system has one."""
    if not plot_figures.fallback_families():
        pytest.skip("no CJK font installed for matplotlib (Debian: apt-get install "
                    "fonts-wqy-microhei or fonts-noto-cjk): PNG figures draw CJK as boxes")
    acc = pd.DataFrame([{"culture": "中国", "concept": c, "n_images": 8, "r_mean": 0.3,
                         "r_sd": 0.1, "runs": 2, "r_ensemble": 0.4, "reliability": np.nan,
                         "ceiling": np.nan} for c in CJK_CONCEPTS],
                       columns=RATING_ACCURACY_COLUMNS)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=GLYPH_MISSING)
        assert _is_image(meaning_figures.accuracy_figure(acc))


BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(BROWSER is None, reason="no Chromium on PATH: install Debian's chromium "
                    "(apt-get install chromium) to run the headless-browser report test")
def test_cjk_labels_render_in_the_browser(tmp_path):
    """Chromium draws the CJK labels of the report's figures, with a font that has them."""
    from browser import inspect_page

    run = build_run(SHAPES["cjk_names"], tmp_path)
    draw_figures(run)
    report = pipeline.build_report(run)
    probe = f"""(() => {{
        const texts = Array.from(document.querySelectorAll('figure svg text'));
        return {list(NON_LATIN)!r}.map(label => {{
            const hits = texts.filter(t => t.textContent.includes(label));
            hits.forEach(t => t.setAttribute('data-probe', label));
            return {{label: label, count: hits.length,
                     width: Math.min(...hits.map(t => t.getBBox().width))}};
        }});
    }})()"""
    shot = tmp_path / "cjk_figure.png"
    seen = inspect_page(report, BROWSER, probe, fonts_of="[data-probe]", screenshot=shot,
                        clip_of='[data-name="loadings_中国_vs_日本"]')
    assert seen["errors"] == []
    for hit in seen["value"]:
        assert hit["count"] > 0 and hit["width"] > 0, hit
    assert shot.read_bytes().startswith(PNG_MAGIC)
    if not _cjk_font_for_chromium():
        pytest.skip("no CJK font for Chromium (Debian: apt-get install fonts-wqy-microhei): "
                    "the text nodes are there, but drawn as boxes on this machine")
    families = {f["familyName"] for fonts in seen["fonts"] for f in fonts}
    assert families - {"DejaVu Sans", "DejaVu Sans Mono", "DejaVu Serif"}, families


# ------------------------------------------------------- one failure does not cost the report
PCA_ERROR = "ValueError: Number of columns must be a positive integer, not 0"


def _broken_figure(*args, **kwargs):
    raise ValueError("Number of columns must be a positive integer, not 0")


def test_a_failing_figure_is_noted_and_the_report_still_written(tmp_path, monkeypatch):
    run = build_run(SHAPES["all_minimal"], tmp_path)
    draw_figures(run)
    assert (run.figures / "pca.svg").exists()
    monkeypatch.setattr(tuning_stage, "pca_figure", _broken_figure)
    # at stage time: a warning, the older figure gone, the note in the manifest
    with pytest.warns(ReportWarning, match="report: figure pca could not be drawn: ValueError"):
        draw_tuning_figures(run)
    assert not (run.figures / "pca.svg").exists()
    assert run.read_manifest()["figure_notes"] == {
        "pca": f"figure pca could not be drawn: {PCA_ERROR}"}
    html = pipeline.build_report(run).read_text(encoding="utf-8")   # no warning: a note
    assert _notes(html) == [f"figure pca could not be drawn: {PCA_ERROR}"]
    tuning = html[html.index('<section id="tuning">'):]
    assert 'data-name="profiles"' in tuning  # the rest of the section is there
    assert '<section id="provenance">' in html
    monkeypatch.undo()
    draw_tuning_figures(run)               # drawn again: the note is gone
    html = pipeline.build_report(run).read_text(encoding="utf-8")
    assert _notes(html) == [] and 'data-name="pca"' in html


def test_the_command_line_shows_a_failing_figure_as_one_warning_line(tmp_path, monkeypatch):
    """``facedialect ingest`` warns at stage time; ``facedialect report`` shows the note."""
    from typer.testing import CliRunner

    from facedialect.cli import app

    for i, expr in enumerate(("neutral", "happy")):
        for n in range(2):
            _png(tmp_path / "faces" / expr / f"{n}.png", 60 + 40 * i + 10 * n)
    study = tmp_path / "study.toml"
    study.write_text(f"""
[study]
name = "failing figure"
output = "{tmp_path / 'run'}"
expressions = ["neutral", "happy"]

[[databases]]
name = "F"
preset = "folder"
root = "{tmp_path / 'faces'}"
""")
    monkeypatch.setattr(ingest_stage, "exclusions_figure", _broken_figure)
    runner = CliRunner()
    with warnings.catch_warnings():  # as outside the tests (pyproject makes them errors)
        warnings.simplefilter("default", ReportWarning)
        res = runner.invoke(app, ["ingest", str(study)])
        assert res.exit_code == 0, res.output
        assert ("warning: report: figure images_per_expression could not be drawn: "
                f"{PCA_ERROR}") in res.output
        assert "Traceback" not in res.output
        res = runner.invoke(app, ["report", str(study)])
    assert res.exit_code == 0, res.output
    assert "warning" not in res.output and "Traceback" not in res.output
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    databases = html[html.index('<section id="databases">'):]
    assert _notes(databases[:databases.index("</section>")]) == [
        f"figure images_per_expression could not be drawn: {PCA_ERROR}"]


def test_a_failing_section_is_noted_and_the_report_still_written(tmp_path, monkeypatch):
    run = build_run(SHAPES["all_minimal"], tmp_path)

    def meaning_section(run):
        raise KeyError("culture")

    stages = tuple(replace(s, section=meaning_section) if s.name == "meaning" else s
                   for s in pipeline.STAGES)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    with pytest.warns(ReportWarning, match="section meaning could not be built"):
        html = pipeline.build_report(run).read_text(encoding="utf-8")
    assert "section meaning could not be built: KeyError: &#x27;culture&#x27;" in html
    for sid in ("summary", "tuning", "meaning", "saliency", "provenance"):
        assert f'<section id="{sid}">' in html, sid
