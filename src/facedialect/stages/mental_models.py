"""Mental models: each network's model of each expression, by reverse correlation in AU space.

Random combinations of action units (1-6 active, random intensities; ``[mental_models]``)
are rendered on a few faces, pre-processed like the training images and passed through
every trained network. Reverse correlation of the class probabilities with the AUs gives
each network's model of each expression: the AU pattern that raises that unit
(docs/method.md §11, docs/mental-models.md). Renders, pre-processed faces and features are
cached by content and shared by all networks and studies.

Writes ``tables/mm_trials.csv``, ``mm_responses.csv``, ``mm_models.csv`` (per network),
``mm_model_summary.csv`` (per database, with permutation p values and bootstrap
intervals), ``mm_similarity.csv`` and ``mm_distinctness.csv``, and the figures
``figures/mm_models.svg`` and ``figures/mm_faces.png``. Each database's part is one work
unit of the study's engine (:func:`database_models`: a Ray task with ``[compute] engine =
"ray"``); the driver renders the trials, compares the databases and writes the tables.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facedialect.compute import Engine
from facedialect.config import Study
from facedialect.errors import FacedialectError, FacedialectWarning, InputError
from facedialect.faces.procedural.identity import FaceIdentity
from facedialect.faces.stimuli import Renderer, builtin_renderer, photo_renderer
from facedialect.files import ArrayCache, cache_root, sha256_bytes
from facedialect.imageio import IMAGE_SUFFIXES
from facedialect.models.backbones import Backbone
from facedialect.models.runtime import FeatureRunner, feature_runner
from facedialect.models.weights import load_backbone
from facedialect.plots.figures import figure_function, plt, render, safe_name
from facedialect.preprocess.pipeline import preprocess_face
from facedialect.progress import ProgressFn
from facedialect.report.html import Section, Table, Text, figure_file
from facedialect.run.caches import load_face, preprocess_cache, preprocess_key
from facedialect.run.heads import heads_path, trained_backbone
from facedialect.run.store import RunDir
from facedialect.stages.base import (
    Context,
    Stage,
    Summary,
    TrainedHeads,
    draw,
    trained_heads,
    work_engine,
)
from facedialect.stats.revcorr import (
    AULabel,
    au_label,
    au_models,
    au_order,
    maximize_aus,
    model_distinctness,
    model_similarity,
    model_test,
    models_over_runs,
    sample_trials,
)
from facedialect.training.features import extract_features, feature_cache_and_runner
from facedialect.vocab import in_order

#: Bumped when the rendering of trials changes (part of the render cache key).
RENDER_VERSION = "mm-render-2"
#: Columns of ``tables/mm_trials.csv`` (long: one row per trial and AU).
TRIAL_COLUMNS = ["trial", "identity", "au", "intensity", "detected"]
#: Columns of ``tables/mm_responses.csv``.
RESPONSE_COLUMNS = ["db", "run", "trial", "unit", "probability"]


def identity_renderers(study: Study) -> list[tuple[str, Renderer]]:
    """The faces the trials are shown on: ``(description, renderer)`` per identity.

    ``faces = "builtin"``: procedural identities drawn from the study seed, alternately
    female and male, frontal. A folder: its first ``identities`` photos (sorted by name),
    each fitted with the 3-D model and photo-textured.

    Raises
    ------
    InputError
        When the folder has fewer photos than ``identities``.
    """
    cfg = study.mental_models
    if cfg.faces == "builtin":
        rng = np.random.default_rng(np.random.SeedSequence([study.study.seed, 11]))
        out = []
        for i, child in enumerate(rng.spawn(cfg.identities)):
            identity = FaceIdentity.random(child, sex="F" if i % 2 == 0 else "M", pose=False)
            out.append((f"builtin:{study.study.seed}:{i}", builtin_renderer(cfg.size, identity)))
        return out
    photos = face_photos(study)
    if len(photos) < cfg.identities:
        raise InputError(f"[mental_models] faces = {cfg.faces!r}: {len(photos)} photo(s) found, "
                         f"{cfg.identities} identities asked for; give a folder of frontal "
                         "face photos or faces = \"builtin\"")
    return [(f"photo:{sha256_bytes(p.read_bytes())}", photo_renderer(p, cfg.size))
            for p in photos]


def face_photos(study: Study) -> list[Path]:
    """The photos the trials are shown on (none for procedural faces): part of the fingerprint."""
    cfg = study.mental_models
    folder = Path(cfg.faces)
    if cfg.faces == "builtin" or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES)[:cfg.identities]


def sided_aus(study: Study) -> list[int]:
    """The AUs also shown one-sided (``[mental_models] sides``): the 3-D model has halves."""
    from facedialect.faces.model3d.recipes import AU_CATALOGUE

    cfg = study.mental_models
    if not cfg.sides:
        return []
    return [a for a in cfg.aus if a in AU_CATALOGUE and AU_CATALOGUE[a].sided]


def trial_table(study: Study) -> pd.DataFrame:
    """The trials (wide: ``trial`` and ``AU{n}``) with the identity each is shown on.

    With ``[mental_models] sides`` a sided AU has ``AU{n}L`` and ``AU{n}R`` columns instead.
    """
    cfg = study.mental_models
    trials = sample_trials(cfg.trials, cfg.aus, min_aus=cfg.min_aus, max_aus=cfg.max_aus,
                           seed=study.study.seed, sided=sided_aus(study))
    trials.insert(1, "identity", trials["trial"] % cfg.identities)
    return trials


def _au_rank(label: AULabel) -> int:
    """A number that sorts AU labels like :func:`~facedialect.stats.revcorr.au_order`."""
    n, side = au_order(label)
    return 3 * n + " LR".index(side or " ")


def render_aus(weights: dict[AULabel, float], sides: bool = True) -> dict[int | str, float]:
    """AU intensities for a renderer from AU labels (``12``, ``"12"``, ``"12L"``, ``"12R"``).

    Both halves of an AU at the same intensity are the two-sided AU. Without ``sides``
    (a renderer without one-sided AUs, e.g. the built-in face) a half counts as the whole
    AU at its intensity (the larger of the two).
    """
    out: dict[int | str, float] = {}
    halves: dict[int, dict[str, float]] = {}
    for label, v in weights.items():
        text = str(label)
        if text.isdigit():
            out[int(text)] = max(out.get(int(text), 0.0), float(v))
        else:
            halves.setdefault(int(text[:-1]), {})[text[-1]] = float(v)
    for n, h in halves.items():
        left, right = h.get("L", 0.0), h.get("R", 0.0)
        if not sides or (left > 0 and right > 0 and abs(left - right) < 1e-9):
            out[n] = max(out.get(n, 0.0), left, right)
        else:
            for side, v in (("L", left), ("R", right)):
                if v > 0:
                    out[f"{n}{side}"] = v
    return {k: v for k, v in out.items() if v > 0}


def render_trials(study: Study, trials: pd.DataFrame, faces: list[tuple[str, Renderer]],
                  progress: ProgressFn | None = None) -> tuple[list[str], list[str]]:
    """Render, pre-process and cache every trial's face (``faces``: :func:`identity_renderers`).

    Returns
    -------
    tuple
        Per trial the pre-processing cache key ("" when no face was detected) and the
        reason it was left out ("" when used).
    """
    cfg = study.mental_models
    renders = ArrayCache(cache_root(study.study.cache_dir) / "mental_models")
    pcache = preprocess_cache(study.study.cache_dir)
    params_key = study.preprocess.key()
    au_cols = [c for c in trials.columns if c.startswith("AU")]
    keys, reasons = [], []
    for n, row in enumerate(trials.itertuples(index=False), 1):
        desc, renderer = faces[int(row.identity)]
        aus = render_aus({au_label(c): round(float(getattr(row, c)), 6) for c in au_cols
                          if getattr(row, c) > 0})
        key = hashlib.sha256(json.dumps([RENDER_VERSION, desc, cfg.size, sorted(
            aus.items(), key=lambda kv: au_order(kv[0]))]).encode()).hexdigest()
        hit = renders.get(key, required=("image",))
        image = hit["image"] if hit is not None else renderer(aus)
        if hit is None:
            renders.put(key, image=image)
        gray = image if image.ndim == 2 else image.mean(axis=2).astype(np.uint8)
        face_key = preprocess_key(sha256_bytes(np.ascontiguousarray(gray).tobytes()),
                                  params_key)
        reason = ""
        if pcache.get(face_key, required=("image",)) is None:
            res = preprocess_face(gray, study.preprocess)
            if res.image is None:
                reason = res.reason or "no face detected"
            else:
                pcache.put(face_key, image=res.image)
        keys.append("" if reason else face_key)
        reasons.append(reason)
        if progress:
            progress("mental models: faces", n, len(trials))
    return keys, reasons


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Render the trials, measure every network's probabilities, reverse-correlate them."""
    cfg = study.mental_models
    device = ctx.resolved_device()
    tag, _ = trained_backbone(run, study.model.backbone)
    trials = trial_table(study)
    faces = identity_renderers(study)
    keys, reasons = render_trials(study, trials, faces, ctx.progress)
    used = np.array([k != "" for k in keys])
    if used.sum() < 10:
        raise InputError(f"[mental_models]: a face was detected in {int(used.sum())} of "
                         f"{len(keys)} trials; use other faces (docs/mental-models.md)")
    au_cols = [c for c in trials.columns if c.startswith("AU")]
    engine, work_device = work_engine(study, ctx)
    with run.stage("mental_models", trials=len(trials), used=int(used.sum()),
                   faces=cfg.faces, method=cfg.method, engine=engine.name) as info:
        backbone = load_backbone(study.model.backbone, study.model.weights,
                                 allow_download=study.model.allow_download)
        fcache, runner = feature_cache_and_runner(backbone, study.model.runtime,
                                                  device=device,
                                                  cache_dir=study.study.cache_dir)
        if fcache.backbone_tag != tag:
            raise InputError(f"the networks were trained on {tag} features, the study's "
                             f"[model] gives {fcache.backbone_tag}; train again")
        face_keys = [k for k in keys if k]
        pcache = preprocess_cache(study.study.cache_dir)
        n_new = extract_features(face_keys, lambda k: load_face(k, pcache), backbone,
                                 study.preprocess, fcache, variants=[0], device=device,
                                 runner=runner, progress=ctx.tick("mental models: features"))
        feats = torch.from_numpy(fcache.load(face_keys, [0])[:, 0, :].astype(np.float32))
        kept = trials[used].reset_index(drop=True)
        wide = kept[["trial", *au_cols]]
        dbs = [d.name for d in study.databases]
        tables = network_models(run, dbs, feats, wide, study, engine=engine,
                                device=work_device, modify=ModifyJob(
                                    faces[0][1], runner.name,
                                    backbone if engine.name == "local" else None,
                                    runner if engine.name == "local" else None)
                                if cfg.modify else None, progress=ctx.progress)
        responses = tables.pop("mm_responses")
        long_trials = trials.melt(id_vars=["trial", "identity"], value_vars=au_cols,
                                  var_name="au", value_name="intensity")
        long_trials["au"] = long_trials["au"].map(au_label)
        long_trials["detected"] = long_trials["trial"].map(dict(zip(trials["trial"], used,
                                                                    strict=True)))
        run.write_table("mm_trials", long_trials.sort_values(
            ["trial", "au"], key=lambda col: col.map(_au_rank) if col.name == "au" else col
        )[TRIAL_COLUMNS])
        run.write_table("mm_responses", responses[RESPONSE_COLUMNS])
        for name, df in tables.items():
            run.write_table(name, df)
        shown = shown_faces(run, study, faces[0][1], ctx)
        info.update(features_computed=n_new, networks=int(
            responses[["db", "run"]].drop_duplicates().shape[0]),
            shown=[name for name, _ in shown])
    draw(run, "mm_models", models_figure, tables["mm_model_summary"])
    for name, renderer in shown:
        # every face but the built-in one is the 3-D model: it draws one-sided AUs
        sides = name != "builtin" and (name != "trials" or cfg.faces != "builtin")
        draw(run, f"mm_faces_{name}", model_faces_figure, tables["mm_model_summary"],
             renderer, sides, fmt="png")
        if "mm_modification" in tables:
            draw(run, f"mm_modified_faces_{name}", modified_faces_figure,
                 tables["mm_modification"], renderer, fmt="png")
    sim = tables["mm_similarity"]
    lines = [f"{int(used.sum())}/{len(trials)} trials on {cfg.identities} {cfg.faces} "
             f"face(s) ({sum(1 for r in reasons if r)} without a detected face); "
             f"{n_new} features computed"]
    for r in sim.itertuples():
        lines.append(f"{r.db_a} vs {r.db_b} {r.unit}: model r_s {r.spearman_r:.2f}")
    return Summary("mental_models", lines, {"trials": len(trials), "used": int(used.sum()),
                                            "similarity": sim.to_dict("records")})


