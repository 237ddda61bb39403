import ast
import base64
import re
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

import facedialect.report
from facedialect.errors import ReportWarning
from facedialect.pipeline import STAGES, build_report
from facedialect.plots.figures import render
from facedialect.report.html import (
    Figure,
    Section,
    Table,
    Text,
    figure_file,
    render_html,
    safe_section,
    write_report,
)
from facedialect.run.store import RunDir
from facedialect.stages.base import draw
from facedialect.stages.preprocess import PREPROCESS_COLUMNS

EVIL = '<script>alert("x")</script>'

PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5E"
           "rkJggg==")


def _run_with_tables(tmp_path):
    run = RunDir(tmp_path / "run")
    images = pd.DataFrame({
        "db": ["A", "A", "A"],
        "path": [f"/data/{EVIL}.png", "/data/b.png", "/data/c.txt"],
        "subject": [EVIL, "02", "03"],
        "expression": ["happy", "sad", ""],
        "view": ["", "", ""], "session": ["", "", ""], "sex": ["", "", ""],
        "included": [True, True, False],
        "reason": ["", "", f"not an image: {EVIL}"],
        "sha256": ["a" * 64, "b" * 64, "c" * 64],
    })
    run.write_table("images", images)
    prep = pd.DataFrame([
        {"db": "A", "path": f"/data/{EVIL}.png", "detected": True, "x": 1, "y": 2, "w": 3,
         "h": 4, "n_faces": 1, "reason": "", "cache_key": "k"},
        {"db": "A", "path": "/data/b.png", "detected": False, "x": "", "y": "", "w": "",
         "h": "", "n_faces": 0, "reason": "no face detected: none", "cache_key": ""},
    ], columns=PREPROCESS_COLUMNS)
    run.write_table("preprocess", prep)
    run.update_manifest(seed=3, study=EVIL)
    return run


def test_report_escapes_user_strings_and_embeds_everything(tmp_path):
    run = _run_with_tables(tmp_path)
    path = build_report(run)
    text = path.read_text()
    assert EVIL not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    for sid in ("summary", "databases", "preprocessing", "provenance"):
        assert f'id="{sid}"' in text
    # no external resources: every src/href is a data: URI or an in-page anchor
    for ref in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert ref.startswith(("data:", "#")), ref
    # the embedded CSV of the exclusions decodes to the table behind it
    m = re.search(r'download="excluded_files.csv" href="data:text/csv;base64,([^"]+)"', text)
    assert m is not None
    csv = base64.b64decode(m.group(1)).decode()
    assert "c.txt" in csv and "not an image" in csv
    assert run.read_manifest()["report"]["path"] == str(path)


def test_render_html_blocks():
    png = base64.b64decode(PNG_1PX)
    doc = render_html("T <b>", [Section("s1", "One & two", [
        Text("a < b"), Figure(png, "cap <i>", "f"),
        Table(pd.DataFrame({"x": range(100)}), "tab", "t", max_rows=10)])])
    assert "<title>T &lt;b&gt;</title>" in doc
    assert "One &amp; two" in doc and "a &lt; b" in doc and "cap &lt;i&gt;" in doc
    assert doc.count("<tr>") == 11  # header + 10 shown rows
    assert "90 more rows in the CSV" in doc


# ------------------------------------------------------------- figures drawn at stage time
def _line(label: str = "x") -> bytes:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1], label=label)
    ax.set_title(label)
    return render(fig)


def _nothing() -> None:
    return None


def _broken() -> bytes:
    raise ValueError("boom")


def test_draw_writes_an_svg(tmp_path):
    run = RunDir(tmp_path / "run")
    assert draw(run, "lines", _line, "a <label>") is True
    svg = (run.figures / "lines.svg").read_bytes()
    assert svg.startswith(b"<svg")       # inside figure_format("svg"): no XML prolog
    assert b"a &lt;label&gt;" in svg     # the label is text, escaped
    assert not (run.figures / "lines.png").exists()
    assert "figure_notes" not in run.read_manifest()


def test_draw_removes_a_stale_file_when_there_is_nothing_to_draw(tmp_path):
    run = RunDir(tmp_path / "run")
    assert draw(run, "lines", _line)
    assert draw(run, "lines", _nothing) is False
    assert not (run.figures / "lines.svg").exists()
    assert draw(run, "lines", _nothing) is False   # no file, nothing to remove: fine
    assert figure_file(run, "lines", "cap", missing="nothing to draw") == Text("nothing to draw")


def test_draw_notes_a_failure_and_clears_the_note_once_it_draws(tmp_path):
    run = RunDir(tmp_path / "run")
    assert draw(run, "lines", _line)
    with pytest.warns(ReportWarning,
                      match="report: figure lines could not be drawn: ValueError: boom"):
        assert draw(run, "lines", _broken) is False
    assert not (run.figures / "lines.svg").exists()  # the older figure is not shown
    note = "figure lines could not be drawn: ValueError: boom"
    assert run.read_manifest()["figure_notes"] == {"lines": note}
    assert figure_file(run, "lines", "cap", missing="nothing") == Text(note)
    assert draw(run, "lines", _line)
    assert run.read_manifest()["figure_notes"] == {}
    assert isinstance(figure_file(run, "lines", "cap"), Figure)


