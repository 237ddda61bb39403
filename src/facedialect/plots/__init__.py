"""Figures of the study, each drawn from a table (DataFrame) the stage wrote.

A figure function takes DataFrames (or arrays) and returns PNG bytes, or an ``<svg>``
element inside :func:`~facedialect.plots.figures.figure_format` ``("svg")``; ``None`` when
its table has nothing to draw. The stages draw their figures when they run and write them
to ``RUN/figures/``; the report inlines them.
"""
