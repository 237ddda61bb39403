"""Finding files in a database folder and checking each one: content hash, full decode, duplicates.

Nothing here writes anywhere: files are only listed, hashed and decoded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from facedialect.databases.schema import (
    DUPLICATE,
    MISSING_FILE,
    NOT_AN_IMAGE,
    OUTSIDE_ROOT,
    UNREADABLE,
    Candidate,
    reason,
    reason_category,
)
from facedialect.errors import ImageReadError, InputError
from facedialect.imageio import IMAGE_SUFFIXES, file_sha256, read_gray

#: Threads used for hashing and decoding (decoding releases the GIL for most of its work).
WORKERS = 2

_SUFFIX_LIST = " ".join(sorted(IMAGE_SUFFIXES))
_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def is_image_name(path: Path) -> bool:
    """Whether the file name ends in one of :data:`~facedialect.imageio.IMAGE_SUFFIXES`."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def is_hidden(name: str) -> bool:
    """Dotfiles and dot-folders (``.DS_Store``, ``._x.jpg``, ``.git``) are skipped silently."""
    return name.startswith(".")


def not_an_image(path: Path) -> str:
    """Return the exclusion reason of a file without an image suffix."""
    return reason(NOT_AN_IMAGE, f"{path.name} has no image suffix ({_SUFFIX_LIST})")


def absolute(path: str | os.PathLike[str]) -> Path:
    """Absolute, normalised path (``..`` removed) without resolving symbolic links."""
    return Path(os.path.normpath(os.path.abspath(os.fspath(path))))


def check_root(root: str | os.PathLike[str], expected: str) -> Path:
    """Return the database folder as an absolute path, or raise if it is not a folder.

    Parameters
    ----------
    root : str or PathLike
        The database folder.
    expected : str
        What the preset expects to find there (for the message).

    Returns
    -------
    Path
        The absolute folder.

    Raises
    ------
    InputError
        When ``root`` does not exist or is not a folder.
    """
    p = absolute(Path(root).expanduser())
    if not p.exists():
        raise InputError(f"database folder {p} does not exist; expected a folder with "
                         f"{expected}. Fix the database's root in the study file.")
    if not p.is_dir():
        raise InputError(f"database root {p} is a file, not a folder; expected a folder with "
                         f"{expected}.")
    return p


def list_dir(folder: Path) -> list[os.DirEntry[str]]:
    """List one folder's entries, dotfiles skipped, sorted by name.

    Raises
    ------
    InputError
        When the folder cannot be listed.
    """
    try:
        with os.scandir(folder) as it:
            entries = [e for e in it if not is_hidden(e.name)]
    except OSError as exc:
        raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}; check that it "
                         f"exists and can be read.") from exc
    return sorted(entries, key=lambda e: e.name)


def walk_files(top: Path) -> list[Path]:
    """Every file under ``top``, recursively, sorted by path.

    Folders reached through symbolic links are followed (each real folder once, so link
    loops end); dotfiles and dot-folders are skipped; broken links are listed (they fail
    later as unreadable).
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> None:
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in list_dir(folder):
            path = Path(entry.path)
            if entry.is_dir():
                visit(path)
            else:
                found.append(path)

    visit(top)
    return sorted(found, key=lambda p: p.as_posix())


def ensure_images(cands: Sequence[Candidate], root: Path, expected: str) -> None:
    """Raise when a preset found no image file at all under ``root``.

    Raises
    ------
    InputError
        Naming the folder, whether it is empty, and what the preset expects.
    """
    if any(is_image_name(c.path) and reason_category(c.reason) != MISSING_FILE for c in cands):
        return
    if not list_dir(root):
        raise InputError(f"database folder {root} is empty; expected {expected}.")
    raise InputError(f"no image files found in {root} (looked for {_SUFFIX_LIST}, "
                     f"recursively); expected {expected}. Is this the right folder and preset?")


def _strip_path(message: str, path: Path) -> str:
    for prefix in (f"{path}: ", f"{path.as_posix()}: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _check_one(cand: Candidate) -> tuple[str, str]:
    """Hash the file and, if it is still in the running, decode it fully.

    Returns ``(sha256, reason)``; reason is "" when the file is fine or was not decoded.
    """
    try:
        sha = file_sha256(cand.path)
    except OSError as exc:
        return "", reason(UNREADABLE, f"cannot read the file ({exc.strerror or exc})")
    if cand.reason:
        return sha, ""
    if sha == _EMPTY_SHA256:
        return sha, reason(UNREADABLE, "empty file (0 bytes)")
    try:
        read_gray(cand.path)
    except ImageReadError as exc:
        return sha, reason(UNREADABLE, _strip_path(str(exc), cand.path))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file, not a crash
        return sha, reason(UNREADABLE, f"{type(exc).__name__}: {exc}")
    return sha, ""


def check_files(cands: Sequence[Candidate], workers: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Hash every image file and decode every one still in the running.

    Candidates are updated in place: a file that cannot be read or decoded gets an
    ``unreadable image`` reason (unless it already had one). Files without an image suffix,
    missing ones and ones outside the root are not opened.

    Parameters
    ----------
    cands : sequence of Candidate
        The files, in their final (sorted) order.
    workers : int, optional
        Threads for hashing and decoding (default :data:`WORKERS`).
    progress : callable, optional
        Called as ``progress(done, total)`` in files opened (first with 0).

    Returns
    -------
    list of str
        The sha256 of each candidate ("" for files not opened or unreadable).
    """
    skip = {NOT_AN_IMAGE, MISSING_FILE, OUTSIDE_ROOT}
    todo = [i for i, c in enumerate(cands) if reason_category(c.reason) not in skip]
    hashes = [""] * len(cands)
    if progress:
        progress(0, len(todo))
    with ThreadPoolExecutor(max_workers=max(1, workers or WORKERS)) as pool:
        for n, (i, (sha, why)) in enumerate(
                zip(todo, pool.map(_check_one, [cands[i] for i in todo]), strict=True), 1):
            hashes[i] = sha
            if why and not cands[i].reason:
                cands[i].reason = why
            if progress:
                progress(n, len(todo))
    return hashes


def mark_duplicates(cands: Iterable[Candidate], hashes: Sequence[str]) -> None:
    """Exclude files whose bytes repeat an earlier file's (earlier in the given order).

    Only files still in the running take part, so an excluded file never displaces a
    usable one.
    """
    first: dict[str, Candidate] = {}
    for cand, sha in zip(cands, hashes, strict=True):
        if cand.reason or not sha:
            continue
        if sha in first:
            cand.reason = reason(DUPLICATE, f"same bytes as {first[sha].key}")
        else:
            first[sha] = cand
