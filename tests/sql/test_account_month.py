"""analytics.account_month: window boundaries, churn flags, and no look-ahead."""

from __future__ import annotations

import math
import shutil
from datetime import date, timedelta

import duckdb
import pytest

from pipelines.contracts import after_as_of_sql, not_yet_known, quote_ident, source_contracts
from pipelines.sqlparams import used_params
from pipelines.sqlrunner import WarehouseParams, build_all
from tests.sql.conftest import build_warehouse, make_staging, months_between

CX_FEATURES = [
    "nps_category_latest", "nps_responses", "csat_mean", "csat_responses", "ces_mean",
    "ces_responses", "tickets", "first_response_minutes_median", "resolution_minutes_median",
    "fcr_rate", "reopen_rate", "handle_hours",
]  # fmt: skip


def _panel(con, account="A1"):
    cols = ", ".join(["month", *CX_FEATURES])
    return {
        r[0]: dict(zip(["month", *CX_FEATURES], r, strict=True))
        for r in con.execute(
            f"select {cols} from analytics.account_month where account_id = ? order by month",
            [account],
        ).fetchall()
    }


def _one_account_billed(months, created_at) -> dict:
    """make_staging's accounts and revenue for account A1 (unit U1, SMB), billed 10 in each
    of `months`."""
    return {
        "accounts": [{"account_id": "A1", "business_unit": "U1", "segment": "SMB",
                      "created_at": created_at}],
        "revenue": [{"account_id": "A1", "month": m, "mrr": 10} for m in months],
    }  # fmt: skip


def test_window_is_the_six_months_before_the_month(con):
    months = months_between(date(2023, 12, 1), date(2024, 9, 1))
    make_staging(
        con,
        **_one_account_billed(months, created_at=date(2023, 12, 1)),
        survey_responses=[
            # The last second of December and the first second of January.
            {
                "response_id": "r1",
                "account_id": "A1",
                "survey_type": "nps",
                "score": 2,
                "responded_at": "2023-12-31 23:59:59+00",
            },
            {
                "response_id": "r2",
                "account_id": "A1",
                "survey_type": "nps",
                "score": 10,
                "responded_at": "2024-01-01 00:00:00+00",
            },
            # In July itself: visible from August on, never to July.
            {
                "response_id": "r3",
                "account_id": "A1",
                "survey_type": "nps",
                "score": 7,
                "responded_at": "2024-07-01 00:00:00+00",
            },
        ],  # fmt: skip
        support_tickets=[
            # Created in June, answered in July: counted in June, its response time in July.
            {
                "ticket_id": "t1",
                "account_id": "A1",
                "created_at": "2024-06-30 23:00:00+00",
                "first_response_at": "2024-07-01 01:00:00+00",
            },
        ],  # fmt: skip
    )
    build_warehouse(con, date(2024, 10, 1))
    p = _panel(con)
    # July's window is January-June: r1 (December) out, r2 in, r3 (July) out.
    assert p[date(2024, 7, 1)]["nps_category_latest"] == "promoter"
    assert p[date(2024, 7, 1)]["nps_responses"] == 1
    assert p[date(2024, 7, 1)]["tickets"] == 1
    assert p[date(2024, 7, 1)]["first_response_minutes_median"] is None
    # June's window is December-May: r1 and r2, latest r2.
    assert p[date(2024, 6, 1)]["nps_responses"] == 2
    assert p[date(2024, 6, 1)]["tickets"] == 0
    # August: February-July: r3 is the latest; the response sent in July counts.
    assert p[date(2024, 8, 1)]["nps_category_latest"] == "passive"
    assert p[date(2024, 8, 1)]["first_response_minutes_median"] == pytest.approx(120.0)
    # January sees only December.
    assert p[date(2024, 1, 1)]["nps_category_latest"] == "detractor"
    # December sees nothing: no response is "no_response", never imputed.
    assert p[date(2023, 12, 1)]["nps_category_latest"] == "no_response"
    assert p[date(2023, 12, 1)]["csat_mean"] is None

    # A longer notice lag moves the window back: with lag 2, July sees December-May.
    build_warehouse(con, date(2024, 10, 1), notice_lag_months=2)
    assert _panel(con)[date(2024, 7, 1)]["nps_responses"] == 2


