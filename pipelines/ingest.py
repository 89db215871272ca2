"""Raw -> staged + quarantine, per landing source, in DuckDB.

Every raw row ends in exactly one place:

* `staging.<source>`: typed, normalised (UTC timestamps, months as first day,
  enumerations in one case), passing every rule of the contract;
* `analytics.quarantine`: one row per broken rule, naming the file, the data
  row, the column, the rule and the offending text;
* absorbed: an exact copy of a staged row under the same key (counted in
  `analytics.ingest_runs.rows_duplicate`, nothing is lost by dropping it).

All row-level work is SQL over the whole table (one scan per rule), so it scales
with DuckDB rather than with Python. The order of rules: row rules first (each
evaluated on every row, so a row lists every rule it breaks), then references
(against the staged referenced table) and last the key, among the rows that
passed everything else.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date

import duckdb

from pipelines.contracts import (
    Contract,
    clean_expr,
    not_yet_known,
    parse_expr,
    quote_ident,
    row_rules,
    staged_value_sql,
)
from pipelines.model_cache import (
    content,
    content_difference,
    content_sum,
    record_table,
    table_state,
)
from pipelines.privacy import privacy_digest, scrub_sql
from pipelines.settings import Settings
from pipelines.sqlparams import used_params

CANDIDATES = "_cx_cand"
# Sources whose quarantined rows' keys the warehouse reads, in staging.<source>_quarantined_keys
# (the key columns, typed, of every quarantined row whose key parsed): a revenue month that
# was quarantined is a month whose MRR is unknown, not a month without revenue
# (sql/intermediate/int_account_months.sql).
QUARANTINED_KEYS_SOURCES = ("revenue",)


def quarantined_keys_table(src: str) -> str:
    return f"staging.{src}_quarantined_keys"


@dataclass
class StageResult:
    source: str
    rows_read: int
    rows_staged: int
    rows_quarantined: int
    rows_duplicate: int
    # (column, rule) -> rows breaking it, for the row-level rules only
    row_rule_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    top_rules: list[tuple[str, str, int]] = field(default_factory=list)
    # values staged as NULL because they lie after the as-of date (analytics.not_yet_known)
    values_not_yet_known: int = 0

    @property
    def bad_share(self) -> float:
        return self.rows_quarantined / self.rows_read if self.rows_read else 0.0


def ensure_ops_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists staging")
    con.execute("create schema if not exists analytics")
    con.execute(
        """
        create table if not exists analytics.quarantine (
            source varchar not null,
            source_file varchar not null,
            source_row bigint not null,
            column_name varchar,
            rule varchar not null,
            value varchar,
            detail varchar
        )
        """
    )
    con.execute(
        """
        create table if not exists analytics.ingest_runs (
            run_id varchar not null,
            source varchar not null,
            as_of date not null,
            rows_read bigint not null,
            rows_staged bigint not null,
            rows_quarantined bigint not null,
            rows_duplicate bigint not null,
            files bigint not null,
            files_loaded bigint not null,
            rows_loaded bigint not null,
            finished_at timestamptz not null,
            primary key (run_id, source)
        )
        """
    )
    con.execute(
        """
        create table if not exists analytics.not_yet_known (
            source varchar not null,
            source_file varchar not null,
            source_row bigint not null,
            column_name varchar not null,
            value varchar,
            detail varchar
        )
        """
    )


def stage_source(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    *,
    as_of: date,
    settings: Settings,
    run_id: str,
    only_files: list[str] | None = None,
) -> StageResult | None:
    """Rebuild staging.<source> and its quarantine rows from raw.<source>.

    The table's content is recorded (ops.table_state) for the warehouse SQL, but not what it
    was built from: that is recorded by mark_passed once the night's blocking checks on these
    rows have passed, so rows that failed a check are never kept or appended to.
    only_files (append mode, see appended_files): validate only these new files' rows and
    add them to the staged rows and quarantine already there. Returns None, having changed
    nothing, when a new row shares a key with an earlier row: that needs the whole source.

    Leaves the temp table `_cx_cand` (typed values beside cleaned text, one row
    per raw row considered) on the connection for the independent great-expectations pass.
    """
    ensure_ops_tables(con)
    src = contract.name
    bind = {"as_of": as_of, "currency": settings.currency, "source": src, "files": only_files}
    appending = only_files is not None
    # `= any(list)` is a filter on each row; `in (select unnest(...))` a join, 20x slower.
    in_files = " where _source_file = any($files::varchar[])" if appending else ""

    select_cols = []
    for c in contract.columns:
        clean = clean_expr(c)
        select_cols.append(f"{clean} as {quote_ident(c.name + '__raw')}")
        select_cols.append(f"{parse_expr(c, clean, {})} as {quote_ident(c.name)}")
    sql = (
        f"create or replace temp table {CANDIDATES} as "
        f"select _source_file, _source_row, {', '.join(select_cols)} from raw.{src}{in_files}"
    )
    con.execute(sql, used_params(sql, bind))

    # 1. Row rules, each on every row; malformed CSV records from the load.
    parts = []
    for r in row_rules(contract):
        parts.append(
            f"select _source_file, _source_row, '{r.column}' as column_name, '{r.rule}' as rule, "
            f"{quote_ident(r.column + '__raw')} as value, {r.detail_sql} as detail "
            f"from {CANDIDATES} where {r.violation_sql}"
        )
    parts.append(
        "select source_file, source_row, null, 'malformed_row', csv_line, "
        "error_type || ': ' || coalesce(error_message, '') "
        "from raw._rejects where source = $source"
        + (" and source_file = any($files::varchar[])" if appending else "")
    )
    sql = "create or replace temp table _cx_viol as " + "\nunion all\n".join(parts)
    con.execute(sql, used_params(sql, bind))
    row_rule_counts = {
        (col, rule): n
        for col, rule, n in con.execute(
            "select column_name, rule, count(*) from _cx_viol "
            "where rule <> 'malformed_row' group by all"
        ).fetchall()
    }

    # 2. References, among rows that passed the row rules.
    for c in contract.columns:
        if not c.references:
            continue
        ref_table, ref_col = c.references
        q = quote_ident(c.name)
        con.execute(
            f"""
            insert into _cx_viol
            select k._source_file, k._source_row, '{c.name}', 'unknown_{c.name}',
                   k.{quote_ident(c.name + "__raw")},
                   '{c.name} is not in staging.{ref_table}'
            from {CANDIDATES} k
            anti join _cx_viol v using (_source_file, _source_row)
            where k.{q} is not null
              and k.{q} not in (select {quote_ident(ref_col)} from staging.{ref_table}
                                where {quote_ident(ref_col)} is not null)
            """
        )

    # 3. The key, among rows that passed everything else: exact copies are
    #    absorbed (the first by file and row is kept), differing versions are
    #    all quarantined, since nothing says which one is right.
    typed = ", ".join(quote_ident(c.name) for c in contract.columns)
    key = ", ".join(quote_ident(k) for k in contract.key)
    # Values after the as-of date that are not yet known on it are NULL from here on, for the
    # key as for the staged row (contracts.not_yet_known).
    staged_values = ", ".join(
        f"{staged_value_sql(contract, c)} as {quote_ident(c.name)}" for c in contract.columns
    )
    sql = f"""
        create or replace temp table _cx_ok as
        select *, hash({typed}) as _content
        from (select k._source_file, k._source_row, {staged_values}
              from {CANDIDATES} k anti join _cx_viol v using (_source_file, _source_row))
        """
    con.execute(sql, used_params(sql, bind))
    rows_duplicate = 0
    if contract.key:
        key_raw = " || ', ' || ".join(
            f"coalesce({quote_ident(k)}::varchar, '')" for k in contract.key
        )
        if appending:
            # A new row whose key an earlier row has (staged, absorbed, or quarantined as a
            # conflicting duplicate) changes what happens to the earlier rows: not an append.
            clash = con.execute(
                f"""
                select count(*) from _cx_ok o
                where exists (select 1 from staging.{src} s
                              where {" and ".join(f"s.{quote_ident(k)} = o.{quote_ident(k)}" for k in contract.key)})
                   or {key_raw} in (select value from analytics.quarantine
                                    where source = $source and rule = 'conflicting_duplicate')
                """,
                {"source": src},
            ).fetchone()[0]
            if clash:
                return None
        # The keys seen more than once, then their versions: counting distinct contents
        # for every key of every row tripled the step (20 M tickets: 9 -> 3 s). A key with a
        # NULL part matches nothing in the joins below, as before.
        con.execute(
            f"""
            create or replace temp table _cx_keys as
            select {key}, count(*) as n, count(distinct _content) as versions
            from _cx_ok
            semi join (select {key} from _cx_ok group by {key} having count(*) > 1)
                using ({key})
            group by {key}
            """
        )
        con.execute(
            f"""
            insert into _cx_viol
            select o._source_file, o._source_row, '{", ".join(contract.key)}',
                   'conflicting_duplicate', {key_raw},
                   'key appears ' || k.n || ' times with ' || k.versions || ' different contents'
            from _cx_ok o join _cx_keys k using ({key})
            where k.versions > 1
            """
        )
        con.execute(
            f"""
            create or replace temp table _cx_dup as
            select o._source_file, o._source_row from (
                select o.*, row_number() over (partition by {key}
                                               order by _source_file, _source_row) as rn
                from _cx_ok o semi join (select {key} from _cx_keys where versions = 1) using ({key})
            ) o where rn > 1
            """
        )
        rows_duplicate = con.execute("select count(*) from _cx_dup").fetchone()[0]
    else:
        con.execute(
            "create or replace temp table _cx_dup as select _source_file, _source_row "
            "from _cx_ok where false"
        )

    files, files_loaded, rows_loaded = con.execute(
        "select count(*), count(*) filter (where run_id = ?), "
        "coalesce(sum(rows_loaded + rows_rejected) filter (where run_id = ?), 0) "
        "from raw._files where source = ?",
        [run_id, run_id, src],
    ).fetchone()
    rows_read = con.execute(
        f"select (select count(*) from raw.{src}) "
        "+ (select count(*) from raw._rejects where source = ?)",
        [src],
    ).fetchone()[0]

    if appending:
        rows_duplicate += con.execute(
            "select rows_duplicate from analytics.ingest_runs where source = ? "
            "order by finished_at desc limit 1",
            [src],
        ).fetchone()[0]
    # Rows stay in file and row order, so an append leaves the table as a rebuild would.
    # New files that sort after every staged one (a new day's file) are inserted at the end;
    # otherwise the table is rewritten with them in their place.
    at_end = (
        appending
        and con.execute(
            f"select (select min(_source_file) from _cx_ok) > "
            f"(select coalesce(max(_source_file), '') from staging.{src})"
        ).fetchone()[0]
    )
    staged_before = table_state(con, f"staging.{src}")[1] if at_end else None
    new_rows = f"""
        select {typed}, _source_file, _source_row
        from _cx_ok o
        anti join _cx_viol v using (_source_file, _source_row)
        anti join _cx_dup d using (_source_file, _source_row)
    """
    con.execute("begin transaction")
    try:
        if at_end:
            con.execute(
                f"insert into staging.{src} select * from ({new_rows}) "
                "order by _source_file, _source_row"
            )
        else:
            earlier = (
                f"select {typed}, _source_file, _source_row from staging.{src} union all "
                if appending
                else ""
            )
            con.execute(
                f"""
                create or replace table staging.{src} as
                select * from ({earlier} {new_rows})
                order by _source_file, _source_row
                """
            )
        if not appending:
            con.execute("delete from analytics.quarantine where source = ?", [src])
        # The value as written, scrubbed like free text: a column that breaks its rule may
        # hold anything (an e-mail address in a score, a phone number in a plan name), and
        # the quarantine is published to analysts.
        con.execute(
            "insert into analytics.quarantine select ?, _source_file, _source_row, column_name, "
            f"rule, {scrub_sql('value', settings.privacy)}, detail from _cx_viol "
            "order by _source_file, _source_row, column_name, rule",
            [src],
        )
        values_not_yet_known = _record_not_yet_known(con, contract, new_rows, bind, appending)
        if src in QUARANTINED_KEYS_SOURCES:
            _record_quarantined_keys(con, contract, appending)
        rows_staged = con.execute(f"select count(*) from staging.{src}").fetchone()[0]
        rows_quarantined = con.execute(
            "select count(*) from (select distinct source_file, source_row "
            "from analytics.quarantine where source = ?)",
            [src],
        ).fetchone()[0]
        _record_run(
            con, run_id, src, as_of, rows_read, rows_staged, rows_quarantined, rows_duplicate,
            files, files_loaded, rows_loaded,
        )  # fmt: skip
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise

    # What the warehouse SQL will read: recorded, so unchanged models can be kept. Rows added
    # at the end are measured alone and added to what the table held (contents add).
    if at_end:
        added = content(
            con,
            f"(select * from staging.{src} where _source_file >= $first)",
            {"first": min(only_files)},
        )
        staged = content_sum(staged_before, added)
    else:
        staged = content(con, f"staging.{src}")
    record_table(con, f"staging.{src}", staged, None, run_id)

    return StageResult(
        source=src,
        rows_read=rows_read,
        rows_staged=rows_staged,
        rows_quarantined=rows_quarantined,
        rows_duplicate=rows_duplicate,
        row_rule_counts=row_rule_counts,
        top_rules=_top_rules(con, src),
        values_not_yet_known=values_not_yet_known,
    )


def _record_quarantined_keys(
    con: duckdb.DuckDBPyConnection, contract: Contract, appending: bool
) -> None:
    """Keep the typed key of each row quarantined tonight whose key is sound, and record the
    table's content for the warehouse SQL. A row whose key column broke a rule (unparsed,
    dated after the as-of date or before the earliest date, an unknown account) says nothing
    about a key of the data: a revenue month after the as-of date is not a month whose MRR
    is unknown."""
    table = quarantined_keys_table(contract.name)
    key = ", ".join(f"k.{quote_ident(k)}" for k in contract.key)
    if not appending:
        con.execute(f"drop table if exists {table}")
    con.execute(
        f"create table if not exists {table} as select {key}, k._source_file, k._source_row "
        f"from {CANDIDATES} k where false"
    )
    con.execute(
        f"""
        insert into {table}
        select {key}, k._source_file, k._source_row
        from {CANDIDATES} k semi join _cx_viol v using (_source_file, _source_row)
        anti join (select _source_file, _source_row from _cx_viol
                   where column_name = any($key::varchar[])) bad
            using (_source_file, _source_row)
        where {" and ".join(f"k.{quote_ident(k)} is not null" for k in contract.key)}
        order by k._source_file, k._source_row
        """,
        {"key": list(contract.key)},
    )
    record_table(con, table, content(con, table), None, None)


def _record_not_yet_known(
    con: duckdb.DuckDBPyConnection, contract: Contract, new_rows: str, bind: dict, appending: bool
) -> int:
    """List in analytics.not_yet_known the values of the newly staged rows that were staged as
    NULL for lying after the as-of date, with their text; return the source's count."""
    src = contract.name
    if not appending:
        con.execute("delete from analytics.not_yet_known where source = ?", [src])
    for n in not_yet_known(contract):
        sql = f"""
            insert into analytics.not_yet_known
            select $source, k._source_file, k._source_row, '{n.column}',
                   k.{quote_ident(n.column + "__raw")}, {n.detail_sql}
            from {CANDIDATES} k semi join ({new_rows}) s using (_source_file, _source_row)
            where {n.condition_sql}
            order by k._source_file, k._source_row
            """
        con.execute(sql, used_params(sql, bind))
    return con.execute(
        "select count(*) from analytics.not_yet_known where source = ?", [src]
    ).fetchone()[0]


