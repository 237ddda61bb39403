"""Robustness of the AU tuning profiles to the subject selection (SCIENCE §7).

The main analysis uses the first ``n_subjects`` complete subjects of each database. This
stage trains every database again on *all* its complete subjects, in a sub-run
``RUN_DIR/robustness/`` (same seed, protocol and backbone; features come from the shared
cache), passes the main run's stimuli through those networks and writes
``tables/robustness.csv``: per database and unit, the Spearman r_s between the main and
the all-subjects profile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facedialect.analysis.tuning import profile_robustness, tuning_profiles
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.imageio import read_gray
from facedialect.stages import ingest_stage, preprocess_stage, save_study
from facedialect.run.store import RunDir
from facedialect.tuning import network_responses, stimulus_features

#: Sub-folder of the run directory that holds the all-subjects run.
SUBRUN = "robustness"


def all_subjects_study(study: Study, output: str) -> Study:
    """The same study with every database's ``n_subjects`` lifted (all complete subjects)."""
    data = study.model_dump(mode="python")
    for db in data["databases"]:
        db["n_subjects"] = None
    data["study"]["output"] = output
    data["tuning"]["robustness"] = False
    return Study.model_validate(data)


def _subjects(images: pd.DataFrame) -> dict[str, int]:
    inc = images[images["included"].astype(bool)]
    return {str(db): int(part["subject"].replace("", np.nan).nunique())
            for db, part in inc.groupby("db", sort=False)}


def robustness_stage(run: RunDir, study: Study, *,
                     progress: Callable[[str, int, int], None] | None = None
                     ) -> dict[str, Any]:
    """Train on all subjects, re-measure the profiles, correlate them with the main ones.

    Parameters
    ----------
    run : RunDir
        The main run (tuning done: ``stimuli/stimuli.csv`` and ``tables/au_profiles``).
    study : Study
        The study.
    progress : callable, optional
        ``progress(label, done, total)`` for ingestion, pre-processing and training.

    Returns
    -------
    dict
        ``skipped`` (a reason, when no database has more subjects than it uses) or
        ``subjects`` (main and all per database) and ``mean_r`` per database.

    Raises
    ------
    InputError
        When the tuning stage has not run.
    """
    from facedialect.classification import train_stage

    stim_csv = run.path / "stimuli" / "stimuli.csv"
    if not stim_csv.exists() or not run.has_table("au_profiles"):
        raise InputError(f"{run.path}: the robustness check needs the tuning results; run "
                         "the tuning stage first")
    run.forget("skipped", "robustness")
    sub = RunDir(run.path / SUBRUN)
    alt = all_subjects_study(study, str(sub.path))
    main_subjects = _subjects(run.read_table("images"))
    with sub.lock():
        save_study(sub, alt)
        images = ingest_stage(sub, alt.databases, alt.study.expressions, progress=progress,
                              prune=True)  # the whole study: no renamed database stays
        all_subjects = _subjects(images)
        gain = {db: n for db, n in all_subjects.items() if n > main_subjects.get(db, 0)}
        if not gain:
            note = ("robustness check skipped: no database has complete subjects beyond the "
                    f"{', '.join(f'{db} {n}' for db, n in main_subjects.items())} it uses")
            run.update_manifest(skipped={"robustness": note})
            return {"skipped": note}
        preprocess_stage(sub, alt.preprocess, n_subjects={d.name: None for d in alt.databases},
                         cache_dir=alt.study.cache_dir, screen=alt.screening,
                         progress=(lambda d, t: progress("robustness: pre-processing", d, t))
                         if progress else None)
        all_subjects = _subjects(sub.read_table("images"))  # after face detection
        gain = {db: n for db, n in all_subjects.items() if n > main_subjects.get(db, 0)}
        if not gain:
            note = ("robustness check skipped: after face detection no database has more "
                    "complete subjects than it uses")
            run.update_manifest(skipped={"robustness": note})
            return {"skipped": note}
        train_stage(sub, alt, progress=progress, tested=False)
        table = pd.read_csv(stim_csv)
        stimuli = [read_gray(run.path / "stimuli" / Path(p).name) for p in table["path"]]
        with run.stage("robustness", subjects_all=all_subjects) as info:
            feats = stimulus_features(table, stimuli, study)
            resp = network_responses(sub.path / "heads", list(gain), feats, table)
            prof = tuning_profiles(resp)
            sub.write_table("au_profiles", prof)
            rob = profile_robustness(run.read_table("au_profiles"), prof, main_subjects,
                                     all_subjects)
            run.write_table("robustness", rob)
            info.update(databases=len(gain))
    return {"subjects": {db: (main_subjects.get(db), all_subjects.get(db)) for db in gain},
            "mean_r": rob.groupby("db")["spearman_r"].mean().round(2).to_dict()}
