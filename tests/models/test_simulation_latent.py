"""The second data-generating process (models/simulation_latent.py) does what it says."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import statsmodels.api as sm

from models.simulation import SimUnit, simulate_panel
from models.simulation_latent import (
    CODED_METRICS,
    REGION_SCORE,
    REGIONS,
    LatentUnit,
    measured_estimand,
    simulate_latent_panel,
    window_sd,
    window_sum,
)


def _voluntary_rate(panel: pl.DataFrame) -> dict[str, float]:
    rates = panel.group_by("business_unit").agg(pl.col("churned_next_month_voluntary").mean())
    return dict(rates.iter_rows())


def _cloglog(df: pl.DataFrame, columns: list[str]) -> tuple[float, float]:
    """The first column's cloglog coefficient and SE, with segment and early tenure."""
    d = df.filter(~pl.col("churned_next_month_involuntary")).with_columns(
        (pl.col("tenure_months") < 6).cast(pl.Float64).alias("early"),
        *[(pl.col("segment") == s).cast(pl.Float64).alias(s) for s in ("Mid-Market", "Enterprise")],
    )
    X = sm.add_constant(d.select(*columns, "early", "Mid-Market", "Enterprise").to_numpy())
    y = d["churned_next_month_voluntary"].cast(pl.Float64).to_numpy()
    fit = sm.GLM(y, X, family=sm.families.Binomial(sm.families.links.CLogLog())).fit()
    return float(fit.params[1]), float(fit.bse[1])


def test_columns_and_types_are_simulation_py_plus_region_plan_and_mrr():
    reference = simulate_panel([SimUnit("A", 30)], months=4)
    panel = simulate_latent_panel([LatentUnit("A", 60), LatentUnit("B", 40)], months=8)
    expected = {**reference.schema, "region": pl.String, "plan": pl.String, "mrr": pl.Float64}
    assert dict(panel.schema) == expected
    assert np.allclose(panel["log_mrr"].to_numpy(), np.log(panel["mrr"].to_numpy()))
    assert set(panel["region"]) <= set(REGIONS)
    assert panel.select(pl.struct("account_id", "month").is_unique().all()).item()
    # with_truth adds the planted truth, and only that
    truth = simulate_latent_panel([LatentUnit("A", 60)], months=8, with_truth=True)
    assert set(truth.columns) - set(panel.columns) == {"latent_quality", "hazard_cx"}


def test_churn_runs_high_where_execution_is_low_and_involuntary_churn_is_flat():
    units = [LatentUnit("high", 1500, execution=0.5), LatentUnit("low", 1500, execution=-0.5)]
    rates = _voluntary_rate(simulate_latent_panel(units, seed=1))
    assert 0.006 < rates["high"] < 0.02 and 0.04 < rates["low"] < 0.09
    flat = _voluntary_rate(simulate_latent_panel(units, seed=1, execution_coupling=0.0))
    assert 0.75 < flat["low"] / flat["high"] < 1.33
    # involuntary churn: 0.2 % a month by default, whatever the execution
    inv = (
        simulate_latent_panel(units, seed=1)
        .group_by("business_unit")
        .agg(pl.col("churned_next_month_involuntary").mean())
    )
    assert all(0.001 < r < 0.0035 for r in inv["churned_next_month_involuntary"])


def test_the_company_trend_moves_every_unit_and_churn_follows_it_only_when_asked():
    units = [LatentUnit("A", 600, 0.4), LatentUnit("B", 600, -0.4), LatentUnit("C", 600)]
    flat = simulate_latent_panel(units, seed=2)
    rising = simulate_latent_panel(units, seed=2, trend=0.04)
    # churn does not follow the trend: the same account-months, only the CX moved
    assert flat.select("account_id", "month").equals(rising.select("account_id", "month"))

    def rise(panel):
        late = pl.col("month") >= pl.col("month").max() - pl.duration(days=180)
        early = pl.col("month") <= pl.col("month").min() + pl.duration(days=180)
        return dict(
            panel.group_by("business_unit")
            .agg(pl.col("csat_mean").filter(late).mean() - pl.col("csat_mean").filter(early).mean())
            .iter_rows()
        )

    moved, still = rise(rising), rise(flat)
    for unit in ("A", "B", "C"):
        assert moved[unit] - still[unit] > 0.3, unit  # 0.04 SD x 24 months ~ 0.6 CSAT points
        assert abs(still[unit]) < 0.15, unit
    following = simulate_latent_panel(units, seed=2, trend=0.04, churn_follows_trend=True)
    last_year = pl.col("month") >= pl.col("month").max() - pl.duration(days=330)
    late_rate = {
        name: p.filter(last_year)["churned_next_month_voluntary"].mean()
        for name, p in (("flat", flat), ("following", following))
    }
    assert late_rate["following"] < 0.7 * late_rate["flat"]


