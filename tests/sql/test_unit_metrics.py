"""Each unit-level metric on a small hand-built warehouse, expected values worked out here."""

from __future__ import annotations

import math
from datetime import date

import pytest

from tests.sql.conftest import build_warehouse, make_staging, months_between

Z = 1.959964


def acct(account_id, unit, segment="SMB", created=date(2023, 1, 1)):
    return {"account_id": account_id, "business_unit": unit, "segment": segment,
            "created_at": created}  # fmt: skip


def mrr(account_id, month, amount):
    return {"account_id": account_id, "month": month, "mrr": amount, "currency": "USD"}


def survey(rid, account_id, kind, score, at):
    return {"response_id": rid, "account_id": account_id, "survey_type": kind, "score": score,
            "responded_at": at}  # fmt: skip


def one(con, sql, *params):
    return con.execute(sql, list(params)).fetchone()


def test_revenue_bridge_grr_nrr_and_logo_churn(con):
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U1"), acct("A3", "U2"), acct("A4", "U2")],
        revenue=[
            mrr("A1", date(2024, 1, 1), 100),
            mrr("A1", date(2024, 2, 1), 100),
            mrr("A1", date(2024, 3, 1), 150),
            mrr("A1", date(2024, 4, 1), 150),
            mrr("A2", date(2024, 1, 1), 200),
            mrr("A2", date(2024, 2, 1), 200),
            mrr("A3", date(2024, 1, 1), 1000),
            mrr("A3", date(2024, 2, 1), 800),
            mrr("A3", date(2024, 3, 1), 800),
            mrr("A3", date(2024, 4, 1), 800),
            mrr("A4", date(2024, 3, 1), 300),
            mrr("A4", date(2024, 4, 1), 300),
        ],  # fmt: skip
        churn_events=[
            {"account_id": "A2", "churned_at": date(2024, 2, 20), "churn_type": "voluntary"}
        ],
    )
    build_warehouse(con, date(2024, 5, 1))
    row = "select {} from analytics.unit_month_revenue where business_unit = ? and month = ?"
    cols = ("starting_mrr, new_mrr, expansion_mrr, contraction_mrr, churned_voluntary_mrr, "
            "churned_involuntary_mrr, ending_mrr, accounts_start, churned_accounts, "
            "logo_churn_rate, grr_monthly, nrr_monthly")  # fmt: skip
    # U1, March: A1 expands 100 -> 150, A2 (200) is gone (voluntary).
    got = one(con, row.format(cols), "U1", date(2024, 3, 1))
    assert [float(x) for x in got[:7]] == [300, 0, 50, 0, 200, 0, 150]
    assert got[7:9] == (2, 1)
    assert got[9] == pytest.approx(1 / 2)
    assert got[10] == pytest.approx((300 - 0 - 200) / 300)
    assert got[11] == pytest.approx((300 + 50 - 0 - 200) / 300)
    # U2, February: A3 contracts 1000 -> 800.
    got = one(con, row.format(cols), "U2", date(2024, 2, 1))
    assert [float(x) for x in got[:7]] == [1000, 0, 0, 200, 0, 0, 800]
    assert got[10] == pytest.approx(0.8) and got[11] == pytest.approx(0.8)
    # Company, March: 1100 + 300 new + 50 expansion - 200 churned = 1250.
    got = one(con, row.format(cols), "All units", date(2024, 3, 1))
    assert [float(x) for x in got[:7]] == [1100, 300, 50, 0, 200, 0, 1250]
    assert got[10] == pytest.approx(900 / 1100) and got[11] == pytest.approx(950 / 1100)
    # No baseline for the first month of data.
    assert (
        one(con, "select count(*) from analytics.unit_month_revenue where month = '2024-01-01'")[0]
        == 0
    )


