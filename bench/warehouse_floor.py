"""The DuckDB floor: the same warehouse SQL, run directly in one DuckDB process.

    .venv/bin/python bench/warehouse_floor.py WORK.duckdb [--as-of 2026-11-01] [--memory-limit 5GB]

Copies the database (it must hold the staged tables of a finished run), then
builds every sql/ model in dependency order with no orchestration, no checks and
no comments, and prints the wall time as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from pipelines.settings import DuckDBSettings
from pipelines.sqlrunner import WarehouseParams, build_all
from pipelines.warehouse import connect


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("work_db", type=Path)
    p.add_argument("--as-of", type=date.fromisoformat, default=date(2026, 11, 1))
    p.add_argument("--memory-limit", help="DuckDB's memory_limit, as the night had it "
                   "(default: DuckDB's own, 80%% of RAM)")  # fmt: skip
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "floor.duckdb"
        shutil.copyfile(args.work_db, copy)
        con = connect(copy, DuckDBSettings(memory_limit=args.memory_limit))
        started = time.perf_counter()
        rows = build_all(con, WarehouseParams(as_of=args.as_of))
        seconds = time.perf_counter() - started
        con.close()
    print(json.dumps({"floor_seconds": round(seconds, 2), "tables": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
