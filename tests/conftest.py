"""Shared fixtures: small landing zones and an in-process `cxalign run`."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from pipelines.cli import main
from pipelines.demo_data import generate

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _ephemeral_dagster(monkeypatch):
    # Tests run the job on an ephemeral Dagster instance, not the developer's.
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def run_cli(landing: Path, root: Path, as_of: str, config: Path | None = None) -> int:
    args = [
        "run",
        "--landing", str(landing),
        "--warehouse", str(root / "warehouse.duckdb"),
        "--out", str(root / "scorecards"),
        "--as-of", as_of,
    ]  # fmt: skip
    if config is not None:
        args += ["--config", str(config)]
    return main(args)


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def table_contents(db: Path, exclude: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    """Every table of a DuckDB file, rows sorted, for comparing whole warehouses."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_type = 'BASE TABLE' order by 1, 2"
        ).fetchall()
        out = {}
        for schema, name in tables:
            full = f"{schema}.{name}"
            if full in exclude:
                continue
            rows = con.execute(f'select * from "{schema}"."{name}"').fetchall()
            out[full] = sorted(rows, key=repr)
        return out
    finally:
        con.close()


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> Path:
    """A small demo landing zone (400 accounts, 8 months), written once per session."""
    landing = tmp_path_factory.mktemp("demo") / "landing"
    generate(landing, accounts=400, months=8, seed=11)
    return landing


@pytest.fixture
def demo_copy(small_demo, tmp_path) -> Path:
    landing = tmp_path / "landing"
    shutil.copytree(small_demo, landing)
    return landing
