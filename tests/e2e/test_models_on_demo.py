"""The models stages on the small demo run: what they publish adds up."""

from __future__ import annotations

import duckdb
import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_warehouse(small_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    assert run_cli(small_demo, root, "2026-11-01") == 0
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_every_active_account_is_valued_once(demo_warehouse):
    con = demo_warehouse
    active = con.execute("select count(*) from analytics.dim_account where is_active").fetchone()[0]
    valued = con.execute(
        "select count(*), count(distinct account_id) from analytics.account_clv"
    ).fetchone()
    assert valued == (active, active)
    # A unit's "All segments" row totals all its active accounts; segment rows are parts of it.
    rows = con.execute(
        """
        select u.business_unit, u.total_residual_clv, a.total, u.clv_at_risk, a.at_risk
        from analytics.unit_clv u
        join (select business_unit, sum(residual_clv) total,
                     sum(residual_clv) filter (where in_bottom_cx_band) at_risk
              from analytics.account_clv group by 1) a using (business_unit)
        where u.segment = 'All segments'
        """
    ).fetchall()
    assert len(rows) == 5
    for _, total, expected, at_risk, expected_at_risk in rows:
        assert total == pytest.approx(expected)
        assert at_risk == pytest.approx(expected_at_risk or 0)


def test_units_planted_with_better_support_score_higher(demo_warehouse, small_demo):
    import json

    truth = {
        u["name"]: u for u in json.loads((small_demo / "planted_truth.json").read_text())["units"]
    }
    rows = demo_warehouse.execute(
        "select business_unit, avg(efficiency_score), avg(quality_score), avg(sci), "
        "bool_and(sci_version = 'sci-v1'), bool_and(sci between sci_ci_low and sci_ci_high) "
        "from analytics.unit_month_sci where sci is not null group by 1"
    ).fetchall()
    assert len(rows) == 5 and all(r[4] and r[5] for r in rows)
    # Planted support quality: faster first response and resolution in the high-execution units.
    good = {u for u, t in truth.items() if t["execution_level"] == "high"}
    for column in (1, 2, 3):
        best_poor = max(r[column] for r in rows if r[0] not in good)
        worst_good = min(r[column] for r in rows if r[0] in good)
        assert worst_good > best_poor, (column, rows)
