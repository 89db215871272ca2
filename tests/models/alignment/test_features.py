"""The panel and its features: what a model may read, and what prepared() gives it."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from models.alignment import AlignmentConfig, FeatureLeakError, company_scale, prepare, prepared
from models.simulation import SimUnit, simulate_panel


def test_a_feature_from_the_outcome_month_is_refused():
    with pytest.raises(FeatureLeakError, match="churned_this_month"):
        AlignmentConfig(extra_features=("churned_this_month",))
    with pytest.raises(FeatureLeakError, match="mrr_change"):
        AlignmentConfig(extra_features=("mrr_change",))  # this month's revenue movement
    AlignmentConfig(extra_features=("tickets",))  # lagged: fine


def test_prepared_rows_leave_out_the_replaced_columns_unless_kept():
    panel = simulate_panel([SimUnit("U0", 200)], months=8, seed=4)
    assert "csat_mean" in panel.columns
    assert not {"csat_mean", "mrr", "nps_category_latest"} & set(prepare(panel).columns)
    con = duckdb.connect()
    con.register("panel", panel)
    kept = prepared(con, "panel", company_scale(con, "panel"), keep=("csat_mean",))
    assert "csat_mean" in kept.columns and "ces_mean" not in kept.columns
    np.testing.assert_array_equal(kept["csat_mean"].to_numpy(), kept["csat"].to_numpy())