def shown_faces(run: RunDir, study: Study, first: Renderer, ctx: Context
                ) -> list[tuple[str, Renderer]]:
    """``(figure name part, renderer)`` of each ``[mental_models] show_on`` face.

    A face that cannot be made (e.g. ``average`` before any neutral image) is reported and
    left out; the first face of the trials always can.
    """
    from facedialect.faces.base import BaseFace
    from facedialect.stages.tuning import base_face_renderer

    out = []
    for face in study.mental_models.show_on:
        if face == "trials":
            out.append(("trials", first))
            continue
        base = BaseFace.parse(face)
        name = base.kind if base.kind != "photo" else safe_name(Path(str(base.path)).stem)
        try:
            renderer, _ = base_face_renderer(
                face, study.mental_models.size, run_dir=run.path,
                dbs=[d.name for d in study.databases],
                progress=ctx.tick("mental models: average face"))
        except (ValueError, FacedialectError) as exc:
            warnings.warn(f"[mental_models] show_on {face!r}: {exc}; left out",
                          FacedialectWarning, stacklevel=2)
            continue
        out.append((name, renderer))
    return out


@dataclass
class ModifyJob:
    """What the AU modification (``[mental_models] modify``) of a work unit needs.

    Parameters
    ----------
    renderer : Renderer
        The first face of the trials (candidates are rendered on it).
    runtime : str
        The feature runtime of the driver's cache (a worker computes with the same one).
    backbone : Backbone, optional
        The loaded backbone (a local run passes the driver's; a Ray worker loads its own).
    runner : FeatureRunner, optional
        Its runner (with ``backbone``).
    """

    renderer: Renderer
    runtime: str
    backbone: Backbone | None = None
    runner: FeatureRunner | None = None