def test_events_in_a_month_without_revenue_still_count_for_the_months_after(con):
    # April has no revenue row, so it is not in the spine; its answer and ticket still fall
    # in the windows of May and later months, and nothing of April is lost.
    months = [m for m in months_between(date(2024, 1, 1), date(2024, 8, 1)) if m.month != 4]
    make_staging(
        con,
        **_one_account_billed(months, created_at=date(2024, 1, 1)),
        survey_responses=[
            {
                "response_id": "r1",
                "account_id": "A1",
                "survey_type": "csat",
                "score": 2,
                "responded_at": "2024-02-10 12:00:00+00",
            },
            {
                "response_id": "r2",
                "account_id": "A1",
                "survey_type": "csat",
                "score": 5,
                "responded_at": "2024-04-10 12:00:00+00",
            },
        ],  # fmt: skip
        support_tickets=[
            {
                "ticket_id": "t1",
                "account_id": "A1",
                "created_at": "2024-04-02 09:00:00+00",
                "first_response_at": "2024-04-02 10:00:00+00",
            },
        ],  # fmt: skip
    )
    build_warehouse(con, date(2024, 10, 1))
    p = _panel(con)
    assert date(2024, 4, 1) not in p
    # March's window (September-February): only the February answer.
    assert p[date(2024, 3, 1)]["csat_responses"] == 1 and p[date(2024, 3, 1)]["tickets"] == 0
    # May's window (November-April): February and April.
    assert p[date(2024, 5, 1)]["csat_responses"] == 2
    assert p[date(2024, 5, 1)]["csat_mean"] == pytest.approx(3.5)
    assert p[date(2024, 5, 1)]["tickets"] == 1
    assert p[date(2024, 5, 1)]["first_response_minutes_median"] == pytest.approx(60.0)
    # August's window (February-July) still holds both; September is past the revenue.
    assert p[date(2024, 8, 1)]["csat_responses"] == 2


def test_a_tickets_final_state_is_dated_when_it_last_changed(con):
    # Solved in March, reopened and solved again in May (updated_at): its reopen, first-contact
    # resolution and handle time are what it became in May, so no window ending before May
    # sees them; its resolution time (the March solve) counts from March. t2 never changed
    # after its solve: everything at solved_at, as before.
    months = months_between(date(2024, 1, 1), date(2024, 8, 1))
    make_staging(
        con,
        **_one_account_billed(months, created_at=date(2024, 1, 1)),
        support_tickets=[
            {"ticket_id": "t1", "account_id": "A1", "created_at": "2024-03-01 10:00:00+00",
             "solved_at": "2024-03-01 12:00:00+00", "updated_at": "2024-05-20 09:00:00+00",
             "reopens": 1, "first_contact_resolution": False, "handle_minutes": 90},
            {"ticket_id": "t2", "account_id": "A1", "created_at": "2024-02-01 10:00:00+00",
             "solved_at": "2024-02-01 11:00:00+00", "updated_at": "2024-02-01 11:00:00+00",
             "reopens": 0, "first_contact_resolution": True, "handle_minutes": 30},
        ],
    )  # fmt: skip
    build_warehouse(con, date(2024, 9, 30))
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select month, tickets, resolution_minutes_median, fcr_rate, reopen_rate, "
            "handle_hours from analytics.account_month where account_id = 'A1'"
        ).fetchall()
    }
    # April (window October-March) and May (November-April): t1's solve, not its reopen.
    for month in (date(2024, 4, 1), date(2024, 5, 1)):
        assert rows[month] == (2, pytest.approx(90.0), 1.0, 0.0, pytest.approx(0.5)), month
    # June (December-May): the reopen of May is in.
    assert rows[date(2024, 6, 1)] == (2, pytest.approx(90.0), 0.5, 0.5, pytest.approx(2.0))


