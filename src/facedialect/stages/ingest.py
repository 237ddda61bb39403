"""Ingest: parse and validate every database of the study; ``tables/images.csv``.

Reads the database folders (never writes there), hashes every file, applies the label set
and the subject selection, and records every exclusion with its reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from facedialect import databases
from facedialect.config import (
    DatabaseConfig,
    Study,
    StudySection,
    output_conflicts,
    validate_options,
)
from facedialect.databases import reason_category, summarize
from facedialect.errors import InputError, StudyFileError
from facedialect.plots.figures import exclusions_figure
from facedialect.progress import ProgressFn
from facedialect.report.html import Section, Table, Text, figure_file
from facedialect.run.store import RunDir
from facedialect.stages.base import Context, Stage, Summary, draw
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS, in_order

#: What the stage writes.
WRITES = ("tables/images.csv",)


def run(run: RunDir, study: Study, ctx: Context) -> Summary:
    """Ingest every database of the study (databases no longer in it are forgotten)."""
    images = ingest_databases(run, study.databases, study.study.expressions,
                              progress=ctx.progress, prune=True)
    draw(run, "images_per_expression", exclusions_figure, images)
    n_inc = int(images["included"].astype(bool).sum())
    lines = [f"{len(study.databases)} database(s): {len(images)} files, {n_inc} included "
             "before face detection", *database_lines(images)]
    return Summary("ingest", lines, {"files": len(images), "included": n_inc})


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """Preset options given as ``KEY=VALUE`` strings (``true``/``false`` become booleans).

    Raises
    ------
    StudyFileError
        For an item without ``=``.
    """
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise StudyFileError(f"--option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        opts[k.strip()] = {"true": True, "false": False}.get(v.strip().lower(), v.strip())
    return opts


def inspect_database(root: str | Path, preset: str, *, name: str | None = None,
                     n_subjects: int | None = DEFAULT_SUBJECTS,
                     expressions: Sequence[str] = EXPRESSIONS, options: Sequence[str] = (),
                     out: str | Path | None = None,
                     progress: ProgressFn | None = None) -> pd.DataFrame:
    """Ingest one database folder with a preset, without a study file.

    Parameters
    ----------
    root : path
        The database folder (never written to).
    preset : str
        The preset name.
    name : str, optional
        The database name (default: the preset in upper case).
    n_subjects : int or None
        Complete subjects to keep (None: all).
    expressions : sequence of str
        The label set.
    options : sequence of str
        Preset options as ``KEY=VALUE``.
    out : path, optional
        A run directory to write ``tables/images.csv`` in (other databases' rows there are
        kept).

    Returns
    -------
    pandas.DataFrame
        The database's images table.

    Raises
    ------
    InputError
        For invalid options, or an ``out`` inside the database folder (or around it).
    """
    db = validate_options(
        DatabaseConfig, {"name": name or preset.strip().upper(), "preset": preset,
                         "root": root, "n_subjects": n_subjects,
                         "options": parse_options(options)},
        {"name": "--name", "preset": "--preset", "root": "ROOT", "n_subjects": "--subjects",
         "options": "--option"})
    section = validate_options(
        StudySection, {"name": "inspect", "output": out if out is not None else ".",
                       "expressions": list(expressions)},
        {"output": "--out", "expressions": "--expressions"})
    if out is None:
        frame = databases.ingest(db.preset, db.root, db=db.name, options=db.options,
                                 n_subjects=db.n_subjects, expressions=section.expressions,
                                 progress=(lambda d, t: progress(f"ingest {db.name}", d, t))
                                 if progress else None)
        return frame
    problems = output_conflicts(section.output, [db], output_name="--out")
    if problems:
        raise InputError("; ".join(problems))
    run = RunDir(section.output)
    with run.lock():
        images = ingest_databases(run, [db], section.expressions, progress=progress)
        draw(run, "images_per_expression", exclusions_figure, images)
    return images[images["db"] == db.name]


def database_lines(images: pd.DataFrame) -> list[str]:
    """Per database: files, included images, subjects, images per expression, exclusions."""
    lines = []
    for db, info in summarize(images).items():
        part = images[images["db"] == db]
        subj = (f"{info['n_subjects_selected']} subjects" if info["has_subject_ids"]
                else "no subject ids")
        lines.append(f"{db}: {info['n_files']} files, {info['n_included']} images included, "
                     f"{subj}")
        per_expr = info["images_per_expression"]
        lines.append("  " + ", ".join(f"{e} {n}" for e, n in per_expr.items()))
        takes = info["images_per_subject"]
        if takes:
            lines.append(f"  images per subject: {takes['min']}-{takes['max']} (median "
                         f"{takes['median']:g}); per subject and expression: "
                         f"{info['takes']['min']}-{info['takes']['max']}")
        exc = part[~part["included"].astype(bool)]
        if len(exc):
            cats = exc["reason"].fillna("").map(reason_category).value_counts()
            lines.append("  excluded: " + "; ".join(f"{c} {n}" for c, n in cats.items()))
    return lines


def ingest_databases(run: RunDir, dbs: Sequence[DatabaseConfig],
                     expressions: Sequence[str] = EXPRESSIONS, *,
                     progress: ProgressFn | None = None,
                     prune: bool = False) -> pd.DataFrame:
    """Parse and validate each database; write ``tables/images.csv``.

    Rows of databases with other names already in the table are kept, so databases can be
    ingested one at a time; with ``prune`` (a whole study) they are dropped instead, with
    their entries in the manifest, so a database renamed or removed from the study file
    leaves no trace for the later stages (which read ``tables/images.csv``).

    Parameters
    ----------
    run : RunDir
        The run directory.
    dbs : sequence of DatabaseConfig
        The databases to ingest.
    expressions : sequence of str
        The study's label set (``[study] expressions``).
    progress : callable, optional
        Called as ``progress(label, done, total)`` while each database's files are hashed
        and decoded (label ``ingest NAME``).
    prune : bool
        Drop the rows and manifest entries of databases not in ``dbs`` (``facedialect
        run``); False keeps them (``facedialect ingest``, one database at a time).

    Returns
    -------
    pandas.DataFrame
        The whole images table.
    """
    with run.stage("ingest") as info:
        frames = []
        inputs: dict[str, str] = {}
        for db in dbs:
            df = databases.ingest(db.preset, db.root, db=db.name, options=db.options,
                                  n_subjects=db.n_subjects, expressions=expressions,
                                  label_map=db.label_map,
                                  exclude_expressions=db.exclude_expressions,
                                  merge_labels=db.merge_labels,
                                  progress=(lambda d, t, _label=f"ingest {db.name}":
                                            progress(_label, d, t)) if progress else None)
            frames.append(df)
            listing = "\n".join(f"{p}\t{h}" for p, h in zip(df["path"], df["sha256"],
                                                             strict=True))
            inputs[f"database:{db.name}"] = hashlib.sha256(
                listing.encode("utf-8", "surrogateescape")).hexdigest()  # any file name
        new = pd.concat(frames, ignore_index=True)
        if prune:
            _forget_databases(run, {db.name for db in dbs})
        elif run.has_table("images"):
            old = run.read_table("images")
            old = old[~old["db"].isin(new["db"].unique())]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        run.write_table("images", new)
        run.update_manifest(inputs=inputs, expressions=list(expressions),
                            databases={db.name: {"preset": db.preset, "root": str(db.root),
                                                 "n_subjects": db.n_subjects,
                                                 "options": db.options,
                                                 "label_map": db.label_map,
                                                 "exclude_expressions": db.exclude_expressions}
                                       for db in dbs})
        info["images"] = int(len(new))
    return new


def _forget_databases(run: RunDir, keep: set[str]) -> None:
    """Remove the manifest entries of databases not in ``keep`` (a whole-study ingest)."""
    m = run.read_manifest()
    for key in list(m.get("databases", {})):
        if key not in keep:
            run.forget("databases", key)
    for key in list(m.get("inputs", {})):
        if key.startswith("database:") and key.removeprefix("database:") not in keep:
            run.forget("inputs", key)



def database_section(run: RunDir) -> Section | None:
    """Counts per expression, exclusions by reason, and every excluded file."""
    if not run.has_table("images"):
        return None
    images = run.read_table("images")
    inc = images[images["included"].astype(bool)]
    counts = (inc.groupby(["db", "expression"]).size().unstack(fill_value=0)
              .reindex(columns=in_order(inc["expression"]), fill_value=0).reset_index())
    takes = []
    for db, info in summarize(images).items():
        if info["images_per_subject"]:
            s, t = info["images_per_subject"], info["takes"]
            takes.append({"db": db, "subjects": info["n_subjects_selected"],
                          "images per subject: range": f"{s['min']}-{s['max']}",
                          "images per subject: median": s["median"],
                          "per subject and expression: range": f"{t['min']}-{t['max']}",
                          "per subject and expression: median": t["median"]})
        else:
            takes.append({"db": db, "subjects": "no subject ids"})
    exc = images[~images["included"].astype(bool)].copy()
    exc["category"] = exc["reason"].fillna("").map(reason_category)
    by_reason = (exc.groupby(["db", "category"]).size().rename("files").reset_index()
                 if len(exc) else pd.DataFrame(columns=["db", "category", "files"]))
    blocks: list = [
        Text("Each database was parsed with its preset; files that do not fit the naming, "
             "cannot be read, repeat another file's bytes, have an expression outside the "
             "study's label set, or belong to subjects without an image of every expression "
             "the database has (in the frontal view) are excluded and listed here "
             "(docs/method.md §1)."),
        Table(counts, "Included images per expression (rows: databases).", "images_per_expression"),
        Table(pd.DataFrame(takes), "Images per subject, and per subject and expression "
              "(several takes of one expression are all used unless the database's option "
              "takes = 'first'; every take of a subject stays in one split part).",
              "images_per_subject"),
    ]
    blocks.append(figure_file(run, "images_per_expression", caption="Included images per "
                              "expression and database, from tables/images.csv.",
                              missing="No image is included: no figure of images per "
                              "expression."))
    blocks.append(Table(by_reason, "Excluded files by reason.", "exclusions_by_reason"))
    if len(exc):
        blocks.append(Table(exc[["db", "path", "expression", "subject", "reason"]],
                            "Every excluded file and why.", "excluded_files", max_rows=40))
    return Section("databases", "Databases", blocks)


STAGE = Stage(
    name="ingest", title="parse and check the databases", reads=(), writes=WRITES,
    run=run, section=database_section, config=("databases",), always=True)
