"""Sweeps: a grid of studies (backbones x seeds x database pairs x protocols), one summary.

A sweep file (TOML, docs/scaling.md#sweeps) names a base study file and the values to
vary. Every point of the grid is the base study with its backbone, seed, protocol and
databases replaced, run as its own study into its own run directory
(``OUTPUT/runs/{point}``); the points run one after another (``[compute] engine =
"local"``) or as Ray tasks, one per study (``engine = "ray"``). The driver then writes
``OUTPUT/tables/sweep_runs.csv`` (one row per study), ``OUTPUT/tables/sweep_summary.csv``
(matched and swapped correct rates per backbone, protocol and databases, with 95 %
intervals over seeds) and ``OUTPUT/report.html``. Running the sweep again skips what is
up to date in every study, so a killed sweep resumes from what is complete.
"""

from __future__ import annotations

import copy
import itertools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from scipy import stats

from facedialect.api import Study
from facedialect.compute import get_engine
from facedialect.config import ComputeConfig, parse_study
from facedialect.errors import FacedialectError, RunLockedError, StudyFileError
from facedialect.files import atomic_write_bytes, atomic_write_text, table_csv
from facedialect.imageio import absolute_path, expand_user
from facedialect.pipeline import STAGE_NAMES, get_stage, run_stages
from facedialect.plots.figures import figure_format, safe_name, sweep_figure
from facedialect.report.html import Code, Figure, Section, Table, Text, render_html
from facedialect.stages.base import Context

#: Columns of ``tables/sweep_runs.csv``.
RUN_COLUMNS = ["study", "backbone", "protocol", "databases", "seed", "status", "networks",
               "matched", "swapped", "advantage", "run_dir"]
#: Columns of ``tables/sweep_summary.csv``.
SUMMARY_COLUMNS = ["backbone", "protocol", "databases", "seeds", "matched_mean",
                   "matched_low", "matched_high", "swapped_mean", "swapped_low",
                   "swapped_high", "advantage_mean", "advantage_low", "advantage_high"]

Backbone = Literal["alexnet", "mobilenet_v2", "efficientnet_lite0"]


