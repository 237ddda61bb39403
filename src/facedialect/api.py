"""The public Python API: a study from its file, its run, and the run's results.

Examples
--------
>>> import facedialect as fd
>>> study = fd.Study.from_toml("study.toml")            # doctest: +SKIP
>>> run = study.run()                                    # doctest: +SKIP
>>> run.tables["accuracy"].head()                        # doctest: +SKIP
>>> run.report()                                         # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from facedialect import config
from facedialect.errors import InputError
from facedialect.pipeline import STAGE_NAMES, build_report, run_stages
from facedialect.progress import progress_factory
from facedialect.run.store import RunDir
from facedialect.stages.base import Context, Summary


class Study(config.Study):
    """A validated study (the TOML study file), that can run itself.

    Every section of the study file is an attribute (``study.databases``,
    ``study.training``, ...): see docs/study-file.md.
    """

    @classmethod
    def from_toml(cls, path: str | Path) -> Study:
        """Read and validate a study file.

        Parameters
        ----------
        path : str or Path
            The TOML study file; relative paths in it are resolved against its folder.

        Raises
        ------
        StudyFileError
            With one line per problem (file, key, what is wrong, how to fix it).
        """
        return config.load_study(path, cls)

    def run(self, stages: Sequence[str] | None = None, *, progress: bool = True,
            device: str | None = None, force: bool = False) -> Run:
        """Run the study's stages (all it enables, or ``stages``) and return the run.

        Parameters
        ----------
        stages : sequence of str, optional
            Stage names (:data:`facedialect.pipeline.STAGE_NAMES`), run in design order.
            Default: every stage the study enables; stages that are up to date are skipped.
        progress : bool
            Show progress (bars in a terminal or notebook, log lines otherwise).
        device : str, optional
            ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (default: a GPU when there is one).
        force : bool
            Run stages even when they are up to date.

        Returns
        -------
        Run
            The run directory's results, with the stages' summaries.
        """
        summaries = run_stages(self, stages, ctx=Context(device=device, force=force),
                               progress=progress_factory() if progress else None)
        return Run(self.study.output, summaries)


class Tables(Mapping[str, pd.DataFrame]):
    """The run's tables (``tables/*.csv``) by name, read as DataFrames when asked for."""

    def __init__(self, run: RunDir) -> None:
        self._run = run

    def __getitem__(self, name: str) -> pd.DataFrame:
        if not self._run.has_table(name):
            raise KeyError(f"{name!r}: no such table in {self._run.tables} (tables: "
                           f"{', '.join(self) or 'none yet'})")
        return self._run.read_table(name)

    def __iter__(self) -> Iterator[str]:
        if not self._run.tables.is_dir():
            return iter(())
        return iter(sorted(p.stem for p in self._run.tables.glob("*.csv")))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return f"Tables({', '.join(self)})"


class Run:
    """A run directory and its results.

    Parameters
    ----------
    path : str or Path
        The run directory (``[study] output``).
    summaries : sequence of Summary
        What the stages did when this object came from :meth:`Study.run`.

    Attributes
    ----------
    path : Path
        The run directory.
    tables : Mapping[str, pandas.DataFrame]
        Every table of ``tables/`` by name (docs/outputs.md), e.g. ``run.tables["accuracy"]``.
    summaries : list of Summary
        The stages' summaries (empty for a run opened from disk).
    """

    def __init__(self, path: str | Path, summaries: Sequence[Summary] = ()) -> None:
        self._dir = RunDir(path)
        self.path = self._dir.path
        self.tables = Tables(self._dir)
        self.summaries = list(summaries)

    @property
    def manifest(self) -> dict[str, Any]:
        """``manifest.json``: versions, seed, input hashes, stage timings and facts."""
        return self._dir.read_manifest()

    @property
    def study(self) -> Study:
        """The study this run was made with (its resolved ``config.toml``).

        Raises
        ------
        InputError
            When the run directory has no ``config.toml``.
        """
        path = self.path / "config.toml"
        if not path.is_file():
            raise InputError(f"{self.path} has no config.toml: not a run of a study file")
        return Study.from_toml(path)

    @property
    def figures(self) -> list[Path]:
        """The figure files the stages drew (``figures/``)."""
        folder = self._dir.figures
        return sorted(folder.iterdir()) if folder.is_dir() else []

    @property
    def stages(self) -> list[str]:
        """The stages that have run, in pipeline order."""
        done = self.manifest.get("stages", {})
        return [s for s in STAGE_NAMES if s in done]

    def report(self, out: str | Path | None = None) -> Path:
        """Write the self-contained HTML report (default ``RUN/report.html``); return its path."""
        return build_report(self._dir, out)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, stages={self.stages})"

    def _repr_html_(self) -> str:  # a notebook shows the stages and tables
        return (f"<b>facedialect run</b> {self.path}<br>stages: {', '.join(self.stages)}"
                f"<br>tables: {', '.join(self.tables)}")


def summaries_text(summaries: Sequence[Summary]) -> str:
    """The summaries as plain text, one block per stage."""
    return "\n".join(str(s) for s in summaries)


__all__ = ["Run", "Study", "Tables", "summaries_text"]