def test_a_ticket_changed_after_the_as_of_date_has_no_final_state_yet():
    # Changed after the as-of date: its reopens, first-contact resolution and handle time are
    # not yet known, as if the export had been taken on the as-of date.
    con = duckdb.connect()
    make_staging(
        con,
        support_tickets=[{"ticket_id": "t1", "account_id": "A1", "reopens": 1,
                          "created_at": "2024-06-01 10:00:00+00",
                          "solved_at": "2024-06-01 12:00:00+00",
                          "updated_at": "2024-07-01 00:00:00+00",
                          "first_contact_resolution": False, "handle_minutes": 5}],
    )  # fmt: skip
    _truncate_to(con, date(2024, 7, 1))
    assert con.execute(
        "select solved_at::varchar, updated_at, reopens, first_contact_resolution, "
        "handle_minutes from staging.support_tickets"
    ).fetchall() == [("2024-06-01 12:00:00+00", None, None, None, None)]


def test_churn_flags_and_observation_horizon(con):
    months = months_between(date(2024, 1, 1), date(2024, 4, 1))
    make_staging(
        con,
        accounts=[
            {
                "account_id": a,
                "business_unit": "U1",
                "segment": "SMB",
                "created_at": date(2024, 1, 1),
            }
            for a in ("A1", "A2")
        ],  # fmt: skip
        revenue=[{"account_id": "A1", "month": m, "mrr": 10} for m in months]
        + [{"account_id": "A2", "month": m, "mrr": 10} for m in months[:3]],
        churn_events=[
            {"account_id": "A2", "churned_at": date(2024, 3, 15), "churn_type": "involuntary"}
        ],  # fmt: skip
    )
    build_warehouse(con, date(2024, 4, 30))
    rows = {
        (r[0], r[1]): r[2:]
        for r in con.execute(
            "select account_id, month, churned_this_month, churned_next_month, "
            "churned_next_month_voluntary, churned_next_month_involuntary, is_at_risk_next_month "
            "from analytics.account_month"
        ).fetchall()
    }
    assert rows[("A2", date(2024, 2, 1))] == (False, True, False, True, True)
    assert rows[("A2", date(2024, 3, 1))] == (True, False, False, False, False)
    # Data runs through the as-of day, so April is over on 2024-04-30; May is unknown.
    assert rows[("A1", date(2024, 4, 1))] == (False, None, None, None, False)
    assert rows[("A1", date(2024, 3, 1))][1] is False
    # A day earlier April is not over: March's next month is unknown.
    build_warehouse(con, date(2024, 4, 29))
    march = con.execute(
        "select churned_next_month from analytics.account_month "
        "where account_id = 'A1' and month = '2024-03-01'"
    ).fetchone()
    assert march == (None,)


@pytest.mark.parametrize(
    ("as_of", "first_open_month"),
    [
        (date(2024, 4, 29), date(2024, 4, 1)),
        (date(2024, 4, 30), date(2024, 5, 1)),
        (date(2024, 5, 1), date(2024, 5, 1)),
        (date(2024, 12, 31), date(2025, 1, 1)),
    ],
)
def test_months_ended_before_changes_only_when_a_month_ends(as_of, first_open_month):
    # What the spine binds instead of $as_of: a new day within a month keeps its fingerprint.
    assert WarehouseParams(as_of=as_of).months_ended_before == first_open_month


def _truncate_to(con: duckdb.DuckDBPyConnection, cutoff: date) -> None:
    """Make the CX sources look as ingestion stages them as of the day before `cutoff`, by the
    contracts' own rules: rows dated after it held back (not_after_as_of), values after it
    not yet known, NULL (unknown_after_as_of, known_with: a ticket answered or solved later
    stays, open)."""
    bind = {"as_of": cutoff - timedelta(days=1)}
    for name in ("support_tickets", "survey_responses"):
        contract = source_contracts()[name]
        held_back = [after_as_of_sql(c) for c in contract.columns if c.not_after_as_of]
        sql = f"delete from staging.{name} where {' or '.join(held_back)}"
        con.execute(sql, used_params(sql, bind))
        unknown = not_yet_known(contract)
        if unknown:
            sets = ", ".join(
                f"{quote_ident(n.column)} = case when {n.condition_sql} then null "
                f"else {quote_ident(n.column)} end"
                for n in unknown
            )
            sql = f"update staging.{name} set {sets}"
            con.execute(sql, used_params(sql, bind))


