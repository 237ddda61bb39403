"""Meaning: ratings -> per-culture heads -> held-out predictions -> PPCA, preservation.

Reads the ``[meaning]`` ratings (and raters) files, matches them to the study's
pre-processed faces, extracts (cached) backbone features, trains every run's per-culture
rating heads together (locally all runs in one unit; with ``[compute] engine = "ray"``
one Ray task per group of runs, :func:`rating_group`), predicts the held-out images and
writes the tables of docs/outputs.md ("Shared dimensions of meaning"). docs/method.md §9.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.compute import Engine
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.meaning.figures import (
    accuracy_figure,
    loadings_figure,
    ppca_figure,
    preservation_figure,
    top_concepts,
    top_images_figure,
)
from facedialect.meaning.heads import (
    HEAD_DEFAULTS,
    HeadSettings,
    RatingPlan,
    predict_ratings,
    train_rating_heads,
)
from facedialect.meaning.ppca import ppca
from facedialect.meaning.preservation import (
    mean_preservation,
    meaning_preservation,
    prediction_correlations,
    split_half_reliability,
    weighted_reliability,
)
from facedialect.meaning.ratings import match_images, read_raters, read_ratings
from facedialect.plots.figures import safe_name
from facedialect.preprocess.augment import variant_subset
from facedialect.progress import ProgressFn
from facedialect.report.html import Section, Table, Text, figure_file
from facedialect.run.store import RunDir
from facedialect.stages.base import Context, Stage, Summary, draw, work_engine
from facedialect.stages.features import compute_features
from facedialect.training.features import FeatureCache
from facedialect.training.splits import run_seeds
from facedialect.vocab import name_seed

#: Columns of ``tables/meaning_images.csv``.
IMAGE_COLUMNS = ["image", "db", "path", "group", "used", "reason", "runs_held_out"]
#: Columns of ``tables/rating_accuracy.csv``.
ACCURACY_COLUMNS = ["culture", "concept", "n_images", "r_mean", "r_sd", "runs",
                    "r_ensemble", "reliability", "ceiling"]
#: Columns of ``tables/ppca_components.csv``.
PPCA_COMPONENT_COLUMNS = ["culture_pair", "x", "y", "kind", "component", "eigenvalue",
                          "cov_heldout", "r_heldout", "p_value", "significant", "shared",
                          "n_images"]
#: Columns of ``tables/ppca_loadings.csv``.
PPCA_LOADING_COLUMNS = ["culture_pair", "component", "culture", "side", "source", "concept",
                        "weight", "loading"]
#: Columns of ``tables/ppca_summary.csv``.
PPCA_SUMMARY_COLUMNS = ["culture_pair", "x", "y", "kind", "n_images", "n_components",
                        "n_shared"]
#: The meaning stage's tables.
MEANING_TABLES = ("meaning_images", "meaning_splits", "meaning_training", "meaning_predictions",
                  "rating_accuracy_runs", "rating_accuracy", "ppca_components",
                  "ppca_loadings", "ppca_scores", "ppca_summary", "meaning_preservation")


def head_settings(study: Study) -> HeadSettings:
    """The rating heads' settings: the protocol's defaults with the ``[meaning]`` overrides."""
    cfg = study.meaning
    base = HEAD_DEFAULTS.get(study.training.protocol, HEAD_DEFAULTS["paper"])
    keys = ("runs", "iterations", "batch_size", "lr", "weight_decay", "hidden", "dropout",
            "variants")
    over = {k: getattr(cfg, k) for k in keys if getattr(cfg, k) is not None}
    return replace(base, **over)


def _study_faces(run: RunDir) -> pd.DataFrame:
    """Every image of the study with its detection result and face cache key."""
    images = run.read_table("images")
    if not run.has_table("preprocess"):
        raise InputError(f"{run.path}: no pre-processing results; run `facedialect "
                         f"preprocess` (or `facedialect run`) first")
    prep = run.read_table("preprocess")
    faces = images[["db", "path", "subject", "reason"]].merge(
        prep[["db", "path", "detected", "cache_key", "reason"]].rename(
            columns={"reason": "prep_reason"}), on=["db", "path"], how="left")
    faces["detected"] = faces["detected"].fillna(False).astype(bool)
    faces["reason"] = np.where(faces["prep_reason"].fillna("") != "",
                               faces["prep_reason"].fillna(""), faces["reason"].fillna(""))
    faces.loc[faces["detected"], "reason"] = ""
    faces.loc[~faces["detected"] & (faces["reason"] == ""), "reason"] = "no usable face"
    return faces.drop(columns=["prep_reason"])


def split_plans(images: pd.DataFrame, study: Study, runs: int
                ) -> tuple[list[RatingPlan], pd.DataFrame]:
    """Training and test images of every run.

    With a ``group`` column, every run trains on the training groups and tests on
    ``[meaning] test_groups``. Without one, the images (whole subjects where the images
    have subject ids) are cut into ``round(1 / test_share)`` folds; run ``r`` tests on
    fold ``r mod folds`` of partition ``r // folds``, so that every image is held out
    once per ``folds`` runs.

    Parameters
    ----------
    images : pandas.DataFrame
        The used rated images (columns ``image``, ``db``, ``subject``, ``group``), in the
        order of the feature rows.
    study : Study
        The study (seed, ``[meaning]`` groups and test share).
    runs : int
        Number of runs.

    Returns
    -------
    plans : list of RatingPlan
        One per run.
    splits : pandas.DataFrame
        ``run, image, part`` (``train`` or ``test``).

    Raises
    ------
    InputError
        When groups are set but do not fit the ratings, or a part would be empty.
    """
    cfg = study.meaning
    has_group = bool((images["group"] != "").any())
    n = len(images)
    parts: list[np.ndarray] = []
    if has_group:
        present = sorted(set(images["group"]))
        if not cfg.test_groups:
            raise InputError(f"the ratings have a group column (groups {present}); set "
                             f"[meaning] test_groups to the group(s) to test on, e.g. "
                             f"test_groups = [\"{present[-1]}\"]")
        unknown = [g for g in [*cfg.test_groups, *cfg.train_groups] if g not in present]
        if unknown:
            raise InputError(f"[meaning] groups {unknown} are not in the ratings' group "
                             f"column (groups with usable images: {present})")
        test = images["group"].isin(cfg.test_groups).to_numpy()
        train = (images["group"].isin(cfg.train_groups).to_numpy() if cfg.train_groups
                 else ~test)
        if not test.any() or not train.any():
            raise InputError("[meaning] the groups leave no training or no test image; "
                             "check train_groups and test_groups")
        part = np.where(test, "test", np.where(train, "train", "unused"))
        parts = [part] * runs
    else:
        if cfg.test_groups or cfg.train_groups:
            raise InputError("[meaning] train_groups / test_groups are set but the ratings "
                             "have no group column; add one or remove these keys")
        subj = images["subject"].fillna("").astype(str)
        units = np.where(subj != "", images["db"] + "\x00" + subj, images["image"])
        uniq = np.array(sorted(set(units)))
        k = max(2, int(round(1.0 / cfg.test_share)))
        if len(uniq) < k:
            raise InputError(f"the rated images hold {len(uniq)} subject(s)/image(s), too few "
                             f"for {k} cross-validation folds; raise [meaning] test_share or "
                             f"add a group column")
        pos = {u: i for i, u in enumerate(uniq)}
        unit_idx = np.array([pos[u] for u in units])
        for r in range(runs):
            rep, fold = divmod(r, k)
            rng = np.random.default_rng(np.random.SeedSequence([study.study.seed, 0x6D65, rep]))
            fold_of = rng.permutation(len(uniq)) % k
            parts.append(np.where(fold_of[unit_idx] == fold, "test", "train"))
    plans = [RatingPlan(r, run_seeds(study.study.seed, "meaning", r),
                        np.flatnonzero(p == "train"), np.flatnonzero(p == "test"))
             for r, p in enumerate(parts)]
    splits = pd.DataFrame({"run": np.repeat(np.arange(runs), n),
                           "image": np.tile(images["image"].to_numpy(), runs),
                           "part": np.concatenate(parts)})
    return plans, splits


def _pair_seed(seed: int, name: str) -> int:
    return int(np.random.SeedSequence([seed, name_seed(name)]).generate_state(1)[0])


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Train the rating heads, write the meaning tables and draw their figures."""
    engine, feature_device = work_engine(study, ctx)
    res = meaning_tables(run, study, device=ctx.resolved_device(), progress=ctx.progress,
                         engine=engine, feature_device=feature_device)
    draw_meaning_figures(run)
    lines = [f"{res['images']} rated images, cultures {res['cultures']}",
             *(f"{pair}: {n} shared dimension(s)" for pair, n in res["n_shared"].items()),
             f"mean preservation {res['mean_preservation']}"]
    return Summary("meaning", lines, res)


