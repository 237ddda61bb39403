"""The classification stages: features, training (R runs at once) and evaluation.

``train_stage`` extracts (cached) backbone features of every included face, splits each
database's subjects per run, trains the runs' heads together and writes
``heads/{db}.pt``, ``tables/splits.csv`` and ``tables/training_curves.csv``.
``evaluate_stage`` tests every database's networks on every database (matched and
swapped) and writes ``tables/confusion.csv``, ``tables/accuracy.csv`` and
``tables/stats_classification.csv``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from facedialect.analysis.classification import (
    accuracy_from_confusion,
    classification_stats,
    confusion_rows,
)
from facedialect.config import Study
from facedialect.databases.selection import database_expressions
from facedialect.errors import DamagedFileError, InputError
from facedialect.models.weights import load_backbone
from facedialect.preprocess.augment import variant_subset
from facedialect.stages import load_face, preprocess_cache
from facedialect.run.store import RUN_HINT, RunDir, atomic_write_bytes, load_state, read_state
from facedialect.training.features import (
    FeatureCache,
    extract_features,
    feature_cache_and_runner,
)
from facedialect.training.protocol import Protocol, resolve_protocol
from facedialect.training.splits import balance_classes, run_seeds, split_run
from facedialect.training.trainer import TRAINER_VERSION, MultiRunHead, RunPlan, train_runs
from facedialect.vocab import EXPRESSIONS, in_order

Progress = Callable[[str, int, int], None]

#: Columns of ``tables/training_curves.csv``.
CURVE_COLUMNS = ["db", "run", "iteration", "split", "loss", "correct_rate"]
#: Columns of ``tables/splits.csv``.
SPLIT_COLUMNS = ["db", "run", "path", "subject", "expression", "part"]
#: Entries every ``heads/{db}.pt`` has (a file without one of them is damaged).
HEADS_KEYS = ("signature", "dropout", "runs", "w1", "b1", "w2", "b2", "w3", "b3",
              "train_loss", "train_correct", "validation", "failed_runs", "failed_reasons")


def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def protocol_of(study: Study) -> Protocol:
    """The study's training protocol with its overrides."""
    t = study.training
    return resolve_protocol(t.protocol, runs=t.runs, iterations=t.iterations,
                            batch_size=t.batch_size, momentum=t.momentum,
                            test_variants=t.test_variants)


def included_faces(run: RunDir) -> pd.DataFrame:
    """Included images with a detected face and their cache keys, per database."""
    images = run.read_table("images")
    prep = run.read_table("preprocess")
    faces = images[images["included"].astype(bool)].merge(
        prep.loc[prep["detected"].astype(bool), ["db", "path", "cache_key"]],
        on=["db", "path"], how="inner")
    return faces.sort_values(["db", "subject", "expression", "path"]).reset_index(drop=True)


