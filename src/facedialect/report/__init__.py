"""The HTML report: blocks, sections and their assembly (imports no analysis code)."""

from facedialect.report.html import (
    Code,
    Figure,
    Section,
    Table,
    Text,
    figure_file,
    write_report,
)

__all__ = ["Code", "Figure", "Section", "Table", "Text", "figure_file", "write_report"]