def mark_passed(con: duckdb.DuckDBPyConnection, contract: Contract, inputs: str) -> None:
    """Every blocking check passed on the rows stage_source staged from `inputs` (the
    staging_inputs fingerprint): record it, so that a later night with the same inputs may
    keep them (can_keep_staged) or add new files to them (appended_files). Until this is
    recorded, the next night stages the source again and runs every check on it: a night
    that failed a gate fails it again on the same inputs, it is never skipped."""
    con.execute(
        "update ops.table_state set built_from = ? where relation = ?",
        [inputs, f"staging.{contract.name}"],
    )


def conservation(con: duckdb.DuckDBPyConnection, run_id: str, source: str) -> tuple[bool, dict]:
    """Recount from the tables themselves: every record the landing files hold (counted from
    the files apart from DuckDB: raw._files.records_in_file) was read, as a raw row, a vendor
    record (pipelines.vendor) or a malformed record; every vendor record gave rows, was set
    aside with its reason, or belongs to a record that gave rows; and every raw row (and
    malformed record) was staged, quarantined or absorbed as a duplicate."""
    from pipelines.contracts import source_contracts
    from pipelines.profiles import all_profiles
    from pipelines.vendor import fates, source_vendor_tables

    vendor_tables = source_vendor_tables(con, source)
    vendor_rows = " + ".join(f"(select count(*) from raw.{t})" for t in vendor_tables) or "0"
    row = con.execute(
        f"""
        select
            (select coalesce(sum(coalesce(records_in_file, rows_loaded + rows_rejected)), 0)
               from raw._files where source = $src) as in_files,
            (select count(*) from raw.{source} where _origin_file is null) + {vendor_rows}
              + (select count(*) from raw._rejects where source = $src) as read,
            (select count(*) from raw.{source})
              + (select count(*) from raw._rejects where source = $src) as rows,
            (select count(*) from staging.{source}) as staged,
            (select count(*) from (select distinct source_file, source_row
                                   from analytics.quarantine where source = $src)) as quarantined,
            (select rows_duplicate from analytics.ingest_runs
              where run_id = $run and source = $src) as duplicate,
            (select count(*) from staging.{source} s
              semi join analytics.quarantine q
                on q.source = $src and q.source_file = s._source_file
               and q.source_row = s._source_row) as both
        """,
        {"src": source, "run": run_id},
    ).fetchone()
    counts = dict(
        zip(
            ["in_files", "read", "rows", "staged", "quarantined", "duplicate",
             "staged_and_quarantined"],
            row,
            strict=True,
        )
    )  # fmt: skip
    contract = source_contracts()[source]
    if vendor_tables:
        counts.update(fates(con, contract, list(all_profiles().values())))
    ok = (
        counts["duplicate"] is not None
        and counts["in_files"] == counts["read"]
        and counts["rows"] == counts["staged"] + counts["quarantined"] + counts["duplicate"]
        and counts["staged_and_quarantined"] == 0
        and counts.get("unaccounted", 0) == 0
    )
    return ok, counts


