"""The run layer: the run directory, the caches and the trained heads on disk.

The only code that reads and writes a study's run directory (``tables/``, ``figures/``,
``heads/``, ``manifest.json``) and the shared cache. Stages use it; the domain packages
(databases, preprocess, models, training, faces, saliency, meaning, stats) take and return
arrays and DataFrames.
"""

from facedialect.run.files import ArrayCache, atomic_write_bytes, atomic_write_text, cache_root
from facedialect.run.store import RunDir

__all__ = ["ArrayCache", "RunDir", "atomic_write_bytes", "atomic_write_text", "cache_root"]