def network_models(run: RunDir, dbs: list[str], feats: torch.Tensor, trials: pd.DataFrame,
                   study: Study, *, engine: Engine | None = None, device: str = "cpu",
                   modify: ModifyJob | None = None, progress: ProgressFn | None = None
                   ) -> dict[str, pd.DataFrame]:
    """Every database's responses, models, tests and distinctness; their similarity.

    Each database with a heads file is one work unit of ``engine``
    (:func:`database_models`; a Ray task with ``[compute] engine = "ray"``, which reads
    the heads file itself); the default computes here. The driver puts the databases'
    tables together and compares their models (:func:`model_similarity`).

    Parameters
    ----------
    run : RunDir
        The trained run.
    dbs : list of str
        The study's databases (those without heads are left out).
    feats : torch.Tensor
        ``(T, D)`` float32 features of the used trials (rows of ``trials``).
    trials : pandas.DataFrame
        ``trial`` and the ``AU`` columns of the used trials.
    study : Study
        ``[mental_models]``, ``[preprocess]``, ``[model]``.
    engine : Engine, optional
        Where the units run.
    device : str
        The engine's device (the AU modification's backbone on a worker).
    modify : ModifyJob, optional
        Also search the AU vectors that raise each expression (:func:`au_modification`).
    progress : ProgressFn, optional
        ``progress(label, done, total)`` (locally: the modification's own).

    Returns
    -------
    dict
        ``mm_responses``, ``mm_models``, ``mm_model_summary``, ``mm_similarity``,
        ``mm_distinctness`` and, with ``modify``, ``mm_modification`` and
        ``mm_modification_summary``.
    """
    engine = engine or Engine()
    present = [db for db in dbs if heads_path(run, db).exists()]
    local = engine.name == "local"
    heads: list[TrainedHeads | tuple[Path, str]] = (
        list(trained_heads(run, present).values()) if local or not present
        else [(run.path, db) for db in present])
    shared, job = engine.share(feats), engine.share(modify)
    jobs = ({"heads": h, "feats": shared, "trials": trials, "study": study,
             "modify": job, "device": device,
             "progress": progress if local else None} for h in heads)
    parts = list(engine.map(database_models, jobs, device=device, progress=(
        (lambda d, t: progress("mental models (ray tasks)", d, t))
        if progress and not local else None)))
    out = {name: pd.concat([p[name] for p in parts], ignore_index=True)
           for name in parts[0]}
    summary = out["mm_model_summary"]
    names = list(dict.fromkeys(summary["db"]))
    sims = [model_similarity(summary, a, b)
            for i, a in enumerate(names) for b in names[i + 1:]]
    out["mm_similarity"] = (pd.concat(sims, ignore_index=True) if sims else
                            pd.DataFrame(columns=["db_a", "db_b", "unit", "spearman_r", "p"]))
    order = ["mm_responses", "mm_models", "mm_model_summary", "mm_similarity",
             "mm_distinctness", "mm_modification", "mm_modification_summary"]
    return {name: out[name] for name in order if name in out}


