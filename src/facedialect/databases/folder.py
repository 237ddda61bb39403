"""The ``folder`` preset: one folder per expression, ``ROOT/{expression}/{any}``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from facedialect.databases.files import is_image_name, list_dir, not_an_image, walk_files
from facedialect.databases.options import regex_subject
from facedialect.databases.schema import (
    NAME_MISFIT,
    UNKNOWN_FOLDER,
    Candidate,
    reason,
)
from facedialect.vocab import VOCABULARY, normalize_expression

FOLDER_EXPECTED = ("one folder per expression (ROOT/{expression}/{any image}, e.g. "
                   "ROOT/happy/img001.jpg; folder names such as neutral, happy, fear, sadness, "
                   "anger, surprise, disgust, contempt)")


def expression_folders(root: Path) -> list[Path]:
    """Sub-folders of ``root`` named after an expression."""
    return [Path(e.path) for e in list_dir(root)
            if e.is_dir() and normalize_expression(e.name) is not None]


def parse_folder(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Parse ``ROOT/{expression}/{any}``; files are found recursively in each folder.

    Parameters
    ----------
    root : Path
        The database folder.
    options : dict
        ``subject_regex``: a compiled pattern (or None) searched in each file name; its
        group ``subject`` (or group 1) is the subject id.

    Returns
    -------
    list of Candidate
        One per file found.
    """
    pattern: re.Pattern[str] | None = options.get("subject_regex")
    out: list[Candidate] = []
    for entry in list_dir(root):
        top = Path(entry.path)
        if not entry.is_dir():
            why = not_an_image(top) if not is_image_name(top) else reason(
                NAME_MISFIT, f"{top.name!r} is not inside an expression folder; "
                             f"expected {FOLDER_EXPECTED}")
            out.append(Candidate(top, reason=why))
            continue
        expression = normalize_expression(entry.name)
        for path in walk_files(top):
            if not is_image_name(path):
                out.append(Candidate(path, reason=not_an_image(path)))
            elif expression is None:
                why = reason(UNKNOWN_FOLDER, f"{entry.name!r} (rename it to one of "
                                             f"{' '.join(VOCABULARY)}, or map it with "
                                             f"label_map)")
                subject = regex_subject(pattern, path.name) if pattern is not None else ""
                out.append(Candidate(path, subject=subject, reason=why, label=entry.name))
            elif pattern is None:
                out.append(Candidate(path, expression=expression, label=entry.name))
            else:
                subject = regex_subject(pattern, path.name)
                cand = Candidate(path, subject=subject, expression=expression,
                                 label=entry.name)
                if not subject:
                    cand.reason = reason(NAME_MISFIT, f"subject_regex {pattern.pattern!r} "
                                                      f"finds no subject id in {path.name!r}")
                out.append(cand)
    return out
