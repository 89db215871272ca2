"""Skip a model stage whose inputs have not changed since it last ran.

A quiet night (one new day of tickets and answers) changes no closed month of the
account-month panel, so the models would refit the same data. Each model stage fingerprints
its inputs (row count and an order-independent hash of every row of each input table), its
settings and the source of the code that computes it; when the fingerprint equals the one
stored with its last outputs, the outputs are kept and only their as-of date is updated.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb

from pipelines.paths import PROJECT_ROOT


def fingerprint(
    con: duckdb.DuckDBPyConnection, inputs: list[str], settings: str, code: list[Path]
) -> str:
    """inputs: the queries (or table names) whose rows the stage reads, exactly as it reads them."""
    h = hashlib.sha256(settings.encode())
    for source in inputs:
        relation = source if " " not in source.strip() else f"({source})"
        # bit_xor of row hashes: the same rows in any order give the same value.
        n, digest = con.execute(
            f"select count(*), bit_xor(hash(t)) from {relation} as t"
        ).fetchone()
        h.update(f"{source}:{n}:{digest}".encode())
    for path in sorted(code):
        h.update(path.read_bytes())
    return h.hexdigest()


def code_files(*relative: str) -> list[Path]:
    """Source files (under the project root) whose change must invalidate the cache."""
    out = []
    for rel in relative:
        p = PROJECT_ROOT / rel
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(
        "create table if not exists ops.model_cache (stage varchar primary key, "
        "fingerprint varchar not null, run_id varchar not null, computed_at timestamptz not null)"
    )


def unchanged(con: duckdb.DuckDBPyConnection, stage: str, digest: str, outputs: list[str]) -> bool:
    """True when the stage's last outputs were computed from inputs with this fingerprint."""
    _ensure(con)
    row = con.execute("select fingerprint from ops.model_cache where stage = ?", [stage]).fetchone()
    if row is None or row[0] != digest:
        return False
    present = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables"
        ).fetchall()
    }
    return all(o in present for o in outputs)


def remember(con: duckdb.DuckDBPyConnection, stage: str, digest: str, run_id: str) -> None:
    _ensure(con)
    con.execute("delete from ops.model_cache where stage = ?", [stage])
    con.execute("insert into ops.model_cache values (?, ?, ?, now())", [stage, digest, run_id])


def restamp(con: duckdb.DuckDBPyConnection, outputs: list[str], as_of: date) -> None:
    """Kept outputs carry tonight's as-of date."""
    for table in outputs:
        con.execute(f"update {table} set as_of = ?", [as_of])
