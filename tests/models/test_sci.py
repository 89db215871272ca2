"""The Support Contribution Index (sci-v1): worked by hand, properties, config rules."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from models.cluster import ols_cluster
from models.sci import (
    CATALOG,
    OutcomePanel,
    SCIConfigError,
    combine,
    outcome_estimate,
    parse_config,
    resolved_well,
    score,
    unit_month_sci,
    weighted_quantile,
)

CONFIG = parse_config()


def _tiny_inputs():
    month = date(2026, 3, 1)
    marts = pl.DataFrame(
        [{
            "business_unit": "U1", "month": month,
            "first_response_minutes_median": 120.0, "first_response_minutes_p90": 480.0,
            "resolution_minutes_median": 960.0, "fcr_rate": 0.55, "reopen_rate": 0.10,
            "csat_mean": 4.2, "csat_top2_share": 0.8, "ces_mean": None,
            "tickets_per_100_accounts": 50.0, "handle_hours": 10.0, "cost_per_ticket": None,
        }]
    )  # fmt: skip
    tickets = pl.DataFrame(
        {
            "business_unit": ["U1"] * 4, "month": [month] * 4, "account_id": ["a", "a", "b", "c"],
            "first_response_minutes": [60.0, 120.0, 180.0, 240.0],
            "resolution_minutes": [600.0, 960.0, 1200.0, None], "fcr": [1, 0, 1, None],
            "reopened": [0, 0, 1, None],
        }
    )  # fmt: skip
    responses = pl.DataFrame(
        {"business_unit": ["U1"] * 2, "month": [month] * 2, "account_id": ["a", "b"],
         "survey_type": ["csat", "csat"], "score": [5, 3], "top2": [1, 0]}
    )  # fmt: skip
    panel = pl.DataFrame(
        schema={"account_id": pl.Utf8, "business_unit": pl.Utf8, "month": pl.Date,
                "segment": pl.Utf8, "log_mrr": pl.Float64, "tenure_months": pl.Int64,
                "mrr": pl.Float64, "fcr_rate": pl.Float64, "csat_mean": pl.Float64,
                "first_response_minutes_median": pl.Float64, "churned_next_month": pl.Boolean}
    )  # fmt: skip
    return marts, tickets, responses, panel


def test_index_worked_by_hand():
    row = unit_month_sci(*_tiny_inputs(), CONFIG).row(0, named=True)
    # Efficiency, default targets: durations on a log scale between floor and target.
    frt = 100 * (math.log(1440) - math.log(120)) / (math.log(1440) - math.log(30))  # 64.19
    p90 = 100 * (math.log(4320) - math.log(480)) / (math.log(4320) - math.log(240))  # 76.02
    res = 100 * (math.log(4320) - math.log(960)) / (math.log(4320) - math.log(240))  # 52.04
    fcr = 100 * (0.55 - 0.3) / (0.8 - 0.3)  # 50
    reopen = 100 * (0.25 - 0.10) / (0.25 - 0.03)  # 68.18
    efficiency = 0.25 * frt + 0.15 * p90 + 0.25 * res + 0.25 * fcr + 0.10 * reopen
    # Quality: CES not measured this month, so CSAT mean and top-2 share its weight 0.4 : 0.3.
    csat = 100 * (4.2 - 3.0) / (4.6 - 3.0)  # 75
    top2 = 100 * (0.8 - 0.5) / (0.9 - 0.5)  # 75
    quality = (0.4 * csat + 0.3 * top2) / 0.7
    # Outcome: no supported accounts to estimate from, so the index is over two pillars.
    index = (0.3 * efficiency + 0.3 * quality) / 0.6
    assert row["first_response_median_score"] == pytest.approx(frt)
    assert row["efficiency_score"] == pytest.approx(efficiency)
    assert row["quality_score"] == pytest.approx(quality)
    assert row["outcome_score"] is None and row["pillars_measured"] == 2
    assert row["sci"] == pytest.approx(index)
    # = (0.3 * 59.78 + 0.3 * 75.00) / 0.6, efficiency = 16.05 + 11.40 + 13.01 + 12.50 + 6.82
    assert row["sci"] == pytest.approx(67.39, abs=0.01)
    assert row["sci_version"] == "sci-v1"
    assert row["sci_ci_low"] <= row["sci"] <= row["sci_ci_high"]


components = st.fixed_dictionaries(
    {
        "first_response_median": st.floats(1, 10_000),
        "first_response_p90": st.floats(1, 50_000),
        "resolution_median": st.floats(1, 50_000),
        "fcr_rate": st.floats(0, 1),
        "reopen_rate": st.floats(0, 1),
        "csat_mean": st.floats(1, 5),
        "csat_top2": st.floats(0, 1),
        "ces_mean": st.one_of(st.just(math.nan), st.floats(1, 7)),
        "retention_lift": st.one_of(st.just(math.nan), st.floats(-5, 5)),
    }
)


def _index(values: dict, config=CONFIG) -> float:
    scores = {n: score(np.atleast_1d(values[n]), s) for n, s in config.components.items()}
    return float(combine(scores, config)["sci"][0])


@settings(max_examples=300, deadline=None)
@given(components, st.sampled_from(["first_response_median", "resolution_median", "fcr_rate",
                                    "csat_mean"]), st.floats(0.01, 0.99))  # fmt: skip
def test_improving_one_component_never_lowers_the_index(values, name, step):
    better = dict(values)
    if CATALOG[name].direction == "lower":
        better[name] = values[name] * (1 - step)
    else:
        top = {"fcr_rate": 1.0, "csat_mean": 5.0}[name]
        better[name] = values[name] + step * (top - values[name])
    assert _index(better) >= _index(values) - 1e-9


@settings(max_examples=200, deadline=None)
@given(components, st.floats(0.0, 0.25))
def test_moving_weight_between_pillars_moves_the_index_as_the_formula_says(values, delta):
    values = {**values, "ces_mean": 5.0, "retention_lift": 1.0}  # every pillar measured
    shifted = parse_config(
        {"pillars": {"outcome": {"weight": 0.4 - delta}, "efficiency": {"weight": 0.3 + delta}}}
    )
    scores = {n: score(np.atleast_1d(values[n]), s) for n, s in CONFIG.components.items()}
    pillars = combine(scores, CONFIG)
    expected = _index(values) + delta * (
        pillars["efficiency_score"][0] - pillars["outcome_score"][0]
    )
    assert _index(values, shifted) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pillars": {"quality": {"weight": 0.5}}}, "sci.pillars.*.weight: weights must sum to 1"),
        ({"pillars": {"efficiency": {"components": {"fcr_rate": {"weight": 0.5}}}}},
         "sci.pillars.efficiency.components.*.weight: weights must sum to 1"),
        ({"pillars": {"efficiency": {"components": {"fcr_rate": {"floor": 0.9, "target": 0.5}}}}},
         "fcr_rate: target 0.5 must be above floor 0.9 (higher is better): the range is the wrong way round"),
        ({"pillars": {"efficiency": {"components": {"first_response_median": {"floor": 10, "target": 60}}}}},
         "must be below floor 10 (lower is better)"),
        ({"pillars": {"quality": {"components": {"nps": {"weight": 0.1}}}}},
         "sci.pillars.quality.components.nps: unknown component"),
        ({"pillars": {"quality": {"components": {"fcr_rate": {"weight": 0.1}}}}}, "belongs to pillar efficiency"),
        ({"weights": {}}, "sci.weights: unknown setting"),
    ],
)  # fmt: skip
def test_bad_sci_config_is_refused_with_the_setting_named(raw, message):
    with pytest.raises(SCIConfigError) as err:
        parse_config(raw)
    assert message in str(err.value)


def test_cluster_robust_errors_match_statsmodels():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(60), 5)
    X = np.column_stack([np.ones(300), rng.normal(size=300), rng.integers(0, 2, 300)])
    y = X @ [0.5, 0.2, -0.1] + rng.normal(size=60)[groups] + rng.normal(size=300)
    beta, se = ols_cluster(y, X, groups)
    ref = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    np.testing.assert_allclose(beta, ref.params, rtol=1e-10)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-8)


@pytest.mark.parametrize("n", [1, 2, 255, 256, 257, 1_000])
def test_weighted_quantile_is_the_quantile_of_the_sample_the_counts_repeat(n):
    # Integer weights (the bootstrap's counts) repeat each value that many times: the weighted
    # quantile is the plain quantile of that sample, the smallest value whose share of the
    # sample reaches q (numpy's inverted_cdf). Sizes around the 256-row blocks, with ties.
    rng = np.random.default_rng(n)
    values = rng.integers(0, 40, n).astype(float)
    counts = rng.poisson(1.0, size=(n, 30)).astype(np.uint8)
    counts[:, 0] = 0  # a replicate that drew none of these rows
    got = weighted_quantile(values, counts, (0.1, 0.5, 0.9, 1.0))
    assert np.isnan(got[0]).all()
    for r in range(1, counts.shape[1]):
        sample = np.repeat(values, counts[:, r])
        if len(sample):
            want = np.quantile(sample, [0.1, 0.5, 0.9, 1.0], method="inverted_cdf")
            np.testing.assert_array_equal(got[r], want)
    # one q gives one value per replicate; float weights work the same way
    np.testing.assert_array_equal(weighted_quantile(values, counts.astype(float), 0.5), got[:, 1])


def _outcome_panel(seed: int, lift: float, accounts: int = 1_500, months: int = 12):
    """Account-months of one unit with a planted retention lift (probability points) for
    account-months resolved well, beside segment, size, tenure and month effects and an
    account effect (so errors cluster by account)."""
    rng = np.random.default_rng(seed)
    account = np.repeat(np.arange(accounts), months)
    month = np.tile(np.arange(months), accounts)
    segment = rng.choice(["enterprise", "mid", "smb"], accounts)[account]
    log_mrr = rng.normal(7, 1, accounts)[account]
    tenure = rng.integers(0, 40, accounts)[account] + month
    fcr = rng.uniform(0.2, 1.0, account.size)
    csat = np.where(rng.random(account.size) < 0.3, np.nan, rng.uniform(2, 5, account.size))
    first_response = rng.lognormal(4.5, 1, account.size)
    well = (fcr >= 0.5) & (np.isnan(csat) | (csat >= 3.5)) & (first_response <= 240)
    p_stay = (
        0.90 + lift * well + 0.01 * (log_mrr - 7) + 0.02 * (segment == "enterprise")
        + 0.005 * (tenure >= 24) - 0.002 * month + rng.normal(0, 0.03, accounts)[account]
    )  # fmt: skip
    churned = rng.random(account.size) > np.clip(p_stay, 0, 1)
    calendar = pl.Series([date(2025 + m // 12, m % 12 + 1, 1) for m in range(months)])
    return pl.DataFrame({
        "account_id": [f"acc-{a:05d}" for a in account],
        "month": calendar.gather(month),
        "segment": segment, "log_mrr": log_mrr, "tenure_months": tenure,
        "mrr": np.exp(log_mrr), "fcr_rate": fcr, "csat_mean": csat,
        "first_response_minutes_median": first_response, "churned_next_month": churned,
    }).with_columns(pl.col("csat_mean").fill_nan(None))  # fmt: skip


def test_outcome_estimate_recovers_a_planted_lift_with_statsmodels_cluster_errors():
    panel = _outcome_panel(seed=11, lift=0.04).sample(fraction=1.0, shuffle=True, seed=1)
    est = outcome_estimate(panel, CONFIG)
    # The same model statsmodels fits from polars' own dummies: same estimate and CR1 error.
    df = panel.with_columns(
        resolved_well(panel, CONFIG).cast(pl.Float64).alias("well"),
        pl.when(pl.col("tenure_months") < 6).then(pl.lit("0-5"))
        .when(pl.col("tenure_months") < 12).then(pl.lit("6-11"))
        .when(pl.col("tenure_months") < 24).then(pl.lit("12-23"))
        .otherwise(pl.lit("24+")).alias("tenure_band"),
    )  # fmt: skip
    dummies = df.select("segment", "tenure_band", pl.col("month").cast(pl.Utf8)).to_dummies(
        drop_first=True
    )
    X = np.column_stack(
        [np.ones(df.height), df["well"], df["log_mrr"], dummies.to_numpy().astype(float)]
    )
    y = 1.0 - df["churned_next_month"].cast(pl.Float64).to_numpy()
    groups = df["account_id"].rank("dense").to_numpy()
    ref = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert est.lift_pp == pytest.approx(100 * ref.params[1], rel=1e-9)
    assert est.se_pp == pytest.approx(100 * ref.bse[1], rel=1e-8)
    assert est.n_accounts == 1_500 and est.n_account_months == 18_000
    assert est.well_share == pytest.approx(df["well"].mean())
    # The planted 4 points, within three standard errors (about 0.45 points here).
    assert abs(est.lift_pp - 4.0) < 3 * est.se_pp
    assert est.se_pp < 1.0


def test_each_months_window_estimates_what_the_filtered_rows_do():
    panel = _outcome_panel(seed=12, lift=0.0, months=18).sample(fraction=1.0, shuffle=True, seed=2)
    rows = OutcomePanel.of(panel, CONFIG)
    for first, stop in [(date(2025, 1, 1), date(2026, 1, 1)), (date(2025, 7, 1), date(2026, 7, 1))]:
        window = panel.filter((pl.col("month") >= first) & (pl.col("month") < stop))
        got = rows.estimate(*rows.window(first, stop), CONFIG)
        want = outcome_estimate(window, CONFIG)
        assert got.n_account_months == want.n_account_months == window.height
        assert got.lift_pp == pytest.approx(want.lift_pp, rel=1e-9, abs=1e-12)
        assert got.se_pp == pytest.approx(want.se_pp, rel=1e-9)
        assert got.mrr_well == pytest.approx(want.mrr_well, rel=1e-12)
    # Too few accounts, or no contrast: no estimate.
    assert outcome_estimate(panel.filter(pl.col("account_id") < "acc-00100"), CONFIG) is None
    everyone_well = panel.with_columns(
        fcr_rate=pl.lit(1.0), csat_mean=pl.lit(None, pl.Float64),
        first_response_minutes_median=pl.lit(1.0),
    )  # fmt: skip
    assert outcome_estimate(everyone_well, CONFIG) is None
