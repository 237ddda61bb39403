"""The run layer: the run directory, the caches of faces, and the trained heads on disk.

The only code that knows the run directory's layout (``tables/``, ``figures/``,
``heads/``, ``manifest.json``): :mod:`~facedialect.run.store` (:class:`RunDir`),
:mod:`~facedialect.run.caches` (pre-processed faces, screening values),
:mod:`~facedialect.run.heads` (heads files, the trained backbone) and
:mod:`~facedialect.run.tables` (views shared by stages). The stages use it; the domain
packages take and return arrays and DataFrames (:mod:`facedialect.files` has the generic
atomic writes and the cache folder).
"""

from facedialect.run.store import RunDir

__all__ = ["RunDir"]
