"""The panel and its features: what a model may read, and what prepared() gives it."""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
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


def test_controls_are_measured_by_the_cx_windows_end_and_region_and_plan_enter():
    # v1 controlled for this month's MRR (after the CX window: a downgrade in the notice month
    # entered a control) and never used region or plan.
    from models.alignment.link import controls_note, design
    from models.simulation_latent import LatentUnit, simulate_latent_panel

    panel = simulate_latent_panel([LatentUnit("A", 1500)], months=18, seed=3)
    data = prepare(panel)
    moved = data.filter(pl.col("log_mrr") != pl.col("log_mrr_control"))
    assert moved.height > 0  # the generator moves MRR between the window's end and the month
    X, names = design(data, "cx_composite")
    size = X.column(names.index("log_mrr_control"))
    expected = panel.filter(pl.col("is_at_risk_next_month") & pl.col("log_mrr").is_not_null())
    expected = expected.sort("account_id", "month").select(
        pl.coalesce("log_mrr_window_end", "log_mrr")).to_series().to_numpy()  # fmt: skip
    np.testing.assert_allclose(size, expected)
    assert "log_mrr" not in names
    assert any(n.startswith("region_") for n in names)
    assert any(n.startswith("plan_") for n in names)
    assert controls_note(data) == "region: 4 levels; plan: 3 levels"
    one_region = data.with_columns(pl.lit("NA").alias("region")).drop("plan")
    _, names = design(one_region, "cx_composite")
    assert not any(n.startswith(("region_", "plan_")) for n in names)
    assert controls_note(one_region) == "region: one level only, dropped; plan: not supplied"


def test_nps_non_response_and_the_metrics_observed_enter_the_model():
    # Unhappy customers answer NPS less often here (nonresponse_slope): non-response carries
    # information about churn beyond the composite, which v1 averaged away.
    from models.alignment.link import design, fit_hazard
    from models.simulation_latent import LatentUnit, simulate_latent_panel

    panel = simulate_latent_panel([LatentUnit("A", 6000, link=-0.5)], months=24, seed=4,
                                  nonresponse_slope=1.0)  # fmt: skip
    data = prepare(panel).filter(~pl.col("churned_next_month_involuntary"))
    _, names = design(data, "cx_composite")
    assert {"nps_no_response", "cx_metrics_observed"} <= set(names)
    assert "nps_no_response" not in design(data, "z_nps")[1]  # its own missing flag there
    fit = fit_hazard(data, "churned_next_month_voluntary", "cx_composite")
    assert fit.nonresponse_effect / fit.nonresponse_se > 2.5, fit
