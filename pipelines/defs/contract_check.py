"""The `contract` asset check every analytics table carries, in one place."""

import dagster as dg
import duckdb
import polars as pl

from pipelines.marts import analyst_contracts, apply_comments, conformance_problems
from pipelines.model_cache import restamp
from pipelines.tables import write_table


def contract_check(
    con: duckdb.DuckDBPyConnection, name: str, key: dg.AssetKey | None = None
) -> dg.AssetCheckResult:
    """COMMENT ON the table from its contract, then check it conforms (columns, types, NULLs, key)."""
    contract = analyst_contracts()[name]
    apply_comments(con, contract)
    problems = conformance_problems(con, contract)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name="contract",
        passed=not problems,
        description="; ".join(problems[:5]) if problems else None,
    )


def write_checked(
    con: duckdb.DuckDBPyConnection, frames: dict[str, tuple[dg.AssetKey, pl.DataFrame]]
) -> list[dg.AssetCheckResult]:
    """Write each model output as its contract's table and check it."""
    results = []
    for name, (key, frame) in frames.items():
        write_table(con, analyst_contracts()[name], frame)
        results.append(contract_check(con, name, key))
    return results


def keep_checked(
    con: duckdb.DuckDBPyConnection, outputs: dict[str, dg.AssetKey], as_of
) -> tuple[list[dg.AssetCheckResult], dict[str, int]]:
    """A model stage's last outputs kept for tonight (pipelines.model_cache): stamped with
    tonight's as-of date and checked again. Returns the checks and each table's rows."""
    restamp(con, [f"analytics.{name}" for name in outputs], as_of)
    results = [contract_check(con, name, key) for name, key in outputs.items()]
    rows = {
        name: con.execute(f"select count(*) from analytics.{name}").fetchone()[0]
        for name in outputs
    }
    return results, rows
