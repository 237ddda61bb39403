"""The ``facedialect`` command line. Each command is a short function calling the API."""

from __future__ import annotations

import functools
import sys
import tomllib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from facedialect import __version__
from facedialect.errors import FacedialectError, FacedialectWarning, StudyFileError
from facedialect.progress import LogProgress
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS

app = typer.Typer(
    name="facedialect",
    help="Cross-cultural facial-expression research: ingest face databases, pre-process "
    "them as the reference study did, train and cross-test classifiers, measure AU tuning, "
    "and report. Start with `facedialect demo`.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
# soft_wrap: in a log (output not a terminal) a long line stays one line
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Print :class:`FacedialectError` as a clear message and exit 2, never a traceback.

    An :class:`OSError` of the computer (permission denied, read-only, disk full) is one
    such line too, naming the file; this package's warnings
    (:class:`~facedialect.errors.FacedialectWarning`, e.g. a damaged cache entry that is
    computed again) are one ``warning:`` line each.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _warning_printer(warnings.showwarning)
                return func(*args, **kwargs)
        except FacedialectError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                              markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as exc:
            from facedialect.run.store import ENVIRONMENT_ERRNOS, environment_message

            if exc.errno not in ENVIRONMENT_ERRNOS:
                raise
            where = exc.filename if exc.filename is not None else "a file"
            err_console.print(f"[bold red]error:[/] {escape(f'{where}: ')}"
                              f"{escape(environment_message(exc))}", highlight=False,
                              markup=True, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _warning_printer(previous: Callable[..., Any]) -> Callable[..., None]:
    """A ``warnings.showwarning`` printing this package's warnings as ``warning: ...``."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: Any = None, line: str | None = None) -> None:
        if issubclass(category, FacedialectWarning):
            err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False,
                              markup=True, soft_wrap=True)
        else:
            previous(message, category, filename, lineno, file, line)

    return show


def _version(value: bool) -> None:
    if value:
        console.print(f"facedialect {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Cross-cultural facial-expression research in one reproducible study."""


def _device(value: str) -> str:
    """Check a ``--device`` value before any work: auto, cpu, cuda, cuda:N or mps."""
    if value == "auto":
        return value
    import torch

    try:
        kind = torch.device(value).type
    except (RuntimeError, ValueError):
        kind = None
    if kind not in ("cpu", "cuda", "mps"):
        raise typer.BadParameter(f"{value!r} is not a device; use auto, cpu, cuda, cuda:N "
                                 "or mps")
    if kind == "cuda" and not torch.cuda.is_available():
        raise typer.BadParameter(f"{value!r}: no CUDA GPU is available here; use cpu or auto")
    return value


def _progress() -> Progress | LogProgress:
    """Progress bars on a terminal; plain progress lines (every 30 s at most) otherwise."""
    if not (err_console.is_terminal and err_console.is_interactive):
        return LogProgress(err_console.file)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err_console, transient=True)


def _print_database_summary(images: pd.DataFrame) -> None:
    from facedialect.databases import reason_category, summarize

    for db, info in summarize(images).items():
        part = images[images["db"] == db]
        subj = (f"{info['n_subjects_selected']} subjects" if info["has_subject_ids"]
                else "no subject ids")
        console.print(f"[bold]{db}[/]: {info['n_files']} files, {info['n_included']} images "
                      f"included, {subj}", highlight=False)
        t = Table(show_header=True, header_style="bold")
        per_expr = info["images_per_expression"]
        for e in per_expr:
            t.add_column(e, justify="right")
        t.add_row(*[str(n) for n in per_expr.values()])
        console.print(t)
        takes = info["images_per_subject"]
        if takes:
            console.print(f"  images per subject: {takes['min']}-{takes['max']} (median "
                          f"{takes['median']:g}); per subject and expression: "
                          f"{info['takes']['min']}-{info['takes']['max']}", highlight=False)
        exc = part[~part["included"].astype(bool)]
        if len(exc):
            cats = exc["reason"].fillna("").map(reason_category).value_counts()
            console.print("  excluded: " + "; ".join(f"{c} {n}" for c, n in cats.items()),
                          highlight=False, markup=False)


def _run_preprocess_params(run_dir: Path) -> tuple[Any, Path | None]:
    """The ``[preprocess]`` section and cache folder recorded in RUN/config.toml, if any."""
    from facedialect.preprocess.params import PreprocessParams

    cfg = run_dir / "config.toml"
    if not cfg.exists():
        return PreprocessParams(), None
    data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    cache = data.get("study", {}).get("cache_dir")
    return PreprocessParams.model_validate(data.get("preprocess", {})), (
        Path(cache) if cache else None)


def _run_screening(run_dir: Path) -> Any:
    """The ``[screening]`` section recorded in RUN/config.toml (defaults without one)."""
    from facedialect.config import ScreeningConfig

    cfg = run_dir / "config.toml"
    if not cfg.exists():
        return ScreeningConfig()
    data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    return ScreeningConfig.model_validate(data.get("screening", {}))


# ------------------------------------------------------------------------------------ commands
@app.command()
@friendly
def validate(
    study_file: Annotated[Path, typer.Argument(help="The TOML study file.")],
) -> None:
    """Check a study file (keys, types, paths); do no work."""
    from facedialect.config import load_study

    study = load_study(study_file)
    console.print(f"[green]ok[/]: {study_file} — study '{study.study.name}', "
                  f"{len(study.databases)} database(s), output {study.study.output}",
                  highlight=False)
    for db in study.databases:
        console.print(f"  {db.name}: preset {db.preset}, root {db.root}, "
                      f"n_subjects {db.n_subjects}", highlight=False, markup=False)


@app.command()
@friendly
def ingest(
    root: Annotated[Path, typer.Argument(help="The database folder (never written to).")],
    preset: Annotated[str, typer.Option(help="kdef, krc, jaffe, ckplus, folder or manifest.")],
    out: Annotated[Path, typer.Option(help="Run directory to write tables/images.csv in.")],
    name: Annotated[str | None, typer.Option(help="Database name (default: the preset "
                                             "in upper case).")] = None,
    n_subjects: Annotated[int, typer.Option(min=0, help="Complete subjects to keep: at "
                                            "least one "
                                            "image of each expression the database has "
                                            "(0 = all).")] = DEFAULT_SUBJECTS,
    expressions: Annotated[str, typer.Option(help="The label set, comma-separated (from "
                                             "neutral, happy, fearful, sad, angry, surprised, "
                                             "disgusted, contempt).")] = ",".join(EXPRESSIONS),
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Preset option KEY=VALUE (repeatable), e.g. "
        "-o subject_regex='(?P<subject>\\d+)_'.")] = None,
) -> None:
    """Parse and check one database; write tables/images.csv."""
    from facedialect.config import (
        DatabaseConfig,
        StudySection,
        output_conflicts,
        validate_options,
    )
    from facedialect.errors import InputError
    from facedialect.stages import ingest_stage
    from facedialect.run.store import RunDir
    from facedialect.study import labelled_ticker

    opts: dict[str, Any] = {}
    for item in option or []:
        if "=" not in item:
            raise StudyFileError(f"--option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        opts[k.strip()] = {"true": True, "false": False}.get(v.strip().lower(), v.strip())
    db = validate_options(
        DatabaseConfig, {"name": name or preset.strip().upper(), "preset": preset, "root": root,
                         "n_subjects": n_subjects or None, "options": opts},
        {"name": "--name", "preset": "--preset", "root": "ROOT", "n_subjects": "--n-subjects",
         "options": "--option"})
    section = validate_options(
        StudySection, {"name": "ingest", "output": out,
                       "expressions": [e for e in expressions.split(",") if e.strip()]},
        {"output": "--out", "expressions": "--expressions"})
    problems = output_conflicts(section.output, [db], output_name="--out")
    if problems:
        raise InputError("; ".join(problems))
    labels = section.expressions
    run = RunDir(section.output)
    with run.lock(), _progress() as bar:
        images = ingest_stage(run, [db], labels, progress=labelled_ticker(bar))
    _print_database_summary(images[images["db"] == db.name])
    console.print(f"wrote {run.table_path('images')}", highlight=False)


@app.command()
@friendly
def preprocess(
    run_dir: Annotated[Path, typer.Argument(help="Run directory holding tables/images.csv.")],
    workers: Annotated[int, typer.Option(min=0, help="Threads (0 = one per CPU "
                                         "core).")] = 0,
) -> None:
    """Detect, normalise and mask every face (cached)."""
    from facedialect.stages import preprocess_stage
    from facedialect.run.store import RunDir

    run = RunDir(run_dir).require_existing()
    params, cache = _run_preprocess_params(run.path)
    screen = _run_screening(run.path)
    with run.lock(), _progress() as bar:
        task = bar.add_task("pre-processing", total=None)
        s = preprocess_stage(run, params, cache_dir=cache, workers=workers or None,
                             progress=lambda d, t: bar.update(task, completed=d, total=t),
                             screen=screen)
    console.print(f"{s.processed} images: {s.detected} faces detected, {s.not_detected} "
                  f"excluded (no face or unreadable), {s.several_faces} with several faces "
                  f"(largest used); {s.from_cache} from cache", highlight=False)
    console.print(f"screening: {s.near_duplicates} near duplicate(s) excluded in "
                  f"{s.duplicate_groups} group(s) (tables/duplicates.csv), {s.too_small} "
                  f"face(s) too small, {s.blurred} blurred", highlight=False)
    console.print(f"wrote {run.table_path('preprocess')} and contact sheets in {run.figures}",
                  highlight=False)


@app.command()
@friendly
def report(
    run_dir: Annotated[Path, typer.Argument(help="The run directory.")],
) -> None:
    """Write the self-contained HTML report of a run."""
    from facedialect.report import build_report
    from facedialect.run.store import RunDir

    run = RunDir(run_dir).require_existing()
    with run.lock():
        path = build_report(run)
    console.print(f"report: {path}", highlight=False)


@app.command()
@friendly
def train(
    study_file: Annotated[Path, typer.Argument(help="The TOML study file.")],
    device: Annotated[str, typer.Option(callback=_device, help="cpu, cuda, or auto (a GPU "
                                        "when there is one).")] = "auto",
) -> None:
    """Extract features and train every database's networks."""
    from facedialect.classification import train_stage
    from facedialect.config import load_study
    from facedialect.run.store import RunDir
    from facedialect.study import labelled_ticker

    study = load_study(study_file)
    run = RunDir(study.study.output)
    with run.lock(), _progress() as bar:
        summary = train_stage(run, study, device=None if device == "auto" else device,
                              progress=labelled_ticker(bar))
    for db, info in summary["dbs"].items():
        failed = info.get("failed") or {}
        console.print(f"{db}: {info['runs']} runs trained"
                      + (f"; failed: {failed}" if failed else ""), highlight=False)
    console.print(f"wrote {run.path / 'heads'} and {run.table_path('training_curves')}",
                  highlight=False)


@app.command()
@friendly
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="The run directory (holds config.toml).")],
    device: Annotated[str, typer.Option(callback=_device,
                                        help="cpu, cuda, or auto.")] = "auto",
) -> None:
    """Test every network on every database (matched, swapped)."""
    from facedialect.classification import evaluate_stage
    from facedialect.config import load_study
    from facedialect.run.store import RunDir

    run = RunDir(run_dir)
    study = load_study(run.path / "config.toml")
    with run.lock():
        res = evaluate_stage(run, study, device=None if device == "auto" else device)
    for key, value in res["mean_correct"].items():
        console.print(f"{key}: mean correct rate {value:.3f}", highlight=False)
    console.print(f"wrote {run.table_path('confusion')}, {run.table_path('accuracy')} and "
                  f"{run.table_path('stats_classification')}", highlight=False)


