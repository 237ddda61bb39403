"""facedialect: cross-cultural facial-expression research in one reproducible study.

The public API (docs/api.md):

- :class:`Study` — a validated study file: ``Study.from_toml(path)``, ``study.run()``;
- :class:`Run` — a run directory's results: ``run.tables["accuracy"]`` (DataFrames),
  ``run.report()``, ``run.manifest``, ``run.figures``;
- :data:`STAGES` — the stages in the order a study runs them;
- building blocks to use alone: :func:`ingest` (one database folder to an images table),
  :func:`preprocess_face` (one image, as the reference study pre-processed it),
  :func:`render_face`, :func:`stimulus_table`, :func:`render_stimuli` (AU stimuli),
  :func:`write_synthetic_database` and :class:`EastWestPreset` (synthetic cultures with
  known differences), :func:`ppca` (shared dimensions of two sets of ratings);
- :data:`EXPRESSIONS` (the seven of the reference study), :data:`VOCABULARY`,
  :data:`STUDY_AUS`.

Names are imported when first used, so ``import facedialect`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import pandas as _pd

from facedialect._meta import __version__
from facedialect.vocab import EXPRESSIONS, STUDY_AUS, VOCABULARY

# File names that are not UTF-8 reach pandas as lone surrogates, which pandas 3's pyarrow
# string storage (used whenever pyarrow is installed, e.g. by the ray extra) cannot hold:
# keep Python string storage, so every install reads and writes the same tables.
_pd.set_option("mode.string_storage", "python")

#: Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    "Study": "facedialect.api",
    "Run": "facedialect.api",
    "STAGES": "facedialect.pipeline",
    "ingest": "facedialect.databases",
    "preprocess_face": "facedialect.preprocess.pipeline",
    "PreprocessParams": "facedialect.preprocess.params",
    "render_face": "facedialect.faces",
    "FaceIdentity": "facedialect.faces",
    "stimulus_table": "facedialect.faces",
    "render_stimuli": "facedialect.faces",
    "renderer_for": "facedialect.faces",
    "EastWestPreset": "facedialect.synthetic.cultures",
    "write_synthetic_database": "facedialect.synthetic.cultures",
    "ppca": "facedialect.meaning.ppca",
}

if TYPE_CHECKING:  # pragma: no cover
    from facedialect.api import Run, Study
    from facedialect.databases import ingest
    from facedialect.faces import (
        FaceIdentity,
        render_face,
        render_stimuli,
        renderer_for,
        stimulus_table,
    )
    from facedialect.meaning.ppca import ppca
    from facedialect.pipeline import STAGES
    from facedialect.preprocess.params import PreprocessParams
    from facedialect.preprocess.pipeline import preprocess_face
    from facedialect.synthetic.cultures import EastWestPreset, write_synthetic_database


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'facedialect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["EXPRESSIONS", "STAGES", "STUDY_AUS", "VOCABULARY", "EastWestPreset",
           "FaceIdentity", "PreprocessParams", "Run", "Study", "__version__", "ingest", "ppca",
           "preprocess_face", "render_face", "render_stimuli", "renderer_for",
           "stimulus_table", "write_synthetic_database"]