def _runs_per_group(in_dim: int, hidden: int, device: str, runs: int) -> int:
    per_run = 4 * 2 * (in_dim * hidden + hidden * hidden + hidden * 8)  # weights + momentum
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        budget = 0.6 * free
    else:
        budget = 6e9
    return max(1, min(runs, int(budget // per_run)))


def needed_variants(faces: pd.DataFrame, splits: pd.DataFrame, proto: Protocol,
                    swapped_subjects: str = "test") -> dict[str, tuple[int, ...]]:
    """Return the variants whose features each face needs, by cache key.

    A face needs the protocol's training variants (:func:`variant_subset`), and its test
    variants (``variant_subset(proto.test_variants)``: all 50 in the paper protocol, the
    10 training variants in the quick one) when some network is tested on it
    (:func:`tested_images`).

    Parameters
    ----------
    faces : pandas.DataFrame
        Included faces (``db, path, cache_key``).
    splits : pandas.DataFrame
        ``tables/splits.csv`` rows (``db, path, part``).
    proto : Protocol
        The training protocol (its ``variants`` and ``test_variants``).
    swapped_subjects : str
        The study's ``[evaluation] swapped_subjects``.

    Returns
    -------
    dict
        Cache key -> sorted variant indices.
    """
    train = set(variant_subset(proto.variants))
    test = train | set(variant_subset(proto.test_variants))
    tested = tested_images(faces, splits, swapped_subjects)
    out: dict[str, set[int]] = {}
    for db, path, key in faces[["db", "path", "cache_key"]].itertuples(index=False, name=None):
        need = test if (db, path) in tested else train
        out[key] = out.get(key, set()) | need
    return {k: tuple(sorted(v)) for k, v in out.items()}


def tested_images(faces: pd.DataFrame, splits: pd.DataFrame, swapped_subjects: str = "test"
                  ) -> set[tuple[str, str]]:
    """The ``(db, path)`` of the faces some network is tested on.

    A test image in some run, or, with ``swapped_subjects = "all"`` and more than one
    database, any face.
    """
    pairs = faces[["db", "path"]].itertuples(index=False, name=None)
    if swapped_subjects == "all" and faces["db"].nunique() > 1:
        return set(pairs)
    return set(splits.loc[splits["part"] == "test", ["db", "path"]]
               .itertuples(index=False, name=None)) & set(pairs)


def train_stage(run: RunDir, study: Study, *, device: str | None = None,
                progress: Progress | None = None, checkpoint_every: int = 500,
                tested: bool = True) -> dict[str, Any]:
    """Extract features and train every database's runs; resumable.

    Parameters
    ----------
    run : RunDir
        The run directory (ingest and pre-processing done).
    study : Study
        The study (model, training sections).
    device : str, optional
        ``cpu`` or ``cuda`` (default: a GPU when there is one).
    progress : callable, optional
        ``progress(label, done, total)``.
    checkpoint_every : int
        Iterations between training checkpoints.
    tested : bool
        Whether the networks will be tested (:func:`evaluate_stage`): then the test
        images' features are computed in the protocol's test variants too, else only in
        the training variants (the robustness check only trains).

    Returns
    -------
    dict
        Summary for the CLI: protocol, backbone, per-database runs and failures.
    """
    device = device or default_device()
    proto = protocol_of(study)
    faces = included_faces(run)
    if faces.empty:
        raise InputError("no included faces to train on: check tables/images.csv and "
                         "tables/preprocess.csv (run `facedialect preprocess`)")
    units = database_units(run.read_table("images"), faces, study.study.expressions)
    backbone = load_backbone(study.model.backbone, study.model.weights,
                             allow_download=study.model.allow_download)
    fcache, runner = feature_cache_and_runner(backbone, study.model.runtime, device=device,
                                              cache_dir=study.study.cache_dir)
    tag = fcache.backbone_tag
    pcache = preprocess_cache(study.study.cache_dir)
    summary: dict[str, Any] = {"protocol": proto.as_dict(), "backbone": tag, "dbs": {},
                               "runtime": runner.name}
    split_rows, curve_rows = [], []
    parts: dict[str, tuple[pd.DataFrame, torch.Tensor, list[RunPlan]]] = {}
    for db in dict.fromkeys(d.name for d in study.databases):
        part = faces[faces["db"] == db].reset_index(drop=True)
        if part.empty:
            continue
        labels = torch.tensor([units[db].index(e) for e in part["expression"]])
        plans = []
        for r in range(proto.runs):
            seeds = run_seeds(study.study.seed, db, r)
            where = split_run(part, seeds.split, proto.split, study.training.split_by)
            split_rows.append(pd.DataFrame({
                "db": db, "run": r, "path": part["path"], "subject": part["subject"],
                "expression": part["expression"], "part": where}))
            train_idx = np.flatnonzero(where == "train")
            if study.training.class_balance == "oversample":
                train_idx = balance_classes(train_idx, labels.numpy(), seeds.split)
            plans.append(RunPlan(r, seeds, train_idx, np.flatnonzero(where == "validation")))
        parts[db] = (part, labels, plans)
    splits = pd.concat(split_rows, ignore_index=True)[SPLIT_COLUMNS]
    train_variants = variant_subset(proto.variants)
    needed = (needed_variants(faces, splits, proto, study.evaluation.swapped_subjects)
              if tested else dict.fromkeys(faces["cache_key"], train_variants))
    with run.stage("features", backbone=tag, runtime=runner.name) as info:
        n = extract_features(
            list(faces["cache_key"]), lambda k: load_face(k, pcache), backbone,
            study.preprocess, fcache, variants=needed, device=device, runner=runner,
            progress=(lambda d, t: progress("features", d, t)) if progress else None)
        info.update(computed=n, faces=len(faces),
                    variants=int(sum(len(v) for v in needed.values())))
    summary["features_computed"] = n
    del backbone, runner
    heads_dir = run.path / "heads"
    lr_scales: dict[str, float] = {}
    with run.stage("train", protocol=proto.name, backbone=tag, device=device) as info:
        for db, (part, labels, plans) in parts.items():
            sig = _heads_signature(tag, proto, plans, study.study.seed, units[db])
            target = heads_dir / f"{db}.pt"
            saved = (read_state(target, HEADS_KEYS, "training its networks again")
                     if target.exists() else None)  # damaged: as if absent, with a warning
            if saved is not None and saved["signature"] == sig:
                curve_rows.append(_curves_from_saved(db, saved))
                summary["dbs"][db] = {"runs": proto.runs, "skipped": "up to date"}
                lr_scales[db] = _lr_scale_of(saved)
                continue
            feats = torch.from_numpy(fcache.load(list(part["cache_key"]), train_variants))
            group = _runs_per_group(feats.shape[2], proto.hidden, device, proto.runs)
            outs, checkpoints = [], []
            for g0 in range(0, len(plans), group):
                chunk = plans[g0:g0 + group]
                label = f"train {db} runs {g0}-{g0 + len(chunk) - 1}"
                ck = run.path / "checkpoints" / f"{db}_runs{g0}-{g0 + len(chunk) - 1}.pt"
                out = train_runs(
                    feats, labels, chunk, proto, n_classes=len(units[db]),
                    device=device, checkpoint=ck,
                    checkpoint_every=checkpoint_every,
                    progress=(lambda d, t, _label=label: progress(_label, d, t))
                    if progress else None)
                outs.append((chunk, out))
                checkpoints.append(ck)
            saved = _save_heads(target, sig, tag, proto, outs, units[db])
            for ck in checkpoints:
                ck.unlink(missing_ok=True)
            curve_rows.append(_curves_from_saved(db, saved))
            failed = {int(k): v for k, v in zip(saved["failed_runs"].tolist(),
                                                 saved["failed_reasons"], strict=True)}
            summary["dbs"][db] = {"runs": proto.runs, "failed": failed,
                                  "seconds": sum(o.seconds for _, o in outs)}
            lr_scales[db] = _lr_scale_of(saved)
        run.write_table("splits", splits)
        run.write_table("classes", class_table(faces, units))
        run.write_table("training_curves", pd.concat(curve_rows, ignore_index=True))
        info.update(runs=proto.runs, weights_random=tag.endswith("|random"))
    run.update_manifest(training={"protocol": proto.as_dict(), "backbone": tag,
                                  "runtime": fcache.runtime,
                                  "weights_random": tag.endswith("|random"),
                                  "device": device, "split_by": study.training.split_by,
                                  "class_balance": study.training.class_balance,
                                  "lr_scale": lr_scales})
    summary["lr_scale"] = lr_scales
    return summary


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


def _save_heads(target: Path, sig: str, tag: str, proto: Protocol,
                outs: list[tuple[list[RunPlan], Any]], expressions: list[str]
                ) -> dict[str, Any]:
    import io

    state: dict[str, Any] = {"signature": sig, "backbone": tag, "protocol": proto.name,
                             "dropout": proto.dropout, "expressions": list(expressions)}
    for name in ("w1", "b1", "w2", "b2", "w3", "b3"):
        state[name] = torch.cat([getattr(o.head, name).detach().cpu() for _, o in outs])
    state["runs"] = torch.tensor([p.run for chunk, _ in outs for p in chunk])
    state["train_loss"] = torch.from_numpy(np.concatenate([o.train_loss for _, o in outs], 1))
    state["train_correct"] = torch.from_numpy(
        np.concatenate([o.train_correct for _, o in outs], 1))
    val = [row for _, o in outs for row in o.validation]
    state["validation"] = torch.tensor(
        [[v["run"], v["iteration"], v["loss"], v["correct_rate"]] for v in val],
        dtype=torch.float64).reshape(-1, 4)
    failed = {k: v for _, o in outs for k, v in o.failed.items()}
    state["failed_runs"] = torch.tensor(sorted(failed), dtype=torch.long)
    state["failed_reasons"] = [failed[k] for k in sorted(failed)]
    state["lr_scale"] = torch.tensor([o.lr_scale for chunk, o in outs for _ in chunk],
                                     dtype=torch.float64)
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(target, buf.getvalue(), hint=RUN_HINT)
    return state


def load_heads(path: Path) -> tuple[MultiRunHead, dict[str, Any]]:
    """Load ``heads/{db}.pt`` as a :class:`MultiRunHead` plus its metadata.

    ``state["expressions"]`` names the output units in order (files written before label
    sets existed have the seven expressions).

    Raises
    ------
    InputError
        When the file is damaged (``facedialect train`` trains its networks again).
    """
    try:
        state = load_state(path, HEADS_KEYS)
    except DamagedFileError as exc:
        raise InputError(f"{exc}: run `facedialect train` again (it trains the networks of "
                         f"a damaged heads file again)") from None
    r, d, h = state["w1"].shape
    n_out = state["w3"].shape[2]
    state.setdefault("expressions", list(EXPRESSIONS[:n_out]))
    head = MultiRunHead([0] * r, d, h, n_out=n_out, dropout=float(state["dropout"]))
    head.load_state_dict({k: state[k] for k in ("w1", "b1", "w2", "b2", "w3", "b3")})
    return head.eval(), state


def database_units(images: pd.DataFrame, faces: pd.DataFrame, expressions: list[str]
                   ) -> dict[str, list[str]]:
    """The output units of each database's networks: the study expressions it has.

    Parameters
    ----------
    images : pandas.DataFrame
        ``tables/images.csv`` (every row, to see which expressions each database has).
    faces : pandas.DataFrame
        The included faces (:func:`included_faces`).
    expressions : list of str
        The study's label set.

    Returns
    -------
    dict
        Database -> its expressions in canonical order.

    Raises
    ------
    InputError
        When a database has fewer than two expressions, or an expression it has no usable
        image of (every image excluded or without a detected face).
    """
    out: dict[str, list[str]] = {}
    for db, part in faces.groupby("db", sort=False):
        own = database_expressions(images[images["db"] == db], expressions)
        empty = [e for e in own if not (part["expression"] == e).any()]
        if empty:
            raise InputError(
                f"database {db!r} has no usable image of {', '.join(empty)} (all excluded or "
                f"without a detected face; see tables/images.csv); leave it out with "
                f"exclude_expressions = {empty} for this database, or fix the images")
        if len(own) < 2:
            raise InputError(f"database {db!r} has images of {own or 'no study expression'} "
                             f"only; a classifier needs at least 2 expressions (study "
                             f"expressions: {', '.join(expressions)})")
        out[str(db)] = own
    return out


#: Columns of ``tables/classes.csv``.
CLASS_COLUMNS = ["db", "expression", "images", "subjects", "unit"]


def class_table(faces: pd.DataFrame, units: dict[str, list[str]]) -> pd.DataFrame:
    """Images and subjects per database and expression, and whether its networks have a unit.

    One row per database and expression of the union of all databases' units: an
    expression another database has but this one does not is listed with 0 images and
    ``unit`` false (absent: its networks cannot answer it).
    """
    union = in_order(e for u in units.values() for e in u)
    rows = []
    for db, own in units.items():
        part = faces[faces["db"] == db]
        for e in union:
            sel = part[part["expression"] == e]
            subjects = sel["subject"].replace("", np.nan).nunique()
            rows.append({"db": db, "expression": e, "images": len(sel),
                         "subjects": int(subjects), "unit": e in own})
    return pd.DataFrame(rows, columns=CLASS_COLUMNS)


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


@torch.no_grad()
def evaluate_stage(run: RunDir, study: Study, *, device: str | None = None) -> dict[str, Any]:
    """Test every database's networks on every database (matched and swapped).

    Each network is tested on the test subjects of its own run index (for swapped
    testing, optionally on all included images of the other database:
    ``[evaluation] swapped_subjects = "all"``), on the protocol's test variants
    (``variants = all``: all 50 in the paper protocol, the 10 training variants in the
    quick one) and on the plain image (``variants = plain``).
    Failed runs are left out and listed in the summary.

    Databases may have different label sets: every test image is passed through the
    network, and the confusion matrix spans the union of the two databases' expressions
    (NaN in the columns the network has no unit for); correct rates exist only for the
    expressions both have. The expressions of the test database the network lacks are
    listed under ``absent`` in the summary.
    """
    device = device or default_device()
    faces = included_faces(run)
    splits = run.read_table("splits")
    manifest = run.read_manifest()
    tag = manifest.get("training", {}).get("backbone")
    if tag is None:
        raise InputError(f"{run.path}: no trained networks; run `facedialect train` first")
    fcache = FeatureCache(tag, study.study.cache_dir,
                          runtime=manifest["training"].get("runtime", "torch"))
    dbs = [d.name for d in study.databases if (run.path / "heads" / f"{d.name}.pt").exists()]
    proto = protocol_of(study)
    test_variants = variant_subset(proto.test_variants)
    pairs = tested_images(faces, splits, study.evaluation.swapped_subjects)
    tested = faces[[p in pairs for p in faces[["db", "path"]].itertuples(index=False,
                                                                         name=None)]]
    feats = {db: torch.from_numpy(fcache.load(list(tested.loc[tested["db"] == db, "cache_key"]),
                                              test_variants))
             for db in dbs}
    keys = {db: tested.loc[tested["db"] == db, "path"].tolist() for db in dbs}
    rows = []
    failed_all: dict[str, dict[int, str]] = {}
    absent: dict[str, list[str]] = {}
    states = {db: load_heads(run.path / "heads" / f"{db}.pt") for db in dbs}
    own = {db: list(states[db][1]["expressions"]) for db in dbs}
    disjoint = [f"{a} and {b}" for i, a in enumerate(dbs) for b in dbs[i + 1:]
                if not set(own[a]) & set(own[b])]
    run.forget("skipped", "swapped testing")
    if disjoint:
        run.update_manifest(skipped={"swapped testing": (
            f"{'; '.join(disjoint)} share no expression: their networks were tested on each "
            "other's images (confusion matrices) but have no swapped correct rate")})
    with run.stage("evaluate", test_variants=len(test_variants)) as info:
        for train_db in dbs:
            head, state = states[train_db]
            head = head.to(device)
            units = own[train_db]
            failed = dict(zip(state["failed_runs"].tolist(), state["failed_reasons"],
                              strict=True))
            failed_all[train_db] = failed
            for r_pos, r in enumerate(state["runs"].tolist()):
                if r in failed:
                    continue
                for test_db in dbs:
                    sp = splits[(splits["db"] == test_db) & (splits["run"] == r)]
                    if test_db == train_db or study.evaluation.swapped_subjects == "test":
                        sp = sp[sp["part"] == "test"]
                    pos = {p: i for i, p in enumerate(keys[test_db])}
                    idx = np.array([pos[p] for p in sp["path"]])
                    x = feats[test_db][torch.as_tensor(idx)]
                    n, v, d = x.shape
                    logits = head.forward_run(
                        r_pos, x.reshape(n * v, d).to(device=device, dtype=torch.float32))
                    pred = np.asarray(units, dtype=object)[
                        logits.argmax(-1).reshape(n, v).cpu().numpy()]
                    true = sp["expression"].to_numpy(dtype=object)
                    cond = "matched" if test_db == train_db else "swapped"
                    common = dict(train_db=train_db, test_db=test_db, condition=cond, run=r,
                                  classes=in_order([*units, *own[test_db]]), units=units)
                    rows.append(confusion_rows(np.repeat(true, v), pred.ravel(),
                                               variants="all", **common))
                    rows.append(confusion_rows(true, pred[:, 0], variants="plain", **common))
                    lacks = [e for e in own[test_db] if e not in units]
                    if lacks:
                        absent[f"{train_db} -> {test_db}"] = lacks
        confusion = pd.concat(rows, ignore_index=True)
        accuracy = accuracy_from_confusion(confusion)
        stats_all = classification_stats(accuracy, "all").assign(variants="all")
        stats_plain = classification_stats(accuracy, "plain").assign(variants="plain")
        run.write_table("confusion", confusion)
        run.write_table("accuracy", accuracy)
        run.write_table("stats_classification", pd.concat([stats_all, stats_plain],
                                                          ignore_index=True))
        info.update(networks=int(confusion[["train_db", "run"]].drop_duplicates().shape[0]))
    means = (accuracy[accuracy["variants"] == "all"]
             .groupby(["train_db", "test_db", "condition"])["correct_rate"].mean())
    return {"mean_correct": {f"{a} -> {b} ({c})": round(float(v), 3)
                             for (a, b, c), v in means.items()},
            "failed": failed_all, "absent": absent, "disjoint": disjoint}