def describe_bad_share(result: StageResult, threshold: float) -> str:
    rules = "; ".join(f"{col} {rule} ({n:,} rows)" for col, rule, n in result.top_rules[:3])
    return (
        f"{result.source}: {result.rows_quarantined:,} of {result.rows_read:,} rows "
        f"({result.bad_share:.1%}) broke the data contract, above the {threshold:.0%} threshold "
        f"(ingest.max_bad_share). Most broken rules: {rules}. "
        f"The rows are in analytics.quarantine with their file, row and rule."
    )


# --- a source whose inputs have not changed ----------------------------------------------


def staging_inputs(con: duckdb.DuckDBPyConnection, contract: Contract, settings: Settings) -> str:
    """Fingerprint of everything staging.<source> is built from, except the as-of date, in
    three parts "static|raw|rejects": the contract, the settings the rules read and the
    recorded content of the staged tables it references; the raw rows; the malformed records.
    """
    src = contract.name
    h = hashlib.sha256(repr(contract).encode())
    if contract.path is not None:
        h.update(contract.path.read_bytes())
    h.update(f"currency={settings.currency}".encode())
    # What free text was scrubbed of (its raw rows change with it; said here as well).
    h.update(f"privacy={privacy_digest(settings.privacy)}".encode())
    if src in QUARANTINED_KEYS_SOURCES:  # a database staged before kept no such table
        h.update(f"quarantined_keys={quarantined_keys_table(src)}".encode())
    for ref in sorted({c.references[0] for c in contract.columns if c.references}):
        state = table_state(con, f"staging.{ref}")
        h.update(f"{ref}={state[1] if state else 'unrecorded'}".encode())
    raw = content(con, f"raw.{src}")
    rejects = content(con, "(select * from raw._rejects where source = $src)", {"src": src})
    return f"{h.hexdigest()}|{raw}|{rejects}"


