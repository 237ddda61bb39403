"""Presets that read everything from the file name: KDEF, KRC and JAFFE (docs/method.md §1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from facedialect.databases.files import is_image_name, not_an_image, walk_files
from facedialect.databases.schema import (
    NAME_MISFIT,
    NOT_FIRST_SESSION,
    NOT_FRONTAL,
    UNKNOWN_CODE,
    Candidate,
    reason,
)
from facedialect.vocab import JAFFE_CODES, KDEF_CODES, KRC_CODES

KDEF_VIEWS = ("FL", "HL", "S", "HR", "FR")
KDEF_SESSIONS = ("A", "B")
KDEF_EXPECTED = ("{session A/B}{sex F/M}{id 2 digits}{expr AF AN DI HA NE SA SU}"
                 "{angle FL HL S HR FR}.JPG, e.g. AF01NES.JPG")
KRC_EXPECTED = "{poser}_{expr neu hap fea sad ang sur dis}_{view}.jpg, e.g. fd19_neu_d.jpg"
JAFFE_EXPECTED = "{poser}.{expr NE HA SA SU AN DI FE}{take}.{number}.tiff, e.g. KA.HA1.29.tiff"

_KDEF = re.compile(r"([AB])([FM])(\d{2})([A-Z]{2})([A-Z]{1,2})", re.IGNORECASE)
_KRC = re.compile(r"([A-Za-z0-9-]+)_([A-Za-z]+)_([A-Za-z0-9]+)")
_JAFFE = re.compile(r"([A-Za-z]+)\.([A-Za-z]{2})(\d+)\.(\d+)")


def _misfit(path: Path, expected: str) -> Candidate:
    return Candidate(path, reason=reason(NAME_MISFIT, f"{path.name!r} does not match {expected}"))


def _unknown(cand: Candidate, code: str, known: dict[str, str]) -> Candidate:
    """Keep what the name does say (subject, view ...), but no expression."""
    cand.expression = ""
    cand.reason = reason(UNKNOWN_CODE, f"{code!r} (known: {' '.join(known)})")
    return cand


def parse_kdef(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Parse a KDEF folder (searched recursively; KDEF keeps one folder per sitting).

    Parameters
    ----------
    root : Path
        The database folder.
    options : dict
        ``view`` (angle used, default ``"S"``) and ``session`` (default ``"A"``).

    Returns
    -------
    list of Candidate
        One per file found.
    """
    out = []
    for path in walk_files(root):
        if not is_image_name(path):
            out.append(Candidate(path, reason=not_an_image(path)))
            continue
        m = _KDEF.fullmatch(path.stem)
        if m is None:
            out.append(_misfit(path, KDEF_EXPECTED))
            continue
        session, sex, num, code, angle = (g.upper() for g in m.groups())
        if angle not in KDEF_VIEWS:
            out.append(_misfit(path, f"{KDEF_EXPECTED} (angle {angle!r} is not one of "
                                     f"{' '.join(KDEF_VIEWS)})"))
            continue
        cand = Candidate(path, subject=sex + num, expression=KDEF_CODES.get(code, ""),
                         view=angle, session=session, sex=sex, label=code)
        if code not in KDEF_CODES:
            _unknown(cand, code, KDEF_CODES)
        elif angle != options["view"]:
            cand.reason = reason(NOT_FRONTAL, f"{angle} (only {options['view']} is used)")
        elif session != options["session"]:
            cand.reason = reason(NOT_FIRST_SESSION,
                                 f"{session} (only session {options['session']} is used)")
        out.append(cand)
    return out


def parse_krc(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Parse a KRC folder (searched recursively).

    Parameters
    ----------
    root : Path
        The database folder.
    options : dict
        ``view``: the view code used (default ``"d"``, assumed frontal).

    Returns
    -------
    list of Candidate
        One per file found.
    """
    out = []
    for path in walk_files(root):
        if not is_image_name(path):
            out.append(Candidate(path, reason=not_an_image(path)))
            continue
        m = _KRC.fullmatch(path.stem)
        if m is None:
            out.append(_misfit(path, KRC_EXPECTED))
            continue
        poser, code, view = m.group(1), m.group(2).lower(), m.group(3).lower()
        sex = poser[0].upper() if poser[0].lower() in ("f", "m") else ""
        cand = Candidate(path, subject=poser, expression=KRC_CODES.get(code, ""), view=view,
                         sex=sex, label=m.group(2))
        if code not in KRC_CODES:
            _unknown(cand, m.group(2), KRC_CODES)
        elif view != options["view"]:
            cand.reason = reason(NOT_FRONTAL, f"{view} (only {options['view']} is used)")
        out.append(cand)
    return out


def parse_jaffe(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Parse a JAFFE folder (searched recursively); ``session`` is the take number.

    Parameters
    ----------
    root : Path
        The database folder.
    options : dict
        None are used.

    Returns
    -------
    list of Candidate
        One per file found; the take number orders takes of one expression.
    """
    del options
    out = []
    for path in walk_files(root):
        if not is_image_name(path):
            out.append(Candidate(path, reason=not_an_image(path)))
            continue
        m = _JAFFE.fullmatch(path.stem)
        if m is None:
            out.append(_misfit(path, JAFFE_EXPECTED))
            continue
        poser, code, take = m.group(1).upper(), m.group(2).upper(), m.group(3)
        cand = Candidate(path, subject=poser, expression=JAFFE_CODES.get(code, ""),
                         session=str(int(take)), take=(int(take),), label=code)
        if code not in JAFFE_CODES:
            _unknown(cand, m.group(2), JAFFE_CODES)
        out.append(cand)
    return out
