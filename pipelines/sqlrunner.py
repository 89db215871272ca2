"""Run the warehouse SQL: `sql/<layer>/<name>.sql`, one file per table, in dependency order.

Each file is a single `select` (import CTEs, one CTE per step, `select * from
final`). The runner wraps it in `create or replace` and binds the parameters:

    layer          schema        materialised as
    staging/       staging       view    (rename, derive per row)
    intermediate/  intermediate  table   (joins, windows)
    marts/         analytics     table   (what analysts query)

A file may choose otherwise with a line `-- materialized: view` (or `table`) in its header
comment, as dbt's `config(materialized=...)` does: a view where storing the rows costs more
than computing them again for the one or two queries that read them (`int_cx_events`).

A file's dependencies are the `staging.`, `intermediate.` and `analytics.`
tables it names; parameters are `$name` and are always bound, never formatted
into the text, except in a view, which DuckDB cannot prepare: there numbers and dates (and
nothing else) are written in as typed literals (`sqlparams.inline_params`). Importable and
testable without Dagster.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

from pipelines.model_cache import content, content_rows, record_table, table_state
from pipelines.paths import SQL_DIR
from pipelines.sqlparams import PARAM, inline_params

LAYERS = {"staging": ("staging", "view"), "intermediate": ("intermediate", "table"),
          "marts": ("analytics", "table")}  # fmt: skip
_REF = re.compile(r"\b(staging|intermediate|analytics)\.([a-z_][a-z0-9_]*)\b")
_MATERIALIZED = re.compile(r"^materialized:\s*(\w+)$", re.MULTILINE)


@dataclass(frozen=True)
class SqlModel:
    layer: str
    name: str
    path: Path
    sql: str

    @property
    def schema(self) -> str:
        return LAYERS[self.layer][0]

    @property
    def materialization(self) -> str:
        chosen = _MATERIALIZED.search("\n".join(self.header))
        if chosen is None:
            return LAYERS[self.layer][1]
        if chosen.group(1) not in ("view", "table"):
            raise ValueError(
                f"{self.path}: materialized must be view or table, not {chosen.group(1)!r}"
            )
        return chosen.group(1)

    @property
    def measured(self) -> bool:
        """Whether its content is measured after a build (for early cutoff): every table,
        and a view outside staging, which stands where a table would. A staging view's rows
        follow its one staged table, whose content is already recorded."""
        return self.materialization == "table" or self.layer != "staging"

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def header(self) -> list[str]:
        """The comment lines the file opens with, without their `--`."""
        lines = []
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            lines.append(line[2:].strip())
        return lines

    @property
    def refs(self) -> set[str]:
        body = _strip_comments(self.sql)
        return {f"{s}.{t}" for s, t in _REF.findall(body)} - {self.relation}

    @property
    def params(self) -> set[str]:
        return set(PARAM.findall(_strip_comments(self.sql)))


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


@cache
def models(sql_dir: Path = SQL_DIR) -> dict[str, SqlModel]:
    out = {}
    for layer in LAYERS:
        for path in sorted((sql_dir / layer).glob("*.sql")):
            m = SqlModel(layer, path.stem, path, path.read_text(encoding="utf-8"))
            out[m.relation] = m
    return out


def build_order(sql_dir: Path = SQL_DIR) -> list[SqlModel]:
    ms = models(sql_dir)
    graph = {rel: {r for r in m.refs if r in ms} for rel, m in ms.items()}
    return [ms[rel] for rel in TopologicalSorter(graph).static_order()]


def last_complete_day(at: datetime) -> date:
    """The as-of date of a night that runs at `at`: the last UTC day that is over by then.

    An as-of date is a day whose data is complete: everything dated on it or before has
    happened (cancellations late that day included), so data runs through the as-of day and
    a month is complete when its last day is on or before it. A run at 02:00 on the 31st
    (UTC) is therefore as of the 30th. `at` must carry its time zone; a naive one is UTC."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).date() - timedelta(days=1)


