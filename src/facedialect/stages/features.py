"""Features: plan every run's split and pass every face through the frozen backbone (cached).

Decides each database's output units (``tables/classes.csv``) and each run's train,
validation and test subjects (``tables/splits.csv``), then computes the backbone features of
every included face in the variants it needs: the protocol's training variants, and its
test variants for the faces some network is tested on. Features are cached by face and
backbone (docs/training.md), so a second run reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from facedialect.compute import Engine, FeatureJob
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.files import cache_root
from facedialect.preprocess.augment import variant_subset
from facedialect.progress import ProgressFn
from facedialect.report.html import Section
from facedialect.run.store import RunDir
from facedialect.run.tables import included_faces
from facedialect.stages.base import Context, Stage, Summary, protocol_of, work_engine
from facedialect.training.plan import (
    class_table,
    database_units,
    needed_variants,
    plan_splits,
)


def study_faces(run: RunDir, study: Study) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The included faces of the study's databases and each database's output units.

    Raises
    ------
    InputError
        When no face is included, or a database has fewer than two expressions.
    """
    faces = included_faces(run)
    if faces.empty:
        raise InputError("no included faces to train on: check tables/images.csv and "
                         "tables/preprocess.csv (run `facedialect preprocess`)")
    return faces, database_units(run.read_table("images"), faces, study.study.expressions)


def study_order(study: Study, units: Mapping[str, list[str]]) -> list[str]:
    """The databases that have faces, in the study file's order."""
    return [db for db in dict.fromkeys(d.name for d in study.databases) if db in units]


def compute_features(study: Study, faces: pd.DataFrame,
                     variants: Mapping[str, Sequence[int]], *, device: str,
                     progress: ProgressFn | None = None, label: str = "features",
                     engine: Engine | None = None) -> tuple[str, str, int]:
    """Compute (or find in the cache) the backbone features of ``faces`` in ``variants``.

    Parameters
    ----------
    engine : Engine, optional
        Where the backbone runs: here (default) or on a Ray cluster (Ray Data); either
        way this process writes the features into the shared feature cache.

    Returns
    -------
    tuple
        ``(backbone tag, runtime, features computed)``.
    """
    job = FeatureJob(study.model, study.preprocess, cache_root(study.study.cache_dir))
    return (engine or Engine()).features(job, list(faces["cache_key"]), variants,
                                         device=device, progress=progress, label=label)


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Plan the splits and compute the features of every included face."""
    engine, device = work_engine(study, ctx)
    proto = protocol_of(study)
    faces, units = study_faces(run, study)
    splits = plan_splits(faces, study_order(study, units), study.study.seed, proto.runs,
                         proto.split, study.training.split_by)
    needed = needed_variants(faces, splits, proto, study.evaluation.swapped_subjects)
    with run.stage("features") as info:
        tag, runtime, n = compute_features(study, faces, needed, device=device,
                                           progress=ctx.progress, engine=engine)
        run.write_table("splits", splits)
        run.write_table("classes", class_table(faces, units))
        info.update(backbone=tag, runtime=runtime, computed=n, faces=len(faces),
                    engine=engine.name, device=device,
                    variants=int(sum(len(v) for v in needed.values())))
    run.update_manifest(features={"backbone": tag, "runtime": runtime})
    n_train = len(variant_subset(proto.variants))
    return Summary("features", [
        f"{len(faces)} faces of {len(units)} database(s), {proto.runs} splits each; "
        f"features of {n} face(s) computed, the others read from the cache "
        f"({tag.split('|')[0]}, {runtime}; {n_train} training variants)"],
        {"computed": n, "faces": len(faces), "backbone": tag, "runtime": runtime})


def section(run: RunDir) -> Section | None:
    """Features have no section of their own (the training section shows the splits)."""
    return None


STAGE = Stage(
    name="features", title="split the subjects and compute backbone features (cached)",
    reads=("tables/images.csv", "tables/preprocess.csv"),
    writes=("tables/splits.csv", "tables/classes.csv"),
    run=run, section=section,
    config=("databases", "preprocess", "model", "training", "evaluation"),
    always=True)  # reads the shared feature cache: computes what is missing or damaged