def test_figure_file_returns_figure_note_missing_text_or_none(tmp_path):
    run = RunDir(tmp_path / "run")
    draw(run, "drawn", _line)
    fig = figure_file(run, "drawn", "a caption")
    assert isinstance(fig, Figure) and fig.is_svg
    assert (fig.caption, fig.name) == ("a caption", "drawn")
    assert fig.image == (run.figures / "drawn.svg").read_bytes()
    png = base64.b64decode(PNG_1PX)
    run.write_figure("raster", png)          # a PNG figure (contact sheets) is found too
    fig = figure_file(run, "raster", "cap")
    assert isinstance(fig, Figure) and not fig.is_svg and fig.image == png
    run.update_manifest(figure_notes={"failed": "figure failed could not be drawn: E: x"})
    assert figure_file(run, "failed", "cap", missing="m") == Text(
        "figure failed could not be drawn: E: x")
    assert figure_file(run, "absent", "cap", missing="No rows to draw.") == Text(
        "No rows to draw.")
    assert figure_file(run, "absent", "cap") is None


# --------------------------------------------------------------- sections and their order
def _ids(html: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)">', html)


def test_write_report_builds_sections_in_the_order_given(tmp_path):
    run = RunDir(tmp_path / "run")
    run.update_manifest(study="order", seed=7)

    def first_section(run):
        return Section("first", "First", [Text("one")])

    def absent_section(run):
        return None                          # its stage has not run: left out

    def broken_section(run):
        raise KeyError("culture")

    def last_section(run):
        return Section("last", "Last", [Text("two")])

    with pytest.warns(ReportWarning, match="report: section broken could not be built"):
        path = write_report(run, [first_section, absent_section, broken_section,
                                  last_section])
    assert path == run.path / "report.html"
    html = path.read_text(encoding="utf-8")
    assert _ids(html) == ["first", "broken", "last"]
    assert "section broken could not be built: KeyError: &#x27;culture&#x27;" in html
    assert "<title>facedialect report: order</title>" in html
    assert run.read_manifest()["report"]["path"] == str(path)
    out = write_report(run, [last_section], tmp_path / "elsewhere.html")
    assert out == tmp_path / "elsewhere.html" and _ids(out.read_text()) == ["last"]
    assert run.read_manifest()["report"]["path"] == str(path)   # only the run's own report


def test_safe_section_passes_a_section_through_and_notes_a_failure(tmp_path):
    run = RunDir(tmp_path / "run")
    ok = Section("s", "S", [Text("t")])
    assert safe_section(lambda r: ok, run) is ok
    assert safe_section(lambda r: None, run) is None

    def meaning_section(run):
        raise ValueError("no ratings")

    with pytest.warns(ReportWarning, match="report: section meaning could not be built: "
                      "ValueError: no ratings"):
        sec = safe_section(meaning_section, run)
    assert (sec.id, sec.title) == ("meaning", "Meaning")
    assert sec.blocks == [Text("section meaning could not be built: ValueError: no ratings")]


def test_pipeline_report_has_the_stage_sections_in_order(tmp_path):
    from test_faults_figures import SHAPES, build_run

    run = build_run(SHAPES["typical"], tmp_path)
    html = build_report(run.path).read_text(encoding="utf-8")
    stage_ids = [sec.id for sec in (s.section(run) for s in STAGES if s.name != "report")
                 if sec is not None]
    assert _ids(html) == ["summary", *stage_ids, "provenance"]
    assert stage_ids == ["databases", "preprocessing", "training", "classification", "tuning",
                         "saliency", "meaning"]
    out = build_report(run, tmp_path / "copy.html")
    assert _ids(out.read_text(encoding="utf-8")) == _ids(html)


# ----------------------------------------------------------------------- layering of report/
ANALYSIS = ("stats", "stages", "training", "meaning", "saliency", "faces", "databases",
            "preprocess", "models", "pipeline")


def _imported_modules(path: Path) -> set[str]:
    """The absolute names of every module ``path`` imports (relative imports resolved)."""
    package = "facedialect.report".split(".")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{a.name}" for a in node.names}   # from facedialect import x
    return found


def test_report_package_imports_no_analysis_code():
    folder = Path(facedialect.report.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert {f.name for f in files} >= {"__init__.py", "html.py"}
    # the parser sees the imports that are there
    assert "facedialect.run.store" in _imported_modules(folder / "html.py")
    for path in files:
        bad = sorted(m for m in _imported_modules(path)
                     if m.split(".")[0] == "facedialect" and m.count(".")
                     and m.split(".")[1] in ANALYSIS)
        assert bad == [], f"{path.name} imports {bad}"