@app.command()
@friendly
def saliency(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory (holds "
                                            "config.toml).")],
    images_per_class: Annotated[int, typer.Option(min=0, help="Most test images per "
                                                  "database, "
                                                  "run and expression (0 = as in "
                                                  "[saliency], default all).")] = 0,
    modify: Annotated[bool | None, typer.Option(
        "--modify/--no-modify", help="Also draw the modification grid (default: [saliency] "
        "modify).")] = None,
    device: Annotated[str, typer.Option(callback=_device,
                                        help="cpu, cuda, or auto.")] = "auto",
) -> None:
    """Saliency maps of the test images: region shares, statistics, figures."""
    from facedialect.config import load_study
    from facedialect.saliency.stage import modification_stage, saliency_stage
    from facedialect.run.store import RunDir
    from facedialect.study import labelled_ticker

    run = RunDir(run_dir)
    study = load_study(run.path / "config.toml")
    if images_per_class:
        study.saliency.images_per_class = images_per_class
    dev = None if device == "auto" else device
    with run.lock():
        with _progress() as bar:
            res = saliency_stage(run, study, device=dev, progress=labelled_ticker(bar))
        console.print(f"{res['images']} test images ({res['pairs']} image-run pairs), "
                      f"{res['without_landmarks']} without landmarks", highlight=False)
        for line in res["significant"]:
            console.print(f"  {line}", highlight=False, markup=False)
        if study.saliency.modify if modify is None else modify:
            mod = modification_stage(run, study, device=dev)
            console.print(f"modification grid from {mod['image']}", highlight=False,
                          markup=False)
    console.print(f"wrote {run.table_path('saliency_regions')}, "
                  f"{run.table_path('saliency_stats')} and figures in {run.figures}",
                  highlight=False)


