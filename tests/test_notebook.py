"""The quick-start notebook (docs/examples/quickstart.ipynb) runs from top to bottom."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="the test extra installs nbformat")
    nbclient = pytest.importorskip("nbclient", reason="the test extra installs nbclient")
    monkeypatch.setenv("FACEDIALECT_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                          for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "matched" in text and "swapped" in text
    assert "(True" in text or "True)" in text  # the report was written
    assert (tmp_path / "quickstart-demo" / "run" / "report.html").is_file()
    assert not any(o.get("output_type") == "error" for c in nb.cells
                   for o in c.get("outputs", []))
