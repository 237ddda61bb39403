"""A whole study from one file: the stages in order, and the offline demo."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from facedialect.config import Study, load_study
from facedialect.report import build_report
from facedialect.stages import ingest_stage, preprocess_stage, save_study
from facedialect.run.store import RunDir


def run_study(study: Study, *, console: Console | None = None,
              progress: Callable[[], Any] | None = None) -> Path:
    """Run every stage that exists, in order, and write the report.

    Parameters
    ----------
    study : Study
        The validated study.
    console : rich.console.Console, optional
        Where to print stage lines.
    progress : callable, optional
        Factory of a rich ``Progress`` for progress bars, or of a
        :class:`~facedialect.progress.LogProgress` for progress lines in a log.

    Returns
    -------
    Path
        The report file.
    """
    say = console.print if console else (lambda *a, **k: None)
    run = RunDir(study.study.output)
    with run.lock():
        save_study(run, study)
        run.update_manifest(report_title=study.report.title or study.study.name)
        say(f"[bold]ingest[/]: {len(study.databases)} database(s)")
        images = with_progress(progress, functools.partial(ingest_stage, prune=True), run,
                               study.databases, study.study.expressions)
        n_inc = int(images["included"].astype(bool).sum())
        say(f"  {len(images)} files, {n_inc} included before face detection")
        say("[bold]pre-process[/]")
        kwargs: dict[str, Any] = dict(
            n_subjects={d.name: d.n_subjects for d in study.databases},
            cache_dir=study.study.cache_dir,
            faces_per_expression=study.report.contact_sheet_per_expression,
            screen=study.screening)
        if progress is not None:
            with progress() as bar:
                task = bar.add_task("pre-processing", total=None)
                s = preprocess_stage(run, study.preprocess, **kwargs,
                                     progress=lambda d, t: bar.update(task, completed=d, total=t))
        else:
            s = preprocess_stage(run, study.preprocess, **kwargs)
        say(f"  {s.detected}/{s.processed} faces detected ({s.from_cache} from cache)")
        say(f"  screening: {s.near_duplicates} near duplicate(s) in {s.duplicate_groups} "
            f"group(s), {s.too_small} face(s) too small, {s.blurred} blurred")
        _train_and_evaluate(run, study, say, progress)
        if study.meaning.enabled:
            _meaning(run, study, say, progress)
        if study.saliency.enable:
            _saliency(run, study, say, progress)
        say("[bold]report[/]")
        return build_report(run)


def _meaning(run: RunDir, study: Study, say: Callable[..., Any],
             progress: Callable[[], Any] | None) -> None:
    """The meaning stage (SCIENCE §9), when the study has ratings."""
    from facedialect.meaning.stage import meaning_stage

    say("[bold]meaning[/]: per-culture rating heads, PPCA, preservation")
    res = with_progress(progress, meaning_stage, run, study)
    for pair, n in res["n_shared"].items():
        say(f"  {pair}: {n} shared dimension(s)")
    say(f"  mean preservation {res['mean_preservation']}")


def _saliency(run: RunDir, study: Study, say: Callable[..., Any],
              progress: Callable[[], Any] | None) -> None:
    """Saliency per face region and the modification grid (SCIENCE §8), when enabled."""
    from facedialect.saliency.stage import modification_stage, saliency_stage

    say(f"[bold]saliency[/]: {', '.join(study.saliency.methods)}")
    res = with_progress(progress, saliency_stage, run, study)
    say(f"  {res['images']} test images, {res['without_landmarks']} without landmarks; "
        f"{len(res['significant'])} region difference(s) with FDR p < 0.05")
    if study.saliency.modify:
        mod = modification_stage(run, study)
        say(f"  modification grid from {mod['image']}")


def with_progress(progress: Callable[[], Any] | None, stage: Callable[..., Any],
                  *args: Any) -> Any:
    """Run ``stage(*args)``, with ``progress=labelled_ticker(bar)`` when bars are wanted."""
    if progress is None:
        return stage(*args)
    with progress() as bar:
        return stage(*args, progress=labelled_ticker(bar))


def labelled_ticker(bar: Any) -> Callable[[str, int, int], None]:
    """Adapt a rich ``Progress`` to ``progress(label, done, total)``: one bar per label."""
    tasks: dict[str, Any] = {}

    def tick(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bar.add_task(label, total=total)
        bar.update(tasks[label], completed=done, total=total)

    return tick


def _train_and_evaluate(run: RunDir, study: Study, say: Callable[..., Any],
                        progress: Callable[[], Any] | None) -> None:
    from facedialect.classification import evaluate_stage, protocol_of, train_stage

    proto = protocol_of(study)
    say(f"[bold]train[/]: {study.model.backbone} ({study.model.weights}), protocol "
        f"{proto.name}: {proto.runs} runs x {proto.iterations} iterations per database")
    summary = with_progress(progress, train_stage, run, study)
    for db, info in summary["dbs"].items():
        failed = info.get("failed") or {}
        say(f"  {db}: {info['runs']} runs" + (f", {len(failed)} failed" if failed else "")
            + (" (up to date)" if info.get("skipped") else ""))
    say("[bold]evaluate[/]")
    res = evaluate_stage(run, study)
    for key, value in res["mean_correct"].items():
        say(f"  {key}: mean correct rate {value:.3f}")
    for pair, lacks in res["absent"].items():
        say(f"  {pair}: no unit for {', '.join(lacks)} (absent; scored on the shared "
            "expressions)")
    for pair in res["disjoint"]:
        say(f"  {pair} share no expression: no swapped correct rate")
    from facedialect.tuning import tuning_stage

    say(f"[bold]AU tuning[/]: base face {study.tuning.base_face}")
    tun = with_progress(progress, tuning_stage, run, study)
    say(f"  {tun['stimuli']} stimuli" + ("; same-expression profile r_s: " + ", ".join(
        f"{k} {v}" for k, v in tun["same_unit_r"].items()) if tun["same_unit_r"] else ""))
    if study.tuning.robustness:
        _robustness(run, study, say, progress)


def _robustness(run: RunDir, study: Study, say: Callable[..., Any],
                progress: Callable[[], Any] | None) -> None:
    from facedialect.robustness import robustness_stage

    say("[bold]robustness[/]: profiles with all subjects")
    res = with_progress(progress, robustness_stage, run, study)
    if "skipped" in res:
        say(f"  {res['skipped']}")
    else:
        say("  mean r_s with the main profiles: "
            + ", ".join(f"{db} {r}" for db, r in res["mean_r"].items()))


DEMO_STUDY = """\
# facedialect demo: two synthetic cultures drawn with the built-in face.
# "west" uses the classic AU prototypes, "east" changes fearful, angry, sad and disgusted
# (SCIENCE §10). Run it again with `facedialect run {study}`.

