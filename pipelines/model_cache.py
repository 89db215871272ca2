"""Skip work whose inputs have not changed since it last ran (state-based, like dbt's).

A quiet night (one new day of tickets and answers) changes no closed month of the
account-month panel, so most of the warehouse and the models would rebuild the same rows.

* Tables: every table the warehouse SQL reads or builds has its content recorded in
  `ops.table_state` (row count and an order-independent sum of row hashes), with the
  fingerprint of what it was built from (its SQL, the parameters it uses and its inputs'
  contents). A model whose inputs' contents and SQL are unchanged is kept; a rebuilt table
  whose content came out the same stops the change there (early cutoff), so its dependants
  are kept too.
* Model stages (`ops.model_cache`): each fingerprints the rows it reads, its settings and the
  source of the code that computes it; when the fingerprint equals the one stored with its
  last outputs, the outputs are kept and only their as-of date is updated.

`cxalign run --full-refresh` forgets both, and how each landing file was read, so every file
is loaded again and everything rebuilt.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import duckdb

from pipelines.paths import PROJECT_ROOT
from pipelines.sqlparams import used_params


def fingerprint(
    con: duckdb.DuckDBPyConnection, inputs: list[str], settings: str, code: list[Path],
    params: dict | None = None,
) -> str:  # fmt: skip
    """inputs: the queries whose rows the stage reads, or the tables they read them from
    (equal tables give equal rows: a coarser key, never a wrong one); params: the values
    bound to their $names. A table's recorded content (ops.table_state, kept by every writer
    of a warehouse table) stands for reading it again."""
    h = hashlib.sha256(settings.encode())
    for source in inputs:
        if " " in source.strip():
            measured = content(con, f"({source})", params)
        else:
            state = table_state(con, source)
            measured = state[1] if state else content(con, source)
        h.update(f"{source}:{measured}".encode())
    for path in sorted(code):
        h.update(path.read_bytes())
    return h.hexdigest()


def code_files(*relative: str) -> list[Path]:
    """Source files (under the project root) whose change must invalidate the cache: a
    folder stands for every .py and .sql file under it."""
    out = []
    for rel in relative:
        p = PROJECT_ROOT / rel
        out += sorted([*p.rglob("*.py"), *p.rglob("*.sql")]) if p.is_dir() else [p]
    return out


def model_code(*stage_files: str) -> list[Path]:
    """What a model stage's results depend on in code, by construction: every file of the
    statistics (models/) and of the SQL (sql/), and the stage's own files. A change to any
    of them, a shared helper included, recomputes the stage on the next night."""
    return code_files("models", "sql", *stage_files)


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


def content(con: duckdb.DuckDBPyConnection, relation: str, params: dict | None = None) -> str:
    """Row count and the sum of row hashes: the same rows in any order give the same value,
    and (unlike a XOR) a pair of identical rows does not cancel out."""
    sql = f"select count(*), sum(hash(t)) from {relation} as t"
    n, total = con.execute(sql, used_params(sql, params or {})).fetchone()
    return f"{n}:{total or 0}"


def _parts(measured: str) -> tuple[int, int]:
    """(rows, hash sum) of a content as `content` writes it."""
    rows, total = measured.split(":")
    return int(rows), int(total)


def content_rows(measured: str) -> int:
    """The row count in a content."""
    return _parts(measured)[0]


def content_sum(a: str, b: str) -> str:
    """The content of two sets of rows together (counts and hash sums add exactly)."""
    (na, sa), (nb, sb) = _parts(a), _parts(b)
    return f"{na + nb}:{sa + sb}"


def content_difference(whole: str, part: str) -> str:
    """The content of `whole` without the rows of `part` (which must be among them)."""
    (nw, sw), (np_, sp) = _parts(whole), _parts(part)
    return f"{nw - np_}:{sw - sp}"


def _ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists ops")
    con.execute(
        "create table if not exists ops.table_state (relation varchar primary key, "
        "built_from varchar, content varchar not null, run_id varchar, "
        "recorded_at timestamptz not null)"
    )


def table_state(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[str | None, str] | None:
    """(built_from, content) as last recorded, or None."""
    _ensure_state(con)
    row = con.execute(
        "select built_from, content from ops.table_state where relation = ?", [relation]
    ).fetchone()
    return (row[0], row[1]) if row else None


def record_table(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    table_content: str,
    built_from: str | None = None,
    run_id: str | None = None,
) -> str:
    """Record what a table now holds (every writer of a table the SQL reads must call this)."""
    _ensure_state(con)
    con.execute("delete from ops.table_state where relation = ?", [relation])
    con.execute(
        "insert into ops.table_state values (?, ?, ?, ?, now())",
        [relation, built_from, table_content, run_id],
    )
    return table_content


def forget_all(con: duckdb.DuckDBPyConnection) -> None:
    """--full-refresh: nothing counts as built from unchanged inputs."""
    _ensure(con)
    _ensure_state(con)
    con.execute("delete from ops.model_cache")
    con.execute("delete from ops.table_state")
    con.execute("drop table if exists ops.chart_cache")  # the scorecards' drawn charts
    from pipelines.landing import forget_loaded_files

    forget_loaded_files(con)
