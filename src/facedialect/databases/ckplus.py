"""The ``ckplus`` preset: CK+ frame sequences with Emotion/ and FACS/ label files.

Also reads the common "folder per emotion" crops of CK+ (``ROOT/happy/S005_001_...png``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from facedialect.databases.files import is_image_name, list_dir, not_an_image, walk_files
from facedialect.databases.folder import expression_folders, parse_folder
from facedialect.databases.schema import (
    BAD_LABEL,
    MISSING_FILE,
    NAME_MISFIT,
    NO_LABEL,
    Candidate,
    natural_key,
    reason,
)
from facedialect.errors import InputError
from facedialect.vocab import CKPLUS_CODES

IMAGES_DIR = "cohn-kanade-images"
EMOTION_DIR = "Emotion"
FACS_DIR = "FACS"
CKPLUS_EXPECTED = (
    "the CK+ layout (cohn-kanade-images/S005/001/S005_001_00000011.png frame sequences, "
    "with Emotion/S005/001/S005_001_00000011_emotion.txt and FACS/ label folders beside "
    "cohn-kanade-images) or one folder per emotion holding crops named S005_001_....png")
#: Subject id of the folder-per-emotion crops, searched in the file name.
CROP_SUBJECT = re.compile(r"(S\d+)", re.IGNORECASE)

_SUBJECT = re.compile(r"S\d+", re.IGNORECASE)
_SEQUENCE = re.compile(r"\d+")


def _child(folder: Path | None, name: str) -> Path | None:
    """Return the sub-folder of ``folder`` called ``name`` (ignoring case), if any."""
    if folder is None or not folder.is_dir():
        return None
    for entry in list_dir(folder):
        if entry.is_dir() and entry.name.lower() == name.lower():
            return Path(entry.path)
    return None


def is_full_layout(root: Path) -> bool:
    """Whether ``root`` holds the CK+ ``cohn-kanade-images`` folder."""
    return _child(root, IMAGES_DIR) is not None


def parse_ckplus(root: Path, options: dict[str, Any]) -> list[Candidate]:
    """Parse a CK+ folder: peak and first frames of each sequence, with their labels.

    Parameters
    ----------
    root : Path
        The folder holding ``cohn-kanade-images/``, ``Emotion/`` and ``FACS/`` (or one
        folder per emotion with crops).
    options : dict
        None are used.

    Returns
    -------
    list of Candidate
        The last frame of every sequence (labelled with the sequence's emotion, or
        excluded when it has none), the first frame of every labelled sequence as neutral,
        and every file that does not fit the layout.

    Raises
    ------
    InputError
        When ``root`` has neither layout.
    """
    del options
    images = _child(root, IMAGES_DIR)
    if images is None:
        if not expression_folders(root):
            raise InputError(f"{root} is not a CK+ folder: it has neither a {IMAGES_DIR}/ "
                             f"folder nor emotion-named folders; expected {CKPLUS_EXPECTED}.")
        cands = parse_folder(root, {"subject_regex": CROP_SUBJECT})
        for cand in cands:
            cand.subject = cand.subject.upper()
        return cands
    emotion, facs = _child(root, EMOTION_DIR), _child(root, FACS_DIR)
    out: list[Candidate] = []
    seen: set[tuple[str, str]] = set()
    for subj in list_dir(images):
        subj_path = Path(subj.path)
        if not subj.is_dir() or not _SUBJECT.fullmatch(subj.name):
            out.extend(_misfits(subj_path))
            continue
        for seq in list_dir(subj_path):
            seq_path = Path(seq.path)
            if not seq.is_dir() or not _SEQUENCE.fullmatch(seq.name):
                out.extend(_misfits(seq_path))
                continue
            seen.add((subj.name, seq.name))
            out.extend(_sequence(seq_path, subj.name, seq.name, emotion, facs))
    out.extend(_orphan_labels(emotion, seen))
    return out


def _misfits(path: Path) -> list[Candidate]:
    """Every file at or under ``path``, which sits where the CK+ layout has no place."""
    files = walk_files(path) if path.is_dir() else [path]
    why = reason(NAME_MISFIT, f"expected {IMAGES_DIR}/S005/001/S005_001_00000011.png")
    return [Candidate(f, reason=why if is_image_name(f) else not_an_image(f)) for f in files]


def _sequence(seq_path: Path, subject: str, seq: str, emotion: Path | None,
              facs: Path | None) -> list[Candidate]:
    out: list[Candidate] = []
    frames: list[Path] = []
    for entry in list_dir(seq_path):
        path = Path(entry.path)
        if entry.is_dir():
            out.extend(_misfits(path))
        elif is_image_name(path):
            frames.append(path)
        else:
            out.append(Candidate(path, reason=not_an_image(path)))
    if not frames:
        return out
    frames.sort(key=lambda p: natural_key(p.name))
    first, last = frames[0], frames[-1]
    subj = subject.upper()
    peak = Candidate(last, subject=subj, session=seq,
                     facs=_read_facs(_child(_child(facs, subject), seq), last.stem))
    out.append(peak)
    label_dir = _child(_child(emotion, subject), seq)
    label_files = sorted(p for p in (label_dir.glob("*_emotion.txt") if label_dir else [])
                         if not p.name.startswith("."))
    if not label_files:
        where = (f"no {EMOTION_DIR}/ folder in the database root" if emotion is None
                 else f"sequence {subject}/{seq} has no Emotion file")
        peak.reason = reason(NO_LABEL, where)
        return out
    label_file = next((p for p in label_files if p.name.startswith(last.stem)), label_files[0])
    code, why = _read_label(label_file)
    if code is None:
        peak.reason = reason(BAD_LABEL, why)
        return out
    peak.expression = CKPLUS_CODES[code]
    peak.label = str(code)
    if first != last:
        out.append(Candidate(first, subject=subj, expression="neutral", session=seq))
    return out


def _read_label(path: Path) -> tuple[int | None, str]:
    """Read the CK+ emotion number in an ``*_emotion.txt`` file, or None and why not."""
    try:
        text = path.read_text(encoding="ascii").strip()
        value = float(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None, f"{path.name} does not hold one CK+ emotion number (0-7)"
    if not value.is_integer() or int(value) not in CKPLUS_CODES:
        return None, f"{path.name} holds {text!r}, not a CK+ emotion number (0-7)"
    return int(value), ""


def _read_facs(folder: Path | None, stem: str) -> str:
    """Read the FACS coding of a peak frame as ``"AU:intensity ..."`` ("" when absent or bad)."""
    if folder is None:
        return ""
    files = sorted(p for p in folder.glob("*_facs.txt") if not p.name.startswith("."))
    path = next((p for p in files if p.name.startswith(stem)), files[0] if files else None)
    if path is None:
        return ""
    pairs = []
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            parts = line.split()
            if not parts:
                continue
            au, intensity = (float(v) for v in parts[:2]) if len(parts) >= 2 else (
                float(parts[0]), 0.0)
            pairs.append(f"{au:g}:{intensity:g}")
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    return " ".join(pairs)


def _orphan_labels(emotion: Path | None, seen: set[tuple[str, str]]) -> list[Candidate]:
    """Emotion files whose sequence has no frames in ``cohn-kanade-images``."""
    if emotion is None:
        return []
    out = []
    for path in walk_files(emotion):
        if not path.name.endswith("_emotion.txt"):
            continue
        rel = path.relative_to(emotion).parts
        if len(rel) == 3 and (rel[0], rel[1]) not in seen:
            out.append(Candidate(path, reason=reason(
                MISSING_FILE, f"label {EMOTION_DIR}/{'/'.join(rel)} has no frames in "
                              f"{IMAGES_DIR}/{rel[0]}/{rel[1]}/")))
    return out