class SweepSection(BaseModel):
    """``[sweep]``: the base study and the values the grid varies."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, description="The sweep's name (report title).")
    study: str = Field(description="The base study file (relative to the sweep file).")
    output: str = Field(description="The sweep's folder: runs/ (one run directory per "
                        "study), tables/ and report.html (relative to the sweep file).")
    backbones: list[Backbone] = Field(default_factory=list, description="Backbones "
                                      "(default: the base study's).")
    seeds: list[int] = Field(default_factory=list, description="Study seeds (default: the "
                             "base study's).")
    protocols: list[Literal["paper", "quick"]] = Field(
        default_factory=list, description="Training protocols (default: the base study's).")
    pairs: list[list[str]] = Field(
        default_factory=list, description="Groups of the base study's databases, each a "
        "study (default: all its databases as one group).")
    stages: list[str] = Field(default_factory=list, description="The stages each study runs "
                              "(default: every stage it enables).")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if any(s < 0 for s in v):
            raise ValueError("seeds must be 0 or more")
        return list(dict.fromkeys(v))

    @field_validator("pairs")
    @classmethod
    def _pairs(cls, v: list[list[str]]) -> list[list[str]]:
        for pair in v:
            if not pair or len(set(pair)) != len(pair):
                raise ValueError(f"database group {pair}: give one or more distinct names")
        return v

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in STAGE_NAMES]
        if bad:
            raise ValueError(f"unknown stage(s) {bad}; the stages are {', '.join(STAGE_NAMES)}")
        return v


class SweepFile(BaseModel):
    """A whole sweep file: ``[sweep]`` and where the studies run (``[compute]``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    sweep: SweepSection
    compute: ComputeConfig = Field(default_factory=ComputeConfig)


@dataclass(frozen=True)
class Point:
    """One study of the grid."""

    backbone: str
    protocol: str
    databases: tuple[str, ...]
    seed: int

    @property
    def name(self) -> str:
        """The study's folder name: ``{backbone}-{protocol}-{databases}-seed{seed}``."""
        return safe_name(f"{self.backbone}-{self.protocol}-{'-'.join(self.databases)}"
                         f"-seed{self.seed}")


@dataclass
class Sweep:
    """A validated sweep: its file, its base study and every study of the grid."""

    path: Path
    config: SweepFile
    output: Path
    base: Study
    points: list[Point]
    studies: list[Study] = field(repr=False)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file and make every study of its grid.

    Raises
    ------
    StudyFileError
        When the sweep file or the base study is invalid, a database group names a
        database the base study does not have, or a study of the grid is invalid.
    """
    path = expand_user(path, StudyFileError)
    if not path.is_file():
        raise StudyFileError(f"{path}: sweep file not found; give the path to a .toml file "
                             f"(see docs/scaling.md#sweeps)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise StudyFileError(f"{path}: not valid TOML: {exc}; fix the syntax there") from None
    try:
        config = SweepFile.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: the sweep file is not valid ({exc.error_count()} problem(s)):"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
            lines.append(f"  {path.name}: {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise StudyFileError("\n".join(lines)) from None
    folder = path.parent.resolve()
    base_path = absolute_path(config.sweep.study, folder, StudyFileError)
    base = Study.from_toml(base_path)
    raw = tomllib.loads(base_path.read_text(encoding="utf-8"))
    s = config.sweep
    names = [d.name for d in base.databases]
    for pair in s.pairs:
        unknown = [n for n in pair if n not in names]
        if unknown:
            raise StudyFileError(f"{path}: sweep.pairs: {unknown} not among the databases "
                                 f"of {base_path.name} ({', '.join(names)})")
    output = absolute_path(s.output, folder, StudyFileError)
    points = [Point(b, p, tuple(d), seed) for b, p, d, seed in itertools.product(
        s.backbones or [base.model.backbone], s.protocols or [base.training.protocol],
        s.pairs or [names], s.seeds or [base.study.seed])]
    studies = [_point_study(raw, base_path, base, point, output) for point in points]
    return Sweep(path, config, output, base, points, studies)


def _point_study(raw: dict[str, Any], base_path: Path, base: Study, point: Point,
                 output: Path) -> Study:
    data = copy.deepcopy(raw)
    data.setdefault("study", {})
    data["study"].update(name=f"{base.study.name} {point.name}", seed=point.seed,
                         output=str(output / "runs" / point.name))
    data.setdefault("model", {})["backbone"] = point.backbone
    data.setdefault("training", {})["protocol"] = point.protocol
    by_name = {d.get("name"): d for d in data.get("databases", [])}
    data["databases"] = [by_name[n] for n in point.databases]
    data["compute"] = {"engine": "local"}  # the point is the sweep's unit of work
    return parse_study(data, base_path.parent.resolve(), f"{base_path} ({point.name})", Study)


def run_point(study: Study, stages: Sequence[str] | None, device: str | None,
              force: bool = False, progress: Any = None) -> dict[str, Any]:
    """Run one study of a sweep (one work unit: a Ray task on a cluster).

    Returns
    -------
    dict
        ``status`` (``ok`` or ``failed: message``) and the stages that ran or were skipped.
    """
    try:
        summaries = run_stages(study, stages, ctx=Context(device=device, force=force),
                               progress=progress)
    except FacedialectError as exc:  # one study's bad input must not cost the sweep
        return {"status": f"failed: {exc}", "stages": []}
    return {"status": "ok", "stages": [(s.stage, s.skipped) for s in summaries]}


@dataclass
class SweepResult:
    """What a sweep wrote: its two tables and the report."""

    runs: pd.DataFrame
    summary: pd.DataFrame
    report: Path


def run_sweep(sweep: Sweep, *, device: str | None = None, force: bool = False,
              progress: Any = None,
              on_point: Callable[[Point, dict[str, Any]], None] | None = None) -> SweepResult:
    """Run every study of the grid (locally or as Ray tasks); write the tables and report.

    Parameters
    ----------
    sweep : Sweep
        From :func:`load_sweep`.
    device : str, optional
        The studies' device (None: a GPU when there is one; on Ray, the cluster's GPUs).
    force : bool
        Run every stage although up to date.
    progress : callable, optional
        Progress display factory for the stages of local studies.
    on_point : callable, optional
        Called with each point and its outcome, in grid order.

    Raises
    ------
    RunLockedError
        When another sweep writes the same output folder.
    """
    engine = get_engine(sweep.config.compute)
    where = engine.device(device, device or "cpu") if engine.name == "ray" else device
    stages = sweep.config.sweep.stages or None
    if stages:
        for name in stages:
            get_stage(name)
    sweep.output.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(sweep.output / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise RunLockedError(f"{sweep.output}: another sweep is writing this folder; wait "
                             f"for it to finish") from None
    try:
        jobs = ({"study": study, "stages": stages, "device": where, "force": force,
                 "progress": progress if engine.name == "local" else None}
                for study in sweep.studies)
        outcomes = []
        for point, outcome in zip(sweep.points, engine.map(run_point, jobs,
                                                           device=where or "cpu"),
                                  strict=True):
            outcomes.append(outcome)
            if on_point:
                on_point(point, outcome)
        runs = sweep_runs(sweep, outcomes)
        summary = sweep_summary(runs)
        atomic_write_bytes(sweep.output / "tables" / "sweep_runs.csv", table_csv(runs))
        atomic_write_bytes(sweep.output / "tables" / "sweep_summary.csv", table_csv(summary))
        report = write_sweep_report(sweep, runs, summary)
    finally:
        lock.release()
    return SweepResult(runs, summary, report)


def network_rates(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Each network's correct rate per test database and condition (``variants`` all).

    The mean over the expression rows of ``tables/accuracy.csv``, as the report's.
    """
    acc = accuracy[accuracy["variants"] == "all"]
    return (acc.groupby(["train_db", "test_db", "condition", "run"])["correct_rate"].mean()
            .reset_index())