def test_region_confounds_cx_and_churn_in_a_null_unit():
    units = [
        LatentUnit("confounded", 2500, region_cx=0.7, region_churn=-0.6),
        LatentUnit("clean", 2500),
    ]
    panel = simulate_latent_panel(units, seed=3)
    score = pl.col("region").replace_strict(dict(zip(REGIONS, REGION_SCORE.tolist(), strict=True)))
    accounts = panel.group_by("business_unit", "account_id").agg(
        score.first().alias("score"),
        pl.col("csat_mean").mean().alias("csat"),
        pl.col("churned_next_month_voluntary").any().cast(pl.Float64).alias("churned"),
    )
    corr = dict(
        accounts.drop_nulls()
        .group_by("business_unit")
        .agg(pl.corr("score", "csat").alias("cx"), pl.corr("score", "churned").alias("churn"))
        .select("business_unit", pl.struct("cx", "churn"))
        .iter_rows()
    )
    assert corr["confounded"]["cx"] > 0.25 and corr["confounded"]["churn"] < -0.1
    assert abs(corr["clean"]["cx"]) < 0.08 and abs(corr["clean"]["churn"]) < 0.08


def test_the_same_seed_gives_the_same_panel_and_each_unit_has_its_own_stream():
    units = [LatentUnit("A", 200, link=-0.5), LatentUnit("B", 150, -0.3)]
    first = simulate_latent_panel(units, months=12, seed=7)
    assert first.equals(simulate_latent_panel(units, months=12, seed=7))
    assert not first.equals(simulate_latent_panel(units, months=12, seed=8))
    # adding a unit leaves the others' accounts as they were
    more = simulate_latent_panel([*units, LatentUnit("C", 100)], months=12, seed=7)
    assert more.filter(pl.col("business_unit") != "C").equals(first)


def test_the_cx_window_ends_before_the_decision_month():
    # window_sum: at column t, months t-lag-window+1 .. t-lag
    impulse = np.zeros((1, 20))
    impulse[0, 5] = 1.0
    assert np.flatnonzero(window_sum(impulse, 6, 1)[0]).tolist() == list(range(6, 12))
    assert np.flatnonzero(window_sum(impulse, 6, 2)[0]).tolist() == list(range(7, 13))
    # the hazard's CX variable is the mean latent quality of the six months before the row,
    # never the row's own month
    panel = simulate_latent_panel([LatentUnit("A", 400, execution=-0.3, link=-0.5)], months=14,
                                  seed=4, with_truth=True)  # fmt: skip
    rows = panel.sort("account_id", "month").with_columns(
        pl.col("latent_quality").shift(1).rolling_mean(6).over("account_id").alias("before"),
        pl.col("month").shift(6).over("account_id").alias("six_back"),
    )
    full = rows.filter(pl.col("six_back") == pl.col("month").dt.offset_by("-6mo"))
    assert full.height > 1000
    expected = (full["before"] + 0.3) / window_sd()
    assert np.allclose(full["hazard_cx"].to_numpy(), expected.to_numpy())
    # a new account's first month has no window: no CX, and no CX in its hazard
    first = rows.filter(pl.col("tenure_months") == 0)
    assert first.height > 0
    assert (first["nps_category_latest"] == "no_response").all()
    assert first["csat_mean"].is_null().all() and first["fcr_rate"].is_null().all()
    assert (first["hazard_cx"] == 0).all()


