"""Ingest one database: find its files, parse their names, check every file, select subjects."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from facedialect.databases.files import (
    check_files,
    check_root,
    ensure_images,
    list_dir,
    mark_duplicates,
)
from facedialect.databases.labelset import apply_label_set
from facedialect.databases.options import resolve_options
from facedialect.databases.presets import get_preset, preset_options
from facedialect.databases.schema import FACS_COLUMN, IMAGE_COLUMNS
from facedialect.databases.selection import check_n_subjects, mark_extra_takes, select_subjects
from facedialect.errors import InputError
from facedialect.vocab import DEFAULT_SUBJECTS, EXPRESSIONS


def ingest(preset: str, root: str | os.PathLike[str], *, db: str,
           options: Mapping[str, Any] | None = None,
           n_subjects: int | None = DEFAULT_SUBJECTS,
           expressions: Sequence[str] = EXPRESSIONS,
           label_map: Mapping[str, str] | None = None,
           exclude_expressions: Sequence[str] = (),
           merge_labels: bool = False,
           progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Parse and validate a database folder; one row per file found.

    Every image file that could be used is decoded in full, so corrupt, truncated and
    mislabelled files become exclusions (with a reason), never errors. Nothing is written
    inside ``root``. Dotfiles (``.DS_Store``, ``._x.jpg``) are skipped silently.

    Parameters
    ----------
    preset : str
        One of :data:`PRESETS`: ``kdef, krc, jaffe, ckplus, folder, manifest``.
    root : str or PathLike
        The database folder.
    db : str
        The database's name (the ``db`` column).
    options : mapping, optional
        Preset options (docs/databases.md); unknown names are an error. Every preset takes
        ``takes = "all" | "first"`` (several images of one subject and expression).
    n_subjects : int or None
        Complete subjects to keep (see :func:`select_subjects`); None keeps all.
    expressions : sequence of str
        The study's label set (default the seven expressions).
    label_map, exclude_expressions, merge_labels
        This database's label map, excluded expressions and whether the map may merge
        labels (see :func:`~facedialect.databases.labelset.apply_label_set`).
    progress : callable, optional
        Called as ``progress(done, total)`` while the files are hashed and decoded.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`IMAGE_COLUMNS` (plus ``facs`` for ``ckplus``), sorted by ``path``.

    Raises
    ------
    InputError
        For an unknown preset or option, a bad option value or ``n_subjects``, a missing or
        empty root, a root without image files, an unusable manifest, or a label map that
        merges labels without ``merge_labels`` or names labels no file has.
    """
    spec = get_preset(preset)
    if not isinstance(db, str) or not db.strip():
        raise InputError(f"database name {db!r}: expected a non-empty string (e.g. 'KDEF')")
    opts = resolve_options(spec.name, preset_options(spec), options)
    n_subjects = check_n_subjects(n_subjects)
    folder = check_root(root, spec.expected)
    if spec.walks_root and not list_dir(folder):
        raise InputError(f"database folder {folder} is empty; expected {spec.expected}.")
    cands = spec.parse(folder, opts)
    if spec.walks_root:
        ensure_images(cands, folder, spec.expected)
    cands.sort(key=lambda c: c.key)
    apply_label_set(cands, db=db, expressions=expressions, label_map=label_map,
                    exclude=exclude_expressions, merge=merge_labels)
    hashes = check_files(cands, progress=progress)
    mark_duplicates(cands, hashes)
    if opts["takes"] == "first":
        mark_extra_takes(cands)
    rows = []
    for cand, sha in zip(cands, hashes, strict=True):
        row = {"db": db, "path": cand.key, "subject": cand.subject,
               "expression": cand.expression, "view": cand.view, "session": cand.session,
               "sex": cand.sex, "included": not cand.reason, "reason": cand.reason,
               "sha256": sha}
        if FACS_COLUMN in spec.extra_columns:
            row[FACS_COLUMN] = cand.facs
        rows.append(row)
    table = pd.DataFrame(rows, columns=[*IMAGE_COLUMNS, *spec.extra_columns])
    table["included"] = table["included"].astype(bool)
    return select_subjects(table, n_subjects, expressions=[
        e for e in expressions if e not in set(exclude_expressions)])