def database_models(heads: TrainedHeads | tuple[Path, str], feats: torch.Tensor,
                    trials: pd.DataFrame, study: Study, *, modify: ModifyJob | None = None,
                    device: str = "cpu", progress: ProgressFn | None = None
                    ) -> dict[str, pd.DataFrame]:
    """One database's mental models: one work unit of the engine (a Ray task).

    Parameters
    ----------
    heads : TrainedHeads or tuple
        The database's networks, or ``(run directory, database)`` to read them from.
    feats : torch.Tensor
        ``(T, D)`` features of the used trials.
    trials : pandas.DataFrame
        ``trial`` and the ``AU`` columns of the used trials.
    study : Study
        ``[mental_models]`` (and, for ``modify``, ``[preprocess]`` and ``[model]``).
    modify : ModifyJob, optional
        Also run :func:`au_modification` for this database.
    device : str
        Where a worker's backbone runs (for ``modify`` without a backbone).
    progress : ProgressFn, optional
        The modification's ``progress(label, done, total)``.

    Returns
    -------
    dict
        This database's rows of ``mm_responses``, ``mm_models``, ``mm_model_summary``
        and ``mm_distinctness`` (:func:`model_tables` without the similarity), and with
        ``modify`` of ``mm_modification`` and ``mm_modification_summary``.
    """
    if isinstance(heads, tuple):
        heads = trained_heads(RunDir(heads[0]), [heads[1]])[heads[1]]
    responses = network_probabilities({heads.db: heads}, feats, trials["trial"].to_numpy())
    tables = {"mm_responses": responses, **model_tables(trials, responses, study)}
    del tables["mm_similarity"]
    if modify is not None:
        backbone, runner = modify.backbone, modify.runner
        if backbone is None or runner is None:
            backbone = load_backbone(study.model.backbone, study.model.weights,
                                     allow_download=study.model.allow_download)
            runner = feature_runner(backbone, modify.runtime, device=device,
                                    cache_dir=study.study.cache_dir)
            if runner.name != modify.runtime:
                raise InputError(f"mental models: the Ray worker computes with "
                                 f"{runner.name}, the driver with {modify.runtime}; "
                                 f"install the same facedialect extras on every node")
        tables.update(au_modification(study, {heads.db: heads}, tables["mm_model_summary"],
                                      modify.renderer, backbone, runner, progress))
    return tables


