"""Conservation when a profile's select adds several primary records up into one row
(the `_merged` list of the records each row adds up), and a set-aside rule that reads the object's other records (pipelines.vendor);
the Stripe profile's amounts in each currency's major unit."""

from __future__ import annotations

import json
import shutil
from datetime import date

import duckdb
import pytest

from pipelines.contracts import source_contracts
from pipelines.landing import ensure_raw_schema, ensure_raw_table, load_source
from pipelines.profiles import ProfileError, load_profile
from pipelines.settings import PrivacySettings, SourceSettings
from pipelines.vendor import build_source_rows, ensure_vendor_table, fates
from tests.conftest import FIXTURES

PROFILE = """
profile: acme
objects:
  lines:
    detect: [id, customer]
    fields: {id: id, customer: customer, amount: amount, state: state}
    set_aside:
      - rule: replaced
        when: "exists (select 1 from lines o where o.customer = t.customer and o.id > t.id
               and o.state = 'replaces')"
        reason: a later line of the customer replaces it
sources:
  revenue:
    objects: [lines]
    select: |
      select arg_min(_source_file, id) as _source_file, arg_min(_source_row, id) as _source_row,
        customer as account_id, '2026-01' as month, sum(amount::int)::varchar as mrr
        {merged}
      from lines where {where} group by customer
"""


MERGED = ", list({'_source_file': _source_file, '_source_row': _source_row}) as _merged"


def _fates(tmp_path, merged: str, where: str = "true") -> tuple[dict, list]:
    path = tmp_path / "acme.yml"
    path.write_text(PROFILE.replace("{merged}", merged).replace("{where}", where))
    profile = load_profile(path)
    contract = source_contracts()["revenue"]
    con = duckdb.connect()
    ensure_raw_schema(con)
    ensure_raw_table(con, contract)
    table = ensure_vendor_table(con, "revenue", profile, profile.objects["lines"])
    con.execute(
        f"insert into raw.{table} values ('revenue/l.json', 1, '1', 'c1', '10', null), "
        "('revenue/l.json', 2, '2', 'c1', '5', null), ('revenue/l.json', 3, '3', 'c2', '7', null), "
        "('revenue/l.json', 4, '4', 'c2', '8', 'replaces')"
    )
    build_source_rows(con, contract, [(profile, {})], PrivacySettings())
    rows = con.execute("select _origin_row, account_id, mrr from raw.revenue order by 1").fetchall()
    return fates(con, contract, [profile]), rows


def test_records_added_into_another_records_row_are_merged_not_unaccounted(tmp_path):
    counts, rows = _fates(tmp_path, MERGED)
    # line 3 was replaced by line 4 (a rule reading the object's other records by its name)
    assert rows == [(1, "c1", "15"), (4, "c2", "8")]
    assert (counts["gave_rows"], counts["merged"], counts["set_aside"]) == (2, 1, 1)
    assert counts["unaccounted"] == 0


def test_a_record_no_row_names_is_unaccounted_even_beside_its_customer_s_rows(tmp_path):
    counts, _ = _fates(tmp_path, "")
    assert (counts["merged"], counts["unaccounted"]) == (0, 1)
    # c1's lines gave no row at all: neither is merged
    counts, _ = _fates(tmp_path, MERGED, where="customer <> 'c1'")
    assert (counts["merged"], counts["unaccounted"]) == (0, 2)
    # line 2 is left out of c1's row: sharing the customer does not make it merged
    counts, rows = _fates(tmp_path, MERGED, where="id <> '2'")
    assert rows == [(1, "c1", "10"), (4, "c2", "8")]
    assert (counts["merged"], counts["unaccounted"]) == (0, 1)


def test_merged_by_is_refused_for_the_select_s_merged_list(tmp_path):
    path = tmp_path / "acme.yml"
    path.write_text(
        PROFILE.replace("{merged}", "")
        .replace("{where}", "true")
        .replace("    objects: [lines]\n", "    objects: [lines]\n    merged_by: customer\n")
    )
    with pytest.raises(ProfileError, match="merged_by: replaced by the select's _merged list"):
        load_profile(path)


@pytest.mark.parametrize(
    ("currency", "unit_amount", "mrr"),
    [("jpy", 5000, "5000.0000"), ("bhd", 12345, "12.3450"), ("eur", 12345, "123.4500")],
)
def test_stripe_amounts_are_read_in_the_currency_s_major_unit(tmp_path, currency, unit_amount,
                                                              mrr):  # fmt: skip
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURES / "profiles" / "stripe" / "landing", landing)
    subs = landing / "revenue" / "subscriptions.json"
    page = json.loads(subs.read_text())
    yen = next(s for s in page["data"] if s["customer"] == "cus_C")
    price = yen["items"]["data"][0]["price"]
    yen["currency"] = price["currency"] = currency
    price["unit_amount"], price["unit_amount_decimal"] = unit_amount, str(unit_amount)
    subs.write_text(json.dumps(page))
    con = duckdb.connect()
    load_source(
        con,
        landing,
        source_contracts()["revenue"],
        SourceSettings(profile="stripe"),
        as_of=date(2026, 10, 31),
    )
    assert con.execute(
        "select distinct mrr, currency from raw.revenue where account_id = 'cus_C'"
    ).fetchall() == [(mrr, currency.upper())]
