"""The run directory: its layout, tables, manifest and writer lock.

A run directory holds everything one study produced::

    RUN/config.toml      the resolved study file (with defaults)
    RUN/manifest.json    versions, seed, input hashes, stage timings, fingerprints
    RUN/tables/*.csv     tidy tables (documented in docs/outputs.md)
    RUN/figures/         figures, each drawn from a table when its stage runs
    RUN/report.html      the self-contained report
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from facedialect.errors import DamagedFileWarning, InputError, RunLockedError
from facedialect.files import (
    RUN_HINT,
    TEXT_ERRORS,
    _now,
    atomic_write_bytes,
    atomic_write_text,
    describe_damage,
    package_versions,
    table_csv,
    write_error,
)
from facedialect.imageio import expand_user

#: Columns read back as text whatever they hold: names (a database called "2020", a
#: subject "007"), paths and hashes are never numbers. (Not ``unit``: in
#: ``tables/classes.csv`` it is a true/false column.)
TEXT_COLUMNS: tuple[str, ...] = (
    "db", "train_db", "test_db", "db_a", "db_b", "trained", "tested", "culture", "path",
    "image", "subject", "session", "view", "sex", "reason", "expression", "sha256",
    "cache_key",
)


class RunDir:
    """A study's run directory.

    Parameters
    ----------
    path : str or Path
        The folder; created on first write.

    Raises
    ------
    InputError
        When ``path`` starts with ``~name`` of no known user.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = expand_user(path).resolve()

    def require_existing(self) -> RunDir:
        """Return this run directory if it is one (``manifest.json`` or ``tables/`` there).

        Commands that work on an existing run call it before taking the lock, so that
        nothing is written into a folder that is not a run directory (a database folder).

        Raises
        ------
        InputError
            When the folder does not exist or holds neither ``manifest.json`` nor ``tables/``.
        """
        where = ("give the folder (with manifest.json and tables/images.csv) that "
                 "`facedialect run` or `facedialect inspect --out` wrote")
        if not self.path.is_dir():
            raise InputError(f"{self.path}: no such run directory; {where}")
        if not (self.manifest_path.is_file() or self.tables.is_dir()):
            raise InputError(f"{self.path} is not a run directory (no manifest.json, no "
                             f"tables/) and nothing was written there; {where}")
        return self

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
        """Write ``df`` as ``tables/{name}.csv`` atomically (format: :func:`table_csv`)."""
        return atomic_write_bytes(self.table_path(name), table_csv(df), hint=RUN_HINT)

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
                           dtype=dict.fromkeys(TEXT_COLUMNS, str),
                           encoding="utf-8", encoding_errors=TEXT_ERRORS)

    def write_figure(self, name: str, png: bytes) -> Path:
        """Write ``figures/{name}.png`` atomically."""
        return atomic_write_bytes(self.figures / f"{name}.png", png, hint=RUN_HINT)

    # -- lock -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's writer lock; a second writer fails at once with a clear message.

        Raises
        ------
        RunLockedError
            When another process holds the lock.
        OutputWriteError
            When the folder cannot be made or written (read-only, permissions, full disk).
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.path / ".lock"))
            lock.acquire(timeout=0)
        except Timeout as exc:  # (a TimeoutError, so before OSError)
            raise RunLockedError(
                f"{self.path} is being written by another facedialect process; "
                f"wait for it to finish (or, if none runs, delete {self.path / '.lock'})"
            ) from exc
        except OSError as exc:
            raise write_error(self.path, exc, RUN_HINT) from exc
        try:
            yield
        finally:
            lock.release()

    # -- manifest ---------------------------------------------------------------------------
    def read_manifest(self) -> dict[str, Any]:
        """Return the manifest (an empty skeleton when none exists yet).

        An invalid ``manifest.json`` (not UTF-8 JSON, not an object: cut short by a full
        disk or another program, an edit gone wrong) is moved aside to
        ``manifest.json.damaged-TIMESTAMP`` with a
        :class:`~facedialect.errors.DamagedFileWarning`, and the skeleton is returned: each
        stage records its facts again when it runs.
        """
        p = self.manifest_path
        if p.exists():
            try:
                m = json.loads(p.read_bytes().decode("utf-8"))
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
                self._set_aside(describe_damage(exc))
            else:
                if isinstance(m, dict):
                    return m
                self._set_aside(f"holds a JSON {type(m).__name__}, not an object")
        return {"created": _now(), "stages": {}, "inputs": {}}

    def _set_aside(self, why: str) -> None:
        """Move a damaged ``manifest.json`` to ``manifest.json.damaged-TIMESTAMP``, warning."""
        p = self.manifest_path
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside, n = p.with_name(f"{p.name}.damaged-{stamp}"), 1
        while aside.exists():
            aside, n = p.with_name(f"{p.name}.damaged-{stamp}-{n}"), n + 1
        try:
            os.replace(p, aside)
        except OSError as exc:
            raise write_error(aside, exc, RUN_HINT) from exc
        warnings.warn(f"{p} was damaged ({why}); moved to {aside}; a new manifest is started "
                      f"(each stage records its facts again when it runs)",
                      DamagedFileWarning, stacklevel=3)

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
        atomic_write_text(self.manifest_path, json.dumps(m, indent=2, sort_keys=True) + "\n",
                          hint=RUN_HINT)
        return m

    def forget(self, section: str, key: str) -> None:
        """Remove ``manifest[section][key]`` (e.g. a stale "skipped" note), if present."""
        m = self.read_manifest()
        if isinstance(m.get(section), dict) and key in m[section]:
            del m[section][key]
            m["updated"] = _now()
            atomic_write_text(self.manifest_path,
                              json.dumps(m, indent=2, sort_keys=True) + "\n", hint=RUN_HINT)

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