@torch.no_grad()
def network_probabilities(heads: dict[str, TrainedHeads], feats: torch.Tensor,
                          trial_ids: np.ndarray) -> pd.DataFrame:
    """Softmax probabilities of every live run of every database for the trial features."""
    rows = []
    for db, th in heads.items():
        for pos, r in th.live:
            probs = torch.softmax(th.head.forward_run(pos, feats), dim=-1).numpy()
            rows.append(pd.DataFrame({
                "db": db, "run": r, "trial": np.repeat(trial_ids, len(th.expressions)),
                "unit": np.tile(th.expressions, len(trial_ids)),
                "probability": probs.ravel()}))
    return pd.concat(rows, ignore_index=True)


def model_tables(trials: pd.DataFrame, responses: pd.DataFrame, study: Study
                 ) -> dict[str, pd.DataFrame]:
    """Per-network models, per-database models with tests, similarity, distinctness."""
    cfg = study.mental_models
    per_run = []
    for (db, r), part in responses.groupby(["db", "run"], sort=False):
        units = in_order(part["unit"])
        m = au_models(trials, part.rename(columns={"probability": "response"}),
                      units=units, method=cfg.method)
        per_run.append(m.assign(db=db, run=r))
    models = pd.concat(per_run, ignore_index=True)[["db", "run", "unit", "au", "weight"]]
    summary = models_over_runs(models)
    tests, distinct = [], []
    for db, part in responses.groupby("db", sort=False):
        mean = (part.groupby(["trial", "unit"], sort=False)["probability"].mean()
                .rename("response").reset_index())
        units = in_order(mean["unit"])
        t = model_test(trials, mean, units=units, n_permutations=cfg.permutations,
                       n_boot=cfg.bootstrap, seed=study.study.seed, method=cfg.method)
        tests.append(t.assign(db=db))
        # leave-one-out weighted models of the run-averaged responses
        distinct.append(model_distinctness(trials, mean).assign(db=db))
    test = pd.concat(tests, ignore_index=True)
    summary = summary.merge(test[["db", "unit", "au", "p", "ci_low", "ci_high"]],
                            on=["db", "unit", "au"], how="left")
    dbs = list(dict.fromkeys(summary["db"]))
    sims = [model_similarity(summary, a, b)
            for i, a in enumerate(dbs) for b in dbs[i + 1:]]
    sim = (pd.concat(sims, ignore_index=True) if sims else
           pd.DataFrame(columns=["db_a", "db_b", "unit", "spearman_r", "p"]))
    dist = pd.concat(distinct, ignore_index=True)
    dist = dist[["db", *[c for c in dist.columns if c != "db"]]]
    return {"mm_models": models, "mm_model_summary": summary, "mm_similarity": sim,
            "mm_distinctness": dist}


