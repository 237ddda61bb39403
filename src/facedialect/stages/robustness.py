"""Robustness: the AU tuning profiles of networks trained on all complete subjects.

The question (docs/method.md §7): are the profiles robust to the subject selection?

The main analysis uses the first ``n_subjects`` complete subjects of each database. This
stage is a training variant of the same run: it selects *all* complete subjects from the
run's own images table (face detection and screening already done for every candidate),
trains those databases that gain subjects on their cached features (training variants
only: these networks are not tested), passes the main run's stimuli through them and
writes ``tables/robustness.csv``: per database and unit, the Spearman r_s between the main
and the all-subjects profile; the all-subjects profiles go to
``tables/robustness_profiles.csv`` and the heads to ``heads/robustness/{db}.pt``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from facedialect import databases
from facedialect.config import Study
from facedialect.imageio import read_gray
from facedialect.preprocess.augment import variant_subset
from facedialect.report.html import Section
from facedialect.run.store import RunDir
from facedialect.run.tables import included_faces
from facedialect.stages.base import Context, Stage, Summary, protocol_of, work_engine
from facedialect.stages.features import compute_features, study_order
from facedialect.stages.train import train_databases
from facedialect.stages.tuning import network_responses, stimulus_features
from facedialect.stats.tuning import profile_robustness, tuning_profiles
from facedialect.training.features import FeatureCache
from facedialect.training.plan import database_units, plan_splits

#: Folder of the all-subjects networks' heads in the run directory.
HEADS = "heads/robustness"


def subjects_per_database(images: pd.DataFrame) -> dict[str, int]:
    """Included subjects per database (databases without subject ids count 0)."""
    inc = images[images["included"].astype(bool)]
    return {str(db): int(part["subject"].replace("", np.nan).nunique())
            for db, part in inc.groupby("db", sort=False)}


def all_subjects(images: pd.DataFrame) -> pd.DataFrame:
    """The images table with every complete subject of each database selected.

    Rows excluded by an earlier selection are reconsidered; every other exclusion (face
    detection, screening, the label set) stays.
    """
    parts = [databases.select_subjects(part, None)
             for _, part in images.groupby("db", sort=False)]
    return pd.concat(parts, ignore_index=True)


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Train on all complete subjects, re-measure the profiles, correlate with the main ones."""
    run.forget("skipped", "robustness")
    images = run.read_table("images")
    main = subjects_per_database(images)
    wide = all_subjects(images)
    every = subjects_per_database(wide)
    gain = [db for db, n in every.items() if n > main.get(db, 0)]
    if not gain:
        note = ("robustness check skipped: no database has complete subjects beyond the "
                f"{', '.join(f'{db} {n}' for db, n in main.items())} it uses")
        run.update_manifest(skipped={"robustness": note})
        return Summary("robustness", [note], {"skipped": note}, skipped=note)
    faces = included_faces(run, wide[wide["db"].isin(gain)])
    units = database_units(wide, faces, study.study.expressions)
    proto = protocol_of(study)
    engine, device = work_engine(study, ctx)
    tick = ctx.progress
    tag, runtime, _ = compute_features(
        study, faces, dict.fromkeys(faces["cache_key"], variant_subset(proto.variants)),
        device=device, progress=tick, label="robustness: features", engine=engine)
    splits = plan_splits(faces, study_order(study, units), study.study.seed, proto.runs,
                         proto.split, study.training.split_by)
    train_databases(run, study, faces, units, splits,
                    fcache=FeatureCache(tag, study.study.cache_dir, runtime=runtime),
                    device=device, folder=HEADS, engine=engine, progress=(
                        (lambda label, d, t: tick(f"robustness: {label}", d, t))
                        if tick else None))
    stim = run.path / "stimuli"
    table = pd.read_csv(stim / "stimuli.csv")
    stimuli = [read_gray(stim / Path(p).name) for p in table["path"]]
    with run.stage("robustness", subjects_all=every, engine=engine.name) as info:
        feats = stimulus_features(table, stimuli, study)
        prof = tuning_profiles(network_responses(
            run, gain, feats, table, folder=HEADS, engine=engine,
            device="cpu" if engine.name == "local" else device))
        run.write_table("robustness_profiles", prof)
        rob = profile_robustness(run.read_table("au_profiles"), prof, main, every)
        run.write_table("robustness", rob)
        info.update(databases=len(gain))
    mean_r = rob.groupby("db")["spearman_r"].mean().round(2).to_dict()
    return Summary("robustness", [
        "profiles with all subjects; mean r_s with the main profiles: "
        + ", ".join(f"{db} {r}" for db, r in mean_r.items())],
        {"subjects": {db: (main.get(db), every.get(db)) for db in gain}, "mean_r": mean_r})


def section(run: RunDir) -> Section | None:
    """The robustness table is a headline of the summary section; no section of its own."""
    return None


STAGE = Stage(
    name="robustness", title="AU tuning profiles with all subjects",
    reads=("tables/images.csv", "tables/preprocess.csv", "tables/au_profiles.csv",
           "stimuli/stimuli.csv"),
    writes=("tables/robustness.csv",),
    run=run, section=section, enabled=lambda study: study.tuning.robustness,
    config=("databases", "preprocess", "model", "training", "tuning"))