@app.command()
@friendly
def modify(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.")],
    image: Annotated[Path, typer.Option(help="A face photo (pre-processed like the "
                                        "training images).")],
    target: Annotated[str, typer.Option(help="Expression to raise: neutral, happy, "
                                        "fearful, sad, angry, surprised or disgusted.")],
    db: Annotated[str | None, typer.Option(help="Whose networks (default: every "
                                           "database's).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Gradient-ascent steps.")] = 40,
    step_size: Annotated[float, typer.Option(min=0.0, help="RMS change of the first step, "
                                             "gray levels.")] = 2.0,
    tv_weight: Annotated[float, typer.Option(min=0.0, help="Total-variation penalty "
                                             "weight (0: none).")] = 20.0,
    device: Annotated[str, typer.Option(callback=_device,
                                        help="cpu, cuda, or auto.")] = "auto",
) -> None:
    """Change a face toward an expression by gradient ascent; write the image sequence."""
    from facedialect.config import load_study
    from facedialect.saliency.stage import modify_image_stage
    from facedialect.run.store import RunDir

    run = RunDir(run_dir)
    study = load_study(run.path / "config.toml")
    with run.lock():
        res = modify_image_stage(run, study, image, target, db=db, steps=steps,
                                 step_size=step_size, tv_weight=tv_weight,
                                 device=None if device == "auto" else device)
    for name, info in res.items():
        console.print(f"{name}: p({target}) {info['before']:.3f} -> {info['after']:.3f}; "
                      f"wrote {info['folder']}", highlight=False, markup=False)


