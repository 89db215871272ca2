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
