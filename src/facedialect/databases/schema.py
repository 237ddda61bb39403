"""The images table: its columns, the exclusion reasons, and one parsed file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pandas as pd

#: Columns of ``tables/images.csv``, in this order (CK+ adds :data:`FACS_COLUMN` after them).
IMAGE_COLUMNS: Final[list[str]] = [
    "db", "path", "subject", "expression", "view", "session", "sex", "included", "reason",
    "sha256",
]
#: Extra column of the ``ckplus`` preset: the peak frame's FACS coding (``"1:2 2:2 5:0"``).
FACS_COLUMN: Final[str] = "facs"
#: Columns holding strings ("" when the naming lacks them).
STRING_COLUMNS: Final[tuple[str, ...]] = (
    "db", "path", "subject", "expression", "view", "session", "sex", "reason", "sha256",
)

# Exclusion categories: the fixed phrase before the first ":" of a reason.
NOT_AN_IMAGE: Final = "not an image"
UNREADABLE: Final = "unreadable image"
NAME_MISFIT: Final = "name does not fit preset"
UNKNOWN_CODE: Final = "unknown expression code"
UNKNOWN_FOLDER: Final = "unknown expression folder"
NOT_STUDIED: Final = "expression not studied"
NO_LABEL: Final = "no emotion label"
BAD_LABEL: Final = "bad label file"
NO_SUBJECT: Final = "no subject id"
OUTSIDE_ROOT: Final = "outside root"
MISSING_FILE: Final = "missing file"
DUPLICATE: Final = "duplicate file"
NOT_FRONTAL: Final = "not frontal view"
NOT_FIRST_SESSION: Final = "not first session"
EXTRA_TAKE: Final = "extra take"
FACE_TOO_SMALL: Final = "face too small"
BLURRED: Final = "blurred"
NEAR_DUPLICATE: Final = "near duplicate"
#: Pre-processing found other bytes in the file than ingest hashed (replaced in between).
CHANGED: Final = "changed since ingest"
INCOMPLETE: Final = "subject incomplete"
NOT_SELECTED: Final = "not selected"

#: Every category ingest, screening (pre-processing) and selection can give, in the order
#: they are checked.
REASON_CATEGORIES: Final[tuple[str, ...]] = (
    NOT_AN_IMAGE, NAME_MISFIT, UNKNOWN_CODE, UNKNOWN_FOLDER, NO_LABEL, BAD_LABEL, NOT_STUDIED,
    NO_SUBJECT, OUTSIDE_ROOT, MISSING_FILE, NOT_FRONTAL, NOT_FIRST_SESSION, UNREADABLE,
    DUPLICATE, EXTRA_TAKE, CHANGED, FACE_TOO_SMALL, BLURRED, NEAR_DUPLICATE, INCOMPLETE,
    NOT_SELECTED,
)
#: Categories given by the screening in the pre-processing stage (face size, blur, near
#: duplicates; docs/preprocessing.md), decided afresh on every run of that stage.
SCREENING_CATEGORIES: Final[frozenset[str]] = frozenset({FACE_TOO_SMALL, BLURRED,
                                                         NEAR_DUPLICATE})
#: Categories given only by :func:`~facedialect.databases.select_subjects` (reconsidered when
#: the selection is redone, e.g. after face detection).
SELECTION_CATEGORIES: Final[frozenset[str]] = frozenset({INCOMPLETE, NOT_SELECTED})


def reason(category: str, detail: str) -> str:
    """Format an exclusion reason as ``"<category>: <detail>"``."""
    return f"{category}: {detail}"


def reason_category(reason: str) -> str:
    """Return the category of an exclusion reason: the part before the first ``":"``.

    Parameters
    ----------
    reason : str
        A value of the ``reason`` column, e.g. ``"unreadable image: corrupt (...)"``.
        Missing values (``NaN``, ``None``) count as "".

    Returns
    -------
    str
        The category (``"unreadable image"``), stripped; "" for an included image.
    """
    if not isinstance(reason, str):
        return ""
    return reason.split(":", 1)[0].strip()


def as_text(values: pd.Series) -> pd.Series:
    """Return a column as strings, missing values (NaN, None) as "" (tables read from CSV)."""
    return values.astype(object).where(values.notna(), "").astype(str)


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders digit runs by value ("S2" before "S10")."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower())
                 for part in _DIGITS.split(text) if part)


@dataclass
class Candidate:
    """One file found by a preset, with what its name says and why it is excluded (if so).

    Attributes
    ----------
    path : Path
        Absolute path of the file.
    subject, expression, view, session, sex : str
        Parsed fields ("" when the naming lacks them or the name does not fit).
    reason : str
        "" while the file is still in the running, else ``"<category>: <detail>"``.
    facs : str
        CK+ peak frames only: the FACS coding.
    take : tuple
        Order among several images of one subject and expression (lowest is kept with
        ``takes = "first"``).
    label : str
        The label as the database gives it (file-name code, folder name, manifest word,
        CK+ number); what ``label_map`` keys are matched against. "" when the expression
        is implied (CK+'s first frames).
    """

    path: Path
    subject: str = ""
    expression: str = ""
    view: str = ""
    session: str = ""
    sex: str = ""
    reason: str = ""
    facs: str = ""
    take: tuple[int, ...] = ()
    label: str = ""

    @property
    def key(self) -> str:
        """The path as an absolute POSIX string (the ``path`` column)."""
        return self.path.as_posix()
