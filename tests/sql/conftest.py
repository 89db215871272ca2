"""Hand-built staging tables for SQL tests: type the rows, build the warehouse."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from pipelines.contracts import quote_ident, source_contracts
from pipelines.ingest import QUARANTINED_KEYS_SOURCES, quarantined_keys_table
from pipelines.sqlrunner import WarehouseParams, build_all


def make_staging(con: duckdb.DuckDBPyConnection, **rows_by_source: list[dict]) -> None:
    """Create every staging.<source> table with its contract's types, holding the given rows,
    and staging.<source>_quarantined_keys (the keys of quarantined rows) from
    `<source>_quarantined_keys` rows (e.g. revenue_quarantined_keys=[{"account_id": ..,
    "month": ..}])."""
    con.execute("set TimeZone = 'UTC'")
    con.execute("create schema if not exists staging")
    for name, contract in source_contracts().items():
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in contract.columns)
        con.execute(
            f"create or replace table staging.{name} ({cols}, _source_file varchar, _source_row bigint)"
        )
        for i, row in enumerate(rows_by_source.get(name, [])):
            unknown = set(row) - set(contract.column_names)
            assert not unknown, f"{name}: unknown columns {unknown}"
            names = list(row)
            con.execute(
                f"insert into staging.{name} ({', '.join(map(quote_ident, names))}, _source_file, "
                f"_source_row) values ({', '.join('?' for _ in names)}, 'test', {i + 1})",
                [row[n] for n in names],
            )
    for name in QUARANTINED_KEYS_SOURCES:
        contract = source_contracts()[name]
        keys = [contract.column(k) for k in contract.key]
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in keys)
        table = quarantined_keys_table(name)
        con.execute(
            f"create or replace table {table} ({cols}, _source_file varchar, _source_row bigint)"
        )
        for i, row in enumerate(rows_by_source.get(f"{name}_quarantined_keys", [])):
            con.execute(
                f"insert into {table} values ({', '.join('?' for _ in keys)}, 'test', ?)",
                [*(row[c.name] for c in keys), i + 1],
            )


def build_warehouse(con, as_of: date, **kw) -> None:
    build_all(con, WarehouseParams(as_of=as_of, **kw))


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def months_between(first: date, last: date) -> list[date]:
    out, y, m = [], first.year, first.month
    while (y, m) <= (last.year, last.month):
        out.append(date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