def _date_admits_nothing_new(con: duckdb.DuckDBPyConnection, src: str, as_of: date) -> bool:
    """The as-of date cannot move an earlier row across a rule: a later date only admits rows
    quarantined as dated after the as-of date, so the source must have none of those, and an
    earlier date than last time is never assumed safe."""
    last = con.execute(
        "select as_of from analytics.ingest_runs where source = ? "
        "order by finished_at desc limit 1",
        [src],
    ).fetchone()
    if last is None or as_of < last[0]:
        return False
    # Held back: rows quarantined as dated after the as-of date, and values staged as NULL
    # for the same reason (not_yet_known); a later date may admit either.
    waiting = con.execute(
        "select (select count(*) from analytics.quarantine where source = $src "
        "and rule = 'after_as_of') + (select count(*) from analytics.not_yet_known "
        "where source = $src)",
        {"src": src},
    ).fetchone()[0]
    return waiting == 0


def can_keep_staged(
    con: duckdb.DuckDBPyConnection, contract: Contract, inputs: str, as_of: date
) -> bool:
    """True when staging.<source> and its quarantine rows would come out exactly as they are:
    the same inputs (staging_inputs), and a date that admits nothing new."""
    src = contract.name
    ensure_ops_tables(con)
    state = table_state(con, f"staging.{src}")
    if state is None or state[0] != inputs:
        return False
    return _date_admits_nothing_new(con, src, as_of)