def meaning_tables(run: RunDir, study: Study, *, device: str = "cpu",
                   progress: ProgressFn | None = None, engine: Engine | None = None,
                   feature_device: str | None = None) -> dict[str, Any]:
    """Train the per-culture rating heads and write every meaning table.

    Parameters
    ----------
    run : RunDir
        The run directory (ingest and pre-processing done).
    study : Study
        The study; ``[meaning] ratings`` must be set.
    device : str
        Where to compute.
    progress : ProgressFn, optional
        ``progress(label, done, total)``.
    engine : Engine, optional
        Where the rated images' features are computed and the rating heads trained
        (default: here; on Ray, the features with Ray Data and the heads as one task per
        group of runs, :func:`rating_group`; docs/scaling.md). The driver writes every
        table.
    feature_device : str, optional
        The engine's device for the features and a Ray task's heads (default
        ``device``).

    Returns
    -------
    dict
        Summary for the CLI: cultures, images, runs, shared dimensions per pair, mean
        preservation.

    Raises
    ------
    InputError
        On invalid ratings files, unknown images, no usable image, or groups that do not
        fit.
    """
    cfg = study.meaning
    if not cfg.ratings:
        raise InputError("the study has no [meaning] ratings; add a [meaning] section with "
                         "ratings = \"ratings.csv\" (docs/meaning.md)")
    rng_range = (float(cfg.rating_range[0]), float(cfg.rating_range[1]))
    ratings = read_ratings(cfg.ratings, rating_range=rng_range, cultures=cfg.cultures)
    if cfg.cultures:
        ratings = ratings[ratings["culture"].isin(cfg.cultures)]
    raters = read_raters(cfg.raters, ratings, rating_range=rng_range) if cfg.raters else None
    matched = match_images(ratings, _study_faces(run),
                           {d.name: d.root for d in study.databases})
    keymap = matched[["rated_db", "rated_image", "image", "used"]]
    ratings = (ratings.rename(columns={"image": "rated_image", "db": "rated_db"})
               .merge(keymap, on=["rated_db", "rated_image"], how="left"))
    used = matched[matched["used"]].sort_values("image").reset_index(drop=True)
    if used.empty:
        raise InputError("none of the rated images has a usable face; see "
                         "tables/preprocess.csv for the reasons")
    settings = head_settings(study)
    cultures = list(dict.fromkeys(ratings["culture"]))
    concepts = {c: list(dict.fromkeys(ratings.loc[ratings["culture"] == c, "concept"]))
                for c in cultures}
    kmax = max(len(v) for v in concepts.values())
    row_of = {k: i for i, k in enumerate(used["image"])}
    targets = np.full((len(used), len(cultures), kmax), np.nan, dtype=np.float32)
    r_used = ratings[ratings["used"].astype(bool)]
    for ci, c in enumerate(cultures):
        part = r_used[r_used["culture"] == c]
        cpos = {k: i for i, k in enumerate(concepts[c])}
        targets[part["image"].map(row_of).to_numpy(), ci,
                part["concept"].map(cpos).to_numpy()] = part["mean_rating"].to_numpy()
    plans, splits = split_plans(used, study, settings.runs)

    summary: dict[str, Any] = {"cultures": {c: len(concepts[c]) for c in cultures},
                               "images": len(used),
                               "images_without_face": int((~matched["used"]).sum()),
                               "heads": settings.as_dict()}
    with run.stage("meaning", device=device,
                   engine=(engine or Engine()).name) as info:
        keys = list(used["cache_key"])
        use = variant_subset(settings.variants)
        tag, runtime, n_new = compute_features(
            study, used, dict.fromkeys(keys, use), device=feature_device or device,
            progress=progress, label="features", engine=engine)
        fcache = FeatureCache(tag, study.study.cache_dir, runtime=runtime)
        summary["backbone"] = tag
        info.update(backbone=tag)
        feats = torch.from_numpy(fcache.load(keys, variants=use))
        engine = engine or Engine()
        local = engine.name == "local"
        # the runs are independent (own seeds, streams and initialisation; every culture
        # of a run trains in its batch as before): locally one unit of every run, on Ray
        # one task per group of runs, with the same numbers (docs/scaling.md)
        groups = 1 if local else min(settings.runs, engine.workers(feature_device or device))
        size = -(-settings.runs // groups)
        chunk = prediction_chunk(settings.runs, min(settings.variants, feats.shape[1]),
                                 feats.shape[2])
        shared, shared_targets = engine.share(feats), engine.share(torch.from_numpy(targets))
        jobs = ({"feats": shared, "targets": shared_targets, "plans": plans[g:g + size],
                 "n_concepts": [len(concepts[c]) for c in cultures], "settings": settings,
                 "device": device if local else (feature_device or device), "chunk": chunk,
                 "progress": ((lambda d, t: progress("rating heads", d, t))
                              if progress and local else None)}
                for g in range(0, settings.runs, size))
        outs = list(engine.map(rating_group, jobs, device=feature_device or device,
                               progress=((lambda d, t: progress("rating heads (ray tasks)",
                                                                d, t))
                                         if progress and not local else None)))
        preds = np.concatenate([o[0] for o in outs], axis=0)
        loss = np.concatenate([o[1] for o in outs], axis=1)
        seconds = sum(o[2] for o in outs)
        tables = _tables(used, matched, ratings, raters, plans, splits, preds, loss,
                         cultures, concepts, study)
        for name, df in tables.items():
            run.write_table(name, df)
        shared = {r.culture_pair: int(r.n_shared)
                  for r in tables["ppca_summary"].itertuples(index=False)}
        mean_pres = mean_preservation(tables["meaning_preservation"])
        summary.update(features_computed=n_new, n_shared=shared,
                       mean_preservation=None if np.isnan(mean_pres) else round(mean_pres, 3),
                       seconds_training=round(seconds, 2))
        info.update(images=len(used), cultures=len(cultures), runs=settings.runs,
                    features_computed=n_new)
    run.update_manifest(meaning={k: v for k, v in summary.items()})
    return summary


def prediction_chunk(runs: int, variants: int, dim: int) -> int:
    """Images per prediction pass of ``runs`` runs' heads (about 256 MB of float32).

    Every unit of :func:`rating_group` predicts in passes of this size for the whole
    study's runs, so a group of runs predicts exactly as all runs together would.
    """
    return max(1, int(2**26 // max(1, runs * variants * dim)))


def rating_group(feats: torch.Tensor, targets: torch.Tensor, plans: list[RatingPlan],
                 n_concepts: list[int], settings: HeadSettings, *, device: str = "cpu",
                 chunk: int | None = None, progress: Callable[[int, int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """Train a group of runs' rating heads and predict every image: one work unit.

    Every culture's head of a run trains in one batch, as
    :func:`~facedialect.meaning.heads.train_rating_heads` does; runs are independent
    (own seeds, sample order, dropout and initialisation), so a run's numbers do not
    depend on the runs beside it: the groups of a Ray study give the tables of a local
    one, which trains all runs in one unit.

    Parameters
    ----------
    feats : torch.Tensor
        ``(N, V, D)`` features of the used rated images.
    targets : torch.Tensor
        ``(N, C, K)`` mean ratings (NaN where not rated).
    plans : list of RatingPlan
        The group's runs.
    n_concepts : list of int
        K of every culture.
    settings : HeadSettings
        The heads' settings.
    device : str
        Where to train.
    chunk : int, optional
        Images per prediction pass (:func:`prediction_chunk` of all runs).
    progress : callable, optional
        ``progress(iteration, iterations)``.

    Returns
    -------
    tuple
        Predictions ``(R_group, N, C, K)``, the training loss ``(iterations, R_group)``
        and the seconds the training took.

    Raises
    ------
    InputError
        When a run has no training image rated by some culture.
    """
    try:
        out = train_rating_heads(feats, targets, plans, n_concepts, settings, device=device,
                                 progress=progress)
    except ValueError as exc:
        raise InputError(f"[meaning] {exc}; use other groups or a larger test_share"
                         ) from None
    preds = predict_ratings(out.head, feats, settings.variants, device=device, chunk=chunk)
    return preds, out.loss, out.seconds


def _matrix(long: pd.DataFrame, culture: str, concepts: list[str], value: str
            ) -> pd.DataFrame:
    part = long[long["culture"] == culture]
    return part.pivot(index="image", columns="concept", values=value).reindex(
        columns=concepts)


def _tables(used: pd.DataFrame, matched: pd.DataFrame, ratings: pd.DataFrame,
            raters: pd.DataFrame | None, plans: list[RatingPlan], splits: pd.DataFrame,
            preds: np.ndarray, loss: np.ndarray, cultures: list[str],
            concepts: dict[str, list[str]], study: Study) -> dict[str, pd.DataFrame]:
    cfg = study.meaning
    n_runs, n_img = preds.shape[:2]
    held = np.zeros((n_runs, n_img), dtype=bool)
    for r, p in enumerate(plans):
        held[r, p.test_idx] = True
    counts = held.sum(0)
    ens = (preds * held[:, :, None, None]).sum(0) / np.maximum(counts, 1)[:, None, None]
    ens_rows = np.flatnonzero(counts > 0)
    images = used["image"].to_numpy()

    long_runs, long_ens = [], []
    for ci, c in enumerate(cultures):
        k = len(concepts[c])
        for r, p in enumerate(plans):
            idx = p.test_idx
            long_runs.append(pd.DataFrame({
                "culture": c, "concept": np.tile(concepts[c], len(idx)), "run": p.run,
                "image": np.repeat(images[idx], k),
                "predicted": preds[r, idx, ci, :k].ravel()}))
        long_ens.append(pd.DataFrame({
            "image": np.repeat(images[ens_rows], k), "culture": c,
            "concept": np.tile(concepts[c], len(ens_rows)),
            "predicted": ens[ens_rows, ci, :k].ravel(),
            "runs": np.repeat(counts[ens_rows], k)}))
    pred_runs = pd.concat(long_runs, ignore_index=True)
    pred_ens = pd.concat(long_ens, ignore_index=True)
    rated = ratings[ratings["used"].astype(bool)][["image", "culture", "concept",
                                                   "mean_rating"]]
    pred_table = pred_ens.merge(rated, on=["image", "culture", "concept"], how="left")[
        ["image", "culture", "concept", "predicted", "mean_rating", "runs"]]

    acc_runs = prediction_correlations(pred_runs, rated, ["culture", "concept", "run"])
    acc_ens = prediction_correlations(pred_ens, rated, ["culture", "concept"])
    ens_images = pd.Index(images[ens_rows])
    rel = None
    if raters is not None:
        keymap = used[["rated_db", "rated_image", "image"]]
        rr = (raters.rename(columns={"image": "rated_image", "db": "rated_db"})
              .merge(keymap, on=["rated_db", "rated_image"], how="inner"))
        rel = split_half_reliability(rr, images=ens_images, seed=study.study.seed)
    agg = (acc_runs.groupby(["culture", "concept"], sort=False)["r"]
           .agg(r_mean="mean", r_sd="std", runs="count").reset_index())
    acc = acc_ens.rename(columns={"r": "r_ensemble"}).merge(agg, on=["culture", "concept"],
                                                            how="left")
    if rel is not None:
        acc = acc.merge(rel[["culture", "concept", "reliability"]],
                        on=["culture", "concept"], how="left")
    else:
        acc["reliability"] = np.nan
    acc["ceiling"] = np.sqrt(acc["reliability"].clip(lower=0))
    acc = acc[ACCURACY_COLUMNS]

    pred_mats = {c: _matrix(pred_ens, c, concepts[c], "predicted") for c in cultures}
    rate_mats = {c: _matrix(rated[rated["image"].isin(ens_images)], c, concepts[c],
                            "mean_rating").dropna() for c in cultures}
    ceilings: dict[str, float] = {}
    if rel is not None:
        for c in cultures:
            part = rel[rel["culture"] == c]
            ceilings[c] = weighted_reliability(
                rate_mats[c], dict(zip(part["concept"], part["reliability"], strict=True)))

    comp_rows, load_rows, score_rows, summ_rows = [], [], [], []
    pairs: list[tuple[str, str, str, pd.DataFrame, pd.DataFrame, bool]] = []
    for i, a in enumerate(cultures):
        for b in cultures[i + 1:]:
            pairs.append((a, b, "cultures", pred_mats[a], pred_mats[b], cfg.shared_concepts))
    for c in cultures:
        pairs.append((c, f"{c} ratings", "ratings", pred_mats[c], rate_mats[c], True))
    for x_lab, y_lab, kind, xm, ym, same in pairs:
        name = f"{x_lab} vs {y_lab}"
        common = xm.index.intersection(ym.index)
        if len(common) < max(3, 2 * cfg.folds):
            summ_rows.append({"culture_pair": name, "x": x_lab, "y": y_lab, "kind": kind,
                              "n_images": len(common), "n_components": 0, "n_shared": 0})
            continue
        res = ppca(xm.loc[common], ym.loc[common], shared_concepts=same, scale=cfg.scale,
                   folds=cfg.folds, permutations=cfg.permutations, alpha=cfg.alpha,
                   seed=_pair_seed(study.study.seed, name))
        comp_rows.append(res.components.assign(culture_pair=name, x=x_lab, y=y_lab,
                                               kind=kind))
        y_culture = y_lab if kind == "cultures" else x_lab
        ld = res.loadings.assign(
            culture_pair=name,
            culture=np.where(res.loadings["side"] == "x", x_lab, y_culture),
            source=np.where((res.loadings["side"] == "y") & (kind == "ratings"),
                            "rating", "prediction"))
        load_rows.append(ld)
        keep = max(res.n_shared, 1)
        score_rows.append(res.scores[res.scores["component"] <= keep]
                          .assign(culture_pair=name))
        summ_rows.append({"culture_pair": name, "x": x_lab, "y": y_lab, "kind": kind,
                          "n_images": len(common), "n_components": len(res.components),
                          "n_shared": res.n_shared})
    comps = (pd.concat(comp_rows, ignore_index=True)[PPCA_COMPONENT_COLUMNS] if comp_rows
             else pd.DataFrame(columns=PPCA_COMPONENT_COLUMNS))
    loads = (pd.concat(load_rows, ignore_index=True)[PPCA_LOADING_COLUMNS] if load_rows
             else pd.DataFrame(columns=PPCA_LOADING_COLUMNS))
    score_cols = ["culture_pair", "component", "image", "score_x", "score_y"]
    scores = (pd.concat(score_rows, ignore_index=True)[score_cols] if score_rows
              else pd.DataFrame(columns=score_cols))
    preservation = meaning_preservation(pred_mats, rate_mats, ceilings or None,
                                        folds=cfg.folds, seed=study.study.seed)
    img_table = matched.assign(runs_held_out=matched["image"].map(
        dict(zip(images, counts, strict=True))).fillna(0).astype(int))[IMAGE_COLUMNS]
    training = pd.DataFrame({
        "run": np.repeat([p.run for p in plans], loss.shape[0]),
        "iteration": np.tile(np.arange(1, loss.shape[0] + 1), len(plans)),
        "loss": loss.T.ravel()})
    return {"meaning_images": img_table, "meaning_splits": splits,
            "meaning_training": training, "meaning_predictions": pred_table,
            "rating_accuracy_runs": acc_runs, "rating_accuracy": acc,
            "ppca_components": comps, "ppca_loadings": loads, "ppca_scores": scores,
            "ppca_summary": pd.DataFrame(summ_rows, columns=PPCA_SUMMARY_COLUMNS),
            "meaning_preservation": preservation}



def require_ratings(study: Study) -> None:
    """Raise a clear error when the study has no ``[meaning] ratings``."""
    if not study.meaning.ratings:
        raise InputError("the study has no [meaning] ratings; add a [meaning] section with "
                         "ratings = \"ratings.csv\" (docs/meaning.md)")


def draw_meaning_figures(run: RunDir) -> None:
    """Draw the meaning figures from the tables the stage wrote."""
    acc = run.read_table("rating_accuracy")
    comps = run.read_table("ppca_components")
    loads = run.read_table("ppca_loadings")
    summ = run.read_table("ppca_summary")
    pres = run.read_table("meaning_preservation")
    draw(run, "rating_accuracy", accuracy_figure, acc)
    if len(comps):
        draw(run, "ppca_components", ppca_figure, comps)
    images = run.read_table("meaning_images")
    scores = run.read_table("ppca_scores")
    for pair in summ.loc[summ["kind"] == "cultures", "culture_pair"]:
        if not (loads["culture_pair"] == pair).any():
            continue
        draw(run, f"loadings_{safe_name(pair)}", loadings_figure, loads, comps, pair)
        draw(run, f"top_images_{safe_name(pair)}", top_images_figure, scores, images, pair)
    if pres["preserved"].notna().any():
        draw(run, "meaning_preservation", preservation_figure, pres)


def meaning_section(run: RunDir) -> Section | None:
    """Rating accuracy, PPCA shared dimensions, loadings, preservation, top images."""
    if not run.has_table("ppca_summary"):
        return None
    acc = run.read_table("rating_accuracy")
    comps = run.read_table("ppca_components")
    loads = run.read_table("ppca_loadings")
    summ = run.read_table("ppca_summary")
    pres = run.read_table("meaning_preservation")
    facts = run.read_manifest().get("meaning", {})
    heads = facts.get("heads", {})
    blocks: list = [Text(
        f"Each culture's mean ratings of its own concepts were learned by its own head on "
        f"the frozen backbone's features ({facts.get('backbone', '?')}); "
        f"{heads.get('runs', '?')} runs, each with its own seeds, "
        f"{heads.get('iterations', '?')} AdamW steps, hidden units "
        f"{heads.get('hidden', '?')} (0: linear). Every image's prediction is the mean of "
        f"the runs that held it out. PPCA finds the dimensions along which two cultures' "
        f"held-out predictions covary (and predictions vs ratings: how many dimensions of "
        f"a culture's ratings the model captures); a dimension counts as shared when its "
        f"cross-validated covariance beats the permutation test, in order (docs/method.md §9).")]
    if facts.get("backbone", "").endswith("|random"):
        blocks.append(Text("WARNING: the backbone has RANDOM weights: these numbers test the "
                           "software, not the science."))
    per_culture = (acc.groupby("culture", sort=False)
                   .agg(concepts=("concept", "size"), r_ensemble=("r_ensemble", "mean"),
                        r_mean=("r_mean", "mean"), ceiling=("ceiling", "mean"))
                   .reset_index())
    blocks += [
        Table(per_culture, "Mean correlation of held-out predictions with the mean ratings "
              "per culture (over concepts); ceiling: mean √(split-half reliability).",
              "rating_accuracy_summary"),
        figure_file(run, "rating_accuracy", caption="Per concept: correlation of held-out "
                    "predictions with the mean ratings, from tables/rating_accuracy.csv.",
                    missing="No rating accuracy to draw: tables/rating_accuracy.csv has no "
                    "rows."),
        Table(summ, "Shared dimensions per pair (PPCA, cross-validated permutation test).",
              "ppca_summary"),
    ]
    if len(comps):
        blocks.append(figure_file(run, "ppca_components", caption="Held-out covariance of "
                                  "each PPCA component (filled: shared), from "
                                  "tables/ppca_components.csv."))
    tops = top_concepts(loads, comps)
    if len(tops):
        blocks.append(Table(tops, "Top concepts of each culture on each shared dimension "
                            "(loading = correlation with the dimension's score).",
                            "ppca_top_concepts"))
    for pair in summ.loc[summ["kind"] == "cultures", "culture_pair"]:
        if not (loads["culture_pair"] == pair).any():
            continue
        blocks.append(figure_file(run, f"loadings_{safe_name(pair)}", caption=f"{pair}: "
                                  "loadings of each culture's concepts on the shared "
                                  "dimensions, side by side, from tables/ppca_loadings.csv."))
        blocks.append(figure_file(run, f"top_images_{safe_name(pair)}", caption=f"{pair}: "
                                  "images scoring highest on each dimension (mean of both "
                                  "cultures' scores), from tables/ppca_scores.csv."))
    if pres["preserved"].notna().any():
        blocks.append(figure_file(
            run, "meaning_preservation", caption="Preservation: cross-validated share of the "
            "target culture's predicted-meaning variance explained by a ridge map from the "
            "source culture's predictions, from tables/meaning_preservation.csv."))
    blocks.append(Table(pres, "Preservation per ordered pair; preserved_ratings: share of the "
                        "target's rating variance explained, ceiling: its reliable share.",
                        "meaning_preservation"))
    return Section("meaning", "Shared dimensions of meaning", blocks)


STAGE = Stage(
    name="meaning", title="per-culture rating heads, PPCA, preservation",
    reads=("tables/images.csv", "tables/preprocess.csv"),
    writes=("tables/ppca_summary.csv", "tables/rating_accuracy.csv"),
    run=run, section=meaning_section, enabled=lambda study: study.meaning.enabled,
    external=lambda study: [Path(f) for f in (*study.meaning.ratings, *study.meaning.raters)],
    check=require_ratings,
    config=("databases", "preprocess", "model", "training", "meaning"))
