"""Preset options: each preset declares its options with a default and a check."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from facedialect.errors import InputError

Check = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Option:
    """One preset option: its default, a check that returns the cleaned value, and its doc."""

    default: Any
    check: Check
    doc: str


def resolve_options(preset: str, declared: Mapping[str, Option],
                    given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the user's options against the preset's and fill in defaults.

    Parameters
    ----------
    preset : str
        The preset's name (for messages).
    declared : mapping of str to Option
        The options the preset knows.
    given : mapping or None
        The options from the study file.

    Returns
    -------
    dict
        Every declared option, with the given value (checked) or its default.

    Raises
    ------
    InputError
        For an unknown option name (listing the allowed ones) or a bad value.
    """
    given = dict(given or {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        allowed = ", ".join(f"{k} (default {declared[k].default!r})" for k in declared)
        raise InputError(
            f"unknown option(s) {', '.join(repr(k) for k in unknown)} for preset {preset!r}; "
            f"allowed: {allowed or 'none (this preset takes no options)'} "
            f"(docs/databases.md)")
    out: dict[str, Any] = {}
    for name, opt in declared.items():
        out[name] = opt.check(name, given[name]) if name in given else opt.default
    return out


def choice(*allowed: str, case: str = "upper") -> Check:
    """Check for a string that is one of ``allowed`` (compared ignoring case)."""
    def check(name: str, value: Any) -> str:
        if isinstance(value, str):
            v = value.strip().upper() if case == "upper" else value.strip().lower()
            if v in allowed:
                return v
        raise InputError(f"option {name} = {value!r}: expected one of "
                         f"{', '.join(repr(a) for a in allowed)}")
    return check


def text(name: str, value: Any) -> str:
    """Check for a non-empty string."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise InputError(f"option {name} = {value!r}: expected a non-empty string")


def flag(name: str, value: Any) -> bool:
    """Check for a boolean (``true`` / ``false`` in TOML)."""
    if isinstance(value, bool):
        return value
    raise InputError(f"option {name} = {value!r}: expected true or false")


def subject_regex(name: str, value: Any) -> re.Pattern[str] | None:
    """Check a regular expression with a group named ``subject`` (or at least one group)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InputError(f"option {name} = {value!r}: expected a regular expression string")
    try:
        pattern = re.compile(value)
    except re.error as exc:
        raise InputError(f"option {name} = {value!r} is not a valid regular expression: "
                         f"{exc}") from exc
    if "subject" not in pattern.groupindex and pattern.groups < 1:
        raise InputError(f"option {name} = {value!r} has no group: mark the subject id with "
                         f"(?P<subject>...) or (...), e.g. 'S(\\d+)'")
    return pattern


def regex_subject(pattern: re.Pattern[str], name: str) -> str:
    """Return the subject id that ``pattern`` finds in ``name`` ("" when it does not match)."""
    m = pattern.search(name)
    if m is None:
        return ""
    value = m.group("subject") if "subject" in pattern.groupindex else m.group(1)
    return value or ""