@app.command()
@friendly
def stimuli(
    out: Annotated[Path, typer.Option(help="Folder for the images, stimuli.csv and the "
                                      "contact sheet.")],
    base_face: Annotated[str, typer.Option(help="builtin (procedural face), 3d (the ICT "
                                           "model's average face), PHOTO (a face photo, "
                                           "photo-textured 3D face) or average:RUN_DIR (the "
                                           "average neutral face of a run's databases).")
                         ] = "builtin",
    aus: Annotated[str, typer.Option(help="Comma-separated AUs (default: the 20 study "
                                     "AUs).")] = "",
    levels: Annotated[int, typer.Option(help="Intensity steps from 0 to 1.")] = 11,
    size: Annotated[int, typer.Option(help="Image side in pixels.")] = 256,
) -> None:
    """Render an AU stimulus series (AUs x levels + null)."""
    from facedialect.errors import InputError
    from facedialect.faces.stimuli import render_stimuli, stimulus_table, write_stimuli
    from facedialect.report.figures import stimuli_sheet
    from facedialect.run.store import atomic_write_bytes
    from facedialect.study import labelled_ticker
    from facedialect.tuning import base_face_renderer
    from facedialect.vocab import STUDY_AUS

    with _progress() as bar:
        tick = labelled_ticker(bar)
        try:
            au_list = [int(a) for a in aus.split(",") if a.strip()] or list(STUDY_AUS)
            table = stimulus_table(au_list, levels)
            renderer, _ = base_face_renderer(base_face, size,
                                             progress=lambda d, t: tick("average face", d, t))
        except ValueError as exc:
            raise InputError(str(exc)) from None
        images = render_stimuli(table, renderer, progress=lambda d, t: tick("stimuli", d, t))
    done = write_stimuli(out, table, images)
    atomic_write_bytes(Path(out) / "contact_sheet.png", stimuli_sheet(done))
    console.print(f"{len(done)} stimuli ({len(au_list)} AUs x {levels - 1} levels + the null "
                  f"image) in {out}; contact sheet {Path(out) / 'contact_sheet.png'}",
                  highlight=False)


