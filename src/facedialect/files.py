"""Files of facedialect: atomic writes, clear errors, the content-keyed cache, state files.

Used by every layer that writes a file (the run directory, the cache, generated data):
writes are atomic (a temporary file, then a rename), an environment error (permissions,
full disk) becomes one clear message, and a damaged file is recognised and named.
The cache (:func:`cache_root`) is shared across studies and keyed by content hashes.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import errno
import hashlib
import io
import os
import platform
import tempfile
import threading
import warnings
from collections.abc import Collection
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from facedialect.errors import (
    DamagedFileError,
    DamagedFileWarning,
    OutputWriteError,
)

#: Packages whose versions are recorded in every manifest.
RECORDED_PACKAGES = (
    "facedialect", "numpy", "scipy", "pandas", "opencv-python-headless", "pillow",
    "torch", "matplotlib", "pydantic", "imagehash",
)


#: How text outputs encode the lone surrogates that stand for file-name bytes which are not
#: UTF-8 (``os.listdir`` on Linux): back to those bytes, as ``os.fsencode`` does.
TEXT_ERRORS = "surrogateescape"

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """Return the process's umask without changing it for other threads.

    Read from ``/proc/self/status`` where the system has it (Linux); elsewhere set and
    restored at once under a lock (a thread creating a file at that instant may see 0o077).
    """
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


#: What to do when a run directory cannot be written.
RUN_HINT = "choose another [study] output (or --out) or fix the folder's permissions"
#: What to do when the shared cache cannot be written.
CACHE_HINT = ("set [study] cache_dir or FACEDIALECT_CACHE to a writable folder, or fix the "
              "folder's permissions")
#: What to do when another output (``--out`` of a command) cannot be written.
OUTPUT_HINT = "choose another output folder or fix the folder's permissions"
#: errno values of a full disk, and what to do then.
_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
         errno.EFBIG: "file too large for the file system"}
_FULL_HINT = "free some space and run the same command again (finished work is kept)"
_DENIED = {errno.EACCES: "permission denied", errno.EPERM: "permission denied",
           errno.EROFS: "read-only file system"}
#: errno values that say something about the computer, not about the program: the CLI
#: prints them as one line (see :func:`environment_message`).
ENVIRONMENT_ERRNOS: frozenset[int] = frozenset(_FULL) | frozenset(_DENIED)


def environment_message(exc: OSError, hint: str = OUTPUT_HINT) -> str:
    """What an :class:`OSError` of the environment means and what to do, without the path.

    ``"no space left on the device; free some space ..."``, ``"permission denied; " + hint``.
    """
    if exc.errno in _FULL:
        return f"{_FULL[exc.errno]}; {_FULL_HINT}"
    why = _DENIED.get(exc.errno or 0) or exc.strerror or str(exc)
    return f"{why}; {hint}"


def write_error(path: str | Path, exc: OSError, hint: str = OUTPUT_HINT) -> OutputWriteError:
    """The project's error for a failed write of ``path``: one line, the path, what to do.

    Parameters
    ----------
    path : str or Path
        What could not be written (a file, or the folder that could not be made).
    exc : OSError
        The operating system's error.
    hint : str
        What to do when the folder is not writable (:data:`RUN_HINT`, :data:`CACHE_HINT`,
        :data:`OUTPUT_HINT`); a full disk has its own.

    Returns
    -------
    OutputWriteError
        E.g. ``cannot write /x/run/tables/images.csv: permission denied; choose another
        [study] output (or --out) or fix the folder's permissions``.
    """
    if isinstance(exc, OutputWriteError):
        return exc
    err = OutputWriteError(f"cannot write {path}: {environment_message(exc, hint)}")
    err.errno = exc.errno
    return err


def atomic_write_bytes(path: str | Path, data: bytes, *, hint: str = OUTPUT_HINT) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    The file gets the permissions of an ordinary new file (``0o666`` less the umask), not
    the ``0o600`` of a temporary file, so a shared cache or report stays readable.

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    data : bytes
        The content.
    hint : str
        What to do when the folder cannot be written (see :func:`write_error`).

    Returns
    -------
    Path
        The destination path.

    Raises
    ------
    OutputWriteError
        When the file cannot be written (permissions, read-only or full disk): one line
        naming ``path``; an existing file at ``path`` is left as it was.
    """
    path = Path(path)
    try:
        return _atomic_write(path, data)
    except OSError as exc:
        raise write_error(path, exc, hint) from exc