def au_modification(study: Study, heads: dict[str, TrainedHeads], summary: pd.DataFrame,
                    renderer: Renderer, backbone: Backbone, runner: FeatureRunner,
                    progress: ProgressFn | None = None) -> dict[str, pd.DataFrame]:
    """Per database and expression, the AU intensities that most raise that expression.

    CMA-ES (:func:`~facedialect.stats.revcorr.maximize_aus`) searches AU vectors in
    [0, 1], starting from the database's reverse-correlation model (positive weights
    scaled to the largest); each candidate is rendered on the first face, pre-processed
    and judged by all the database's networks (the target's probability averaged over
    runs), less ``modify_sparsity`` per unit of summed intensity.

    Returns
    -------
    dict
        ``mm_modification`` (``db, unit, au, start, found``) and
        ``mm_modification_summary`` (``db, unit, probability_start, probability_found,
        aus_active``).
    """
    cfg = study.mental_models
    aus = list(cfg.aus)
    rows, summ = [], []
    todo = [(db, u) for db, th in heads.items() for u in th.expressions]
    for n, (db, unit) in enumerate(todo, 1):
        th = heads[db]
        k = th.expressions.index(unit)

        def judge(xs: np.ndarray, _th: TrainedHeads = th, _k: int = k) -> np.ndarray:
            return _target_probability(xs, aus, renderer, study, backbone, runner, _th, _k)

        m = summary[(summary["db"] == db) & (summary["unit"] == unit)]
        # a one-sided model (``sides``) starts the two-sided AU at the mean of its halves
        by_au = m.groupby(m["au"].map(lambda a: int(str(a).rstrip("LR"))))["mean"].mean()
        w = by_au.reindex(aus).fillna(0.0).clip(lower=0.0).to_numpy()
        x0 = w / w.max() if w.max() > 0 else np.zeros(len(aus))
        start = float(judge(x0[None])[0])
        found, value = maximize_aus(judge, x0, evaluations=cfg.modify_evaluations,
                                    sparsity=cfg.modify_sparsity, seed=study.study.seed)
        rows.append(pd.DataFrame({"db": db, "unit": unit, "au": aus, "start": x0.round(4),
                                  "found": np.asarray(found).round(4)}))
        summ.append({"db": db, "unit": unit, "probability_start": round(start, 4),
                     "probability_found": round(value, 4),
                     "aus_active": int((np.asarray(found) > 0.05).sum())})
        if progress:
            progress("mental models: modification", n, len(todo))
    return {"mm_modification": pd.concat(rows, ignore_index=True),
            "mm_modification_summary": pd.DataFrame(summ)}


