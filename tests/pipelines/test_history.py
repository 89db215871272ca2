"""The history tables are the published warehouse's plus tonight's: rows a night wrote to the
working database and then failed to publish (a contract check, a crash) are no part of it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from pipelines.history import record_history
from pipelines.settings import Settings

UNIT = (
    "select 'Alpha' as business_unit, 'retention' as outcome_tested, 'Innovative' as quadrant, "
    "0.9 as quadrant_probability, 'established' as confidence, 'strong' as link_verdict, "
    "0.1 as link_effect, 0.05 as link_ci_low, 0.15 as link_ci_high, 0.1 as link_effect_shrunk, "
    "'high' as execution_level, 0.8 as execution_score, 0.7 as execution_ci_low, "
    "0.9 as execution_ci_high, 'alignment-v2' as method_version"
)


def _night(con, as_of: str, published=None) -> None:
    record_history(con, f"run-{as_of}", date.fromisoformat(as_of), Settings(),
                   datetime(2026, 11, 30, tzinfo=UTC), published=published)  # fmt: skip


def _nights(con) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select distinct as_of::varchar from analytics.unit_alignment_history order by 1"
        ).fetchall()
    ]


def test_a_night_that_was_not_published_leaves_nothing_in_the_history(tmp_path):
    work = duckdb.connect(str(tmp_path / "work.duckdb"))
    work.execute("create schema analytics")
    work.execute(f"create table analytics.unit_alignment as {UNIT}")
    work.execute(
        "create table analytics.ingest_runs (run_id varchar, source varchar, rows_read bigint, "
        "rows_staged bigint, rows_quarantined bigint, files bigint, files_loaded bigint, "
        "rows_loaded bigint)"
    )
    published = tmp_path / "warehouse.duckdb"
    _night(work, "2026-11-01")  # no warehouse published yet
    _night(work, "2026-11-02", published)  # (still none: the first night's publish failed)
    assert _nights(work) == ["2026-11-02"]
    work.execute("checkpoint")
    work.close()
    # the night of the 2nd is published (a copy of the working database) ...
    published.write_bytes((tmp_path / "work.duckdb").read_bytes())
    work = duckdb.connect(str(tmp_path / "work.duckdb"))
    # ... the 3rd writes its rows and fails before publishing; the 4th is published
    _night(work, "2026-11-03", published)
    assert _nights(work) == ["2026-11-02", "2026-11-03"]
    _night(work, "2026-11-04", published)
    assert _nights(work) == ["2026-11-02", "2026-11-04"]
    assert work.execute(
        "select count(*) from analytics.ingest_history where as_of = '2026-11-03'"
    ).fetchone() == (0,)
    # a rerun of a published night replaces its rows
    _night(work, "2026-11-02", published)
    assert work.execute(
        "select as_of::varchar, count(*) from analytics.unit_alignment_history group by 1 "
        "order by 1"
    ).fetchall() == [("2026-11-02", 1)]


def test_the_alerts_sent_that_the_published_warehouse_records_reach_a_new_working_database(
    tmp_path,
):
    from pipelines.alerts import Alert, Delivery, delivered_before, record_sent

    published = tmp_path / "warehouse.duckdb"
    pub = duckdb.connect(str(published))
    alert = Alert("source_stale", "accounts last arrived 9 days ago", {"source": "accounts"})
    record_sent(pub, "2026-11-02", "run-a", [alert],
                [Delivery("webhook #1 (h)", True, carried=(("source_stale", "accounts"),),
                          sent=(("source_stale", "accounts"),), channel_id="webhook:1")],
                datetime(2026, 11, 3, tzinfo=UTC))  # fmt: skip
    pub.close()
    work = duckdb.connect(str(tmp_path / "work.duckdb"))  # a working database rebuilt
    work.execute("create schema analytics")
    work.execute(f"create table analytics.unit_alignment as {UNIT}")
    work.execute(
        "create table analytics.ingest_runs (run_id varchar, source varchar, rows_read bigint, "
        "rows_staged bigint, rows_quarantined bigint, files bigint, files_loaded bigint, "
        "rows_loaded bigint)"
    )
    _night(work, "2026-11-02", published)  # the night published again
    assert delivered_before(work, "2026-11-02") == {("source_stale", "accounts", "webhook:1")}


def test_a_wholly_bad_small_file_is_a_quarantine_jump_though_the_source_s_share_hardly_moves(
    tmp_path,
):
    """2,109 good rows loaded over the nights before; tonight one new file of 40 rows, every
    one quarantined: 1.9% of the source's rows (under the 2-point jump), 100% of tonight's."""
    from pipelines.alerts import night_alerts
    from pipelines.settings import AlertsSettings

    work = _working_database(tmp_path)
    published = tmp_path / "warehouse.duckdb"
    nights = [(f"2026-11-0{d}", f"tickets/2026-11-0{d}.csv", 301 + 2 * (d == 1), 0)
              for d in range(1, 8)]  # fmt: skip
    nights.append(("2026-11-08", "tickets/2026-11-08.csv", 40, 40))
    read = quarantined = 0
    for as_of, file, rows, bad in nights:
        run = f"run-{as_of}"
        read, quarantined = read + rows, quarantined + bad
        _load(work, run, file, rows, bad)
        work.execute("insert into analytics.ingest_runs values (?, 'support_tickets', ?, ?, ?, ?, "
                     "0, ?, 1, ?, now())",
                     [run, as_of, read, read - quarantined, quarantined, len(nights), rows])  # fmt: skip
        _night(work, as_of, published)
        work.execute("checkpoint")
        published.write_bytes((tmp_path / "work.duckdb").read_bytes())  # published
    tonight = work.execute(
        "select rows_read, quarantine_share, rows_loaded, rows_loaded_quarantined, "
        "loaded_quarantine_share from analytics.ingest_history "
        "where as_of = '2026-11-08' and source = 'support_tickets'"
    ).fetchone()
    assert tonight[0] == 2149 and tonight[1] < 0.02  # the source's share: under the jump
    assert tonight[2:] == (40, 40, 1.0)  # tonight's files: all bad
    (jump,) = [a for a in night_alerts(work, date(2026, 11, 8), AlertsSettings())
               if a.kind == "quarantine_jump"]  # fmt: skip
    assert jump.details["source"] == "support_tickets" and jump.details["rows_loaded"] == 40
    assert "100.0% of the rows in tonight's files quarantined (40 of 40)" in jump.summary


def test_staleness_is_measured_at_the_night_s_as_of_date_not_the_wall_clock(tmp_path):
    """A backfill of 2026-11-02, run on the 30th: tickets last loaded on 1 November were a
    day old that night, not 29 days; revenue, loaded on the 20th, arrived on time."""
    from pipelines.landing import ensure_raw_schema

    work = duckdb.connect(str(tmp_path / "work.duckdb"))
    work.execute("set TimeZone = 'UTC'")
    ensure_raw_schema(work)
    work.execute("create schema analytics")
    work.execute(f"create table analytics.unit_alignment as {UNIT}")
    work.execute(
        "create table analytics.ingest_runs (run_id varchar, source varchar, rows_read bigint, "
        "rows_staged bigint, rows_quarantined bigint, files bigint, files_loaded bigint, "
        "rows_loaded bigint)"
    )
    for source, loaded_at in (("support_tickets", "2026-11-01 10:00"),
                              ("revenue", "2026-11-20 10:00")):  # fmt: skip
        work.execute("insert into raw._files (source, source_file, content_sha256, size_bytes, "
                     "rows_loaded, rows_rejected, loaded_at) values (?, 'f', 'x', 1, 1, 0, ?)",
                     [source, loaded_at])  # fmt: skip
    _night(work, "2026-11-02")  # (record_history's wall clock here: 30 November)
    rows = dict(work.execute(
        "select source, (days_since_arrival, stale) from analytics.ingest_history "
        "where source in ('support_tickets', 'revenue', 'accounts')"
    ).fetchall())  # fmt: skip
    assert rows == {"support_tickets": (1, False), "revenue": (0, False), "accounts": (None, False)}
    # the same files as of the 10th: tickets stale (9 days), measured at the end of the 10th
    _night(work, "2026-11-10")
    assert work.execute(
        "select days_since_arrival, stale from analytics.ingest_history "
        "where as_of = '2026-11-10' and source = 'support_tickets'"
    ).fetchone() == (9, True)


def _working_database(tmp_path) -> duckdb.DuckDBPyConnection:
    from pipelines.contracts import source_contracts
    from pipelines.ingest import ensure_ops_tables
    from pipelines.landing import ensure_raw_schema, ensure_raw_table

    work = duckdb.connect(str(tmp_path / "work.duckdb"))
    work.execute("set TimeZone = 'UTC'")
    ensure_raw_schema(work)
    ensure_raw_table(work, source_contracts()["support_tickets"])
    ensure_ops_tables(work)
    work.execute(f"create table analytics.unit_alignment as {UNIT}")
    return work


def _load(work, run: str, file: str, rows: int, bad: int, records: int | None = None,
          parts: int = 1) -> None:  # fmt: skip
    """A file of support_tickets loaded by `run`: `rows` raw rows, the first `bad` of them
    quarantined. parts > 1: a vendor file of `records` records, each built into `parts`
    rows named '<file> #<part>' (pipelines.vendor)."""
    work.execute("insert into raw._files (source, source_file, content_sha256, size_bytes, "
                 "rows_loaded, rows_rejected, loaded_at, run_id) "
                 "values ('support_tickets', ?, ?, 1, ?, 0, now(), ?)",
                 [file, f"sha-{file}-{run}", records or rows, run])  # fmt: skip
    if parts == 1:
        work.execute("insert into raw.support_tickets (_source_file, _source_row) "
                     "select ?, i from range(?) t(i)", [file, rows])  # fmt: skip
        built = "?"
    else:
        work.execute("insert into raw.support_tickets (_source_file, _source_row, _origin_file, "
                     "_origin_row) select ? || ' #' || (i % ?), i, ?, i // ? from range(?) t(i)",
                     [file, parts, file, parts, rows])  # fmt: skip
        built = f"? || ' #' || (i % {parts})"
    work.execute(f"insert into analytics.quarantine select 'support_tickets', {built}, i, "
                 "'ticket_id', 'not_null', null, null from range(?) t(i)", [file, bad])  # fmt: skip


def _ingest_run(work, run: str, as_of: str, rows_loaded: int) -> None:
    work.execute("insert into analytics.ingest_runs values (?, 'support_tickets', ?, 0, 0, 0, "
                 "0, 1, 1, ?, now())", [run, as_of, rows_loaded])  # fmt: skip


def _tonight(work, as_of: str) -> tuple:
    return work.execute(
        "select rows_loaded, rows_loaded_quarantined, loaded_quarantine_share "
        "from analytics.ingest_history where as_of = ? and source = 'support_tickets'",
        [as_of],
    ).fetchone()


def test_tonight_s_rows_are_matched_by_their_file_s_exact_name_whatever_it_holds(tmp_path):
    """A file named with ' #' ('late #2.csv') is tonight's own, and last night's '2026-11 #1.csv'
    is not tonight's '2026-11': a row's file was parsed back from its name by cutting at ' #'."""
    work = _working_database(tmp_path)
    _load(work, "run-1", "tickets/2026-11 #1.csv", 30, 30)
    _ingest_run(work, "run-1", "2026-11-01", 30)
    _load(work, "run-2", "tickets/late #2.csv", 40, 40)
    _load(work, "run-2", "tickets/2026-11", 10, 0)
    _ingest_run(work, "run-2", "2026-11-02", 50)
    record_history(work, "run-2", date(2026, 11, 2), Settings(), datetime(2026, 11, 3, tzinfo=UTC))
    assert _tonight(work, "2026-11-02") == (50, 40, 0.8)


def test_a_vendor_file_s_share_counts_rows_built_against_rows_built_never_above_one(tmp_path):
    """Six survey responses, each built into three rows, every row quarantined: 18 of 18 rows
    (100%), not 18 rows of 6 records (300%)."""
    work = _working_database(tmp_path)
    _load(work, "run-1", "tickets/qualtrics.csv", 18, 18, records=6, parts=3)
    _ingest_run(work, "run-1", "2026-11-02", 6)
    record_history(work, "run-1", date(2026, 11, 2), Settings(), datetime(2026, 11, 3, tzinfo=UTC))
    assert _tonight(work, "2026-11-02") == (18, 18, 1.0)


def test_a_rerun_that_loads_nothing_keeps_the_night_s_loaded_figures(tmp_path):
    """The rerun of a night finds its files already loaded (by the night's first run): they
    are still the night's, and its quarantined rows are not erased to (0, 0, NULL)."""
    work = _working_database(tmp_path)
    _load(work, "run-a", "tickets/bad.csv", 40, 40)
    _ingest_run(work, "run-a", "2026-11-02", 40)
    record_history(work, "run-a", date(2026, 11, 2), Settings(), datetime(2026, 11, 3, tzinfo=UTC))
    first = work.execute(
        "select quarantined_files_digest from analytics.ingest_history where as_of = '2026-11-02'"
    ).fetchone()[0]
    _ingest_run(work, "run-b", "2026-11-02", 0)  # the rerun: nothing new
    record_history(work, "run-b", date(2026, 11, 2), Settings(), datetime(2026, 11, 3, tzinfo=UTC))
    assert _tonight(work, "2026-11-02") == (40, 40, 1.0)
    assert work.execute(
        "select quarantined_files_digest from analytics.ingest_history where as_of = '2026-11-02'"
    ).fetchone()[0] == first is not None


def test_a_new_bad_file_in_a_later_run_of_the_night_is_a_new_quarantine_jump(tmp_path):
    """The jump's key names the files it is about: a second run of the same as-of date that
    loads another wholly bad file alerts again (it was held as 'already sent for this
    night'), and a rerun of the same files is the same alert, held."""
    from pipelines.alerts import night_alerts
    from pipelines.settings import AlertsSettings

    work = _working_database(tmp_path)
    published = tmp_path / "warehouse.duckdb"

    def run(name: str, as_of: str, file: str | None, rows: int = 40, bad: int = 40) -> set[str]:
        if file:
            _load(work, name, file, rows, bad)
        _ingest_run(work, name, as_of, rows if file else 0)
        record_history(work, name, date.fromisoformat(as_of), Settings(),
                       datetime(2026, 11, 30, tzinfo=UTC), published=published)  # fmt: skip
        work.execute("checkpoint")
        published.write_bytes((tmp_path / "work.duckdb").read_bytes())
        return {a.subject for a in night_alerts(work, date.fromisoformat(as_of), AlertsSettings())
                if a.kind == "quarantine_jump"}  # fmt: skip

    for d in (1, 2, 3):
        assert run(f"run-{d}", f"2026-11-0{d}", f"tickets/0{d}.csv", 300, 0) == set()
    (first,) = run("run-4a", "2026-11-04", "tickets/late.csv")
    (second,) = run("run-4b", "2026-11-04", "tickets/later.csv")
    assert first != second and first.startswith("support_tickets (files ")
    assert run("run-4c", "2026-11-04", None) == {second}  # a rerun: the same alert
