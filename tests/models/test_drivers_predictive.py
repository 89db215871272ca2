"""The predictive check on planted data (the key-driver tests are in test_drivers.py)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from models.alignment import prepare
from models.predictive import predictive_check, time_split, weighted_auc
from models.simulation import SimUnit, simulate_panel


@pytest.fixture(scope="module")
def csat_driven():
    # Churn planted on observed CSAT alone: CSAT is the main driver by construction.
    panel = simulate_panel([SimUnit("U", 4000, link=-0.5)], months=24, seed=3, hazard_on="csat")
    return prepare(panel)


def test_time_split_never_trains_on_months_after_the_test_months():
    months = [date(2024, m, 1) for m in range(1, 13)]
    split = time_split(months, 4)
    assert max(split.train_months) < min(split.test_months)
    assert set(split.train_months) | set(split.test_months) == set(months)
    with pytest.raises(ValueError):
        time_split(months[:3], 4)


def test_predictive_check_sees_what_cx_adds(csat_driven):
    checks, risk = predictive_check(csat_driven, {}, test_months=6, replicates=100)
    assert set(checks["model"]) == {"logistic_l2", "gradient_boosting"}
    for row in checks.iter_rows(named=True):
        assert row["train_last_month"] < row["test_first_month"]
        assert row["auc_gain_ci_low"] <= row["auc_gain"] <= row["auc_gain_ci_high"]
    logistic = checks.filter(pl.col("model") == "logistic_l2").row(0, named=True)
    assert logistic["auc_gain_ci_low"] > 0  # a planted CX effect improves prediction
    # Risk for every account of the last month, as probabilities, with words for drivers.
    last = csat_driven.filter(pl.col("month") == csat_driven["month"].max())
    assert risk.height == last.height
    assert risk["churn_risk_next_3_months"].is_between(0, 1).all()
    assert (risk["churn_risk_next_3_months"] >= risk["churn_risk_next_month"]).all()
    assert risk["main_drivers"].str.contains("CSAT").any()


def test_weighted_auc_equals_sklearn_with_unit_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.5, 1), 1)  # ties on purpose
    assert weighted_auc(y, s, np.ones((500, 1)))[0] == pytest.approx(roc_auc_score(y, s))


def test_weighted_auc_with_cluster_weights_equals_sklearn_sample_weights():
    # Each replicate weighs whole clusters; sklearn, given each row its cluster's weight,
    # must agree (its trapezoids count ties half, as the Mann-Whitney form does).
    rng = np.random.default_rng(1)
    clusters = rng.integers(0, 120, 900)
    y = rng.integers(0, 2, 900)
    s = np.round(rng.normal(y * 0.4, 1), 1)
    w = rng.poisson(1.0, size=(120, 4)).astype(float)
    got = weighted_auc(y, s, w, clusters)
    for r in range(4):
        keep = w[clusters, r] > 0
        want = roc_auc_score(y[keep], s[keep], sample_weight=w[clusters, r][keep])
        assert got[r] == pytest.approx(want, rel=1e-12)
