"""The SQL runner: materialization chosen in a file's header, parameters in views, early cutoff
through a measured view, and UTC months whatever the session's time zone."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines.model_cache import content, record_table, table_state
from pipelines.sqlparams import inline_params
from pipelines.sqlrunner import SqlModel, WarehouseParams, build, build_if_changed, models
from tests.sql.conftest import build_warehouse, make_staging

PARAMS = WarehouseParams(as_of=date(2026, 3, 31), notice_lag_months=2)

EVENTS = """-- events: the numbers up to a bound.
--
-- materialized: view
select n from intermediate.numbers where n <= $notice_lag_months
"""
TOTAL = "-- total: their sum.\nselect sum(n) as total from intermediate.events\n"


def _model(layer: str, name: str, sql: str) -> SqlModel:
    return SqlModel(layer, name, Path(f"sql/{layer}/{name}.sql"), sql)


def test_header_chooses_a_view_and_its_parameters_are_written_in(con):
    con.execute("create schema intermediate")
    con.execute("create table intermediate.numbers as select range as n from range(5)")
    events = _model("intermediate", "events", EVENTS)
    assert events.materialization == "view" and events.measured
    assert _model("intermediate", "x", "select 1").materialization == "table"
    assert _model("staging", "x", "select 1").measured is False

    rows, kept = build_if_changed(con, events, PARAMS, "run-1")
    assert (rows, kept) == (3, False)  # 0, 1, 2: notice_lag_months = 2 written into the view
    kind = con.execute(
        "select table_type from information_schema.tables where table_name = 'events'"
    ).fetchone()[0]
    assert kind == "VIEW"
    # Its content is measured, not its fingerprint, and it reports its rows when kept.
    assert table_state(con, "intermediate.events")[1] == content(con, "intermediate.events")
    assert build_if_changed(con, events, PARAMS, "run-2") == (3, True)


def test_a_view_whose_comment_names_another_parameter_builds(con):
    con.execute("create schema intermediate")
    con.execute("create table intermediate.numbers as select range as n from range(5)")
    sql = EVENTS.replace(
        "-- events: the numbers up to a bound.", "-- events: up to a bound ($as_of)."
    )
    build(con, _model("intermediate", "events", sql), PARAMS)
    assert con.execute("select count(*) from intermediate.events").fetchone()[0] == 3


def test_a_rebuilt_view_that_comes_out_the_same_keeps_its_dependants(con):
    con.execute("create schema intermediate")
    con.execute("create table intermediate.numbers as select range as n from range(5)")
    events, total = _model("intermediate", "events", EVENTS), _model("intermediate", "total", TOTAL)
    build_if_changed(con, events, PARAMS, "run-1")
    build_if_changed(con, total, PARAMS, "run-1")

    # A row beyond the bound: the view's input changes, its rows do not.
    con.execute("insert into intermediate.numbers values (9)")
    record_table(con, "intermediate.numbers", content(con, "intermediate.numbers"))
    assert build_if_changed(con, events, PARAMS, "run-2") == (3, False)
    assert build_if_changed(con, total, PARAMS, "run-2") == (1, True)

    # A row within it changes both.
    con.execute("insert into intermediate.numbers values (1)")
    record_table(con, "intermediate.numbers", content(con, "intermediate.numbers"))
    assert build_if_changed(con, events, PARAMS, "run-3") == (4, False)
    assert build_if_changed(con, total, PARAMS, "run-3") == (1, False)
    assert con.execute("select total from intermediate.total").fetchone()[0] == 4


def test_a_table_becomes_a_view_when_its_file_says_so(con):
    con.execute("create schema intermediate")
    con.execute("create table intermediate.numbers as select range as n from range(5)")
    con.execute("create table intermediate.events as select 42 as n")  # last night's table
    build(con, _model("intermediate", "events", EVENTS), PARAMS)
    assert con.execute("select count(*) from intermediate.events").fetchone()[0] == 3


def test_unknown_materialization_names_the_file():
    bad = _model("intermediate", "events", "-- materialized: incremental\nselect 1")
    with pytest.raises(ValueError, match=r"events\.sql: materialized must be view or table"):
        _ = bad.materialization


def test_only_numbers_and_dates_are_written_into_a_view():
    sql = "select $a, $d"
    assert inline_params(sql, {"a": 3, "d": date(2026, 1, 31)}) == "select 3, DATE '2026-01-31'"
    with pytest.raises(TypeError, match=r"\$a: only numbers and dates"):
        inline_params(sql, {"a": "x'; drop table t; --", "d": date(2026, 1, 1)})
    with pytest.raises(KeyError, match=r"\$d"):
        inline_params(sql, {"a": 1})


def test_int_cx_events_is_a_measured_view():
    m = models()["intermediate.int_cx_events"]
    assert (m.materialization, m.measured) == ("view", True)


def test_months_are_utc_months_in_any_session_time_zone(con):
    # 23:30 UTC on 31 January is already February in Tokyo and still January in New York.
    late = datetime(2026, 1, 31, 23, 30, tzinfo=UTC)
    make_staging(
        con,
        accounts=[{"account_id": "A1", "business_unit": "Payments", "segment": "smb",
                   "plan": "pro", "region": "EMEA", "created_at": late}],
        support_tickets=[{"ticket_id": "T1", "account_id": "A1", "channel": "email",
                          "priority": "normal", "created_at": late, "solved_at": late,
                          "first_contact_resolution": True}],
    )  # fmt: skip
    build_warehouse(con, date(2026, 2, 28))
    for tz in ("Asia/Tokyo", "America/New_York"):
        con.execute(f"set TimeZone = '{tz}'")
        months = con.execute(
            "select t.created_month, t.solved_month, a.created_month "
            "from staging.stg_support_tickets t join staging.stg_accounts a using (account_id)"
        ).fetchone()
        assert months == (date(2026, 1, 1),) * 3, tz


def test_a_fingerprint_takes_a_tables_recorded_content_and_measures_a_query(con):
    from pipelines.model_cache import fingerprint

    con.execute("create schema intermediate")
    con.execute("create table intermediate.numbers as select range as n from range(5)")
    record_table(con, "intermediate.numbers", content(con, "intermediate.numbers"))
    query = "select n from intermediate.numbers where n < 3"

    def key():
        return fingerprint(con, ["intermediate.numbers", query], "settings", [])

    first = key()
    # A row the query does not see, not yet recorded: the table part still stands for the
    # recorded rows (read from ops.table_state, not from the table), the query's rows agree.
    con.execute("insert into intermediate.numbers values (7)")
    assert key() == first
    # Recorded by the writer, as every writer of a warehouse table does: the key changes.
    record_table(con, "intermediate.numbers", content(con, "intermediate.numbers"))
    second = key()
    assert second != first
    # A row the query sees changes its part even before anything is recorded.
    con.execute("insert into intermediate.numbers values (1)")
    assert key() != second
