import base64
import re

import pandas as pd

from facedialect.report.html import Figure, Section, Table, Text, render_html
from facedialect.stages import PREPROCESS_COLUMNS
from facedialect.run.store import RunDir

EVIL = '<script>alert("x")</script>'


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
    from facedialect.report import build_report

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
    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")
    doc = render_html("T <b>", [Section("s1", "One & two", [
        Text("a < b"), Figure(png, "cap <i>", "f"),
        Table(pd.DataFrame({"x": range(100)}), "tab", "t", max_rows=10)])])
    assert "<title>T &lt;b&gt;</title>" in doc
    assert "One &amp; two" in doc and "a &lt; b" in doc and "cap &lt;i&gt;" in doc
    assert doc.count("<tr>") == 11  # header + 10 shown rows
    assert "90 more rows in the CSV" in doc