@dataclass(frozen=True)
class WarehouseParams:
    """Everything the SQL binds; names match the `$name`s in the files."""

    as_of: date
    cx_window_months: int = 6
    notice_lag_months: int = 1

    @property
    def months_ended_before(self) -> date:
        """The first day of the month in which the day after as_of falls: every month before
        it has ended by the as-of date (its last day is on or before it; see
        last_complete_day). A model that only needs to know which months are
        over binds this rather than $as_of, so a new day within a month leaves its
        fingerprint, and a quiet night its rebuild, alone."""
        return (self.as_of + timedelta(days=1)).replace(day=1)

    def as_dict(self) -> dict:
        return {
            "as_of": self.as_of,
            "months_ended_before": self.months_ended_before,
            "cx_window_months": self.cx_window_months,
            "notice_lag_months": self.notice_lag_months,
        }


def build(con: duckdb.DuckDBPyConnection, model: SqlModel, params: WarehouseParams) -> int | None:
    """Create or replace one model; returns its row count for tables."""
    con.execute(f"create schema if not exists {model.schema}")
    available = params.as_dict()
    missing = model.params - set(available)
    if missing:
        raise KeyError(f"{model.path.name} uses unknown parameter(s) {sorted(missing)}")
    kind = _kind(con, model.relation)
    if kind is not None and kind != model.materialization:
        # The file changed its materialization: `create or replace` cannot change the kind.
        con.execute(f"drop {kind} {model.relation}")
    body = model.sql.strip().rstrip(";")
    used = {k: available[k] for k in model.params}
    if model.materialization == "view":  # DuckDB cannot bind parameters into a view
        # Every known $name, also one only a comment mentions (the view keeps its comments).
        con.execute(f"create or replace view {model.relation} as\n{inline_params(body, available)}")
    else:
        con.execute(f"create or replace table {model.relation} as\n{body}", used)
    if model.materialization == "table":
        return con.execute(f"select count(*) from {model.relation}").fetchone()[0]
    return None


def build_all(con: duckdb.DuckDBPyConnection, params: WarehouseParams) -> dict[str, int | None]:
    return {m.relation: build(con, m, params) for m in build_order()}


def _kind(con: duckdb.DuckDBPyConnection, relation: str) -> str | None:
    """'table', 'view' or None (absent)."""
    schema, name = relation.split(".")
    row = con.execute(
        "select table_type from information_schema.tables where table_schema = ? "
        "and table_name = ?",
        [schema, name],
    ).fetchone()
    return None if row is None else ("view" if row[0] == "VIEW" else "table")


def built_from(con: duckdb.DuckDBPyConnection, model: SqlModel, params: WarehouseParams) -> str:
    """The fingerprint of what the model would be built from: its SQL, the parameters it
    uses and the recorded content of every table or view it reads."""
    used = {k: v for k, v in params.as_dict().items() if k in model.params}
    h = hashlib.sha256(model.sql.encode())
    h.update(json.dumps(used, sort_keys=True, default=str).encode())
    for ref in sorted(model.refs):
        state = table_state(con, ref)
        # Unrecorded (a working database from before states were kept): measure it now.
        ref_content = state[1] if state else record_table(con, ref, content(con, ref))
        h.update(f"{ref}={ref_content}".encode())
    return h.hexdigest()


def build_if_changed(
    con: duckdb.DuckDBPyConnection, model: SqlModel, params: WarehouseParams, run_id: str
) -> tuple[int | None, bool]:
    """Build the model unless it exists and was built from exactly these inputs.

    Returns (rows for a table or measured view, kept). A staging view's content is its
    fingerprint (its rows follow from its SQL and its one staged table); a table's, or an
    intermediate view's, is measured after each build, so a rebuild that comes out the same
    leaves its dependants' fingerprints unchanged (early cutoff).
    """
    fingerprint = built_from(con, model, params)
    state = table_state(con, model.relation)
    if state and state[0] == fingerprint and _kind(con, model.relation) == model.materialization:
        if model.materialization == "table":
            rows = con.execute(f"select count(*) from {model.relation}").fetchone()[0]
        else:
            rows = content_rows(state[1]) if model.measured else None
        return rows, True
    rows = build(con, model, params)
    measured = content(con, model.relation) if model.measured else fingerprint
    record_table(con, model.relation, measured, fingerprint, run_id)
    return (content_rows(measured) if rows is None and model.measured else rows), False