[study]
name = "facedialect demo: synthetic east-west cultures"
output = "run"
seed = {seed}
cache_dir = "cache"

[model]
backbone = "mobilenet_v2"   # ImageNet weights ship offline in a package (RESOURCES.md)

[training]
protocol = "quick"

[tuning]
base_face = "builtin"       # the procedural face (or "average", "3d", a photo path)
robustness = true           # also train on all posers and correlate the profiles

[saliency]
enable = true               # where the networks look, per face region; a neutral test
                            # face pushed toward each expression by gradient ascent

[[databases]]
name = "west"
preset = "manifest"         # data/west/manifest.csv lists the images (truth.csv: their AUs)
root = "data/west"
n_subjects = {subjects}
culture = "A (classic prototypes)"

[[databases]]
name = "east"
preset = "manifest"
root = "data/east"
n_subjects = {subjects}
culture = "B (changed fearful, angry, sad, disgusted)"
"""


def run_demo(out: str | Path, *, posers: int = 14, seed: int = 0,
             console: Console | None = None,
             progress: Callable[[], Any] | None = None) -> Path:
    """Make two synthetic cultures with the built-in face and run the study on them.

    Parameters
    ----------
    out : path
        Folder for the generated data (``data/``), the study file and the run (``run/``).
    posers : int
        Posers per culture; the study uses the first ``posers - 2`` and the robustness
        check trains again on all of them.
    seed : int
        Seed of the synthetic data and the study.

    Returns
    -------
    Path
        The report file.
    """
    from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database

    out = Path(out).resolve()
    say = console.print if console else (lambda *a, **k: None)
    preset = EastWestPreset(n_posers=posers, seed=seed)
    for culture, folder in (("A", "west"), ("B", "east")):
        target = out / "data" / folder
        if not (target / "truth.csv").exists():
            say(f"[bold]synthetic culture {culture}[/]: {posers} posers x 7 expressions "
                f"-> {target}")
            write_synthetic_database(target, culture, preset)
    study_path = out / "study.toml"
    study_path.write_text(DEMO_STUDY.format(seed=seed, subjects=max(3, posers - 2),
                                            study=study_path), encoding="utf-8")
    return run_study(load_study(study_path), console=console, progress=progress)
