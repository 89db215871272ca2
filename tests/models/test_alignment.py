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