def test_a_quarantined_month_is_not_churn_and_a_fall_to_zero_is(con):
    # A1: March's revenue row was quarantined: A1 continues at its last known 100 (no churn in
    # March, not new in April, where it expands to 120). A2: MRR falls to 0 in March and its
    # rows continue at 0: churned in March (50), not a contraction, and April has nothing.
    # A3: no row in February (a real gap): churned in February, returning (new) in March.
    # A4: its first month quarantined, billed nothing before it: not carried, new in February.
    jan, feb, mar, apr, may = months_between(date(2024, 1, 1), date(2024, 5, 1))
    make_staging(
        con,
        accounts=[acct(a, "U1") for a in ("A1", "A2", "A3", "A4")],
        revenue=[mrr("A1", m, 100) for m in (jan, feb)] + [mrr("A1", m, 120) for m in (apr, may)]
        + [mrr("A2", jan, 50), mrr("A2", feb, 50), mrr("A2", mar, 0), mrr("A2", apr, 0)]
        + [mrr("A3", m, 30) for m in (jan, mar, apr)]
        + [mrr("A4", m, 10) for m in (feb, mar, apr, may)],
        revenue_quarantined_keys=[{"account_id": "A1", "month": mar},
                                  {"account_id": "A4", "month": jan}],
    )  # fmt: skip
    build_warehouse(con, date(2024, 5, 31))
    cols = ("starting_mrr, new_mrr, expansion_mrr, contraction_mrr, churned_mrr, ending_mrr, "
            "accounts_start, new_accounts, churned_accounts, accounts_end")  # fmt: skip
    q = f"select {cols} from analytics.unit_month_revenue where business_unit = 'U1' and month = ?"

    def bridge(month):
        return [float(x) for x in one(con, q, month)]

    assert bridge(feb) == [180, 10, 0, 0, 30, 160, 3, 1, 1, 3]
    assert bridge(mar) == [160, 30, 0, 0, 50, 140, 3, 1, 1, 3]
    assert bridge(apr) == [140, 0, 20, 0, 0, 160, 3, 0, 0, 3]
    assert bridge(may) == [160, 0, 0, 0, 30, 130, 3, 0, 1, 2]
    from pipelines.marts import reconcile

    assert all(not rows for rows in reconcile(con).values())
    # The panel: A1's March is there, its MRR unknown; April's movement is against 100.
    panel = "select {} from analytics.account_month where account_id = ? and month = ?"
    got = one(con, panel.format("mrr, is_mrr_unknown, mrr_prev, mrr_change, log_mrr"), "A1", mar)
    assert got == (None, True, 100, None, None)
    got = one(con, panel.format("mrr_prev, mrr_new, mrr_expansion"), "A1", apr)
    assert [float(x) for x in got] == [100, 0, 20]
    got = one(con, panel.format("mrr, mrr_contraction, is_mrr_unknown"), "A2", mar)
    assert (float(got[0]), float(got[1]), got[2]) == (0, 0, False)
    assert one(con, "select count(*) from analytics.account_month where account_id = 'A4' "
                    "and month = '2024-01-01'")[0] == 0  # fmt: skip
    # Billed accounts only: A2 at 0 is not an active account in March.
    assert one(con, "select active_accounts from analytics.unit_month_cx "
                    "where business_unit = 'U1' and month = ?", mar)[0] == 3  # fmt: skip


def test_trailing_twelve_month_retention(con):
    months = months_between(date(2023, 1, 1), date(2024, 1, 1))
    revenue = [mrr("A1", m, 120 if m == date(2024, 1, 1) else 100) for m in months]
    revenue += [mrr("A2", m, 100) for m in months[:6]]
    make_staging(con, accounts=[acct("A1", "U1"), acct("A2", "U1")], revenue=revenue)
    build_warehouse(con, date(2024, 2, 1))
    grr, nrr = one(
        con,
        "select grr_ttm, nrr_ttm from analytics.unit_month_revenue "
        "where business_unit = 'U1' and month = '2024-01-01'",
    )
    # Cohort billed 2023-01: A1 100 + A2 100. Now: A1 120, A2 gone.
    assert nrr == pytest.approx((120 + 0) / 200)
    assert grr == pytest.approx((min(120, 100) + 0) / 200)
    assert (
        one(
            con,
            "select grr_ttm from analytics.unit_month_revenue "
            "where business_unit = 'U1' and month = '2023-12-01'",
        )[0]
        is None
    )  # less than twelve months of history


