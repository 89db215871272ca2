"""The link model: the cloglog fit against statsmodels, its design, its failures said in
words, and its estimates against a planted effect."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.alignment import prepare
from models.alignment.link import LinkFit, NoFit, design, fit_cloglog, fit_hazard
from models.simulation import SimUnit, simulate_panel


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

    rng = np.random.default_rng(8)
    groups = np.repeat(np.arange(400), 10)
    X = np.column_stack([np.ones(4000), rng.normal(size=4000), rng.integers(0, 2, 4000)])
    frailty = rng.normal(0, 0.3, 400)[groups]
    p = -np.expm1(-np.exp(-3 + X @ [0, -0.4, 0.3] + frailty))
    y = (rng.random(4000) < p).astype(float)
    fit = fit_cloglog(y, X, groups)
    beta, se = fit.beta, fit.se
    ref = sm.GLM(y, X, family=sm.families.Binomial(link=sm.families.links.CLogLog())).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    np.testing.assert_allclose(beta, ref.params, rtol=1e-6)
    np.testing.assert_allclose(se, ref.bse, rtol=1e-4)


def test_design_indicators_are_polars_dummies_of_segment_tenure_band_and_quarter():
    # The indicators are built from integer codes (no per-row strings); they must be the
    # columns to_dummies(drop_first=True) gives, in its order, whatever the rows' order and
    # with a missing tenure in the last band.
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


def test_a_fit_that_runs_out_of_iterations_says_so():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(3000), rng.normal(size=3000)])
    y = (rng.random(3000) < 0.05).astype(float)
    assert fit_cloglog(y, X, np.arange(3000)).converged
    assert not fit_cloglog(y, X, np.arange(3000), maxiter=1).converged


def test_a_collinear_design_is_reported_as_such_not_as_too_few_events():
    # v1 said "too few events" for any fit it could not make.
    data = prepare(simulate_panel([SimUnit("U", 1500, link=-0.5)], months=18, seed=2))
    data = data.filter(~pl.col("churned_next_month_involuntary"))
    clash = data.with_columns(pl.col("log_mrr_control").alias("cx_composite"))
    got = fit_hazard(clash, "churned_next_month_voluntary", "cx_composite")
    assert isinstance(got, NoFit) and got.reason == "singular", got
    assert isinstance(fit_hazard(data, "churned_next_month_voluntary", "cx_composite"), LinkFit)
    few = data.with_columns(pl.lit(False).alias("churned_next_month_voluntary"))
    assert fit_hazard(few, "churned_next_month_voluntary", "cx_composite") == NoFit("too_few_events")


def test_a_measure_that_separates_the_events_is_reported_as_separation():
    # A small unit whose few churners all had the lowest CX: the deviance settles while the
    # measure's coefficient runs off (a hostile-names night showed a hazard ratio of 5e59).
    data = prepare(simulate_panel([SimUnit("U", 400, link=-0.5)], months=18, seed=3))
    data = data.filter(~pl.col("churned_next_month_involuntary"))
    low = pl.col("cx_composite") < pl.col("cx_composite").quantile(0.02)
    churned = low.fill_null(False)
    separated = data.with_columns(churned.alias("churned_next_month_voluntary"))
    assert separated["churned_next_month_voluntary"].sum() >= 5
    got = fit_hazard(separated, "churned_next_month_voluntary", "cx_composite")
    assert got == NoFit("separated"), got