@torch.no_grad()
def _target_probability(xs: np.ndarray, aus: list[int], renderer: Renderer, study: Study,
                        backbone: Backbone, runner: FeatureRunner, th: TrainedHeads, k: int
                        ) -> np.ndarray:
    """Mean over the database's live runs of unit ``k``'s probability for each AU vector."""
    faces, ok = [], []
    for x in xs:
        image = renderer({a: float(v) for a, v in zip(aus, x, strict=True) if v > 1e-3})
        gray = image if image.ndim == 2 else image.mean(axis=2).astype(np.uint8)
        res = preprocess_face(gray, study.preprocess)
        ok.append(res.image is not None)
        faces.append(res.image if res.image is not None
                     else np.zeros((study.preprocess.size,) * 2, np.uint8))
    feats = torch.from_numpy(np.asarray(runner(backbone.to_input(np.stack(faces))),
                                        dtype=np.float32))
    probs = np.mean([torch.softmax(th.head.forward_run(pos, feats), dim=-1)[:, k].numpy()
                     for pos, _ in th.live], axis=0)
    return np.where(ok, probs, 0.0)


@figure_function
def modified_faces_figure(modification: pd.DataFrame, renderer: Renderer) -> bytes | None:
    """The AU vectors found for each database (rows) and expression (columns), rendered."""
    cells = {(str(db), str(unit)): render_aus({a: float(v) for a, v in zip(
        g["au"], g["found"], strict=True) if v > 1e-3})
             for (db, unit), g in modification.groupby(["db", "unit"], sort=False)}
    return _face_grid(cells, renderer)


def _face_grid(cells: dict[tuple[str, str], dict[int, float]], renderer: Renderer
               ) -> bytes | None:
    """Faces rendered from AU intensities: databases as rows, expressions as columns."""
    if not cells:
        return None
    dbs = list(dict.fromkeys(db for db, _ in cells))
    units = in_order(unit for _, unit in cells)
    fig, axes = plt.subplots(len(dbs), len(units), figsize=(1.3 * len(units), 1.5 * len(dbs)),
                             squeeze=False)
    for i, db in enumerate(dbs):
        for j, unit in enumerate(units):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            if (db, unit) in cells:
                ax.imshow(renderer(cells[db, unit]), cmap="gray", vmin=0, vmax=255)
            if i == 0:
                ax.set_title(unit, fontsize=8)
            if j == 0:
                ax.set_ylabel(db, fontsize=8)
    return render(fig)


@figure_function
def models_figure(summary: pd.DataFrame) -> bytes | None:
    """Each database's model of each expression: units (rows) x AUs (columns), side by side."""
    if summary.empty:
        return None
    dbs = list(dict.fromkeys(summary["db"]))
    aus = sorted(summary["au"].unique(), key=au_order)
    units = in_order(summary["unit"])
    lim = float(np.nanmax(np.abs(summary["mean"]))) or 1.0
    fig, axes = plt.subplots(1, len(dbs), figsize=(0.32 * len(aus) * len(dbs) + 1.5,
                                                   0.35 * len(units) + 1.4), squeeze=False)
    for ax, db in zip(axes[0], dbs, strict=True):
        mat = (summary[summary["db"] == db].pivot(index="unit", columns="au", values="mean")
               .reindex(index=units, columns=aus))
        im = ax.imshow(mat.to_numpy(dtype=float), cmap="RdBu_r", vmin=-lim, vmax=lim,
                       aspect="auto")
        sig = (summary[(summary["db"] == db) & (summary["p"] < 0.05)])
        for s in sig.itertuples():
            if s.unit in units:
                ax.text(aus.index(s.au), units.index(s.unit), "•", ha="center", va="center",
                        fontsize=7)
        ax.set_xticks(range(len(aus)), [str(a) for a in aus], fontsize=6)
        ax.set_yticks(range(len(units)), units, fontsize=7)
        ax.set_title(f"{db}", fontsize=9)
        ax.set_xlabel("AU", fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="model weight")
    return render(fig)


