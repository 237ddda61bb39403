"""Train: every database's runs, on the cached features, all runs at once (resumable).

Writes ``heads/{db}.pt`` (every run's head, curves and failures), the training curves
(``tables/training_curves.csv``) and their figure. A heads file whose signature (backbone,
protocol, seed, splits, units, trainer version) matches is kept: its runs are not trained
again. An interrupted training resumes from its checkpoints.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.compute import Engine
from facedialect.config import Study
from facedialect.plots.figures import training_curves_figure
from facedialect.preprocess.augment import variant_subset
from facedialect.progress import ProgressFn
from facedialect.report.html import Section, Table, Text, figure_file
from facedialect.run.heads import heads_path, saved_heads, write_heads
from facedialect.run.store import RunDir
from facedialect.stages.base import (
    Context,
    Stage,
    Summary,
    draw,
    protocol_of,
    work_engine,
)
from facedialect.stages.features import study_faces, study_order
from facedialect.training.features import FeatureCache
from facedialect.training.plan import run_plans
from facedialect.training.protocol import Protocol
from facedialect.training.trainer import TRAINER_VERSION, RunPlan, TrainOutcome, train_runs
from facedialect.vocab import in_order


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Train every database's runs and write their heads and training curves."""
    engine, device = work_engine(study, ctx)
    proto = protocol_of(study)
    faces, units = study_faces(run, study)
    features = run.read_manifest().get("features", {})
    fcache = FeatureCache(features["backbone"], study.study.cache_dir,
                          runtime=features.get("runtime", "torch"))
    with run.stage("train", protocol=proto.name, backbone=fcache.backbone_tag,
                   device=device) as info:
        result = train_databases(run, study, faces, units, run.read_table("splits"),
                                 fcache=fcache, device=device, progress=ctx.progress,
                                 checkpoint_every=int(ctx.options.get("checkpoint_every",
                                                                      500)),
                                 engine=engine)
        run.write_table("training_curves", result["curves"])
        info.update(runs=proto.runs, weights_random=fcache.backbone_tag.endswith("|random"))
    run.update_manifest(training={"protocol": proto.as_dict(), "backbone": fcache.backbone_tag,
                                  "runtime": fcache.runtime,
                                  "weights_random": fcache.backbone_tag.endswith("|random"),
                                  "device": device, "engine": engine.name,
                                  "split_by": study.training.split_by,
                                  "class_balance": study.training.class_balance,
                                  "lr_scale": result["lr_scale"]})
    draw(run, "training_curves", training_curves_figure, result["curves"])
    lines = [f"{study.model.backbone} ({study.model.weights}), protocol {proto.name}: "
             f"{proto.runs} runs x {proto.iterations} iterations per database"]
    for db, d in result["dbs"].items():
        failed = d.get("failed") or {}
        lines.append(f"{db}: {d['runs']} runs" + (f", {len(failed)} failed" if failed else "")
                     + (" (up to date)" if d.get("skipped") else ""))
    return Summary("train", lines, {"dbs": result["dbs"], "lr_scale": result["lr_scale"],
                                    "protocol": proto.as_dict(),
                                    "backbone": fcache.backbone_tag})


