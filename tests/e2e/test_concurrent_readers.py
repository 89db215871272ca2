"""Analysts keep reading while the nightly run publishes: no lock error, no half version."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


def test_reader_in_another_process_sees_only_complete_versions(demo_copy, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0

    stop, result = tmp_path / "stop", tmp_path / "reader.json"
    reader = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("reader.py")), str(warehouse), str(stop),
         str(result)],
    )  # fmt: skip
    try:
        time.sleep(0.5)
        # Two more nights publish while the reader reads; the second has new data.
        assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0
        (demo_copy / "churn_events" / "late.csv").write_text(
            "account_id,churned_at,churn_type\nACC-0000001,2026-10-30,voluntary\n"
        )
        assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0
        time.sleep(0.5)
    finally:
        stop.touch()
        reader.wait(timeout=60)
    seen = json.loads(result.read_text())
    assert seen["errors"] == []
    assert seen["reads"] >= 10
    assert len(seen["versions"]) == 3  # the first night, then each new one, in order