def test_nps_standard_error_and_interval(con):
    at = "2024-03-10 12:00:00+00"
    u1 = [10, 9, 8, 3, 0]  # p = 2/5, d = 2/5
    u2 = [10, 10, 10, 7]  # p = 3/4, d = 0
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U2")],
        revenue=[mrr("A1", date(2024, 3, 1), 10), mrr("A2", date(2024, 3, 1), 10)],
        survey_responses=[survey(f"a{i}", "A1", "nps", s, at) for i, s in enumerate(u1)]
        + [survey(f"b{i}", "A2", "nps", s, at) for i, s in enumerate(u2)],
    )
    build_warehouse(con, date(2024, 4, 1))
    q = ("select nps_n, nps, nps_se, nps_ci_low, nps_ci_high from analytics.unit_month_cx "
         "where business_unit = ? and month = '2024-03-01'")  # fmt: skip
    n, nps, se, lo, hi = one(con, q, "U1")
    assert (n, nps) == (5, pytest.approx(0.0))
    assert se == pytest.approx(100 * math.sqrt((0.4 + 0.4 - 0.0**2) / 5))  # = 40
    assert (lo, hi) == (pytest.approx(-Z * 40), pytest.approx(Z * 40))
    n, nps, se, lo, hi = one(con, q, "U2")
    assert nps == pytest.approx(75.0)
    expected_se = 100 * math.sqrt((0.75 + 0 - 0.75**2) / 4)
    assert se == pytest.approx(expected_se)
    assert lo == pytest.approx(75 - Z * expected_se) and hi == 100  # clipped at 100
    # Company: the nine answers together.
    n, nps, *_ = one(con, q, "All units")
    assert (n, nps) == (9, pytest.approx(100 * (5 - 2) / 9))


def test_csat_top2_wilson_interval_and_clustered_mean(con):
    at = "2024-03-10 12:00:00+00"
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U1")],
        revenue=[mrr("A1", date(2024, 3, 1), 10), mrr("A2", date(2024, 3, 1), 10)],
        survey_responses=[
            survey("r1", "A1", "csat", 5, at),
            survey("r2", "A1", "csat", 4, at),
            survey("r3", "A2", "csat", 4, at),
            survey("r4", "A2", "csat", 2, at),
            survey("r5", "A2", "csat", 1, at),
        ],  # fmt: skip
    )
    build_warehouse(con, date(2024, 4, 1))
    share, lo, hi, mean, se, rate = one(
        con,
        "select csat_top2_share, csat_top2_ci_low, csat_top2_ci_high, csat_mean, csat_se, "
        "response_rate from analytics.unit_month_cx where business_unit = 'U1' and month = '2024-03-01'",
    )
    p, n = 3 / 5, 5
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n * n)) / (1 + Z**2 / n)
    assert share == pytest.approx(0.6)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert (lo, hi) == (pytest.approx(0.2307, abs=1e-4), pytest.approx(0.8824, abs=1e-4))
    # Mean 16/5; account residual sums +2.6 and -2.6; CR1: sqrt(2/1 * (2.6^2 + 2.6^2)) / 5.
    assert mean == pytest.approx(3.2)
    assert se == pytest.approx(math.sqrt(2 * (2.6**2 + 2.6**2)) / 5)
    assert rate == pytest.approx(1.0)


def test_support_medians_skip_unanswered_tickets_and_backlog(con):
    def ticket(tid, created, minutes_to_response, solved=None, fcr=None):
        return {
            "ticket_id": tid, "account_id": "A1", "created_at": created,
            "first_response_at": None if minutes_to_response is None
            else f"{created[:10]} {10 + minutes_to_response // 60:02d}:{minutes_to_response % 60:02d}:00+00",
            "solved_at": solved, "first_contact_resolution": fcr, "reopens": 0, "handle_minutes": 30,
        }  # fmt: skip

    c = "2024-03-05 10:00:00+00"
    make_staging(
        con,
        accounts=[acct("A1", "U1")],
        revenue=[mrr("A1", date(2024, 3, 1), 10), mrr("A1", date(2024, 4, 1), 10)],
        support_tickets=[
            ticket("t1", c, 10, "2024-03-06 10:00:00+00", True),
            ticket("t2", c, 20, "2024-04-02 10:00:00+00", False),
            ticket("t3", c, 30),
            ticket("t4", c, None),  # no first response yet: not in the medians
        ],
    )
    build_warehouse(con, date(2024, 5, 1))
    got = one(
        con,
        "select tickets, first_response_minutes_median, first_response_minutes_p90, "
        "resolution_minutes_median, fcr_rate, open_backlog_end, handle_hours, "
        "tickets_per_100_accounts from analytics.unit_month_support "
        "where business_unit = 'U1' and month = '2024-03-01'",
    )
    assert got[0] == 4
    assert got[1] == pytest.approx(20.0)  # median of 10, 20, 30
    assert got[2] == pytest.approx(28.0)  # interpolated 90th percentile of 10, 20, 30
    assert got[3] == pytest.approx(((24 * 60) + (28 * 24 * 60)) / 2)  # t1: 1 day, t2: 28 days
    assert got[4] == pytest.approx(0.5)
    assert got[5] == 3  # t2, t3, t4 open at the end of March
    assert got[6] == pytest.approx(4 * 30 / 60)
    assert got[7] == pytest.approx(400.0)
    assert (
        one(
            con,
            "select open_backlog_end from analytics.unit_month_support "
            "where business_unit = 'U1' and month = '2024-04-01'",
        )[0]
        == 2
    )  # t2 solved in April


