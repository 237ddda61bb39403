"""Figures (matplotlib, each from a table in the run directory) and the HTML report."""

from facedialect.report.html import build_report

__all__ = ["build_report"]
