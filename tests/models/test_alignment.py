"""The alignment test on simulated panels with planted truth (fixed seeds)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from scipy import stats

from models.alignment import (
    AlignmentConfig,
    FeatureLeakError,
    align_units,
    benjamini_hochberg,
    fit_hazard,
    prepare,
    random_effects,
)
from models.simulation import SimUnit, simulate_panel

FAST = AlignmentConfig(secondary_metrics=False, revenue_model=False, permutations=100,
                       bootstrap_replicates=200)  # fmt: skip


@pytest.mark.slow
def test_planted_types_are_recovered_and_a_tiny_unit_is_inconclusive():
    panel = simulate_panel(
        [
            SimUnit("Innovative", 3000, execution=0.5, link=-0.5),
            SimUnit("Inflicted", 3000, execution=-0.5, link=-0.5),
            SimUnit("Ineffective", 4000, execution=0.5, link=0.0),
            SimUnit("Inactive", 4000, execution=-0.5, link=0.0),
            SimUnit("Tiny", 60, execution=0.5, link=-0.5),
        ],
        months=24,
        seed=42,
    )
    units, company, _ = align_units(panel, FAST)
    got = {r["business_unit"]: r for r in units.iter_rows(named=True)}
    for name in ("Innovative", "Inflicted", "Ineffective", "Inactive"):
        assert got[name]["quadrant"] == name, got[name]
        assert got[name]["confidence"] == "established"
    assert got["Innovative"]["link_verdict"] == "strong"
    assert got["Inactive"]["link_verdict"] == "weak"
    assert got["Tiny"]["link_verdict"] == "inconclusive"
    assert got["Tiny"]["quadrant"] == "Inconclusive"
    assert got["Tiny"]["accounts_needed"] > 60
    assert got["Innovative"]["execution_level"] == "high"
    assert got["Inflicted"]["execution_level"] == "low"
    assert company["units_strong"][0] == 2


@pytest.mark.slow
def test_null_units_are_not_called_strong_above_the_nominal_rate():
    strong = total = 0
    for rep in range(12):
        panel = simulate_panel(
            [SimUnit(f"U{i}", 1000, execution=0.3 * (i - 1.5), link=0.0) for i in range(4)],
            months=18,
            seed=1000 + rep,
        )
        units, _, _ = align_units(panel, FAST)
        strong += int((units["link_verdict"] == "strong").sum())
        total += units.height
    # At a true rate of 5%, 8 or more "strong" calls out of 48 has probability below 0.005.
    assert stats.binom.sf(strong - 1, total, 0.05) > 0.005 or strong == 0, strong
    assert strong <= 7


@pytest.mark.slow
def test_cx_confounded_with_size_is_not_called_strong():
    # Bigger accounts churn less and also get better CX; CX itself does nothing.
    panel = simulate_panel(
        [
            SimUnit(f"U{i}", 3000, link=0.0, size_effect=-0.6, cx_size_correlation=0.7)
            for i in range(2)
        ],
        months=24,
        seed=7,
    )
    # The confounding is there: without the controls, CX looks protective.
    data = prepare(panel).filter(pl.col("business_unit") == "U0")
    naive = data.select("churned_next_month_voluntary", "cx_composite").drop_nulls()
    r, p = stats.pearsonr(naive["cx_composite"], naive["churned_next_month_voluntary"].cast(float))
    assert r < 0 and p < 0.01
    units, _, _ = align_units(panel, FAST)
    assert (units["link_verdict"] != "strong").all(), units


def test_a_feature_from_the_outcome_month_is_refused():
    with pytest.raises(FeatureLeakError, match="churned_this_month"):
        AlignmentConfig(extra_features=("churned_this_month",))
    with pytest.raises(FeatureLeakError, match="mrr_change"):
        AlignmentConfig(extra_features=("mrr_change",))  # this month's revenue movement
    AlignmentConfig(extra_features=("tickets",))  # lagged: fine


def test_benjamini_hochberg_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.04, 0.03, 0.2, 0.5, 0.012])
    np.testing.assert_allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])


def test_random_effects_pooling_by_hand():
    b, se = np.array([-0.5, -0.1, 0.1]), np.array([0.1, 0.1, 0.2])
    pooled = random_effects(b, se)
    w = 1 / se**2
    fixed = (w * b).sum() / w.sum()
    q = (w * (b - fixed) ** 2).sum()
    tau2 = (q - 2) / (w.sum() - (w**2).sum() / w.sum())
    assert pooled.tau2 == pytest.approx(tau2)
    assert pooled.mean == pytest.approx((b / (se**2 + tau2)).sum() / (1 / (se**2 + tau2)).sum())
    shrink = tau2 / (tau2 + se**2)
    np.testing.assert_allclose(pooled.shrunk, shrink * b + (1 - shrink) * pooled.mean)
    # Shrinkage pulls each unit towards the pooled mean, never past it.
    assert np.all(np.abs(pooled.shrunk - pooled.mean) <= np.abs(b - pooled.mean))


@pytest.mark.slow
def test_hazard_model_is_unbiased_and_its_intervals_cover_a_planted_effect():
    # Churn planted on observed CSAT (per SD), so -0.3 is exactly what a CSAT model estimates.
    estimates, covered = [], 0
    for seed in range(10, 20):
        panel = simulate_panel(
            [SimUnit("U", 5000, link=-0.3)], months=24, seed=seed, hazard_on="csat"
        )
        data = prepare(panel).filter(~pl.col("churned_next_month_involuntary"))
        fit = fit_hazard(data, "churned_next_month_voluntary", "z_csat")
        estimates.append((fit.effect, fit.se))
        covered += fit.ci[0] < -0.3 < fit.ci[1]
    effects, ses = np.array(estimates).T
    # Mean within three Monte Carlo standard errors of the truth ...
    assert abs(effects.mean() + 0.3) < 3 * ses.mean() / np.sqrt(len(effects))
    # ... and at 95% coverage, 6 or fewer of 10 intervals covering has probability 0.001.
    assert covered >= 7


def test_cloglog_irls_matches_statsmodels_glm_with_cluster_errors():
    import statsmodels.api as sm

    from models.alignment import fit_cloglog

    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(400), 10)
    X = np.column_stack([np.ones(4000), rng.normal(size=4000), rng.integers(0, 2, 4000)])
    frailty = rng.normal(0, 0.3, 400)[groups]
    p = -np.expm1(-np.exp(-3 + X @ [0, -0.4, 0.3] + frailty))
    y = (rng.random(4000) < p).astype(float)
    beta, se, _ = fit_cloglog(y, X, groups)
    ref = sm.GLM(y, X, family=sm.families.Binomial(link=sm.families.links.CLogLog())).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    np.testing.assert_allclose(beta, ref.params, rtol=1e-6)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-4)


def test_design_indicators_are_polars_dummies_of_segment_tenure_band_and_quarter():
    # The indicators are built from integer codes (no per-row strings); they must be the
    # columns to_dummies(drop_first=True) gives, in its order, whatever the rows' order and
    # with a missing tenure in the last band.
    from models.alignment import design

    data = prepare(simulate_panel([SimUnit("U0", 800)], months=20, seed=9))
    data = data.sample(fraction=1.0, shuffle=True, seed=2).with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("tenure_months"))
        .alias("tenure_months")
    )  # fmt: skip
    expected = data.select(
        pl.col("segment").cast(pl.Utf8),
        pl.when(pl.col("tenure_months") < 6).then(pl.lit("t0-5"))
        .when(pl.col("tenure_months") < 12).then(pl.lit("t6-11"))
        .when(pl.col("tenure_months") < 24).then(pl.lit("t12-23")).otherwise(pl.lit("t24+"))
        .alias("tenure_band"),
        pl.format("{}Q{}", pl.col("month").dt.year(), pl.col("month").dt.quarter()).alias("quarter"),
    ).to_dummies(drop_first=True)  # fmt: skip
    X, names = design(data, "cx_composite")
    got = {name: X.column(j) for j, name in enumerate(names)}
    assert X.shape == (data.height, len(names))
    whole = np.column_stack([X.column(j) for j in range(len(names))])
    np.testing.assert_array_equal(X.rows(0, data.height), whole)  # and any block of rows:
    np.testing.assert_array_equal(X.rows(100, 250), whole[100:250])
    indicators = [n for n in names if n.startswith(("segment_", "tenure_band_", "quarter_"))]
    assert indicators == expected.columns
    for name in indicators:
        np.testing.assert_array_equal(got[name], expected[name].to_numpy())
    # The indicators are kept as each row's cell (segment x tenure band x quarter): the
    # normal equations and products summed from the cells are those of the whole matrix,
    # over more than one block of rows.
    from models.design import GRAM_BLOCK, matvec, weighted_gram

    assert data.height > GRAM_BLOCK
    rng = np.random.default_rng(3)
    w, z, b = rng.random(data.height), rng.normal(size=data.height), rng.normal(size=len(names))
    H, g = weighted_gram(X, w, z)
    np.testing.assert_allclose(H, (whole.T * w) @ whole, rtol=1e-10)
    np.testing.assert_allclose(g, (whole.T * w) @ z, rtol=1e-10)
    np.testing.assert_allclose(weighted_gram(X, w)[0], H, rtol=1e-12)
    np.testing.assert_allclose(matvec(X, b), whole @ b, rtol=1e-10)


def test_replicate_weights_drawn_in_blocks_are_one_draw():
    from models.alignment import poisson_weighted_sums
    from models.parallel import REPLICATE_BLOCK

    values = np.random.default_rng(1).normal(size=(1000, 3))
    replicates = 2 * REPLICATE_BLOCK + 5  # a partial last block
    weights = np.random.default_rng(7).poisson(1.0, size=(replicates, 1000))
    got = poisson_weighted_sums(np.random.default_rng(7), replicates, values)
    np.testing.assert_allclose(got, weights @ values, rtol=1e-12)


def test_prepared_rows_leave_out_the_replaced_columns_unless_kept():
    panel = simulate_panel([SimUnit("U0", 200)], months=8, seed=4)
    assert "csat_mean" in panel.columns
    assert not {"csat_mean", "mrr", "nps_category_latest"} & set(prepare(panel).columns)
    import duckdb

    from models.alignment import company_scale, prepared

    con = duckdb.connect()
    con.register("panel", panel)
    kept = prepared(con, "panel", company_scale(con, "panel"), keep=("csat_mean",))
    assert "csat_mean" in kept.columns and "ces_mean" not in kept.columns
    np.testing.assert_array_equal(kept["csat_mean"].to_numpy(), kept["csat"].to_numpy())