def test_company_cost_per_ticket_needs_every_unit_with_tickets_to_report(con):
    # March: U1 and U2 have tickets, U1 and U3 (no tickets) report a cost: U2's tickets have
    # no cost, so the company has no cost per ticket (two reports are not two units with
    # tickets). April: both units with tickets report.
    def ticket(tid, account_id, created):
        return {"ticket_id": tid, "account_id": account_id, "created_at": created}

    def cost(unit, month, amount):
        return {"business_unit": unit, "month": month, "cost": amount, "agents": 1}

    march, april = date(2024, 3, 1), date(2024, 4, 1)
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U2"), acct("A3", "U3")],
        revenue=[mrr(a, m, 10) for a in ("A1", "A2", "A3") for m in (march, april)],
        support_tickets=[ticket("t1", "A1", "2024-03-05 10:00:00+00"),
                         ticket("t2", "A2", "2024-03-05 10:00:00+00"),
                         ticket("t3", "A1", "2024-04-05 10:00:00+00"),
                         ticket("t4", "A2", "2024-04-05 10:00:00+00")],
        support_costs=[cost("U1", march, 100), cost("U3", march, 50),
                       cost("U1", april, 100), cost("U2", april, 300)],
    )  # fmt: skip
    build_warehouse(con, date(2024, 5, 1))
    q = ("select support_cost, cost_per_ticket from analytics.unit_month_support "
         "where business_unit = ? and month = ?")  # fmt: skip
    assert one(con, q, "All units", march) == (None, None)
    assert one(con, q, "U1", march) == (100, pytest.approx(100.0))
    assert one(con, q, "All units", april) == (400, pytest.approx(200.0))


def test_answers_in_a_month_without_a_billed_account_still_count(con):
    # U1's only account is billed in March and answers in March and April (after its last
    # billed month): April's answer is in U1's April row and the company's, with no rate.
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U2")],
        revenue=[mrr("A1", date(2024, 3, 1), 10), mrr("A2", date(2024, 3, 1), 10),
                 mrr("A2", date(2024, 4, 1), 10)],
        survey_responses=[survey("r1", "A1", "nps", 10, "2024-03-10 12:00:00+00"),
                          survey("r2", "A1", "nps", 0, "2024-04-10 12:00:00+00"),
                          survey("r3", "A1", "csat", 5, "2024-04-10 12:00:00+00")],
    )  # fmt: skip
    build_warehouse(con, date(2024, 5, 1))
    q = ("select nps_n, nps, csat_n, active_accounts, responding_accounts, response_rate "
         "from analytics.unit_month_cx where business_unit = ? and month = '2024-04-01'")  # fmt: skip
    assert one(con, q, "U1") == (1, pytest.approx(-100.0), 1, 0, 1, None)
    # The company bills A2 in April: A1's answers count, and the rate is over A2.
    assert one(con, q, "All units") == (1, pytest.approx(-100.0), 1, 1, 1, pytest.approx(1.0))


def test_reconciliations_hold_and_catch_a_broken_bridge(con):
    from pipelines.marts import reconcile

    months = months_between(date(2024, 1, 1), date(2024, 4, 1))
    make_staging(
        con,
        accounts=[acct("A1", "U1"), acct("A2", "U2")],
        revenue=[mrr("A1", m, 100 + 10 * i) for i, m in enumerate(months)]
        + [mrr("A2", m, 50) for m in months[:2]],
    )
    build_warehouse(con, date(2024, 5, 1))
    assert all(not rows for rows in reconcile(con).values())

    con.execute(
        "update analytics.unit_month_revenue set expansion_mrr = expansion_mrr + 1 "
        "where business_unit = 'U1' and month = '2024-03-01'"
    )
    con.execute("delete from analytics.dim_business_unit where business_unit = 'U2'")
    broken = {name for name, rows in reconcile(con).items() if rows}
    assert broken == {
        "units_sum_to_company",
        "movements_add_up",
        "account_months_have_a_known_unit",
    }
    con.execute(
        "update analytics.unit_month_revenue set ending_mrr = ending_mrr + 1 "
        "where business_unit = 'U1' and month = '2024-02-01'"
    )
    assert reconcile(con)["ending_equals_next_starting"]
