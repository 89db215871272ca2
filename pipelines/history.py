"""The verdict and ingestion history kept across nights: analytics.unit_alignment_history and
analytics.ingest_history (contracts in data_contracts/).

Written by the publish step, in the working database the night is published from, so each
published warehouse holds every night before it and itself. The history is taken from the
warehouse published last, not from the working database: a night that wrote its rows and then
failed to publish (a contract check, a crash) left them there, and they are no part of it. A
night published again with the same as-of date (a rerun) replaces that night's rows: rerunning
never duplicates a night. A night that fails publishes nothing and adds nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import duckdb

from pipelines.alerts import ensure_sent_table
from pipelines.contracts import quote_ident
from pipelines.freshness import night_end, source_freshness
from pipelines.marts import analyst_contracts
from pipelines.settings import Settings

HISTORY_TABLES = ("unit_alignment_history", "ingest_history")


def ensure_history_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables from their contracts if this working database has none."""
    con.execute("create schema if not exists analytics")
    for name in HISTORY_TABLES:
        contract = analyst_contracts()[name]
        cols = ", ".join(f"{quote_ident(c.name)} {c.sql_type}" for c in contract.columns)
        con.execute(f"create table if not exists analytics.{name} ({cols})")
        for c in contract.columns:  # a table from before a column was added to its contract
            con.execute(
                f"alter table analytics.{name} add column if not exists "
                f"{quote_ident(c.name)} {c.sql_type}"
            )


def record_history(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: date, settings: Settings, now: datetime,
    published: Path | None = None,
) -> dict[str, int]:  # fmt: skip
    """The history as the warehouse `published` last holds it (none: no night published yet),
    and tonight's rows of both tables (replacing a rerun's); rows written per table."""
    ensure_history_tables(con)
    _take_published_history(con, published)
    con.execute("delete from analytics.unit_alignment_history where as_of = ?", [as_of])
    con.execute(
        """
        insert into analytics.unit_alignment_history by name
        select ?::date as as_of, business_unit, ? as run_id, ?::timestamptz as published_at,
               outcome_tested, quadrant, quadrant_probability, confidence, link_verdict,
               link_effect, link_ci_low, link_ci_high, link_effect_shrunk, execution_level, execution_score,
               execution_ci_low, execution_ci_high, method_version
        from analytics.unit_alignment
        """,
        [as_of, run_id, now],
    )
    fresh = source_freshness(con, settings, night_end(as_of, now))
    con.execute("delete from analytics.ingest_history where as_of = ?", [as_of])
    _record_loaded_rows(con, run_id, as_of)
    con.register("_cx_freshness", fresh)
    try:
        con.execute(
            """
            insert into analytics.ingest_history by name
            with runs as (
                select * from analytics.ingest_runs where run_id = ?
            ),
            final as (
                select ?::date as as_of,
                       f.source,
                       ? as run_id,
                       ?::timestamptz as published_at,
                       r.rows_read,
                       r.rows_staged,
                       r.rows_quarantined,
                       coalesce(r.rows_quarantined / nullif(r.rows_read, 0), 0)::double
                           as quarantine_share,
                       r.files,
                       r.files_loaded,
                       f.cadence,
                       f.last_arrived_at,
                       f.days_since_arrival,
                       f.stale,
                       -- NULL for a source this run did not ingest (no file)
                       if(r.source is null, null, coalesce(q.rows_loaded, 0)) as rows_loaded,
                       if(r.source is null, null, coalesce(q.rows_loaded_quarantined, 0))
                           as rows_loaded_quarantined,
                       (q.rows_loaded_quarantined / nullif(q.rows_loaded, 0))::double
                           as loaded_quarantine_share,
                       q.quarantined_files_digest,
                from _cx_freshness as f
                left join runs as r using (source)
                left join _cx_loaded as q using (source)
            )
            select * from final
            """,
            [run_id, as_of, run_id, now],
        )
    finally:
        con.unregister("_cx_freshness")
        con.execute("drop table if exists _cx_loaded")
    return {
        name: con.execute(f"select count(*) from analytics.{name} where as_of = ?", [as_of])
        .fetchone()[0]
        for name in HISTORY_TABLES
    }


