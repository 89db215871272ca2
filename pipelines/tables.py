"""Write a polars frame into the warehouse as the table its contract describes."""

from __future__ import annotations

import duckdb
import polars as pl

from pipelines.contracts import Contract, quote_ident


def write_table(con: duckdb.DuckDBPyConnection, contract: Contract, frame: pl.DataFrame) -> None:
    """Create or replace <schema>.<name> from the frame, columns in contract order and types.

    A nullable column the frame does not have is written as NULL; a missing required one is
    an error. An empty frame (a model with nothing to report tonight) gives an empty table
    with the contract's columns.
    """
    if frame.height == 0:
        con.execute(f"create schema if not exists {contract.schema}")
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in contract.columns)
        con.execute(f"create or replace table {contract.schema}.{contract.name} ({cols})")
        return
    missing = [c.name for c in contract.columns if c.name not in frame.columns and not c.nullable]
    if missing:
        raise ValueError(f"{contract.name}: the frame lacks column(s) {', '.join(missing)}")
    con.execute(f"create schema if not exists {contract.schema}")
    con.register("_cx_frame", frame)
    try:
        cols = ", ".join(
            f"cast({quote_ident(c.name) if c.name in frame.columns else 'null'} as {c.sql_type}) "
            f"as {quote_ident(c.name)}"
            for c in contract.columns
        )
        con.execute(
            f"create or replace table {contract.schema}.{contract.name} as "
            f"select {cols} from _cx_frame"
        )
    finally:
        con.unregister("_cx_frame")