@figure_function
def model_faces_figure(summary: pd.DataFrame, renderer: Renderer, sides: bool = False
                       ) -> bytes | None:
    """Each database's model of each expression rendered as a face (positive weights).

    A unit's positive weights, scaled to its largest, are its AU intensities; a unit
    without a positive weight shows the neutral face. ``sides``: the renderer draws
    one-sided AUs (else a half counts as the whole AU, :func:`render_aus`).
    """
    cells = {}
    for (db, unit), g in summary.groupby(["db", "unit"], sort=False):
        pos = g[g["mean"] > 0]
        top = float(pos["mean"].max()) if len(pos) else 1.0
        cells[str(db), str(unit)] = render_aus(
            {a: float(w / top) for a, w in zip(pos["au"], pos["mean"], strict=True)}, sides)
    return _face_grid(cells, renderer)


def _face_figures(run: RunDir, prefix: str) -> list[str]:
    """The figures ``{prefix}_{face}`` of the faces the last run showed (``show_on``)."""
    info = run.read_manifest().get("stages", {}).get("mental_models", {})
    return [f"{prefix}_{face}" for face in info.get("shown", [])]


def _face_label(name: str) -> str:
    face = name.split("_", 2)[-1] if name.startswith("mm_faces_") else name.split("_", 3)[-1]
    return {"trials": "first face of the trials",
            "average": "average neutral face of the study's databases",
            "builtin": "built-in face", "3d": "3-D model's average face"}.get(
                face, f"photo-textured face of {face}")


def section(run: RunDir) -> Section | None:
    """Models as AU profiles and as faces, their similarity and distinctness."""
    if not run.has_table("mm_model_summary"):
        return None
    info = run.read_manifest().get("stages", {}).get("mental_models", {})
    blocks: list = [
        Text(f"{info.get('used', '?')} of {info.get('trials', '?')} random AU combinations "
             f"(faces: {info.get('faces', '?')}) were shown to every network; a unit's model "
             f"is its reverse-correlation pattern over the AUs (method "
             f"{info.get('method', '?')}: the probability-weighted mean AU pattern minus the "
             "mean of all trials, averaged over the database's runs; dots: permutation "
             "p < 0.05). docs/method.md §11."),
        figure_file(run, "mm_models", caption="Each database's model of each expression "
                    "(rows) over the AUs (columns), from tables/mm_model_summary.csv."),
    ]
    for path in _face_figures(run, "mm_faces"):
        blocks.append(figure_file(run, path, caption="The models rendered: each unit's "
                                  "positive weights, scaled to its largest, as AU intensities "
                                  f"on the {_face_label(path)}."))
    if run.has_table("mm_similarity"):
        blocks.append(Table(run.read_table("mm_similarity"), "Spearman r_s between two "
                            "databases' models of the same expression (over the AUs).",
                            "mm_similarity"))
    if run.has_table("mm_modification_summary"):
        for path in _face_figures(run, "mm_modified_faces"):
            blocks.append(figure_file(run, path, caption="Modification in AU space: for "
                                      "each database (rows) and expression, the AU "
                                      "intensities CMA-ES found to raise that expression "
                                      "most (started from the model), rendered on the "
                                      f"{_face_label(path)}."))
        blocks.append(Table(run.read_table("mm_modification_summary"), "The target "
                            "probability (mean over the database's networks) of the start "
                            "(the model) and of the AU vector found; aus_active: AUs above "
                            "0.05.", "mm_modification_summary"))
    if run.has_table("mm_distinctness"):
        blocks.append(Table(run.read_table("mm_distinctness"), "How distinct a database's "
                            "models are: trials classified by the nearest model "
                            "(leave-one-out) against the unit that answered most.",
                            "mm_distinctness"))
    return Section("mental_models", "Mental models (reverse correlation)", blocks)


STAGE = Stage(
    name="mental_models", title="each network's model of each expression (reverse correlation)",
    reads=("heads/*.pt",),
    writes=("tables/mm_trials.csv", "tables/mm_responses.csv", "tables/mm_models.csv",
            "tables/mm_model_summary.csv", "tables/mm_distinctness.csv"),
    run=run, section=section, enabled=lambda study: study.mental_models.enable,
    config=("preprocess", "model", "mental_models"), external=face_photos,
    command="mental-models")
