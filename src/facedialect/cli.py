"""The ``facedialect`` command line: parse, call the API, print the summary; no logic.

Stage commands (``ingest`` ... ``report``) take the study file and run that stage of
:data:`facedialect.pipeline.STAGES`; ``run`` runs them all. Tools (``stimuli``,
``average-face``, ``synth``, ``synth-ratings``, ``assets``, ``demo``) make inputs.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from facedialect._meta import __version__
from facedialect.errors import FacedialectError, FacedialectWarning, InputError
from facedialect.progress import labelled_ticker, progress_factory
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
            from facedialect.files import ENVIRONMENT_ERRNOS, environment_message

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


_progress = progress_factory(err_console)

StudyFile = Annotated[Path, typer.Argument(help="The TOML study file.")]
Device = Annotated[str, typer.Option(callback=_device, help="cpu, cuda, cuda:N, mps, or auto "
                                     "(a GPU when there is one).")]
Force = Annotated[bool, typer.Option(help="Run even when the stage is up to date.")]


def _say_start(stage: Any) -> None:
    console.print(f"[bold]{stage.name}[/]: {escape(stage.title)}", highlight=False)


def _say_done(summary: Any) -> None:
    if summary.skipped:
        console.print(f"  {summary.skipped}", highlight=False, markup=False)
    for line in summary.lines:
        console.print(f"  {line}", highlight=False, markup=False)


def _run(study_file: Path, stages: Sequence[str] | None, device: str = "auto",
         force: bool = False, **options: Any) -> list[Any]:
    """Load the study file and run ``stages`` (None: all it enables), printing summaries."""
    from facedialect.api import Study
    from facedialect.pipeline import run_stages
    from facedialect.stages.base import Context

    study = Study.from_toml(study_file)
    ctx = Context(device=None if device == "auto" else device, force=force,
                  options={k: v for k, v in options.items() if v is not None})
    return run_stages(study, stages, ctx=ctx, progress=_progress, on_start=_say_start,
                      on_done=_say_done)


# ------------------------------------------------------------------------------ stage commands
@app.command()
@friendly
def validate(study_file: StudyFile) -> None:
    """Check a study file (keys, types, paths); do no work."""
    from facedialect.api import Study

    study = Study.from_toml(study_file)
    console.print(f"[green]ok[/]: {escape(str(study_file))} — study "
                  f"'{escape(study.study.name)}', {len(study.databases)} database(s), output "
                  f"{escape(str(study.study.output))}", highlight=False)
    for db in study.databases:
        console.print(f"  {db.name}: preset {db.preset}, root {db.root}, "
                      f"n_subjects {db.n_subjects}", highlight=False, markup=False)


@app.command("run")
@friendly
def run_cmd(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Run a whole study: every stage it enables, in order; up-to-date stages are skipped."""
    summaries = _run(study_file, None, device, force)
    path = summaries[-1].facts.get("path") if summaries else None
    console.print(f"[bold green]done[/]: report at {escape(str(path))}", highlight=False)


@app.command()
@friendly
def ingest(study_file: StudyFile, force: Force = False) -> None:
    """Parse and check the study's databases; write tables/images.csv."""
    _run(study_file, ["ingest"], force=force)


@app.command()
@friendly
def preprocess(
    study_file: StudyFile,
    workers: Annotated[int, typer.Option(min=0, help="Threads (0 = one per CPU "
                                         "core).")] = 0,
    force: Force = False,
) -> None:
    """Detect, normalise and mask every face (cached); screen the faces."""
    _run(study_file, ["preprocess"], force=force, workers=workers or None)