def test_truncation_follows_the_contract_for_tickets_answered_or_solved_later():
    # What the leakage test treats as not yet known is what ingestion stages as NULL.
    con = duckdb.connect()
    make_staging(
        con,
        support_tickets=[{"ticket_id": "t1", "account_id": "A1", "reopens": 1,
                          "created_at": "2024-06-30 10:00:00+00",
                          "first_response_at": "2024-06-30 23:59:59+00",
                          "solved_at": "2024-07-01 00:00:00+00",
                          "first_contact_resolution": False, "handle_minutes": 5}],
    )  # fmt: skip
    _truncate_to(con, date(2024, 7, 1))
    assert con.execute(
        "select ticket_id, first_response_at::varchar, solved_at, reopens, "
        "first_contact_resolution, handle_minutes from staging.support_tickets"
    ).fetchall() == [("t1", "2024-06-30 23:59:59+00", None, None, None, None)]


@pytest.mark.parametrize("cutoff", [date(2026, 5, 1), date(2026, 8, 1)])
def test_no_cx_feature_uses_the_outcome_month_or_later(small_demo, tmp_path, cutoff):
    """Features of every row up to month M are the same whether or not data from M on exists."""
    from tests.conftest import run_cli

    assert run_cli(small_demo, tmp_path, "2026-11-01") == 0
    full_db = tmp_path / "warehouse.duckdb"
    cut_db = tmp_path / "cut.duckdb"
    shutil.copyfile(full_db, cut_db)
    con = duckdb.connect(str(cut_db))
    con.execute("set TimeZone = 'UTC'")
    _truncate_to(con, cutoff)
    build_all(con, WarehouseParams(as_of=date(2026, 11, 1)))
    cols = ", ".join(CX_FEATURES)
    query = (
        f"select account_id, month, {cols} from analytics.account_month "
        "where month <= ? order by account_id, month"
    )
    later = query.replace("month <= ?", "month > ?")
    cut, cut_later = (
        con.execute(query, [cutoff]).fetchall(),
        con.execute(later, [cutoff]).fetchall(),
    )
    con.close()
    full = duckdb.connect(str(full_db), read_only=True)
    original, original_later = (
        full.execute(query, [cutoff]).fetchall(),
        full.execute(later, [cutoff]).fetchall(),
    )
    full.close()
    assert len(original) > 500
    assert cut == original
    # The truncation did remove data the later months use, so the test can fail.
    assert cut_later != original_later


def test_truncation_covers_every_source_of_cx_features():
    # The truncation above must cover every table the CX events are built from.
    from pipelines.sqlrunner import models

    # (The spine, int_account_months, gives only the last month a window can reach: it
    # bounds which events are kept and contributes no values.)
    assert models()["intermediate.int_cx_events"].refs == {
        "staging.stg_support_tickets",
        "staging.stg_survey_responses",
        "intermediate.int_account_months",
    }


@pytest.mark.parametrize("lag", [1, 2])
def test_size_controls_are_measured_at_the_cx_windows_end(con, lag):
    # A downgrade in the notice month is part of the decision: the size control is the MRR
    # of the window's last month (lag months before the row's month), and the prior change
    # ends there too. A month not billed then (new since) gives NULL.
    months = months_between(date(2024, 1, 1), date(2024, 8, 1))
    mrr = [100, 100, 200, 200, 400, 400, 50, 50]
    make_staging(
        con,
        accounts=[{"account_id": "A1", "business_unit": "U1", "segment": "SMB",
                   "created_at": date(2024, 1, 1)}],
        revenue=[{"account_id": "A1", "month": m, "mrr": v} for m, v in zip(months, mrr, strict=True)],
    )  # fmt: skip
    build_warehouse(con, date(2024, 9, 30), notice_lag_months=lag)
    rows = con.execute(
        "select month, log_mrr, log_mrr_window_end, log_mrr_change_prior_3m "
        "from analytics.account_month where account_id = 'A1' order by month"
    ).fetchall()
    for i, (month, log_mrr, window_end, prior) in enumerate(rows):
        assert log_mrr == pytest.approx(math.log(mrr[i])), month
        end = i - lag
        assert window_end == (pytest.approx(math.log(mrr[end])) if end >= 0 else None), month
        before = end - 3
        expected = math.log(mrr[end]) - math.log(mrr[before]) if before >= 0 else None
        assert prior == (pytest.approx(expected) if expected is not None else None), month
