"""One self-contained HTML report assembled from named sections.

The report knows blocks (:class:`Figure`, :class:`Table`, :class:`Text`, :class:`Code`)
and :class:`Section` s; the stages build their sections from the run directory's tables
and figures (``Stage.section``) and :func:`write_report` assembles them. This package
imports no analysis code. Every string that comes from user data is escaped; images and
tables are embedded (``data:`` URIs; the stages' figures as inline SVG whose text the
browser draws in any script), so the file can be mailed or archived alone. A section that
fails becomes a note in the report (and a :class:`~facedialect.errors.ReportWarning`), and
the report is still written.
"""

from __future__ import annotations

import base64
import html
import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from facedialect._meta import __version__
from facedialect.errors import ReportWarning
from facedialect.files import atomic_write_text, table_csv
from facedialect.run.store import RunDir


@dataclass
class Figure:
    """A figure with its caption: PNG bytes, or an ``<svg>`` element (UTF-8 bytes) to inline.

    The stages draw their figures into ``figures/`` (SVG for charts, PNG for photographs);
    :func:`figure_file` reads them back for a section.
    """

    image: bytes
    caption: str
    name: str = "figure"

    @property
    def is_svg(self) -> bool:
        """Whether :attr:`image` is an SVG element (else PNG)."""
        return self.image.lstrip()[:4] == b"<svg"


@dataclass
class Table:
    """A table shown in the report and downloadable as CSV."""

    df: pd.DataFrame
    caption: str
    name: str
    max_rows: int = 60


@dataclass
class Text:
    """A paragraph of plain text (escaped)."""

    text: str


@dataclass
class Code:
    """Preformatted text (a study file, a manifest), escaped."""

    text: str
    caption: str = ""


@dataclass
class Section:
    """A named report section: a title and blocks in order."""

    id: str
    title: str
    blocks: list[Figure | Table | Text | Code | None] = field(default_factory=list)


SectionBuilder = Callable[[RunDir], "Section | None"]


#: Characters shown as escapes (``\r``, ``\x1b``, ``\xff``): controls other than newline
#: and tab, and the lone surrogates that stand for file-name bytes which are not UTF-8.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    c = m.group()
    if 0xDC80 <= ord(c) <= 0xDCFF:  # a byte of a file name that is not UTF-8
        return f"\\x{ord(c) - 0xDC00:02x}"
    return c.encode("unicode_escape").decode("ascii")


def esc(value: object) -> str:
    r"""HTML-escape any value (quotes included).

    Control characters (but newline and tab) and the bytes of file names that are not
    UTF-8 are shown as escapes (``Icon\r``, ``caf\xe9.png``), so the page is valid UTF-8.
    """
    return html.escape(_INVISIBLE.sub(_visible, str(value)), quote=True)


def _figure_html(fig: Figure) -> str:
    if fig.is_svg:  # matplotlib escapes the text; every id is prefixed per figure
        return (f'<figure><div class="svg" role="img" aria-label="{esc(fig.caption or fig.name)}"'
                f' data-name="{esc(fig.name)}">{fig.image.decode("utf-8")}</div>'
                f"<figcaption>{esc(fig.caption)}</figcaption></figure>")
    b64 = base64.b64encode(fig.image).decode("ascii")
    return (f'<figure><img alt="{esc(fig.caption or fig.name)}" '
            f'src="data:image/png;base64,{b64}">'
            f"<figcaption>{esc(fig.caption)}</figcaption></figure>")


def figure_file(run: RunDir, name: str, caption: str, missing: str = ""
                ) -> Figure | Text | None:
    """The figure a stage drew into ``figures/{name}.svg`` (or ``.png``), for a section.

    Parameters
    ----------
    run : RunDir
        The run directory.
    name : str
        The figure's file name without suffix.
    caption : str
        Its caption.
    missing : str
        Text shown when there is no such figure (nothing to draw); nothing is shown when
        empty.

    Returns
    -------
    Figure, Text or None
        The figure; the stage's note (``figure NAME could not be drawn: ERROR``) when
        drawing failed; ``missing``; ``None`` when there is nothing to show.
    """
    for suffix in (".svg", ".png"):
        path = run.figures / f"{name}{suffix}"
        if path.is_file():
            return Figure(path.read_bytes(), caption, name)
    note = run.read_manifest().get("figure_notes", {}).get(name)
    if note:
        return Text(note)
    return Text(missing) if missing else None


