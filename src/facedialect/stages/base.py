"""The contract every stage keeps, and the helpers stages share.

A stage is a :class:`Stage`: a name, the files of the run directory it reads and writes,
the study sections its results depend on, ``run(run, study, ctx) -> Summary`` and
``section(run)`` for the report. :data:`facedialect.pipeline.STAGES` lists the stages in
the design order; :func:`facedialect.pipeline.run_stages` checks a stage's inputs, skips it
when it is up to date (same inputs, same settings, outputs present), runs it and records
its fingerprint in the manifest.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facedialect.compute import Engine, get_engine
from facedialect.config import Study, load_study
from facedialect.errors import InputError, ReportWarning, StudyFileError
from facedialect.files import RUN_HINT, atomic_write_bytes
from facedialect.plots.figures import figure_format
from facedialect.progress import ProgressFn
from facedialect.report.html import Section
from facedialect.run.heads import NOT_TRAINED, heads_path, read_heads
from facedialect.run.store import RunDir
from facedialect.training.protocol import Protocol, resolve_protocol
from facedialect.training.trainer import MultiRunHead


@dataclass
class Context:
    """How a stage runs: device, progress, and whether to run although up to date.

    Parameters
    ----------
    device : str, optional
        ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; None: a GPU when there is one.
    progress : ProgressFn, optional
        ``progress(label, done, total)`` while the stage works.
    force : bool
        Run the stage even when it is up to date.
    options : dict
        Stage options of the command line (e.g. ``workers`` for pre-processing).
    stages : sequence of Stage
        Every stage of the pipeline (the report stage builds its sections from them).
    """

    device: str | None = None
    progress: ProgressFn | None = None
    force: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    stages: Sequence[Stage] = ()

    def resolved_device(self) -> str:
        """The device to compute on: :attr:`device`, else ``cuda`` when available, else ``cpu``."""
        return self.device or default_device()

    def tick(self, label: str) -> Callable[[int, int], None] | None:
        """:attr:`progress` with its label fixed (None without progress)."""
        if self.progress is None:
            return None
        progress = self.progress
        return lambda done, total: progress(label, done, total)


@dataclass
class Summary:
    """What a stage did: lines the command line prints, and the numbers behind them.

    Parameters
    ----------
    stage : str
        The stage's name.
    lines : list of str
        Plain-text lines for the user (no markup).
    facts : dict
        Numbers and names for programs (tests, notebooks).
    skipped : str, optional
        Why the stage did no work (``up to date``, ``not enabled``), else None.
    """

    stage: str
    lines: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    def __str__(self) -> str:
        head = f"{self.stage}" + (f": {self.skipped}" if self.skipped else "")
        return "\n".join([head, *(f"  {line}" for line in self.lines)])


def _always(study: Study) -> bool:
    return True


def _no_files(study: Study) -> list[Path]:
    return []


def _can_run(study: Study) -> None:
    return None


@dataclass(frozen=True)
class Stage:
    """One stage of a study.

    Parameters
    ----------
    name : str
        Short name (``train``): the command, the manifest entry, the report section id.
    title : str
        What the stage does, in a few words (printed when it starts).
    reads : tuple of str
        Run-directory files (glob patterns) it needs, e.g. ``tables/images.csv``.
    writes : tuple of str
        Run-directory files (glob patterns) it always writes.
    run : callable
        ``run(run, study, ctx) -> Summary``.
    section : callable
        ``section(run) -> Section | None``: its part of the report (None before it ran).
    optional : tuple of str
        Run-directory files it uses when they exist (part of its fingerprint).
    config : tuple of str
        The study-file sections its results depend on (with ``reads``, they decide whether
        it is up to date).
    enabled : callable
        ``enabled(study)``: whether the study wants this stage.
    external : callable
        ``external(study)``: files outside the run directory it reads (a ratings file, a
        photo); their contents are part of its fingerprint.
    check : callable
        ``check(study)``: raises :class:`~facedialect.errors.InputError` when the study
        cannot run this stage (e.g. meaning without ratings); called before any stage runs.
    always : bool
        Never skipped as up to date: the stage checks its inputs itself (ingest hashes the
        database files; pre-processing reads its cache).
    version : str
        Bumped when the stage's outputs change for the same inputs.
    command : str
        Its ``facedialect`` command (default: the name).
    """

    name: str
    title: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    run: Callable[[RunDir, Study, Context], Summary]
    section: Callable[[RunDir], Section | None]
    optional: tuple[str, ...] = ()
    config: tuple[str, ...] = ()
    enabled: Callable[[Study], bool] = _always
    external: Callable[[Study], list[Path]] = _no_files
    check: Callable[[Study], None] = _can_run
    always: bool = False
    version: str = "1"
    command: str = ""

    @property
    def cli(self) -> str:
        """The ``facedialect`` command that runs this stage."""
        return self.command or self.name

    def missing_inputs(self, run: RunDir) -> list[str]:
        """The patterns of :attr:`reads` that match no file of the run directory."""
        return [p for p in self.reads if not _matches(run, p)]

    def fingerprint(self, run: RunDir, study: Study) -> str:
        """Hash of what the outputs depend on: the files read, the settings, the version."""
        h = hashlib.sha256(f"{self.name}|{self.version}".encode())
        data = study.model_dump(mode="json")
        for key in ("study", *self.config):
            h.update(json.dumps({key: data.get(key)}, sort_keys=True, default=str).encode())
        paths = [p for pattern in (*self.reads, *self.optional) for p in _matches(run, pattern)]
        for path in [*paths, *self.external(study)]:
            h.update(str(path).encode("utf-8", "surrogateescape"))
            if path.is_file():
                st = path.stat()
                h.update(_file_digest(str(path), st.st_size, st.st_mtime_ns))
        return h.hexdigest()

    def up_to_date(self, run: RunDir, fingerprint: str | None) -> bool:
        """Whether the last run of this stage had ``fingerprint`` and its outputs exist."""
        if self.always or fingerprint is None:
            return False
        recorded = run.read_manifest().get("fingerprints", {}).get(self.name)
        return recorded == fingerprint and all(_matches(run, p) for p in self.writes)


@functools.lru_cache(maxsize=512)
def _file_digest(path: str, size: int, mtime_ns: int) -> bytes:
    """SHA-256 of a file, computed once per (path, size, modification time) in a process.

    The stages after training all read the heads files (about 100 MB per database in the
    quick protocol); a whole study hashes each once, not once per stage.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