@app.command("average-face")
@friendly
def average_face_cmd(
    images: Annotated[list[Path] | None, typer.Argument(
        help="Image files or folders (their images) to average.")] = None,
    out: Annotated[Path, typer.Option(help="The PNG to write; FILE_landmarks.csv (mean "
                                      "shape) and FILE_sources.csv go beside it.")] = Path(
        "average_face.png"),
    from_run: Annotated[Path | None, typer.Option(
        "--from-run", help="Average the included neutral faces of every database of this "
        "run directory (tables/images.csv) instead of IMAGES.")] = None,
    size: Annotated[int, typer.Option(help="Side of the square output in pixels.")] = 512,
    color: Annotated[bool, typer.Option(help="Average in colour instead of "
                                        "grayscale.")] = False,
) -> None:
    """Build the landmark-aligned average face of a set of images (warp to the mean shape)."""
    from facedialect.errors import InputError
    from facedialect.faces.average import average_face, collect_images, write_average_face
    from facedialect.tuning import run_neutral_images

    if bool(images) == (from_run is not None):
        raise InputError("give either IMAGES or --from-run RUN_DIR (one of the two)")
    paths = run_neutral_images(from_run) if from_run is not None else collect_images(images)
    with _progress() as bar:
        task = bar.add_task("average face", total=len(paths))
        face = average_face(paths, size=size, color=color,
                            progress=lambda d, t: bar.update(task, completed=d, total=t))
    files = write_average_face(face, out)
    skipped = face.sources[~face.sources["used"]]
    for r in skipped.itertuples():
        err_console.print(f"skipped {r.path}: {r.reason}", highlight=False, markup=False)
    console.print(f"average of {face.n_used} faces ({len(skipped)} skipped): {files['image']}; "
                  f"mean landmarks {files['landmarks']}", highlight=False)


@app.command()
@friendly
def synth(
    out: Annotated[Path | None, typer.Option(help="Output folder: one database per culture "
                                             "(images, manifest.csv, truth.csv).")] = None,
    preset: Annotated[str, typer.Option(help="A shipped preset (east-west, "
                                        "east-west-controls, messy) or a TOML "
                                        "file.")] = "east-west",
    subjects: Annotated[int | None, typer.Option(help="Posers per culture [default: the "
                                                 "preset's [settings], else 60].")] = None,
    renderer: Annotated[str, typer.Option(help="3d (the ICT face model) or builtin (the "
                                          "procedural face).")] = "3d",
    seed: Annotated[int | None, typer.Option(help="Seed of everything random [default: the "
                                             "preset's, else 0].")] = None,
    size: Annotated[int | None, typer.Option(help="Image side in pixels [default: the "
                                             "preset's, else 256].")] = None,
    color: Annotated[bool | None, typer.Option("--color/--gray", help="RGB or grayscale "
                                               "images [default: the preset's, else "
                                               "gray].")] = None,
    textures: Annotated[Path | None, typer.Option(help="Folder of frontal face photos: each "
                                                  "poser is one photo fitted with the 3D "
                                                  "model (read only).")] = None,
    workers: Annotated[int, typer.Option(help="Rendering processes (0 = one per CPU "
                                         "core).")] = 0,
    show_preset: Annotated[str | None, typer.Option(help="Print a preset's TOML (a name or "
                                                    "file) and exit.")] = None,
) -> None:
    """Make synthetic cultures with known AU differences (SCIENCE §10)."""
    import csv

    from facedialect.errors import InputError
    from facedialect.synthetic.databases3d import preset_text, synthesize
    from facedialect.study import labelled_ticker

    if show_preset is not None:
        sys.stdout.write(preset_text(show_preset))
        return
    if out is None:
        raise InputError("--out is required: the folder to write the databases to")
    with _progress() as bar:
        tick = labelled_ticker(bar)
        done = synthesize(out, preset, renderer=renderer, n_posers=subjects, seed=seed,
                          size=size, color=color, textures=textures, workers=workers,
                          progress=lambda c, d, t: tick(f"culture {c}", d, t))
    for culture, folder in done.items():
        with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
        subjects = {r["subject"] for r in rows} - {""}
        who = f"{len(subjects)} posers" if subjects else "no subject ids"
        n_expr = len({r["expression"] for r in rows})
        console.print(f"culture {culture}: {who}, {n_expr} expressions, {len(rows)} images "
                      f"in {folder} (manifest.csv, truth.csv)", highlight=False)
    console.print(f"preset used: {Path(out) / 'preset.toml'}; read a culture with "
                  "preset = \"manifest\"", highlight=False, markup=False)