def train_databases(run: RunDir, study: Study, faces: pd.DataFrame,
                    units: dict[str, list[str]], splits: pd.DataFrame, *,
                    fcache: FeatureCache, device: str, progress: ProgressFn | None = None,
                    folder: str = "heads", checkpoint_every: int = 500,
                    engine: Engine | None = None) -> dict[str, Any]:
    """Train the runs of every database of ``units`` on the cached features of ``faces``.

    Parameters
    ----------
    run : RunDir
        The run directory (heads go to ``RUN/{folder}/{db}.pt``, checkpoints to
        ``RUN/checkpoints/``).
    study : Study
        The study (seed, protocol, class balance).
    faces : pandas.DataFrame
        The included faces (``db, path, expression, cache_key``).
    units : dict
        Database -> output units.
    splits : pandas.DataFrame
        Every run's split of every database (``tables/splits.csv``).
    fcache : FeatureCache
        The cache holding every face's training variants.
    device : str
        Where to train.
    progress : ProgressFn, optional
        ``progress(label, done, total)`` per group of runs.
    folder : str
        Folder of the heads files (``heads``; the robustness check uses its own).
    checkpoint_every : int
        Iterations between checkpoints.
    engine : Engine, optional
        Where the groups of runs train (:func:`train_group`, one work unit each): here
        (default), or as Ray tasks. This process writes the heads and curves.

    Returns
    -------
    dict
        ``dbs`` (per database: runs, failed runs, seconds or ``skipped``), ``lr_scale`` per
        database and ``curves`` (the training curves, :data:`CURVE_COLUMNS`).
    """
    proto = protocol_of(study)
    engine = engine or Engine()
    train_variants = variant_subset(proto.variants)
    tag = fcache.backbone_tag
    out: dict[str, Any] = {"dbs": {}, "lr_scale": {}}
    curves: dict[str, pd.DataFrame] = {}
    todo = []
    order = study_order(study, units)
    for db in order:
        part = faces[faces["db"] == db].reset_index(drop=True)
        labels = torch.tensor([units[db].index(e) for e in part["expression"]])
        plans = run_plans(part, splits[splits["db"] == db], labels.numpy(), study.study.seed,
                          proto.runs, study.training.class_balance)
        sig = _heads_signature(tag, proto, plans, study.study.seed, units[db])
        saved = saved_heads(heads_path(run, db, folder))  # damaged: as if absent, warned
        if saved is not None and saved["signature"] == sig:
            curves[db] = _curves_from_saved(db, saved)
            out["dbs"][db] = {"runs": proto.runs, "skipped": "up to date"}
            out["lr_scale"][db] = _lr_scale_of(saved)
            continue
        todo.append((db, part, labels, plans, sig))
    stem = "" if folder == "heads" else folder.replace("/", "_") + "_"
    tasks = 1 if engine.name == "local" else (
        study.compute.train_tasks or engine.workers(device))
    owners: list[str] = []  # the database of each job, in job order

    def jobs() -> Iterator[dict[str, Any]]:
        for db, part, labels, plans, _ in todo:  # one database's features at a time
            feats = engine.share(torch.from_numpy(fcache.load(list(part["cache_key"]),
                                                              train_variants)))
            size = -(-len(plans) // min(tasks, len(plans)))
            for g0 in range(0, len(plans), size):
                owners.append(db)
                yield {"feats": feats, "labels": labels, "plans": plans[g0:g0 + size],
                       "proto": proto, "n_classes": len(units[db]), "device": device,
                       "checkpoints": run.path / "checkpoints", "name": f"{stem}{db}",
                       "checkpoint_every": checkpoint_every,
                       "progress": progress if engine.name == "local" else None,
                       "label": f"train {db}"}

    results = engine.map(train_group, jobs(), device=device, progress=(
        (lambda d, t: progress("train (ray tasks)", d, t)) if progress else None))
    by_db: dict[str, list[tuple[list[RunPlan], Any, Path]]] = {db: [] for db, *_ in todo}
    for i, groups in enumerate(results):
        db = owners[i]
        by_db[db].extend(groups)
        if sum(len(chunk) for chunk, _, _ in by_db[db]) < proto.runs:
            continue  # more of its groups to come
        sig = next(t[4] for t in todo if t[0] == db)
        outs = [(chunk, o) for chunk, o, _ in by_db[db]]
        saved = heads_state(sig, tag, proto, outs, units[db])
        write_heads(heads_path(run, db, folder), saved)
        for ck in (run.path / "checkpoints").glob(f"{glob.escape(stem + db)}_runs[0-9]*-[0-9]*.pt"):
            ck.unlink(missing_ok=True)  # these groups', and any of another grouping
        curves[db] = _curves_from_saved(db, saved)
        failed = {int(k): v for k, v in zip(saved["failed_runs"].tolist(),
                                             saved["failed_reasons"], strict=True)}
        out["dbs"][db] = {"runs": proto.runs, "failed": failed,
                          "seconds": sum(o.seconds for _, o in outs)}
        out["lr_scale"][db] = _lr_scale_of(saved)
        by_db[db] = []
    if todo:  # a worker killed while writing a checkpoint leaves its temporary file
        for tmp in (run.path / "checkpoints").glob(".*.pt.*.tmp"):
            tmp.unlink(missing_ok=True)
    out["dbs"] = {db: out["dbs"][db] for db in order if db in out["dbs"]}
    out["lr_scale"] = {db: out["lr_scale"][db] for db in order if db in out["lr_scale"]}
    out["curves"] = pd.concat([curves[db] for db in order if db in curves], ignore_index=True)
    return out


def train_group(feats: torch.Tensor, labels: torch.Tensor, plans: list[RunPlan],
                proto: Protocol, *, n_classes: int, device: str, checkpoints: Path,
                name: str, checkpoint_every: int = 500, progress: ProgressFn | None = None,
                label: str = "train") -> list[tuple[list[RunPlan], TrainOutcome, Path]]:
    """Train a group of one database's runs: one work unit of the engine (a Ray task).

    The runs are trained together by the batched trainer, in as many sub-groups as the
    device's memory needs, each resuming from (and checkpointing to)
    ``checkpoints/{name}_runs{first}-{last}.pt``. A run's numbers do not depend on the
    runs beside it, so any grouping gives the same heads.

    Returns
    -------
    list of tuple
        ``(plans, outcome with its heads on the CPU, checkpoint file)`` per sub-group.
    """
    # writable index arrays (a Ray task gets them read-only from the object store)
    plans = [dataclasses.replace(p, train_idx=np.array(p.train_idx), val_idx=np.array(p.val_idx))
             for p in plans]
    group = _runs_per_group(feats.shape[2], proto.hidden, device, len(plans))
    outs = []
    for g0 in range(0, len(plans), group):
        chunk = plans[g0:g0 + group]
        span = f"runs {chunk[0].run}-{chunk[-1].run}"
        ck = checkpoints / f"{name}_runs{chunk[0].run}-{chunk[-1].run}.pt"
        result = train_runs(
            feats, labels, chunk, proto, n_classes=n_classes, device=device, checkpoint=ck,
            checkpoint_every=checkpoint_every,
            progress=(lambda d, t, _label=f"{label} {span}": progress(_label, d, t))
            if progress else None)
        result.head = result.head.cpu()
        outs.append((chunk, result, ck))
    return outs


def heads_state(sig: str, tag: str, proto: Protocol, outs: list[tuple[list[RunPlan], Any]],
                expressions: list[str]) -> dict[str, Any]:
    """The heads file's contents from the training outcomes of a database's run groups."""
    state: dict[str, Any] = {"signature": sig, "backbone": tag, "protocol": proto.name,
                             "dropout": proto.dropout, "expressions": list(expressions)}
    for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
        state[name] = torch.cat([getattr(o.head, name).detach().cpu() for _, o in outs])
    state["runs"] = torch.tensor([p.run for chunk, _ in outs for p in chunk])
    state["train_loss"] = torch.from_numpy(np.concatenate([o.train_loss for _, o in outs], 1))
    state["train_correct"] = torch.from_numpy(
        np.concatenate([o.train_correct for _, o in outs], 1))
    # by iteration, then run: the order of one group of every run, however they were grouped
    val = sorted((row for _, o in outs for row in o.validation),
                 key=lambda v: (v["iteration"], v["run"]))
    state["validation"] = torch.tensor(
        [[v["run"], v["iteration"], v["loss"], v["correct_rate"]] for v in val],
        dtype=torch.float64).reshape(-1, 4)
    failed = {k: v for _, o in outs for k, v in o.failed.items()}
    state["failed_runs"] = torch.tensor(sorted(failed), dtype=torch.long)
    state["failed_reasons"] = [failed[k] for k in sorted(failed)]
    state["lr_scale"] = torch.tensor([o.lr_scale for chunk, o in outs for _ in chunk],
                                     dtype=torch.float64)
    return state


#: Columns of ``tables/training_curves.csv``.
CURVE_COLUMNS = ["db", "run", "iteration", "split", "loss", "correct_rate"]


def _runs_per_group(in_dim: int, hidden: int, device: str, runs: int) -> int:
    per_run = 4 * 2 * (in_dim * hidden + hidden * hidden + hidden * 8)  # weights + momentum
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        budget = 0.6 * free
    else:
        budget = 6e9
    return max(1, min(runs, int(budget // per_run)))


def _lr_scale_of(saved: dict[str, Any]) -> float:
    """The smallest factor the protocol's learning rates were scaled by (1.0: none)."""
    scale = saved.get("lr_scale")
    return 1.0 if scale is None or len(scale) == 0 else float(scale.min())


def _heads_signature(tag: str, proto: Protocol, plans: list[RunPlan], seed: int,
                     expressions: list[str]) -> str:
    # what training depends on: not the test variants, nor the notes (text on the numbers)
    numbers = {k: v for k, v in proto.as_dict().items() if k not in ("test_variants", "notes")}
    h = hashlib.sha256(f"{tag}|{numbers}|{seed}|{TRAINER_VERSION}|"
                       f"{variant_subset(proto.variants)}|{expressions}".encode())
    for p in plans:
        h.update(np.asarray(p.train_idx, np.int64).tobytes())
        h.update(np.asarray(p.val_idx, np.int64).tobytes())
    return h.hexdigest()


def _curves_from_saved(db: str, saved: dict[str, Any]) -> pd.DataFrame:
    loss = saved["train_loss"].numpy()
    corr = saved["train_correct"].numpy()
    runs = saved["runs"].tolist()
    its = np.arange(1, loss.shape[0] + 1)
    train = pd.DataFrame({
        "db": db, "run": np.repeat(runs, len(its)), "iteration": np.tile(its, len(runs)),
        "split": "train", "loss": loss.T.ravel(), "correct_rate": corr.T.ravel()})
    val = saved["validation"].numpy()
    valdf = pd.DataFrame({"db": db, "run": val[:, 0].astype(int),
                          "iteration": val[:, 1].astype(int), "split": "validation",
                          "loss": val[:, 2], "correct_rate": val[:, 3]})
    return pd.concat([train, valdf], ignore_index=True)[CURVE_COLUMNS]


def _units_text(run: RunDir) -> str:
    """The output units of the heads in words: ``7``, or ``5-7`` when databases differ."""
    if not run.has_table("classes"):
        return "7"
    classes = run.read_table("classes")
    n = classes[classes["unit"].astype(bool)].groupby("db").size()
    if n.empty:
        return "7"
    return str(n.min()) if n.min() == n.max() else f"{n.min()}-{n.max()}"


def _training_facts(run: RunDir) -> dict:
    return run.read_manifest().get("training", {})


def training_section(run: RunDir) -> Section | None:
    """Training curves (paper Fig. 2) and the protocol with its deviations."""
    if not run.has_table("training_curves"):
        return None
    curves = run.read_table("training_curves")
    facts = _training_facts(run)
    proto = facts.get("protocol", {})
    hidden = proto.get("hidden", 4096)
    units = _units_text(run)
    blocks: list = []
    if facts.get("weights_random"):
        blocks.append(Text("WARNING: the backbone has RANDOM weights (weights = 'random'): "
                           "these numbers test the software, not the science."))
    blocks.append(Text(
        f"Backbone {facts.get('backbone', '?')}, frozen; new head FC {hidden}-{hidden}-{units} "
        f"with "
        f"dropout {proto.get('dropout')} and He initialisation, trained with SGD "
        f"(momentum {proto.get('momentum')}, batch {proto.get('batch_size')}, learning "
        f"rates {proto.get('lr_schedule')}) for {proto.get('iterations')} iterations, "
        f"{proto.get('runs')} runs per database, each with its own split, order, dropout "
        f"and initialisation seeds. Protocol '{proto.get('name')}'."))
    for note in proto.get("notes", []):
        blocks.append(Text(f"Deviation from the paper: {note}."))
    blocks.append(figure_file(
        run, "training_curves", caption="Correct rate and loss during training "
        "(blue: mini-batches, moving average of 25 iterations, mean ± SD across runs) and on "
        "the validation subjects after each epoch (red), from tables/training_curves.csv.",
        missing="No training curves to draw: tables/training_curves.csv has no rows."))
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


STAGE = Stage(
    name="train", title="train every database's networks",
    reads=("tables/images.csv", "tables/preprocess.csv", "tables/splits.csv"),
    writes=("tables/training_curves.csv", "heads/*.pt"),
    run=run, section=training_section,
    config=("databases", "preprocess", "model", "training"))
