"""Finding files in a database folder and checking each one: content hash, full decode, duplicates.

Nothing here writes anywhere: files are only listed, hashed and decoded.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
from facedialect.imageio import IMAGE_SUFFIXES, expand_user, file_sha256, read_gray

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
    """Return the exclusion reason of a file without an image suffix.

    A folder that cannot be listed and a symbolic-link loop (which :func:`walk_files`
    returns among the files) get an ``unreadable image`` reason that says so instead.
    """
    problem = _entry_problem(path)
    if problem:
        return reason(UNREADABLE, problem)
    return reason(NOT_AN_IMAGE, f"{path.name} has no image suffix ({_SUFFIX_LIST})")


def _entry_problem(path: Path) -> str:
    """Why a listed entry that is no regular file cannot be used ("" when nothing to say)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path.name} is a symbolic link loop ({exc.strerror})"
        return ""
    except ValueError:
        return ""
    if stat.S_ISDIR(st.st_mode):
        try:
            os.scandir(path).close()
        except OSError as exc:
            return (f"cannot list folder {path.name} ({exc.strerror or exc}); its files are "
                    f"not used")
    return ""


def file_problem(path: Path) -> tuple[str, str]:
    """Check that ``path`` is a regular file (symbolic links followed) without opening it.

    Returns
    -------
    category : str
        "" for a regular file, else :data:`MISSING_FILE` (does not exist, cannot exist:
        a NUL character, a name too long, a link loop; a folder) or :data:`UNREADABLE`
        (cannot be checked, e.g. in a folder without permission; a named pipe, socket or
        device).
    words : str
        What is wrong, e.g. "does not exist" ("" for a regular file).
    """
    try:
        st = os.stat(path)
    except ValueError:
        return MISSING_FILE, "holds a NUL character, which no file name can"
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return MISSING_FILE, "does not exist"
        if exc.errno == errno.ELOOP:
            return MISSING_FILE, f"is a symbolic link loop ({why})"
        if exc.errno == errno.ENAMETOOLONG:
            return MISSING_FILE, f"cannot exist ({why}: at most 255 bytes per name)"
        return UNREADABLE, f"cannot be checked ({why})"
    if stat.S_ISDIR(st.st_mode):
        return MISSING_FILE, "is a folder"
    if not stat.S_ISREG(st.st_mode):
        return UNREADABLE, "is not a regular file (a named pipe, socket or device)"
    return "", ""


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
    p = absolute(expand_user(root))
    try:
        exists, is_dir = p.exists(), p.is_dir()
    except OSError as exc:
        raise InputError(f"database folder {p} cannot be checked ({exc.strerror or exc}); "
                         f"fix the database's root in the study file.") from exc
    if not exists:
        raise InputError(f"database folder {p} does not exist; expected a folder with "
                         f"{expected}. Fix the database's root in the study file.")
    if not is_dir:
        raise InputError(f"database root {p} is a file, not a folder; expected a folder with "
                         f"{expected}.")
    return p


@dataclass(frozen=True)
class Entry:
    """One entry of a folder (like :class:`os.DirEntry`, but ``is_dir`` never raises)."""

    name: str
    path: str
    folder: bool

    def is_dir(self) -> bool:
        """Whether the entry is a folder (links followed; False for a link loop)."""
        return self.folder


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a symbolic link loop, a folder that cannot be read
        return False


def list_dir(folder: Path) -> list[Entry]:
    """List one folder's entries, dotfiles skipped, sorted by name.

    Raises
    ------
    InputError
        When the folder cannot be listed.
    """
    try:
        with os.scandir(folder) as it:
            entries = [Entry(e.name, e.path, _is_dir(e)) for e in it if not is_hidden(e.name)]
    except OSError as exc:
        raise InputError(f"cannot list folder {folder}: {exc.strerror or exc}; check that it "
                         f"exists and can be read.") from exc
    return sorted(entries, key=lambda e: e.name)


def walk_files(top: Path) -> list[Path]:
    """Every file under ``top``, recursively, sorted by path.

    Folders reached through symbolic links are followed (each real folder once, so link
    loops end); dotfiles and dot-folders are skipped; broken links and links to themselves
    are listed (they fail later as unreadable). A folder that cannot be listed (``top``
    included) is listed itself, as if a file, so the preset reports it
    (:func:`not_an_image` says why) and the rest of the database is used.
    """
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> None:
        try:
            st = folder.stat()
            entries = list_dir(folder)
        except (OSError, InputError):
            found.append(folder)
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for entry in entries:
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
    Only regular files are opened (a named pipe would block).
    """
    category, words = file_problem(cand.path)
    if category:
        return "", reason(UNREADABLE, _entry_problem(cand.path)
                          or f"cannot read the file: it {words}")
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