@app.command()
@friendly
def features(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Split the subjects per run and compute every face's backbone features (cached)."""
    _run(study_file, ["features"], device, force)


@app.command()
@friendly
def train(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Train every database's networks on the cached features (resumable)."""
    _run(study_file, ["train"], device, force)


@app.command()
@friendly
def evaluate(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Test every network on every database (matched, swapped)."""
    _run(study_file, ["evaluate"], device, force)


@app.command()
@friendly
def tune(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """AU tuning: render the stimuli, measure every network's profiles, compare them."""
    _run(study_file, ["tuning"], device, force)


@app.command()
@friendly
def robustness(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Train on all complete subjects and correlate the profiles with the main ones."""
    _run(study_file, ["robustness"], device, force)


@app.command()
@friendly
def saliency(
    study_file: StudyFile,
    modify: Annotated[bool | None, typer.Option(
        "--modify/--no-modify", help="Also draw the modification grid (default: [saliency] "
        "modify).")] = None,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Saliency maps of the test images: region shares, statistics, figures."""
    _run(study_file, ["saliency"], device, force, modify=modify)


@app.command()
@friendly
def meaning(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Rating heads per culture, PPCA shared dimensions and preservation."""
    _run(study_file, ["meaning"], device, force)


@app.command("mental-models")
@friendly
def mental_models(study_file: StudyFile, device: Device = "auto", force: Force = False) -> None:
    """Each network's model of each expression, by reverse correlation in AU space."""
    _run(study_file, ["mental_models"], device, force)


@app.command()
@friendly
def report(
    target: Annotated[Path, typer.Argument(help="The study file, or a run directory (e.g. "
                                           "one copied from elsewhere).")],
) -> None:
    """Write the self-contained HTML report of a run."""
    from facedialect.api import Run, Study

    if target.is_file():
        path = Run(Study.from_toml(target).study.output).report()
    else:
        from facedialect.run.store import RunDir

        run = RunDir(target).require_existing()
        with run.lock():
            path = Run(run.path).report()
    console.print(f"report: {escape(str(path))}", highlight=False)


@app.command()
@friendly
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="The TOML sweep file (docs/scaling.md).")],
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Run a grid of studies (backbones x seeds x databases x protocols) and summarise it."""
    from facedialect.sweep import load_sweep, run_sweep

    sw = load_sweep(sweep_file)
    console.print(f"[bold]sweep[/] {escape(sw.config.sweep.name)}: {len(sw.points)} studies "
                  f"({sw.config.compute.engine}), into {escape(str(sw.output))}",
                  highlight=False)

    def done(point: Any, outcome: dict[str, Any]) -> None:
        ran = [name for name, skipped in outcome["stages"] if not skipped]
        what = f"ran {', '.join(ran)}" if ran else "up to date"
        line = f"  {point.name}: {outcome['status'] if outcome['status'] != 'ok' else what}"
        console.print(line, highlight=False, markup=False)

    result = run_sweep(sw, device=None if device == "auto" else device, force=force,
                       progress=_progress, on_point=done)
    for row in result.summary.itertuples(index=False):
        console.print(f"  {row.backbone} {row.protocol} {row.databases}: matched "
                      f"{row.matched_mean:.3f}, swapped {row.swapped_mean:.3f} "
                      f"({row.seeds} seed(s))", highlight=False, markup=False)
    console.print(f"[bold green]done[/]: {escape(str(sw.output / 'tables'))}, report at "
                  f"{escape(str(result.report))}", highlight=False)


@app.command()
@friendly
def modify(
    study_file: StudyFile,
    image: Annotated[Path, typer.Option(help="A face photo (pre-processed like the "
                                        "training images).")],
    target: Annotated[str, typer.Option(help="Expression to raise (one of the study's "
                                        "expressions).")],
    db: Annotated[str | None, typer.Option(help="Whose networks (default: every "
                                           "database's).")] = None,
    method: Annotated[str | None, typer.Option(help="visible or gradient [default: "
                                               "[saliency] modify_method].")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="Optimisation steps [default: "
                                              "[saliency] modify_steps].")] = None,
    step_size: Annotated[float | None, typer.Option(min=0.0, help="Gray levels per step "
                                                    "[default: [saliency] "
                                                    "modify_step_size].")] = None,
    tv_weight: Annotated[float | None, typer.Option(min=0.0, help="Total-variation "
                                                    "penalty weight, 0: none [default: "
                                                    "[saliency] modify_tv_weight].")] = None,
    device: Device = "auto",
) -> None:
    """Change a face toward an expression; write the image sequence and the transfer check."""
    from facedialect.api import Study
    from facedialect.run.store import RunDir
    from facedialect.stages.base import default_device
    from facedialect.stages.saliency import modify_image

    if method not in (None, "visible", "gradient"):
        raise InputError(f"--method must be visible or gradient, not {method!r}")
    study = Study.from_toml(study_file)
    run = RunDir(study.study.output).require_existing()
    with run.lock():
        res = modify_image(run, study, image, target, db=db, method=method, steps=steps,
                           step_size=step_size, tv_weight=tv_weight,
                           device=default_device() if device == "auto" else device)
    for name, info in res.items():
        console.print(f"{name}: p({target}) {info['before']:.3f} -> {info['after']:.3f} "
                      f"(runs optimised), {info['held_out_before']:.3f} -> "
                      f"{info['held_out_after']:.3f} (held out); mean change "
                      f"{info['mean_abs_change']:.1f} gray levels; wrote {info['folder']}",
                      highlight=False, markup=False)


@app.command()
@friendly
def inspect(
    root: Annotated[Path, typer.Argument(help="The database folder (never written to).")],
    preset: Annotated[str, typer.Option(help="kdef, krc, jaffe, ckplus, folder or manifest.")],
    out: Annotated[Path | None, typer.Option(help="Also write tables/images.csv in this "
                                             "run directory.")] = None,
    name: Annotated[str | None, typer.Option(help="Database name (default: the preset "
                                             "in upper case).")] = None,
    subjects: Annotated[int, typer.Option(min=0, help="Complete subjects to keep: at least "
                                          "one image of each expression the database has "
                                          "(0 = all).")] = DEFAULT_SUBJECTS,
    expressions: Annotated[str, typer.Option(help="The label set, comma-separated (from "
                                             "neutral, happy, fearful, sad, angry, surprised, "
                                             "disgusted, contempt).")] = ",".join(EXPRESSIONS),
    option: Annotated[list[str] | None, typer.Option(
        "--option", "-o", help="Preset option KEY=VALUE (repeatable), e.g. "
        "-o subject_regex='(?P<subject>\\d+)_'.")] = None,
) -> None:
    """Check one database folder with a preset, before writing a study file."""
    from facedialect.stages.ingest import database_lines, inspect_database

    images = inspect_database(root, preset, name=name, n_subjects=subjects or None,
                              expressions=[e for e in expressions.split(",") if e.strip()],
                              options=option or [], out=out)
    for line in database_lines(images):
        console.print(line, highlight=False, markup=False)
    if out is not None:
        console.print(f"wrote {escape(str(Path(out) / 'tables' / 'images.csv'))}",
                      highlight=False)


# ------------------------------------------------------------------------------------- tools
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
    from facedialect.stages.tuning import write_stimulus_series

    with _progress() as bar:
        done, n_aus = write_stimulus_series(out, base_face, aus, levels, size,
                                            progress=labelled_ticker(bar))
    console.print(f"{len(done)} stimuli ({n_aus} AUs x {levels - 1} levels + the null "
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
    from facedialect.stages.tuning import run_neutral_images

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
    """Make synthetic cultures with known AU differences (docs/method.md §10)."""
    from facedialect.errors import InputError
    from facedialect.synthetic.databases3d import culture_summary, preset_text, synthesize

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
        console.print(f"culture {culture}: {culture_summary(folder)} in {folder} "
                      "(manifest.csv, truth.csv)", highlight=False)
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


@app.command("synth-ratings")
@friendly
def synth_ratings(
    out: Annotated[Path, typer.Option(help="Folder for the faces, ratings.csv, raters.csv, "
                                      "truth.json and study.toml.")] = Path(
        "facedialect-meaning"),
    subjects: Annotated[int, typer.Option(min=1, max=9999, help="Synthetic posers (7 "
                                          "images each).")] = 12,
    raters: Annotated[int, typer.Option(min=2, max=1000, help="Raters per image and "
                                        "culture.")] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed of faces, raters and study.")] = 0,
) -> None:
    """Write a meaning example: synthetic faces rated by 3 simulated cultures."""
    from facedialect.synthetic.meaning_example import write_meaning_example

    study = write_meaning_example(out, posers=subjects, raters=raters, seed=seed)
    console.print(f"wrote {study} (cultures A, B, C; planted shared dimensions in "
                  f"{study.parent / 'truth.json'}); run it with `facedialect run {study}`",
                  highlight=False)


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the example data and run.")] = Path(
        "facedialect-demo"),
    subjects: Annotated[int, typer.Option(min=1, max=9999, help="Synthetic posers per "
                                          "culture (the study uses all but 2; the "
                                          "robustness check all).")] = 14,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the synthetic cultures.")] = 0,
) -> None:
    """Run the offline example study (synthetic cultures)."""
    from facedialect.synthetic.demo import write_demo

    study_file = write_demo(out, posers=subjects, seed=seed,
                            say=lambda text: console.print(text, highlight=False))
    summaries = _run(study_file, None)
    path = summaries[-1].facts.get("path")
    console.print(f"[bold green]done[/]: open {path}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
