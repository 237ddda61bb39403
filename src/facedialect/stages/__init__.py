"""The study's stages: one module per stage, one contract (:class:`~facedialect.stages.base.Stage`).

Each module (``ingest``, ``preprocess``, ``features``, ``train``, ``evaluate``, ``tuning``,
``robustness``, ``saliency``, ``meaning``, ``report``) defines ``STAGE``: its name, what it
reads and writes in the run directory, ``run(run, study, ctx) -> Summary`` and
``section(run)`` for the report. :data:`facedialect.pipeline.STAGES` lists them in order.
Stages do the run-directory I/O (through :mod:`facedialect.run`) and call the domain
packages, which take and return arrays and DataFrames.
"""
