"""The demo company as its vendors' exports (`cxalign demo-data --vendor-exports`) and as the
canonical landing zone, same seed: one night each gives the same account-month panel and the
same verdicts.

Compared: analytics.account_month, every row and every column but one, handle_hours. No
vendor export carries handle time (Intercom's and Zendesk's have none: docs/profiles.md), so
the vendor night's handle_hours is 0 everywhere; the test says so rather than leave the column
out silently. Everything else is carried exactly: Intercom's statistics are Unix seconds
(Zendesk's whole minutes would round the response times), CSAT is Qualtrics' numeric 1-5,
MRR is Stripe prices in cents, one subscription per level of MRR.
"""

from __future__ import annotations

import duckdb
import pytest

from pipelines.cli import main
from pipelines.demo_data import generate
from pipelines.demo_vendor import CONFIG_NAME
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

# Small, as the other e2e demos; more bad rows than the default so that each planted break
# (a conversation closed before it opened, scores off the scale or as text, an unknown
# account, a month of revenue sent twice) is in both demos.
DEMO = {"accounts": 300, "months": 8, "seed": 11, "bad_row_rate": 0.01}
AS_OF = "2026-11-01"
NOT_CARRIED = ("handle_hours",)  # no vendor export has handle time
# The verdicts: per unit, its quadrant (the CX type), its execution and its link.
VERDICT = ("business_unit", "quadrant", "confidence", "execution_level", "link_verdict",
           "falsification_passed")  # fmt: skip


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("vendor_demo")
    canonical, vendor = root / "canonical", root / "vendor"
    generate(canonical / "landing", **DEMO)
    argv = ["demo-data", "--out", str(vendor / "landing"), "--vendor-exports"]
    for k, v in DEMO.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    assert main(argv) == 0
    config = vendor / "landing" / CONFIG_NAME
    assert run_cli(canonical / "landing", canonical, AS_OF) == 0
    assert run_cli(vendor / "landing", vendor, AS_OF, config) == 0
    cons = {
        name: duckdb.connect(str(root / name / "warehouse.duckdb"), read_only=True)
        for name in ("canonical", "vendor")
    }
    yield cons
    for con in cons.values():
        con.close()


def _columns(con, table: str) -> list[str]:
    schema, name = table.split(".")
    return [
        r[0]
        for r in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and "
            "table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
    ]


def test_the_vendor_night_read_vendor_exports(nights):
    read_as = {
        r[0]: r[1]
        for r in nights["vendor"]
        .execute(
            "select source, list(distinct read_as order by read_as) from raw._files group by 1"
        )
        .fetchall()
    }
    assert read_as == {
        "accounts": ["salesforce.accounts"],
        "support_tickets": ["intercom.companies", "intercom.contacts", "intercom.conversations"],
        "survey_responses": ["qualtrics.responses"],
        "revenue": ["stripe.subscriptions"],
        "churn_events": ["stripe.subscription_ends"],
        "support_costs": ["canonical"],  # no vendor profile carries it
    }


def test_account_month_is_the_same_on_every_column_vendors_carry(nights):
    columns = _columns(nights["canonical"], "analytics.account_month")
    assert columns == _columns(nights["vendor"], "analytics.account_month")
    carried = ", ".join(f'"{c}"' for c in columns if c not in NOT_CARRIED)
    query = f"select {carried} from analytics.account_month order by account_id, month"
    canonical = nights["canonical"].execute(query).fetchall()
    vendor = nights["vendor"].execute(query).fetchall()
    assert len(canonical) > 1_000
    assert vendor == canonical

    # Handle time: in the canonical demo, not in any vendor export (0 hours, not unknown).
    hours = "select count(*) filter (where handle_hours > 0) from analytics.account_month"
    assert nights["canonical"].execute(hours).fetchone()[0] > 0
    assert nights["vendor"].execute(hours).fetchone()[0] == 0


def test_the_planted_breaks_end_alike(nights):
    # The months whose revenue is unknown (a month sent twice with two amounts; in Stripe, a
    # month in two currencies) are the same months.
    query = "select distinct account_id, month from staging.revenue_quarantined_keys order by all"
    unknown = nights["canonical"].execute(query).fetchall()
    assert unknown and nights["vendor"].execute(query).fetchall() == unknown
    # Each source quarantines the same number of records (a conflicting duplicate is two rows
    # of the canonical revenue, one Stripe month); the survey and ticket rules differ where
    # the vendor's export breaks otherwise (a score as choice text is a type error).
    count = (
        "select source, count(distinct (split_part(source_file, ' #', 1), source_row)) "
        "from analytics.quarantine where source <> 'revenue' group by 1 order by 1"
    )
    assert (
        nights["vendor"].execute(count).fetchall() == nights["canonical"].execute(count).fetchall()
    )


def test_the_verdicts_are_the_same(nights):
    query = f"select {', '.join(VERDICT)} from analytics.unit_alignment order by business_unit"
    canonical = nights["canonical"].execute(query).fetchall()
    assert len(canonical) == 5
    assert nights["vendor"].execute(query).fetchall() == canonical
    # ... and the numbers behind them (NaN where a unit has none).
    numbers = (
        "select business_unit, "
        + ", ".join(
            f"coalesce({c}, 'nan'::double)"
            for c in ("execution_score", "link_effect", "link_se", "p_value", "q_value")
        )
        + " from analytics.unit_alignment order by business_unit"
    )
    vendor = nights["vendor"].execute(numbers).fetchall()
    for got, want in zip(vendor, nights["canonical"].execute(numbers).fetchall(), strict=True):
        assert got[0] == want[0]
        assert got[1:] == pytest.approx(want[1:], rel=1e-9, nan_ok=True)