def _atomic_write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with contextlib.suppress(OSError):  # e.g. a file system without permissions
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | Path, text: str, *, hint: str = OUTPUT_HINT) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`).

    File names that are not UTF-8 (lone surrogates in ``text``) are written as their
    original bytes (:data:`TEXT_ERRORS`).
    """
    return atomic_write_bytes(path, text.encode("utf-8", TEXT_ERRORS), hint=hint)


def table_csv(df: pd.DataFrame) -> bytes:
    r"""The CSV bytes of a table as the run directory stores it.

    Every string is quoted and numbers are not (``csv.QUOTE_NONNUMERIC``), lines end in
    ``\n``, and file-name bytes that are not UTF-8 are written as themselves, so any file
    name (a carriage return as in a Mac's ``Icon\r``, a newline, quotes, commas, a NUL)
    reads back exactly with :meth:`RunDir.read_table`.
    """
    text = df.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    return text.encode("utf-8", TEXT_ERRORS)


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def package_versions() -> dict[str, str]:
    """Return the installed versions of :data:`RECORDED_PACKAGES` ("absent" when missing)."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def cache_root(configured: str | Path | None = None) -> Path:
    """Return the shared cache folder.

    Order: ``configured`` (the study file's ``cache_dir``), the ``FACEDIALECT_CACHE``
    environment variable, then ``$XDG_CACHE_HOME/facedialect`` (``~/.cache/facedialect``).
    """
    if configured is not None:
        return Path(configured).expanduser()
    env = os.environ.get("FACEDIALECT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "facedialect"


class ArrayCache:
    """A folder of ``.npz`` entries keyed by a hex key, written atomically.

    Parameters
    ----------
    root : Path
        The cache folder of one kind of result (e.g. ``cache_root()/"preprocess"``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        """Return where the entry ``key`` lives."""
        return self.root / key[:2] / f"{key}.npz"

    def get(self, key: str, required: Collection[str] = ()) -> dict[str, np.ndarray] | None:
        """Return the arrays stored under ``key``, or None when there is no usable entry.

        A damaged entry (truncated, a flipped bit: the zip's checksums catch it; an entry
        without one of the ``required`` arrays) is a miss too, with a
        :class:`~facedialect.errors.DamagedFileWarning` naming the file; the caller
        computes the result again and :meth:`put` replaces the entry.

        Parameters
        ----------
        key : str
            The entry's key.
        required : collection of str
            Arrays every sound entry of this kind has.
        """
        p = self.path(key)
        if not p.exists():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except Exception as exc:  # noqa: BLE001 - whatever the damage, the entry is unusable
            self.damaged(key, describe_damage(exc, p, ZIP_MAGIC))
            return None
        lacks = [k for k in required if k not in out]
        if lacks or not out:
            self.damaged(key, f"lacks {', '.join(lacks)}" if lacks else "no arrays")
            return None
        return out

    def damaged(self, key: str, why: str) -> None:
        """Warn that the entry ``key`` is damaged (``why``) and is computed again."""
        warnings.warn(f"damaged cache entry {self.path(key)} ({why}): computing it again",
                      DamagedFileWarning, stacklevel=3)

    def put(self, key: str, **arrays: np.ndarray) -> None:
        """Store ``arrays`` under ``key`` (atomic).

        Raises
        ------
        OutputWriteError
            When the cache folder cannot be written (read-only, full disk).
        """
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self.path(key), buf.getvalue(), hint=CACHE_HINT)


#: The first bytes of the files this package writes: zip (``.npz``, torch files), ``.npy``.
ZIP_MAGIC, NPY_MAGIC = b"PK\x03\x04", b"\x93NUMPY"


def describe_damage(exc: BaseException, path: str | Path | None = None,
                    magic: bytes = b"") -> str:
    """A short reason why a file could not be loaded.

    ``"empty file"`` or ``"not a .npz file"`` when ``path`` is empty or does not start with
    ``magic``; else the error's type and first line (``"BadZipFile: Bad CRC-32 ..."``).
    """
    if path is not None and magic:
        with contextlib.suppress(OSError), open(path, "rb") as f:
            head = f.read(len(magic))
            if not head:
                return "empty file"
            if head != magic:
                return f"not a {Path(path).suffix} file"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text[:160]}" if text else name


def load_state(path: str | Path, required: Collection[str] = (), *, mmap: bool = False
               ) -> dict[str, Any]:
    """Load a dict saved with ``torch.save`` by this package (heads, checkpoints).

    Parameters
    ----------
    path : str or Path
        The file.
    required : collection of str
        Keys every sound file of this kind has.
    mmap : bool
        Map the tensors' data from the file instead of reading it (what is never used is
        never read: e.g. a heads file's failed runs without its weights).

    Returns
    -------
    dict
        The saved dict (tensors on the CPU).

    Raises
    ------
    DamagedFileError
        When the file cannot be loaded (truncated, not a torch file, damaged) or lacks a
        required key. A bit flipped inside a tensor's data is not detected (torch files
        carry no checksum of the data).
    """
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # noqa: BLE001 - whatever the damage, the file is unusable
        raise DamagedFileError(f"{path} is damaged ({describe_damage(exc, path, ZIP_MAGIC)})"
                               ) from exc
    if not isinstance(state, dict):
        raise DamagedFileError(f"{path} is damaged (holds a {type(state).__name__}, not a "
                               f"dict)")
    lacks = [k for k in required if k not in state]
    if lacks:
        raise DamagedFileError(f"{path} is damaged (lacks {', '.join(lacks)})")
    return state


def read_state(path: str | Path, required: Collection[str] = (),
               action: str = "computing it again") -> dict[str, Any] | None:
    """:func:`load_state`, or None with a warning when the file is damaged.

    The warning (:class:`~facedialect.errors.DamagedFileWarning`) reads
    ``"{path} is damaged ({why}): {action}"``.
    """
    try:
        return load_state(path, required)
    except DamagedFileError as exc:
        warnings.warn(f"{exc}: {action}", DamagedFileWarning, stacklevel=2)
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
