"""Database presets: find, parse and validate a face database's files; select subjects.

:func:`ingest` turns a database folder into the images table (one row per file, with
its labels and, when excluded, why); :func:`select_subjects` keeps N subjects with all
seven expressions and can be re-run after face detection; :func:`summarize` counts.
docs/databases.md describes each preset, its options and every exclusion reason.
"""

from facedialect.databases.ingest import ingest
from facedialect.databases.presets import PRESETS, Preset, get_preset
from facedialect.databases.schema import (
    FACS_COLUMN,
    IMAGE_COLUMNS,
    REASON_CATEGORIES,
    SELECTION_CATEGORIES,
    reason_category,
)
from facedialect.databases.selection import select_subjects
from facedialect.databases.summary import summarize

__all__ = [
    "FACS_COLUMN",
    "IMAGE_COLUMNS",
    "PRESETS",
    "REASON_CATEGORIES",
    "SELECTION_CATEGORIES",
    "Preset",
    "get_preset",
    "ingest",
    "reason_category",
    "select_subjects",
    "summarize",
]