def _matches(run: RunDir, pattern: str) -> list:
    """The files of the run directory matching ``pattern`` (sorted)."""
    if not any(c in pattern for c in "*?["):
        p = run.path / pattern
        return [p] if p.exists() else []
    folder, _, name = pattern.rpartition("/")
    base = run.path / folder
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if fnmatch.fnmatch(p.name, name) and p.is_file())


# ----------------------------------------------------------------------------- shared helpers
def default_device() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class TrainedHeads:
    """One database's trained networks, as the stages that use them need them.

    Parameters
    ----------
    db : str
        The database.
    head : MultiRunHead
        Every run's head, in eval mode.
    runs : list of int
        Run ids in the head's order.
    failed : dict
        Failed run id -> reason (left out of every analysis).
    expressions : list of str
        The output units in order.
    state : dict
        Everything the heads file holds.
    """

    db: str
    head: MultiRunHead
    runs: list[int]
    failed: dict[int, str]
    expressions: list[str]
    state: dict[str, Any]

    @property
    def live(self) -> list[tuple[int, int]]:
        """``(position in the head, run id)`` of every run that did not fail."""
        return [(i, r) for i, r in enumerate(self.runs) if r not in self.failed]


def _failed(state: dict[str, Any]) -> dict[int, str]:
    """A heads file's failed runs: run id -> reason."""
    return {int(k): v for k, v in zip(state["failed_runs"].tolist(), state["failed_reasons"],
                                      strict=True)}