def _table_html(tab: Table) -> str:
    csv = table_csv(tab.df)  # as in tables/: any file name round-trips
    b64 = base64.b64encode(csv).decode("ascii")
    shown = tab.df.head(tab.max_rows)
    head = "".join(f"<th>{esc(c)}</th>" for c in shown.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in shown.itertuples(index=False)
    )
    more = (f"<p class='more'>{len(tab.df) - tab.max_rows} more rows in the CSV.</p>"
            if len(tab.df) > tab.max_rows else "")
    return (f"<div class='table'><p class='caption'>{esc(tab.caption)} "
            f"<a download=\"{esc(tab.name)}.csv\" href=\"data:text/csv;base64,{b64}\">"
            f"download CSV</a></p><table><thead><tr>{head}</tr></thead><tbody>{body}"
            f"</tbody></table>{more}</div>")


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def _block_html(block: Figure | Table | Text | Code) -> str:
    if isinstance(block, Figure):
        return _figure_html(block)
    if isinstance(block, Table):
        return _table_html(block)
    if isinstance(block, Code):
        cap = f"<p class='caption'>{esc(block.caption)}</p>" if block.caption else ""
        return f"{cap}<pre>{esc(block.text)}</pre>"
    return f"<p>{esc(block.text)}</p>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:2em}nav a{margin-right:1em}figure{margin:1em 0}figure img{max-width:100%;
border:1px solid #eee}figure svg{max-width:100%;height:auto;overflow:visible}
figcaption,.caption{font-size:.9em;color:#444}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;
padding:2px 6px;text-align:left}th{background:#f4f4f4}.table{overflow-x:auto}
.more{font-size:.85em;color:#666}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;
font-size:.8em}.meta{color:#666;font-size:.9em}
"""


def render_html(title: str, sections: list[Section], meta: str = "") -> str:
    """Render sections to a complete HTML document (all user strings escaped)."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1><p class='meta'>{esc(meta)}</p><nav>{nav}</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>')
        parts.extend(_block_html(b) for b in s.blocks if b is not None)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: RunDir, sections: Sequence[SectionBuilder],
                 out: str | Path | None = None) -> Path:
    """Assemble ``report.html`` from section builders, in the order given.

    Parameters
    ----------
    run : RunDir
        The run directory.
    sections : sequence of callable
        ``builder(run) -> Section | None``; None (its stage has not run) is left out, a
        builder that raises becomes a section that says so.
    out : path, optional
        Where to write (default ``RUN/report.html``).

    Returns
    -------
    Path
        The report file.
    """
    manifest = run.read_manifest()
    title = manifest.get("report_title") or manifest.get("study") or run.path.name
    built = [s for s in (safe_section(b, run) for b in sections) if s is not None]
    meta = (f"facedialect {__version__} · run directory {run.path} · "
            f"seed {manifest.get('seed', 'n/a')} · updated {manifest.get('updated', 'n/a')}")
    doc = render_html(f"facedialect report: {title}", built, meta)
    target = Path(out) if out else run.path / "report.html"
    atomic_write_text(target, doc)
    if out is None:
        run.update_manifest(report={"path": str(target)})
    return target


def safe_section(builder: SectionBuilder, run: RunDir) -> Section | None:
    """Run one section builder; a failure becomes a section that says so (and a warning)."""
    try:
        return builder(run)
    except Exception as exc:  # noqa: BLE001 - one section must not cost the whole report
        sid = getattr(builder, "__name__", "section").removesuffix("_section")
        note = f"section {sid} could not be built: {type(exc).__name__}: {exc}"
        warnings.warn(f"report: {note}", ReportWarning, stacklevel=2)
        return Section(sid, sid.replace("_", " ").capitalize(), [Text(note)])


def pretty_json(obj: object) -> str:
    """JSON text for provenance blocks."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
