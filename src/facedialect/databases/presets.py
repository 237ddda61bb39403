"""The presets: how each database's files are found and named, and which options they take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from facedialect.databases.ckplus import CKPLUS_EXPECTED, parse_ckplus
from facedialect.databases.folder import FOLDER_EXPECTED, parse_folder
from facedialect.databases.manifest import MANIFEST_EXPECTED, parse_manifest
from facedialect.databases.naming import (
    JAFFE_EXPECTED,
    KDEF_EXPECTED,
    KDEF_SESSIONS,
    KDEF_VIEWS,
    KRC_EXPECTED,
    parse_jaffe,
    parse_kdef,
    parse_krc,
)
from facedialect.databases.options import Option, choice, flag, subject_regex, text
from facedialect.databases.schema import FACS_COLUMN, Candidate
from facedialect.errors import InputError


def _lower_text(name: str, value: Any) -> str:
    return text(name, value).lower()


@dataclass(frozen=True)
class Preset:
    """One naming scheme.

    Attributes
    ----------
    name : str
        The preset's name in study files.
    parse : callable
        ``parse(root, options) -> list[Candidate]``: every file found, with its labels.
    expected : str
        What the database folder should hold (for messages).
    options : mapping of str to Option
        The options the preset takes.
    takes : {"first", "all"}
        Default of the ``takes`` option every preset has: ``all`` keeps every image of a
        subject and expression, ``first`` only the first (the others are ``extra take``).
    walks_root : bool
        Whether files are found by walking the root (False: listed in a manifest).
    extra_columns : tuple of str
        Columns after :data:`IMAGE_COLUMNS`.
    """

    name: str
    parse: Callable[[Path, dict[str, Any]], list[Candidate]]
    expected: str
    options: Mapping[str, Option] = field(default_factory=dict)
    takes: str = "first"
    walks_root: bool = True
    extra_columns: tuple[str, ...] = ()


_TABLE: Final[dict[str, Preset]] = {p.name: p for p in (
    Preset("kdef", parse_kdef, f"KDEF images named {KDEF_EXPECTED}", {
        "view": Option("S", choice(*KDEF_VIEWS), "the angle used (S = straight)"),
        "session": Option("A", choice(*KDEF_SESSIONS), "the session used (A = first)"),
    }),
    Preset("krc", parse_krc, f"KRC images named {KRC_EXPECTED}", {
        "view": Option("d", _lower_text, "the view code used (d assumed frontal)"),
    }),
    Preset("jaffe", parse_jaffe, f"JAFFE images named {JAFFE_EXPECTED}"),
    Preset("ckplus", parse_ckplus, CKPLUS_EXPECTED, takes="all",
           extra_columns=(FACS_COLUMN,)),
    Preset("folder", parse_folder, FOLDER_EXPECTED, {
        "subject_regex": Option(None, subject_regex, "regex finding the subject id in a "
                                "file name (group 'subject' or group 1)"),
    }, takes="all"),
    Preset("manifest", parse_manifest, MANIFEST_EXPECTED, {
        "file": Option("manifest.csv", text, "the CSV (relative to the root)"),
        "allow_outside_root": Option(False, flag, "accept listed files outside the root"),
    }, takes="all", walks_root=False),
)}

#: The preset names, as used in study files.
PRESETS: Final[tuple[str, ...]] = tuple(_TABLE)


def preset_options(spec: Preset) -> dict[str, Option]:
    """The options of a preset, with the ``takes`` option every preset has."""
    return {**spec.options, "takes": Option(spec.takes, choice("all", "first", case="lower"),
                                            "several images of a subject and expression: "
                                            "keep 'all' or only the 'first'")}


def get_preset(name: str) -> Preset:
    """Return the preset called ``name``.

    Raises
    ------
    InputError
        For an unknown name (listing the known ones).
    """
    if not isinstance(name, str) or name.strip().lower() not in _TABLE:
        raise InputError(f"unknown database preset {name!r}; expected one of "
                         f"{', '.join(PRESETS)} (docs/databases.md)")
    return _TABLE[name.strip().lower()]
