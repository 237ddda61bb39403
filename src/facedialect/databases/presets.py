"""The presets: how each database's files are found and named, and which options they take."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from facedialect.databases.ckplus import CKPLUS_EXPECTED, is_full_layout, parse_ckplus
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


def _always(root: Path) -> bool:
    del root
    return True


def _never(root: Path) -> bool:
    del root
    return False


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
    one_per_expression : callable
        ``f(root) -> bool``: whether only one image per subject and expression is kept
        (the others are ``extra take``).
    walks_root : bool
        Whether files are found by walking the root (False: listed in a manifest).
    extra_columns : tuple of str
        Columns after :data:`IMAGE_COLUMNS`.
    """

    name: str
    parse: Callable[[Path, dict[str, Any]], list[Candidate]]
    expected: str
    options: Mapping[str, Option] = field(default_factory=dict)
    one_per_expression: Callable[[Path], bool] = _always
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
    Preset("ckplus", parse_ckplus, CKPLUS_EXPECTED, one_per_expression=is_full_layout,
           extra_columns=(FACS_COLUMN,)),
    Preset("folder", parse_folder, FOLDER_EXPECTED, {
        "subject_regex": Option(None, subject_regex, "regex finding the subject id in a "
                                "file name (group 'subject' or group 1)"),
    }, one_per_expression=_never),
    Preset("manifest", parse_manifest, MANIFEST_EXPECTED, {
        "file": Option("manifest.csv", text, "the CSV (relative to the root)"),
        "allow_outside_root": Option(False, flag, "accept listed files outside the root"),
    }, one_per_expression=_never, walks_root=False),
)}

#: The preset names, as used in study files.
PRESETS: Final[tuple[str, ...]] = tuple(_TABLE)


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
