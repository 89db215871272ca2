"""The DuckDB files: where the pipeline writes, and how a finished night is published.

Two files, because DuckDB allows one writing process and no readers beside it:

* the **working database** (`<dir>/.cxalign/<name>.work.duckdb`): the pipeline's
  own state, raw files' rows and every table being rebuilt. Only the nightly run
  opens it.
* the **published warehouse** (`--warehouse`, default `data/warehouse.duckdb`):
  what analysts open read-only. A run never writes it in place. When every
  stage and blocking check has passed, the working database is checkpointed,
  copied beside the published file and renamed over it in one atomic
  `rename(2)`: a reader sees the old version or the new one, never half of one,
  and a reader that still holds the old file keeps reading it until it closes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from pipelines.settings import DuckDBSettings


def work_path(warehouse: str | Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.parent / ".cxalign" / f"{warehouse.stem}.work.duckdb"


def connect(
    path: str | Path, duck: DuckDBSettings | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the pipeline's session settings (UTC, limits)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    if duck and duck.memory_limit:
        con.execute("set memory_limit = ?", [duck.memory_limit])
    if duck and duck.threads:
        con.execute("set threads = ?", [duck.threads])
    return con


@contextmanager
def session(
    path: str | Path, duck: DuckDBSettings | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, duck, read_only)
    try:
        yield con
    finally:
        con.close()


def record_version(con: duckdb.DuckDBPyConnection, run_id: str, as_of) -> None:
    """Write analytics.warehouse_version: this run and every analytics table's row count."""
    con.execute(
        """
        create or replace table analytics.warehouse_version (
            run_id varchar not null,
            as_of date not null,
            published_at timestamptz not null,
            table_name varchar not null,
            row_count bigint not null
        )
        """
    )
    tables = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analytics' "
            "and table_type = 'BASE TABLE' and table_name <> 'warehouse_version' order by 1"
        ).fetchall()
    ]
    now = con.execute("select now()").fetchone()[0]
    for t in tables:
        n = con.execute(f'select count(*) from analytics."{t}"').fetchone()[0]
        con.execute(
            "insert into analytics.warehouse_version values (?, ?, ?, ?, ?)",
            [run_id, as_of, now, t, n],
        )


def publish(work: str | Path, warehouse: str | Path) -> Path:
    """Atomically replace the published warehouse with a copy of the working database."""
    work, warehouse = Path(work), Path(warehouse)
    with session(work) as con:
        con.execute("checkpoint")
    warehouse.parent.mkdir(parents=True, exist_ok=True)
    staging = warehouse.with_name(f".{warehouse.name}.publishing-{os.getpid()}")
    try:
        shutil.copyfile(work, staging)
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, warehouse)
    finally:
        staging.unlink(missing_ok=True)
    return warehouse


def swap_in(building: Path, target: Path) -> None:
    """Replace directory `target` with `building`: the old version out, the new one in.

    Two renames with a moment between them in which `target` is missing; a reader never
    sees a mixture of two nights. The old version is deleted afterwards.
    """
    building, target = Path(building), Path(target)
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(building, target)
    shutil.rmtree(old, ignore_errors=True)
