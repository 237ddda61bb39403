"""The run directory: atomic writes, the manifest, a writer lock, and the content-keyed cache.

A run directory holds everything one study produced::

    RUN/config.toml      the resolved study file (with defaults)
    RUN/manifest.json    versions, seed, input hashes, stage timings
    RUN/tables/*.csv     tidy tables (documented in docs/outputs.md)
    RUN/figures/*.png    figures, each drawn from a table
    RUN/report.html      the self-contained report

The cache (``cache_root()``) is shared across studies and keyed by content hashes.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from facedialect.errors import InputError, RunLockedError

#: Packages whose versions are recorded in every manifest.
RECORDED_PACKAGES = (
    "facedialect", "numpy", "scipy", "pandas", "opencv-python-headless", "pillow",
    "torch", "matplotlib", "pydantic", "imagehash",
)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or Path
        Destination; parent folders are created.
    data : bytes
        The content.

    Returns
    -------
    Path
        The destination path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


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

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        """Return the arrays stored under ``key``, or None (also for an unreadable entry)."""
        p = self.path(key)
        if not p.exists():
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            return None  # a damaged entry is recomputed

    def put(self, key: str, **arrays: np.ndarray) -> None:
        """Store ``arrays`` under ``key`` (atomic)."""
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(self.path(key), buf.getvalue())


class RunDir:
    """A study's run directory.

    Parameters
    ----------
    path : str or Path
        The folder; created on first write.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()

    # -- layout ---------------------------------------------------------------------------
    @property
    def tables(self) -> Path:
        """The folder of tidy tables."""
        return self.path / "tables"

    @property
    def figures(self) -> Path:
        """The folder of figures."""
        return self.path / "figures"

    @property
    def manifest_path(self) -> Path:
        """Path of ``manifest.json``."""
        return self.path / "manifest.json"

    def table_path(self, name: str) -> Path:
        """Return the path of table ``name`` (without suffix)."""
        return self.tables / f"{name}.csv"

    def has_table(self, name: str) -> bool:
        """Whether table ``name`` exists."""
        return self.table_path(name).exists()

    # -- I/O --------------------------------------------------------------------------------
    def write_table(self, name: str, df: pd.DataFrame) -> Path:
        """Write ``df`` as ``tables/{name}.csv`` atomically."""
        return atomic_write_text(self.table_path(name), df.to_csv(index=False))

    def read_table(self, name: str) -> pd.DataFrame:
        """Read ``tables/{name}.csv``.

        Raises
        ------
        InputError
            When the table does not exist (names the stage that makes it).
        """
        p = self.table_path(name)
        if not p.exists():
            raise InputError(
                f"{p} does not exist: run the stage that writes it first "
                f"(see `facedialect --help`)"
            )
        return pd.read_csv(p, keep_default_na=False, na_values=[""],
                           dtype={"subject": str, "session": str, "view": str, "sex": str,
                                  "reason": str, "expression": str, "path": str})

    def write_figure(self, name: str, png: bytes) -> Path:
        """Write ``figures/{name}.png`` atomically."""
        return atomic_write_bytes(self.figures / f"{name}.png", png)

    # -- lock -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's writer lock; a second writer fails at once with a clear message.

        Raises
        ------
        RunLockedError
            When another process holds the lock.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path / ".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout as exc:
            raise RunLockedError(
                f"{self.path} is being written by another facedialect process; "
                f"wait for it to finish (or, if none runs, delete {self.path / '.lock'})"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    # -- manifest ---------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """Return the manifest (an empty skeleton when none exists yet)."""
        if self.manifest_path.exists():
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        return {"created": _now(), "stages": {}, "inputs": {}}

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the manifest (dicts are merged one level deep) and save it."""
        m = self.read_manifest()
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(m.get(k), dict):
                m[k].update(v)
            else:
                m[k] = v
        m["updated"] = _now()
        m["versions"] = package_versions()
        atomic_write_text(self.manifest_path, json.dumps(m, indent=2, sort_keys=True) + "\n")
        return m

    def forget(self, section: str, key: str) -> None:
        """Remove ``manifest[section][key]`` (e.g. a stale "skipped" note), if present."""
        m = self.read_manifest()
        if isinstance(m.get(section), dict) and key in m[section]:
            del m[section][key]
            m["updated"] = _now()
            atomic_write_text(self.manifest_path,
                              json.dumps(m, indent=2, sort_keys=True) + "\n")

    @contextlib.contextmanager
    def stage(self, name: str, **info: Any) -> Iterator[dict[str, Any]]:
        """Time a stage and record it in the manifest when it ends without error.

        Yields a dict the stage may fill with extra facts (counts, cache hits).
        """
        extra: dict[str, Any] = dict(info)
        t0 = time.perf_counter()
        yield extra
        extra["seconds"] = round(time.perf_counter() - t0, 3)
        extra["finished"] = _now()
        self.update_manifest(stages={name: extra})


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