def _record_loaded_rows(con: duckdb.DuckDBPyConnection, run_id: str, as_of: date) -> None:
    """Temp table _cx_loaded: per source, the rows of the files the night's runs loaded and how many of them were
    quarantined, with a digest of those files that hold quarantined rows (their names and
    contents: the quarantine-jump alert's key, so a new bad file is a new alert).

    The night's files are those whose raw._files.run_id is the run or any run of the same
    as-of date (analytics.ingest_runs): a rerun that loads nothing new keeps the night's
    figures. A row is counted by the file it was read from, never parsed back out of its
    name: raw.<source>._origin_file for a row built from a vendor record (its _source_file
    adds ' #<part>'), else its _source_file; a malformed record by raw._rejects.source_file.
    Both figures count rows of raw.<source> (for a vendor file: rows built, not records),
    and the quarantined ones are among them, so the share stays within 0 and 1."""
    tables = {
        f"{s}.{t}"
        for s, t in con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = current_database()"
        ).fetchall()
    }
    sources = (
        [
            src
            for (src,) in con.execute("select distinct source from raw._files").fetchall()
            if f"raw.{src}" in tables
        ]
        if {"raw._files", "analytics.quarantine", "analytics.ingest_runs"} <= tables
        else []
    )
    if not sources:
        con.execute(
            "create or replace temp table _cx_loaded (source varchar, rows_loaded bigint, "
            "rows_loaded_quarantined bigint, quarantined_files_digest varchar)"
        )
        return
    read = [
        f"select '{src.replace(chr(39), chr(39) * 2)}' as source, "
        f"coalesce(_origin_file, _source_file) as file, _source_file, _source_row "
        f"from raw.{quote_ident(src)}"
        for src in sorted(sources)
    ]
    if "raw._rejects" in tables:
        read.append("select source, source_file, source_file, source_row from raw._rejects")
    union = "\n            union all\n            ".join(read)
    sql = f"""
        create or replace temp table _cx_loaded as
        with night_files as (
            select source, source_file, content_sha256
            from raw._files
            where run_id = $run
               or run_id in (select run_id from analytics.ingest_runs where as_of = $as_of)
        ),
        read_rows as (
            {union}
        ),
        loaded as (
            select r.source, r.file, f.content_sha256,
                   exists (select 1 from analytics.quarantine as q
                           where q.source = r.source and q.source_file = r._source_file
                             and q.source_row = r._source_row) as quarantined
            from read_rows as r
            join night_files as f on f.source = r.source and f.source_file = r.file
        ),
        final as (
            select source,
                   count(*) as rows_loaded,
                   count(*) filter (where quarantined) as rows_loaded_quarantined,
                   sha256(string_agg(distinct file || chr(0) || content_sha256, chr(10)
                                     order by file || chr(0) || content_sha256)
                          filter (where quarantined)) as quarantined_files_digest,
            from loaded
            group by source
        )
        select * from final
    """
    con.execute(sql, {"run": run_id, "as_of": as_of})


def _take_published_history(con: duckdb.DuckDBPyConnection, published: Path | None) -> None:
    """Replace the working database's history tables by the published warehouse's, and add
    the alerts it records as sent (ops.alerts_sent) that the working database lacks (one
    rebuilt, or lost): those were sent whatever became of the nights after them."""
    for name in HISTORY_TABLES:
        con.execute(f"delete from analytics.{name}")
    if published is None or not Path(published).exists():
        return
    where = str(Path(published).resolve()).replace("'", "''")
    con.execute(f"attach '{where}' as _cx_published (read_only)")
    try:
        held = {
            f"{r[0]}.{r[1]}"
            for r in con.execute(
                "select schema_name, table_name from duckdb_tables() "
                "where database_name = '_cx_published'"
            ).fetchall()
        }
        for name in HISTORY_TABLES:
            if f"analytics.{name}" in held:
                con.execute(
                    f"insert into analytics.{name} by name "
                    f"select * from _cx_published.analytics.{name}"
                )
        if "ops.alerts_sent" in held:
            ensure_sent_table(con)
            con.execute(
                "insert into ops.alerts_sent by name select * from _cx_published.ops.alerts_sent "
                "as p anti join ops.alerts_sent as w using (as_of, kind, subject)"
            )
    finally:
        con.execute("detach _cx_published")
