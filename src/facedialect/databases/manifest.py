"""The ``manifest`` preset: a CSV listing each image with its labels."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from facedialect.databases.files import absolute, file_problem, is_image_name, not_an_image
from facedialect.databases.schema import (
    DUPLICATE,
    MISSING_FILE,
    NO_LABEL,
    NO_SUBJECT,
    OUTSIDE_ROOT,
    UNKNOWN_CODE,
    Candidate,
    reason,
)
from facedialect.errors import InputError
from facedialect.imageio import expand_user
from facedialect.vocab import VOCABULARY, normalize_expression

REQUIRED_COLUMNS = ("path", "expression")
OPTIONAL_COLUMNS = ("subject", "view", "session", "sex")
HEADER = "path,subject,expression,view,session,sex"
MANIFEST_EXPECTED = (f"a CSV file with the header {HEADER} (path and expression required; "
                     f"paths relative to the database root)")


def manifest_path(root: Path, options: dict[str, Any]) -> Path:
    """Return the manifest file: option ``file``, relative to ``root``."""
    f = expand_user(options["file"])
    return absolute(f if f.is_absolute() else root / f)


def read_manifest(path: Path) -> tuple[list[dict[str, str]], list[int]]:
    """Read a manifest CSV: its rows as dicts (lower-case column names) and their line numbers.

    Parameters
    ----------
    path : Path
        The CSV file (UTF-8, a byte-order mark is fine).

    Returns
    -------
    rows : list of dict
        One per listed image; every value a string ("" when blank). Blank lines are skipped.
    lines : list of int
        The line in the file where each row ends.

    Raises
    ------
    InputError
        When the file is missing or cannot be parsed, lacks a required column, has no rows,
        a row with more fields than the header, or a row with an empty path.
    """
    if not path.is_file():
        raise InputError(f"manifest {path} does not exist; expected {MANIFEST_EXPECTED}. Set "
                         f"the option file (default manifest.csv in the database root).")
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [c.strip().lower() for c in next(reader, [])]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InputError(
                    f"manifest {path} lacks the column(s) {', '.join(missing)} (found: "
                    f"{', '.join(h for h in header if h) or 'none'}); expected a header like "
                    f"{HEADER} (path and expression required, the others optional).")
            for fields in reader:
                if not any(v.strip() for v in fields):
                    continue
                if any(v.strip() for v in fields[len(header):]):
                    raise InputError(
                        f"manifest {path}, line {reader.line_num}: {len(fields)} fields but "
                        f"the header has {len(header)}; quote values that hold commas.")
                row: dict[str, str] = {}
                for name, value in zip(header, fields, strict=False):
                    row.setdefault(name, value)
                rows.append({**dict.fromkeys(header, ""), **row})
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read manifest {path}: {exc}; expected "
                         f"{MANIFEST_EXPECTED}.") from exc
    if not rows:
        raise InputError(f"manifest {path} lists no images; expected {MANIFEST_EXPECTED}.")
    blank = [n for n, r in zip(lines, rows, strict=True) if not r["path"].strip()]
    if blank:
        shown = ", ".join(map(str, blank[:10])) + (" ..." if len(blank) > 10 else "")
        raise InputError(f"manifest {path}: empty path on line(s) {shown}; fill in the image "
                         f"path or delete the row.")
    return rows, lines


def parse_manifest(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Read the manifest and check each listed file.

    Parameters
    ----------
    root : Path
        The database folder; relative paths in the manifest are resolved against it.
    options : dict
        ``file`` (the CSV) and ``allow_outside_root`` (bool).

    Returns
    -------
    list of Candidate
        One per manifest row, in the manifest's order.

    Raises
    ------
    InputError
        See :func:`read_manifest`; also when none of the listed files exists.
    """
    mpath = manifest_path(root, options)
    rows, lines = read_manifest(mpath)
    real_root = root.resolve()
    has_subjects = any(r.get("subject", "").strip() for r in rows)
    first_line: dict[Path, int] = {}
    out: list[Candidate] = []
    found = 0
    for row, number in zip(rows, lines, strict=True):
        line = f"line {number} of {mpath.name}"
        raw = row["path"].strip()
        try:
            given, problem = expand_user(raw), ("", "")
        except InputError:  # ~user without a home folder
            given = Path(raw)
            problem = (MISSING_FILE, f"starts with {given.parts[0]!r}, but there is no such "
                                     f"user on this computer; write the path in full")
        path = absolute(given if given.is_absolute() else root / given)
        word = row["expression"].strip()
        expression = normalize_expression(word) if word else None
        cand = Candidate(path, expression=expression or "", label=word,
                         **{k: str(row.get(k, "")).strip() for k in OPTIONAL_COLUMNS})
        problem = problem if problem[0] else file_problem(path)
        found += not problem[0]
        if path in first_line:
            why = reason(DUPLICATE, f"{raw} is listed again on {line} (first on line "
                                    f"{first_line[path]})")
        elif not is_image_name(path):
            why = not_an_image(path)
        elif (not options["allow_outside_root"] and (real := _resolved(path)) is not None
              and not real.is_relative_to(real_root)):
            why = reason(OUTSIDE_ROOT, f"{raw} ({line}) resolves to {real}, outside "
                                       f"{root}; set the option allow_outside_root = true to "
                                       f"use it")
        elif problem[0]:
            why = reason(problem[0], f"{raw} ({line}) {problem[1]}")
        elif not word:
            why = reason(NO_LABEL, f"{line} has an empty expression")
        elif has_subjects and not cand.subject:
            why = reason(NO_SUBJECT, f"{line} has an empty subject while other rows have one")
        elif expression is None:
            why = reason(UNKNOWN_CODE, f"{word!r} ({line}; use one of {' '.join(VOCABULARY)}, "
                                       f"or map it with label_map)")
        else:
            why = ""
        cand.reason = why
        first_line.setdefault(path, number)
        out.append(cand)
    if not found:
        raise InputError(f"none of the {len(rows)} files listed in {mpath} exists (relative "
                         f"paths are resolved against {root}); check the database root and "
                         f"the path column.")
    return out


def _resolved(path: Path) -> Path | None:
    """``path.resolve()``, or None when it cannot be resolved (a link loop, a NUL)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError, ValueError):
        return None
