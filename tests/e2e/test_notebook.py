"""The analyst notebook runs headless against a small published warehouse."""

from __future__ import annotations

import jupytext
import pytest
from nbclient import NotebookClient

from pipelines.paths import PROJECT_ROOT
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_analyst_notebook_executes(small_demo, tmp_path, monkeypatch):
    assert run_cli(small_demo, tmp_path, "2026-11-01") == 0
    monkeypatch.setenv("CXALIGN_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
    nb = jupytext.read(PROJECT_ROOT / "notebooks" / "analyst_tour.py")
    NotebookClient(nb, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()  # fmt: skip
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # Each of the three questions draws a chart and shows its table.
    charts = [o for o in outputs if "image/png" in o.get("data", {})]
    tables = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(charts) >= 3
    assert len(tables) >= 4  # the version line and one table per question
