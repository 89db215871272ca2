"""The Stripe profile (data_contracts/profiles/stripe.yml) on what real exports hold beside the
golden fixture: live subscriptions counted through the as-of date, an older export kept
beside a newer one, values that are not Unix seconds, a subscription without a start, item
metadata and expanded customers (personal data that must not be stored)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.contracts import source_contracts
from pipelines.ingest import conservation, stage_source
from pipelines.landing import load_source
from pipelines.settings import Settings, SourceSettings
from tests.conftest import FIXTURES

STRIPE = FIXTURES / "profiles" / "stripe" / "landing"
SUBS = "revenue/subscriptions.json"
AS_OF = date(2026, 10, 31)


def _ts(day: str | None) -> int | None:
    return None if day is None else int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def _sub(sub_id: str, customer: str, start: str, ended: str | None = None,
         interval: str = "month", amount: int = 5000) -> dict:  # fmt: skip
    return {
        "id": sub_id, "object": "subscription", "customer": customer, "livemode": True,
        "status": "canceled" if ended else "active", "currency": "usd",
        "created": _ts(start), "start_date": _ts(start), "trial_end": None,
        "canceled_at": _ts(ended), "ended_at": _ts(ended), "current_period_start": _ts(start),
        "cancellation_details": {"reason": "cancellation_requested" if ended else None,
                                 "feedback": None, "comment": None},
        "items": {"object": "list", "data": [{
            "id": f"si_{sub_id}", "quantity": 1, "current_period_start": _ts(start),
            "price": {"currency": "usd", "unit_amount": amount,
                      "unit_amount_decimal": str(amount),
                      "recurring": {"interval": interval, "interval_count": 1,
                                    "usage_type": "licensed"}}}]},
    }  # fmt: skip


def _zone(tmp_path: Path, pages: dict[str, list[dict]], customers: list[str]) -> Path:
    landing = tmp_path / "landing"
    (landing / "accounts").mkdir(parents=True)
    (landing / "revenue").mkdir()
    (landing / "accounts" / "accounts.csv").write_text(
        "account_id,account_name,business_unit,segment,region,plan,created_at\n"
        + "".join(f"{c},{c},bu1,smb,eu,pro,2025-01-01\n" for c in customers)
    )
    for name, subs in pages.items():
        (landing / "revenue" / name).write_text(json.dumps({"object": "list", "data": subs}))
    return landing


def _golden(tmp_path: Path, change) -> Path:
    landing = tmp_path / "landing"
    shutil.copytree(STRIPE, landing)
    page = json.loads((landing / SUBS).read_text())
    change(page["data"])
    (landing / SUBS).write_text(json.dumps(page))
    return landing


def _night(landing: Path, as_of: date = AS_OF, con=None) -> tuple[duckdb.DuckDBPyConnection,
                                                                   dict]:  # fmt: skip
    con = con or duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    settings, counts = Settings(), {}
    for name in ("accounts", "revenue", "churn_events"):
        contract = source_contracts()[name]
        load_source(con, landing, contract, settings.source(name), run_id="n", as_of=as_of)
        stage_source(con, contract, as_of=as_of, settings=settings, run_id="n")
        ok, counts[name] = conservation(con, "n", name)
        assert ok, (name, counts[name])
    return con, counts


def _months(con, account: str) -> list[str]:
    return [
        r[0]
        for r in con.execute(
            "select strftime(month, '%Y-%m') from staging.revenue where account_id = ? order by 1",
            [account],
        ).fetchall()
    ]


def test_live_subscriptions_count_through_the_as_of_date_not_the_export_s_latest_moment(
    tmp_path,
):
    # Annual plans: nothing in the export is later than March, yet both are live in October.
    landing = _zone(tmp_path, {"subs.json": [
        _sub("sub_X", "cus_X", "2026-01-15", interval="year", amount=120000),
        _sub("sub_Y", "cus_Y", "2026-03-02", interval="year", amount=240000),
    ]}, ["cus_X", "cus_Y"])  # fmt: skip
    con, _ = _night(landing)
    assert _months(con, "cus_X") == [f"2026-{m:02d}" for m in range(1, 11)]
    assert _months(con, "cus_Y") == [f"2026-{m:02d}" for m in range(3, 11)]
    assert con.execute("select distinct mrr::varchar from staging.revenue where account_id = "
                       "'cus_X'").fetchall() == [("100.0000",)]  # fmt: skip
    # A month counts once it has ended live: as of 15 November, November is not yet over.
    # The as-of date moving builds the rows again, though no file changed.
    _night(landing, date(2026, 11, 15), con)
    assert _months(con, "cus_X")[-1] == "2026-10"
    _night(landing, date(2026, 11, 30), con)
    assert _months(con, "cus_X")[-1] == "2026-11"
    # ... and a rerun for the first as-of date gives its rows again
    _night(landing, AS_OF, con)
    assert _months(con, "cus_X")[-1] == "2026-10"


def test_a_live_subscription_gives_no_month_after_the_as_of_date(tmp_path):
    landing = _zone(tmp_path, {"subs.json": [
        _sub("sub_X", "cus_X", "2026-01-15"),
        _sub("sub_Z", "cus_Z", "2026-02-01", ended="2026-12-10"),  # ends after the as-of date
    ]}, ["cus_X", "cus_Z"])  # fmt: skip
    con, _ = _night(landing, date(2026, 6, 30))
    assert _months(con, "cus_X")[-1] == _months(con, "cus_Z")[-1] == "2026-06"
    assert con.execute("select count(*) from analytics.quarantine where source = 'revenue'"
                       ).fetchone()[0] == 0  # fmt: skip


@pytest.mark.parametrize("names", [("subs-2026-08.json", "subs-2026-09.json"),
                                   ("subs-sep.json", "subs-oct.json")])  # fmt: skip
def test_an_older_export_beside_a_newer_one_takes_no_part(tmp_path, names):
    # August's export has both subscriptions live; September's has both ended. Only the
    # later copies count, whatever the files are called, and the customer's last end is a churn.
    older = [_sub("sub_Y", "cus_Z", "2026-01-05"), _sub("sub_Z2", "cus_Z", "2026-02-05")]
    newer = [_sub("sub_Y", "cus_Z", "2026-01-05", ended="2026-09-01"),
             _sub("sub_Z2", "cus_Z", "2026-02-05", ended="2026-09-20")]  # fmt: skip
    landing = _zone(tmp_path, {names[0]: older, names[1]: newer}, ["cus_Z"])
    con, _ = _night(landing)
    assert con.execute("select account_id, churned_at::varchar from staging.churn_events"
                       ).fetchall() == [("cus_Z", "2026-09-20")]  # fmt: skip
    aside = con.execute(
        "select source_file, source_row, rule from raw._set_aside where source = 'churn_events' "
        "order by all"
    ).fetchall()
    assert aside == sorted([(f"revenue/{names[1]}", 1, "continued"),
                            (f"revenue/{names[0]}", 1, "superseded"),
                            (f"revenue/{names[0]}", 2, "superseded")])  # fmt: skip
    assert _months(con, "cus_Z") == [f"2026-{m:02d}" for m in range(1, 9)]


def test_values_that_are_not_unix_seconds_are_quarantined_not_the_night_stopped(tmp_path):
    def change(subs):
        subs[5]["start_date"] = "2026-09-01T00:00:00Z"  # sub_D, row 6: ISO text
        subs[2]["start_date"] = None  # sub_A2, row 3: no start, beside cus_A's other rows
        subs[3]["ended_at"] = "yesterday"  # sub_B, row 4

    con, counts = _night(_golden(tmp_path, change))
    quarantined = con.execute(
        "select distinct source, source_file, source_row, column_name, rule "
        "from analytics.quarantine where rule = 'required' order by all"
    ).fetchall()
    assert quarantined == [
        ("churn_events", "revenue/subscriptions.json", 4, "churned_at", "required"),
        ("revenue", "revenue/subscriptions.json", 3, "month", "required"),
        ("revenue", "revenue/subscriptions.json", 4, "month", "required"),
        ("revenue", "revenue/subscriptions.json", 6, "month", "required"),
    ]
    # sub_A2 gave a row of its own (quarantined): it is not "merged" into cus_A's months
    assert (counts["revenue"]["merged"], counts["revenue"]["unaccounted"]) == (0, 0)
    assert con.execute("select mrr::varchar from staging.revenue where account_id = 'cus_A' "
                       "and month = '2026-10-01'").fetchall() == [("87.0000",)]  # fmt: skip


def test_item_metadata_and_an_expanded_customer_are_not_stored(tmp_path):
    secret = ["Jane Marie Doe", "jane.doe@example.com", "Privet"]

    def change(subs):
        item = subs[1]["items"]["data"][0]
        item["metadata"] = {"signed_by": secret[0], "contact": secret[1]}
        item["price"]["nickname"] = f"Custom deal for {secret[0]}"
        subs[5]["customer"] = {
            "id": "cus_D",
            "object": "customer",
            "name": secret[0],
            "email": secret[1],
            "address": {"line1": f"1 {secret[2]} Drive"},
        }

    con, _ = _night(_golden(tmp_path, change))
    for schema, table, column in con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR' and table_schema in ('raw', 'staging', 'analytics')"
    ).fetchall():
        found = con.execute(
            f'select count(*) from {schema}."{table}" where '
            + " or ".join(f'"{column}" like ?' for _ in secret),
            [f"%{s}%" for s in secret],
        ).fetchone()[0]
        assert found == 0, (schema, table, column)
    # the expanded customer is read by its id: cus_D's months are as in the golden fixture
    assert _months(con, "cus_D") == ["2026-09", "2026-10"]
    kept = json.loads(con.execute(
        "select items from raw.revenue__stripe_subscriptions where id = 'sub_A1'"
    ).fetchone()[0])  # fmt: skip
    assert set(kept[0]) == {"quantity", "current_period_start", "current_period_end", "price"}
    assert set(kept[0]["price"]) == {"currency", "unit_amount", "unit_amount_decimal",
                                     "recurring"}  # fmt: skip


def test_a_profile_reading_the_as_of_date_needs_it(tmp_path):
    from pipelines.profiles import ProfileError

    with pytest.raises(ProfileError, match="as-of date"):
        load_source(duckdb.connect(), STRIPE, source_contracts()["revenue"],
                    SourceSettings(profile="stripe"))  # fmt: skip


@pytest.mark.parametrize(
    ("decimal", "unit_amount", "mrr"),
    [
        ("2900", 1, "29.0000"),  # as Stripe writes it
        ("1234.5678", 1, "12.3457"),  # a fraction of a cent
        ("1e3", 999, "10.0000"),  # another notation of a number: read, not the other field
        (" 12.", None, "0.1200"),
        ("NaN", 2900, "29.0000"),  # not a number: unit_amount instead
        (None, 2900, "29.0000"),
    ],
)
def test_a_unit_amount_decimal_is_read_when_it_is_a_finite_number(
    tmp_path, decimal, unit_amount, mrr
):
    sub = _sub("sub_X", "cus_X", "2026-09-01")
    price = sub["items"]["data"][0]["price"]
    price["unit_amount_decimal"], price["unit_amount"] = decimal, unit_amount
    con, _ = _night(_zone(tmp_path, {"subs.json": [sub]}, ["cus_X"]))
    assert con.execute("select distinct mrr::varchar from staging.revenue").fetchall() == [(mrr,)]


def test_an_amount_too_large_for_the_contract_is_quarantined_not_the_build_failed(tmp_path):
    huge = _sub("sub_H", "cus_H", "2026-09-01")
    huge["items"]["data"][0]["price"]["unit_amount_decimal"] = "1" + "0" * 28
    landing = _zone(tmp_path, {"subs.json": [_sub("sub_X", "cus_X", "2026-09-01"), huge]},
                    ["cus_X", "cus_H"])  # fmt: skip
    con, counts = _night(landing)
    assert _months(con, "cus_X") == ["2026-09", "2026-10"]
    assert con.execute(
        "select distinct source_file, source_row, column_name, rule from analytics.quarantine "
        "where source = 'revenue' order by all"
    ).fetchall() == [(f"revenue/subs.json #2026-{m}", 2, "mrr", "required") for m in ("09", "10")]
    assert counts["revenue"]["unaccounted"] == 0