def appended_files(
    con: duckdb.DuckDBPyConnection, contract: Contract, inputs: str, as_of: date, run_id: str
) -> list[str] | None:
    """The files this run loaded, when they are all that changed since the source was staged
    (the earlier raw rows, contract, settings and references as they were, and a date that
    admits nothing new): then only their rows need validating (stage_source's append mode)."""
    src = contract.name
    ensure_ops_tables(con)
    state = table_state(con, f"staging.{src}")
    if state is None or state[0] is None or state[0].count("|") != 2:
        return None
    static, raw, rejects = state[0].split("|")
    if inputs.split("|")[0] != static or not _date_admits_nothing_new(con, src, as_of):
        return None
    new = [
        r[0]
        for r in con.execute(
            "select source_file from raw._files where source = ? and run_id = ? order by 1",
            [src, run_id],
        ).fetchall()
    ]
    if not new:
        return None
    # The rows of the other files: everything now, less the new files' rows (contents add).
    bind = {"src": src, "files": new}
    now_raw, now_rejects = inputs.split("|")[1:]
    earlier_raw = content_difference(
        now_raw,
        content(
            con, f"(select * from raw.{src} where _source_file = any($files::varchar[]))", bind
        ),
    )
    earlier_rejects = content_difference(
        now_rejects,
        content(
            con,
            "(select * from raw._rejects where source = $src "
            "and source_file = any($files::varchar[]))",
            bind,
        ),
    )
    return new if (earlier_raw, earlier_rejects) == (raw, rejects) else None