assets_app = typer.Typer(help="Install downloaded assets (the 3D face model).",
                         no_args_is_help=True)
app.add_typer(assets_app, name="assets")


@assets_app.command("install")
@friendly
def assets_install(
    name: Annotated[str, typer.Argument(help="Asset name: ict-facekit.")],
    from_path: Annotated[Path | None, typer.Option("--from", help="A local copy: the "
                                                   "converted ict_facekit_light.npz, or the "
                                                   "ICT-FaceKit repository or its FaceXModel "
                                                   "folder (converted).")] = None,
    download: Annotated[bool, typer.Option(help="Without --from, download the model's files "
                                           "from the public ICT-FaceKit repository (pinned "
                                           "commit) and convert them.")] = True,
) -> None:
    """Install an asset into the cache (downloaded or local; checked against the reference)."""
    from facedialect.errors import InputError
    from facedialect.faces.model3d.assets import install_ict_facekit

    if name != "ict-facekit":
        raise InputError(f"unknown asset {name!r}; known: ict-facekit")
    with _progress() as bar:
        task = bar.add_task("ICT-FaceKit", total=None)
        path = install_ict_facekit(from_path, allow_download=download,
                                   progress=lambda d, t: bar.update(task, completed=d, total=t))
    console.print(f"installed {name}: {path}", highlight=False)


@app.command()
@friendly
def meaning(
    study_file: Annotated[Path, typer.Argument(help="The TOML study file (with [meaning] "
                                               "ratings; ingest and preprocess done).")],
    device: Annotated[str, typer.Option(callback=_device,
                                        help="cpu, cuda, or auto.")] = "auto",
) -> None:
    """Rating heads per culture, PPCA shared dimensions and preservation."""
    from facedialect.config import load_study
    from facedialect.meaning.stage import meaning_stage
    from facedialect.run.store import RunDir
    from facedialect.study import labelled_ticker

    study = load_study(study_file)
    run = RunDir(study.study.output)
    with run.lock(), _progress() as bar:
        res = meaning_stage(run, study, device=None if device == "auto" else device,
                            progress=labelled_ticker(bar))
    console.print(f"{res['images']} rated images, cultures {res['cultures']}",
                  highlight=False)
    for pair, n in res["n_shared"].items():
        console.print(f"{pair}: {n} shared dimension(s)", highlight=False)
    console.print(f"mean preservation {res['mean_preservation']}; wrote "
                  f"{run.table_path('ppca_components')} and the other meaning tables",
                  highlight=False)


@app.command("synth-ratings")
@friendly
def synth_ratings(
    out: Annotated[Path, typer.Option(help="Folder for the faces, ratings.csv, raters.csv, "
                                      "truth.json and study.toml.")] = Path(
        "facedialect-meaning"),
    posers: Annotated[int, typer.Option(min=1, max=9999, help="Synthetic posers (7 images "
                                        "each).")] = 12,
    raters: Annotated[int, typer.Option(min=2, max=1000, help="Raters per image and "
                                        "culture.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of faces, raters and study.")] = 0,
) -> None:
    """Write a meaning example: synthetic faces rated by 3 simulated cultures."""
    from facedialect.synthetic.meaning_example import write_meaning_example

    study = write_meaning_example(out, posers=posers, raters=raters, seed=seed)
    console.print(f"wrote {study} (cultures A, B, C; planted shared dimensions in "
                  f"{study.parent / 'truth.json'}); run it with `facedialect run {study}`",
                  highlight=False)


@app.command("run")
@friendly
def run_cmd(
    study_file: Annotated[Path, typer.Argument(help="The TOML study file.")],
) -> None:
    """Run a whole study: every stage in order, resumable."""
    from facedialect.config import load_study
    from facedialect.study import run_study

    study = load_study(study_file)
    path = run_study(study, console=console, progress=_progress)
    console.print(f"[bold green]done[/]: report at {path}", highlight=False)


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the example data and run.")] = Path(
        "facedialect-demo"),
    posers: Annotated[int, typer.Option(min=1, max=9999, help="Synthetic posers per "
                                        "culture (the study uses all but 2; the robustness "
                                        "check all).")] = 14,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic cultures.")] = 0,
) -> None:
    """Run the offline example study (synthetic cultures)."""
    from facedialect.study import run_demo

    path = run_demo(out, posers=posers, seed=seed, console=console, progress=_progress)
    console.print(f"[bold green]done[/]: open {path}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