def trained_heads(run: RunDir, dbs: Sequence[str], *, folder: str = "heads",
                  device: str | None = None) -> dict[str, TrainedHeads]:
    """Load the heads of every database of ``dbs`` that has a heads file.

    Raises
    ------
    InputError
        When none of them has (names the folder: run ``facedialect train``).
    """
    out = {}
    for db in dbs:
        path = heads_path(run, db, folder)
        if not path.exists():
            continue
        state = read_heads(path)
        head = MultiRunHead.from_state(state)
        if device is not None:
            head = head.to(device)
        out[db] = TrainedHeads(db, head, [int(r) for r in state["runs"].tolist()],
                               _failed(state), list(state["expressions"]), state)
    if not out:
        raise InputError(f"{run.path / folder}: {NOT_TRAINED}")
    return out


def failed_runs(run: RunDir, dbs: Sequence[str], *, folder: str = "heads"
                ) -> dict[str, dict[int, str]]:
    """The failed runs (run id -> reason) of every database of ``dbs`` with a heads file.

    As :attr:`TrainedHeads.failed` of :func:`trained_heads`, without loading the networks
    (the weights are memory-mapped, never read): for a driver whose Ray tasks read the
    heads files themselves.

    Raises
    ------
    InputError
        When none of them has a heads file (names the folder), or one is damaged.
    """
    out = {}
    for db in dbs:
        path = heads_path(run, db, folder)
        if path.exists():
            out[db] = _failed(read_heads(path, mmap=True))
    if not out:
        raise InputError(f"{run.path / folder}: {NOT_TRAINED}")
    return out


def draw(run: RunDir, name: str, func: Callable[..., bytes | None], *args: Any,
         fmt: str = "svg", **kwargs: Any) -> bool:
    """Draw one figure into ``figures/{name}.svg`` (or ``.png``); the report inlines it.

    A figure with nothing to draw (``func`` returns None) removes an older file of that
    name. A figure that fails is noted in the manifest (``figure_notes``; the report shows
    the note) with a :class:`~facedialect.errors.ReportWarning`, and the stage goes on.

    Parameters
    ----------
    run : RunDir
        The run directory.
    name : str
        The figure's file name without suffix.
    func : callable
        The figure function, called with ``args`` and ``kwargs``.
    fmt : {"svg", "png"}
        SVG (text stays text) for charts, PNG for photographs and maps.

    Returns
    -------
    bool
        Whether the file was written.
    """
    target = run.figures / f"{name}.{fmt}"
    for suffix in (".svg", ".png"):  # one file per figure
        if suffix != target.suffix:
            (run.figures / f"{name}{suffix}").unlink(missing_ok=True)
    notes = run.read_manifest().get("figure_notes", {})
    try:
        with figure_format(fmt):
            image = func(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one figure must not cost the whole stage
        note = f"figure {name} could not be drawn: {type(exc).__name__}: {exc}"
        warnings.warn(f"report: {note}", ReportWarning, stacklevel=2)
        target.unlink(missing_ok=True)
        run.update_manifest(figure_notes={name: note})
        return False
    if name in notes:
        run.forget("figure_notes", name)
    if image is None:
        target.unlink(missing_ok=True)
        return False
    atomic_write_bytes(target, image, hint=RUN_HINT)
    return True


def work_engine(study: Study, ctx: Context) -> tuple[Engine, str]:
    """The engine of the study's ``[compute]`` section and the device its work runs on.

    Locally the device is :meth:`Context.resolved_device`; on Ray it is ``cuda`` when
    the cluster has GPUs (unless ``--device cpu``), else ``cpu``.

    Raises
    ------
    InputError
        For ``engine = "ray"`` without Ray installed, or an unreachable cluster.
    """
    engine = get_engine(study.compute)
    return engine, engine.device(ctx.device, ctx.resolved_device())


def protocol_of(study: Study) -> Protocol:
    """The study's training protocol with its ``[training]`` overrides."""
    t = study.training
    return resolve_protocol(t.protocol, runs=t.runs, iterations=t.iterations,
                            batch_size=t.batch_size, momentum=t.momentum,
                            test_variants=t.test_variants)


def recorded_study(run: RunDir) -> Study | None:
    """The study the run was made with (its ``config.toml``), or None without a valid one."""
    path = run.path / "config.toml"
    if not path.is_file():
        return None
    try:
        return load_study(path)
    except StudyFileError:
        return None
