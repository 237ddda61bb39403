"""The study's stages in the design order, and the one loop that runs them.

:data:`STAGES` lists every stage (:mod:`facedialect.stages`); :func:`run_stages` runs a
study's stages in that order: it writes the resolved study file, checks each stage's
inputs, skips a stage that is up to date (same inputs and settings as its last run,
outputs present: :meth:`~facedialect.stages.base.Stage.up_to_date`), runs the others and
records their fingerprints. ``facedialect run`` is this loop over every stage the study
enables; each stage command (``facedialect train``) is this loop over one stage.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from facedialect.compute import get_engine
from facedialect.config import Study
from facedialect.errors import InputError
from facedialect.files import RUN_HINT, atomic_write_text
from facedialect.progress import labelled_ticker
from facedialect.run.store import RunDir
from facedialect.stages import (
    evaluate,
    features,
    ingest,
    meaning,
    mental_models,
    preprocess,
    report,
    robustness,
    saliency,
    train,
    tuning,
)
from facedialect.stages.base import Context, Stage, Summary

#: Every stage, in the order a study runs them.
STAGES: tuple[Stage, ...] = (
    ingest.STAGE, preprocess.STAGE, features.STAGE, train.STAGE, evaluate.STAGE,
    tuning.STAGE, robustness.STAGE, saliency.STAGE, meaning.STAGE, mental_models.STAGE,
    report.STAGE,
)

#: The stages whose work runs on the ``[compute]`` engine (docs/scaling.md).
ENGINE_STAGES: tuple[str, ...] = ("features", "train", "evaluate", "tuning", "robustness",
                                  "saliency", "meaning", "mental_models")

#: Stage names, in order.
STAGE_NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)


def get_stage(name: str) -> Stage:
    """The stage called ``name``.

    Raises
    ------
    InputError
        For an unknown name (lists the stages).
    """
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise InputError(f"unknown stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


def producers(stages: Sequence[Stage] = STAGES) -> dict[str, Stage]:
    """File pattern -> the stage that writes it."""
    return {p: s for s in stages for p in s.writes}


def save_study(run: RunDir, study: Study) -> None:
    """Write the resolved study file to ``config.toml`` and its seed and name to the manifest."""
    text = study.to_toml()
    atomic_write_text(run.path / "config.toml", text, hint=RUN_HINT)
    run.update_manifest(seed=study.study.seed, study=study.study.name,
                        study_file_sha256=hashlib.sha256(text.encode()).hexdigest(),
                        report_title=study.report.title or study.study.name)


def check_inputs(run: RunDir, stage: Stage) -> None:
    """Raise a clear error naming the stage when one of its inputs is missing.

    Raises
    ------
    InputError
        ``stage 'evaluate' needs tables/splits.csv, which the features stage writes: ...``.
    """
    missing = stage.missing_inputs(run)
    if not missing:
        return
    made_by = producers()
    what = "; ".join(f"{p}, which the {made_by[p].name if p in made_by else '?'} stage writes"
                     for p in missing)
    first = made_by.get(missing[0])
    hint = (f"run `facedialect {first.cli} STUDY_FILE` (or `facedialect run STUDY_FILE`) "
            "first" if first else "run `facedialect run STUDY_FILE` first")
    raise InputError(f"stage {stage.name!r} needs {what}, in {run.path}: {hint}")


ProgressFactory = Callable[[], Any]


@contextlib.contextmanager
def _progress(ctx: Context, factory: ProgressFactory | None) -> Iterator[Context]:
    """``ctx`` with its progress drawn by a fresh ``factory()`` display for one stage."""
    if factory is None:
        yield ctx
        return
    with factory() as bar:
        yield dataclasses.replace(ctx, progress=labelled_ticker(bar))


def run_stages(study: Study, names: Sequence[str] | None = None, *,
               ctx: Context | None = None, progress: ProgressFactory | None = None,
               on_start: Callable[[Stage], None] | None = None,
               on_done: Callable[[Summary], None] | None = None) -> list[Summary]:
    """Run the study's stages in the design order.

    Parameters
    ----------
    study : Study
        The validated study; its run directory is ``[study] output``.
    names : sequence of str, optional
        The stages to run (any order; they run in :data:`STAGES` order, whether or not the
        study enables them). Default: every stage the study enables.
    ctx : Context, optional
        Device, options, ``force`` (run although up to date).
    progress : callable, optional
        Factory of a progress display (rich ``Progress`` or
        :class:`~facedialect.progress.LogProgress`), opened once per stage.
    on_start, on_done : callable, optional
        Called with each stage before it runs, and with its :class:`Summary` after.

    Returns
    -------
    list of Summary
        One per stage considered, in order (``skipped`` says why a stage did no work).

    Raises
    ------
    InputError
        When a stage's input is missing (naming the stage) or its input data is invalid.
    """
    base = ctx or Context()
    chosen = [get_stage(n) for n in names] if names is not None else None
    todo = [s for s in STAGES if (s in chosen if chosen is not None else s.enabled(study))]
    base = dataclasses.replace(base, stages=STAGES)
    for stage in todo:  # before any work: a stage the study cannot run says so at once
        stage.check(study)
    if study.compute.engine != "local" and any(s.name in ENGINE_STAGES for s in todo):
        get_engine(study.compute)  # Ray missing or the cluster unreachable: say so now
    run = RunDir(study.study.output)
    summaries = []
    with run.lock():
        save_study(run, study)
        for stage in todo:
            if on_start:
                on_start(stage)
            check_inputs(run, stage)
            fingerprint = None if stage.always else stage.fingerprint(run, study)
            if not base.force and stage.up_to_date(run, fingerprint):
                summary = Summary(stage.name, skipped="up to date")
            else:
                with _progress(base, progress) as ctx_stage:
                    summary = stage.run(run, study, ctx_stage)
                if fingerprint is not None:
                    run.update_manifest(fingerprints={stage.name: fingerprint})
            summaries.append(summary)
            if on_done:
                on_done(summary)
    return summaries


def build_report(run_dir: str | Path | RunDir, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run directory from every stage's section.

    Parameters
    ----------
    run_dir : path or RunDir
        The run directory.
    out : path, optional
        Where to write (default ``RUN/report.html``).
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    return report.build_report(run, STAGES, out)