def sweep_runs(sweep: Sweep, outcomes: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per study: matched and swapped mean correct rates (:data:`RUN_COLUMNS`)."""
    rows = []
    for point, study, outcome in zip(sweep.points, sweep.studies, outcomes, strict=True):
        out = study.study.output
        row = {"study": point.name, "backbone": point.backbone, "protocol": point.protocol,
               "databases": "+".join(point.databases), "seed": point.seed,
               "status": outcome["status"], "networks": 0, "matched": np.nan,
               "swapped": np.nan, "advantage": np.nan,
               "run_dir": str(out.relative_to(sweep.output))}
        acc_path = out / "tables" / "accuracy.csv"
        if outcome["status"] == "ok" and acc_path.is_file():
            rates = network_rates(pd.read_csv(acc_path))
            matched = rates.loc[rates["condition"] == "matched", "correct_rate"]
            swapped = rates.loc[rates["condition"] == "swapped", "correct_rate"]
            row.update(networks=int(len(matched)),
                       matched=float(matched.mean()) if len(matched) else np.nan,
                       swapped=float(swapped.mean()) if len(swapped) else np.nan)
            row["advantage"] = row["matched"] - row["swapped"]
        elif outcome["status"] == "ok":
            row["status"] = "ok (no evaluation: add the evaluate stage)"
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and the ``level`` t interval of the mean (NaN bounds for fewer than 2 values)."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    mean = float(x.mean())
    if len(x) < 2:
        return mean, np.nan, np.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


def sweep_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per backbone, protocol and databases: means and 95 % intervals over the seeds."""
    rows = []
    for (backbone, protocol, dbs), part in runs.groupby(
            ["backbone", "protocol", "databases"], sort=False):
        ok = part[part["networks"] > 0]
        row: dict[str, Any] = {"backbone": backbone, "protocol": protocol, "databases": dbs,
                               "seeds": int(len(ok))}
        for what in ("matched", "swapped", "advantage"):
            m, lo, hi = mean_interval(ok[what].tolist())
            row.update({f"{what}_mean": m, f"{what}_low": lo, f"{what}_high": hi})
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_sweep_report(sweep: Sweep, runs: pd.DataFrame, summary: pd.DataFrame) -> Path:
    """Write ``OUTPUT/report.html``: the grid, the summary with its figure, every study."""
    s = sweep.config.sweep
    failed = runs[runs["status"].str.startswith("failed")]
    def values(key: Callable[[Point], Any]) -> str:
        return ", ".join(str(v) for v in dict.fromkeys(key(p) for p in sweep.points))

    grid = (f"{len(sweep.points)} studies: backbones {values(lambda p: p.backbone)}; "
            f"protocols {values(lambda p: p.protocol)}; databases "
            f"{values(lambda p: '+'.join(p.databases))}; seeds {values(lambda p: p.seed)}. "
            f"Base study {sweep.base.study.name!r}; engine {sweep.config.compute.engine}.")
    with figure_format("svg"):
        image = sweep_figure(summary)
    blocks: list[Any] = [Text(grid)]
    if len(failed):
        blocks.append(Text(f"{len(failed)} study(ies) failed: see the status column below."))
    blocks.append(Table(summary.round(4), "Mean correct rate of the networks tested on "
                        "their own database (matched) and on the other databases (swapped), "
                        "and matched minus swapped (the in-group advantage), over the seeds; "
                        "low/high: 95 % t interval of the mean over the seeds (empty with "
                        "one seed). From tables/sweep_summary.csv.", "sweep_summary"))
    if image is not None:
        blocks.append(Figure(image, "Matched and swapped correct rate per backbone "
                             "(mean and 95 % interval over the seeds).", "sweep"))
    studies = Section("studies", "Studies", [Table(
        runs.round(4), "One row per study of the grid: mean correct rate of its networks "
        "(matched, swapped), their difference, and its run directory (each has its own "
        "report.html). From tables/sweep_runs.csv.", "sweep_runs", max_rows=500)])
    sections = [Section("summary", "Summary", blocks), studies,
                Section("sweep-file", "Sweep file", [Code(sweep.path.read_text(
                    encoding="utf-8"), str(sweep.path.name))])]
    doc = render_html(f"facedialect sweep: {s.name}", sections,
                      f"sweep folder {sweep.output}")
    target = sweep.output / "report.html"
    atomic_write_text(target, doc)
    return target


__all__ = ["Point", "Sweep", "SweepFile", "SweepResult", "load_sweep", "mean_interval",
           "run_point", "run_sweep", "sweep_runs", "sweep_summary"]

