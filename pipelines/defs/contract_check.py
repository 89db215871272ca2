"""The `contract` asset check every analytics table carries, in one place."""

from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import duckdb
import polars as pl

from pipelines.marts import analyst_contracts, apply_comments, conformance_problems
from pipelines.model_cache import remember, restamp, unchanged
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


KEPT_NOTE = " (inputs unchanged since the last run: results kept)"


@dataclass
class StageOutputs:
    """What a model stage wrote tonight, or kept from the last run (frames is then None)."""

    results: list[dg.AssetCheckResult]
    rows: dict[str, int]
    frames: dict[str, pl.DataFrame] | None

    @property
    def reused(self) -> bool:
        return self.frames is None

    @property
    def note(self) -> str:
        return KEPT_NOTE if self.reused else ""

    def events(self, outputs: dict[str, dg.AssetKey], seconds: float):
        """What the stage's asset yields: a materialization per output (its rows, the
        stage's seconds, whether it was kept), then the contract checks."""
        for name, key in outputs.items():
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={"dagster/row_count": self.rows[name], "seconds": round(seconds, 2),
                          "reused": self.reused},
            )  # fmt: skip
        yield from self.results


def write_or_keep(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    digest: str,
    outputs: dict[str, dg.AssetKey],
    as_of,
    run_id: str,
    compute: Callable[[], dict[str, pl.DataFrame]],
) -> StageOutputs:
    """A model stage's outputs, cached on the fingerprint of its inputs (pipelines.model_cache).

    Unchanged: last run's tables are kept, stamped with tonight's as-of date and checked
    again. Otherwise `compute()` gives each output's frame, which is written, checked and
    remembered with the fingerprint."""
    if unchanged(con, stage, digest, [f"analytics.{name}" for name in outputs]):
        restamp(con, [f"analytics.{name}" for name in outputs], as_of)
        results = [contract_check(con, name, key) for name, key in outputs.items()]
        rows = {
            name: con.execute(f"select count(*) from analytics.{name}").fetchone()[0]
            for name in outputs
        }
        return StageOutputs(results, rows, None)
    frames = compute()
    results = write_checked(con, {name: (outputs[name], frames[name]) for name in outputs})
    remember(con, stage, digest, run_id)
    return StageOutputs(results, {name: frames[name].height for name in outputs}, frames)
