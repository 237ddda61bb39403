"""Evaluate: test every database's networks on every database (matched and swapped).

Writes ``tables/confusion.csv``, ``tables/accuracy.csv`` and
``tables/stats_classification.csv`` (t-tests and ANOVAs on per-run correct rates) and the
confusion and correct-rate figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from facedialect.config import Study
from facedialect.plots.figures import confusion_figure, correct_rate_figure
from facedialect.preprocess.augment import variant_subset
from facedialect.report.html import Section, Table, Text, figure_file
from facedialect.run.heads import heads_path, trained_backbone
from facedialect.run.store import RunDir
from facedialect.run.tables import included_faces
from facedialect.stages.base import (
    Context,
    Stage,
    Summary,
    TrainedHeads,
    draw,
    protocol_of,
    trained_heads,
    work_engine,
)
from facedialect.stats.classification import (
    accuracy_from_confusion,
    classification_stats,
    confusion_rows,
    mean_confusion,
    overall_correct,
)
from facedialect.training.features import FeatureCache
from facedialect.training.plan import tested_images
from facedialect.vocab import in_order


@torch.no_grad()
def run(run: RunDir, study: Study, ctx: Context) -> Summary:
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
    engine, device = work_engine(study, ctx)
    faces = included_faces(run)
    splits = run.read_table("splits")
    tag, runtime = trained_backbone(run, study.model.backbone)
    fcache = FeatureCache(tag, study.study.cache_dir, runtime=runtime)
    dbs = [d.name for d in study.databases if heads_path(run, d.name).exists()]
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
    trained = trained_heads(run, dbs)
    own = {db: trained[db].expressions for db in dbs}
    disjoint = [f"{a} and {b}" for i, a in enumerate(dbs) for b in dbs[i + 1:]
                if not set(own[a]) & set(own[b])]
    run.forget("skipped", "swapped testing")
    if disjoint:
        run.update_manifest(skipped={"swapped testing": (
            f"{'; '.join(disjoint)} share no expression: their networks were tested on each "
            "other's images (confusion matrices) but have no swapped correct rate")})
    with run.stage("evaluate", test_variants=len(test_variants), engine=engine.name) as info:
        tests = engine.share(EvaluationSet(feats, keys, splits, own,
                                           study.evaluation.swapped_subjects))
        # a Ray worker reads the heads file itself (the run directory is on a filesystem
        # every node sees): the paper protocol's are ~9 GB per database
        jobs = ({"heads": trained[db] if engine.name == "local" else (run.path, db),
                 "tests": tests, "device": device} for db in dbs)
        for train_db, (db_rows, db_absent) in zip(
                dbs, engine.map(evaluate_networks, jobs, device=device), strict=True):
            failed_all[train_db] = trained[train_db].failed
            rows.extend(db_rows)
            absent.update(db_absent)
        confusion = pd.concat(rows, ignore_index=True)
        accuracy = accuracy_from_confusion(confusion)
        stats_all = classification_stats(accuracy, "all").assign(variants="all")
        stats_plain = classification_stats(accuracy, "plain").assign(variants="plain")
        run.write_table("confusion", confusion)
        run.write_table("accuracy", accuracy)
        run.write_table("stats_classification", pd.concat([stats_all, stats_plain],
                                                          ignore_index=True))
        info.update(networks=int(confusion[["train_db", "run"]].drop_duplicates().shape[0]))
    draw(run, "confusion", confusion_figure,
         mean_confusion(confusion[confusion["variants"] == "all"]))
    draw(run, "correct_rate", correct_rate_figure, accuracy[accuracy["variants"] == "all"])
    means = (accuracy[accuracy["variants"] == "all"]
             .groupby(["train_db", "test_db", "condition"])["correct_rate"].mean())
    mean_correct = {f"{a} -> {b} ({c})": round(float(v), 3) for (a, b, c), v in means.items()}
    lines = [f"{key}: mean correct rate {value:.3f}" for key, value in mean_correct.items()]
    lines += [f"{pair}: no unit for {', '.join(lacks)} (absent; scored on the shared "
              "expressions)" for pair, lacks in absent.items()]
    lines += [f"{pair} share no expression: no swapped correct rate" for pair in disjoint]
    return Summary("evaluate", lines, {"mean_correct": mean_correct, "failed": failed_all,
                                       "absent": absent, "disjoint": disjoint})



@dataclass
class EvaluationSet:
    """What every database's networks are tested on (shared by the work units).

    Parameters
    ----------
    feats : dict
        Database -> ``(N, V, D)`` features of its tested faces, in the order of ``keys``.
    keys : dict
        Database -> the paths of its tested faces.
    splits : pandas.DataFrame
        ``tables/splits.csv``.
    units : dict
        Database -> the output units of its networks.
    swapped_subjects : str
        ``[evaluation] swapped_subjects``.
    """

    feats: dict[str, torch.Tensor]
    keys: dict[str, list[str]]
    splits: pd.DataFrame
    units: dict[str, list[str]]
    swapped_subjects: str


@torch.no_grad()
def evaluate_networks(heads: TrainedHeads | tuple[Path, str], tests: EvaluationSet,
                      device: str = "cpu") -> tuple[list[pd.DataFrame], dict[str, list[str]]]:
    """Test one database's networks on every database: one work unit (a Ray task).

    Parameters
    ----------
    heads : TrainedHeads or tuple
        The database's networks, or ``(run directory, database)`` to read them from.
    tests : EvaluationSet
        The test images' features and splits.
    device : str
        Where the networks run.

    Returns
    -------
    tuple
        The confusion rows (:func:`~facedialect.stats.classification.confusion_rows`,
        ``all`` and ``plain`` variants per run and test database) and, per ``train ->
        test`` pair, the test database's expressions the networks have no unit for.
    """
    if isinstance(heads, tuple):
        heads = trained_heads(RunDir(heads[0]), [heads[1]])[heads[1]]
    train_db, head, units = heads.db, heads.head.to(device), heads.expressions
    splits, own = tests.splits, tests.units
    rows: list[pd.DataFrame] = []
    absent: dict[str, list[str]] = {}
    for r_pos, r in heads.live:
        for test_db in tests.feats:
            sp = splits[(splits["db"] == test_db) & (splits["run"] == r)]
            if test_db == train_db or tests.swapped_subjects == "test":
                sp = sp[sp["part"] == "test"]
            pos = {p: i for i, p in enumerate(tests.keys[test_db])}
            idx = np.array([pos[p] for p in sp["path"]])
            x = tests.feats[test_db][torch.as_tensor(idx)]
            n, v, d = x.shape
            logits = head.forward_run(
                r_pos, x.reshape(n * v, d).to(device=device, dtype=torch.float32))
            pred = np.asarray(units, dtype=object)[
                logits.argmax(-1).reshape(n, v).cpu().numpy()]
            true = sp["expression"].to_numpy(dtype=object)
            cond = "matched" if test_db == train_db else "swapped"
            common = dict(train_db=train_db, test_db=test_db, condition=cond, run=r,
                          classes=in_order([*units, *own[test_db]]), units=units)
            rows.append(confusion_rows(np.repeat(true, v), pred.ravel(), variants="all",
                                       **common))
            rows.append(confusion_rows(true, pred[:, 0], variants="plain", **common))
            lacks = [e for e in own[test_db] if e not in units]
            if lacks:
                absent[f"{train_db} -> {test_db}"] = lacks
    return rows, absent


def tested_in(run: RunDir) -> str:
    """The variants each test image was tested in, in words (the protocol's test_variants)."""
    n = run.read_manifest().get("training", {}).get("protocol", {}).get("test_variants", 50)
    return "all 50 variants" if n == 50 else f"{n} of the 50 variants"


def classification_section(run: RunDir) -> Section | None:
    """Matched and swapped testing: confusion matrices, correct rates, statistics."""
    if not run.has_table("accuracy"):
        return None
    acc = run.read_table("accuracy")
    stats = run.read_table("stats_classification")
    per_run = overall_correct(acc)
    summary = (per_run.groupby(["train_db", "test_db", "condition", "variants"])
               ["correct_rate"].agg(["mean", "std", "count"]).reset_index()
               .rename(columns={"count": "runs"}))
    blocks: list = [
        Text("Each network was tested on the test subjects of its own run: of its own "
             "database (matched) and of every other database (swapped), on "
             f"{tested_in(run)} of each test image (variants = all) and on the plain "
             "image alone (variants = plain). docs/method.md §6."),
        Table(summary, "Mean correct rate (over expressions) per network, mean and SD "
              "across runs.", "correct_rate_summary"),
        figure_file(run, "confusion", caption="Confusion matrices averaged over runs (rows: "
                    "true expression, columns: chosen; rows sum to 1), "
                    f"{tested_in(run)}, from tables/confusion.csv.",
                    missing="No confusion matrices to draw: tables/confusion.csv has no "
                    "rows."),
        figure_file(run, "correct_rate", caption="Correct rate per expression, matched vs "
                    "swapped (mean ± SD across runs), from tables/accuracy.csv.",
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


STAGE = Stage(
    name="evaluate", title="test every network on every database (matched, swapped)",
    reads=("tables/images.csv", "tables/preprocess.csv", "tables/splits.csv", "heads/*.pt"),
    writes=("tables/confusion.csv", "tables/accuracy.csv", "tables/stats_classification.csv"),
    run=run, section=classification_section,
    config=("databases", "model", "training", "evaluation"))