def keep_staged(
    con: duckdb.DuckDBPyConnection, contract: Contract, *, as_of: date, run_id: str
) -> StageResult:
    """Record this run against the unchanged staging.<source> (see can_keep_staged)."""
    src = contract.name
    rows_read, rows_staged, rows_quarantined, rows_duplicate, files = con.execute(
        "select rows_read, rows_staged, rows_quarantined, rows_duplicate, files "
        "from analytics.ingest_runs where source = ? order by finished_at desc limit 1",
        [src],
    ).fetchone()
    _record_run(
        con, run_id, src, as_of, rows_read, rows_staged, rows_quarantined, rows_duplicate,
        files, 0, 0,
    )  # fmt: skip
    # No row rule was evaluated tonight (row_rule_counts stays empty): nothing to compare.
    return StageResult(
        source=src, rows_read=rows_read, rows_staged=rows_staged,
        rows_quarantined=rows_quarantined, rows_duplicate=rows_duplicate,
        top_rules=_top_rules(con, src),
    )  # fmt: skip


def _record_run(con: duckdb.DuckDBPyConnection, run_id: str, src: str, *counts) -> None:
    """This run's row of analytics.ingest_runs for the source (replacing a retried step's):
    as_of, rows read / staged / quarantined / duplicate, files, files and rows loaded."""
    con.execute("delete from analytics.ingest_runs where run_id = ? and source = ?", [run_id, src])
    con.execute(
        "insert into analytics.ingest_runs values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [run_id, src, *counts],
    )


def _top_rules(con: duckdb.DuckDBPyConnection, src: str) -> list[tuple[str, str, int]]:
    """The five most broken (column, rule) pairs of the source's quarantine."""
    top = con.execute(
        "select column_name, rule, count(*) n from analytics.quarantine where source = ? "
        "group by all order by n desc, rule, column_name limit 5",
        [src],
    ).fetchall()
    return [(c or "(row)", r, n) for c, r, n in top]