def test_accounts_join_and_leave_and_mrr_moves():
    panel = simulate_latent_panel([LatentUnit("A", 800, execution=-0.3)], seed=5)
    starts = panel.group_by("account_id").agg(pl.col("month").min(), pl.col("tenure_months").min())
    assert starts["month"].n_unique() > 20  # histories start at different calendar months
    late = starts.filter(pl.col("month") > pl.col("month").min())
    assert (late["tenure_months"] == 0).all()
    assert panel["churned_next_month"].sum() > 100
    rows = panel.sort("account_id", "month").with_columns(
        pl.col("log_mrr").shift(1).over("account_id").alias("previous"),
        pl.col("log_mrr").shift(4).over("account_id").alias("four_back"),
    )
    # MRR at the window's end is last month's; the prior change is over the 3 months before it
    # (from the panel's first month on: the accounts there have a history before it)
    assert rows.filter(pl.col("tenure_months") >= 1)["log_mrr_window_end"].null_count() == 0
    assert rows.filter(pl.col("tenure_months") == 0)["log_mrr_window_end"].is_null().all()
    with_previous = rows.filter(pl.col("previous").is_not_null())
    assert np.allclose(with_previous["log_mrr_window_end"], with_previous["previous"])
    with_prior = rows.filter(pl.col("four_back").is_not_null())
    assert np.allclose(with_prior["log_mrr_change_prior_3m"],
                       with_prior["previous"] - with_prior["four_back"])  # fmt: skip
    assert (with_prior["log_mrr_change_prior_3m"] != 0).mean() > 0.05
    moved = rows.filter(pl.col("log_mrr") != pl.col("log_mrr_window_end"))
    assert moved.height > 0.005 * rows.height  # this month's MRR is not the window's
    stays = panel.filter(~pl.col("churned_next_month"))
    assert stays["expanded_next_month"].null_count() == 0
    assert stays["expanded_next_month"].mean() > 0.005


def test_nps_non_response_is_informative_either_way():
    units = [LatentUnit("high", 800, execution=0.6), LatentUnit("low", 800, execution=-0.6)]

    def no_response(slope):
        panel = simulate_latent_panel(units, seed=6, nonresponse_slope=slope)
        return dict(
            panel.group_by("business_unit")
            .agg((pl.col("nps_category_latest") == "no_response").mean())
            .iter_rows()
        )

    unhappy_quiet, unhappy_loud = no_response(1.0), no_response(-1.0)
    assert unhappy_quiet["low"] > unhappy_quiet["high"] + 0.05
    assert unhappy_loud["low"] < unhappy_loud["high"] - 0.05


def test_the_planted_link_is_what_a_hazard_model_finds():
    # latent: per SD of the latent window mean
    panel = simulate_latent_panel([LatentUnit("A", 4000, -0.3, -0.5)], seed=9, with_truth=True)
    effect, se = _cloglog(panel, ["hazard_cx"])
    assert abs(effect + 0.5) < 4 * se
    # measured: per SD of the company's measured CSAT (with its missing flag)
    units = [LatentUnit("A", 4000, 0.3, -0.4), LatentUnit("B", 2000, -0.3)]
    panel = simulate_latent_panel(units, seed=9, hazard_on="measured", measured_metric="csat")
    csat = CODED_METRICS["csat"]
    mean, sd = panel.select(csat.mean().alias("mean"), csat.std().alias("sd")).row(0)
    z = ((pl.col("csat_mean") - mean) / sd).alias("z")
    unit = panel.filter(pl.col("business_unit") == "A").with_columns(
        z.fill_null(0.0), pl.col("csat_mean").is_null().cast(pl.Float64).alias("missing")
    )
    effect, se = _cloglog(unit, ["z", "missing"])
    target = measured_estimand(panel, -0.4, "csat")
    assert abs(target + 0.4) < 0.1
    assert abs(effect - target) < 4 * se


def test_a_unit_of_2500_accounts_over_30_months_is_quick():
    import time

    start = time.perf_counter()
    panel = simulate_latent_panel([LatentUnit("A", 2500, -0.5, -0.5)], months=30)
    assert time.perf_counter() - start < 5.0  # about 0.3 s on one free core
    assert panel["account_id"].n_unique() == 2500
    assert math.isclose(panel["log_mrr"].exp().max(), panel["mrr"].max(), rel_tol=1e-12)
