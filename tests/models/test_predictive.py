"""The predictive check, account risk and the risk backtest (models/predictive.py)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import roc_auc_score

from models.alignment import prepare
from models.predictive import (
    LOGIT_CLIP,
    _models,
    calibration_figures,
    features,
    predictive_check,
    prepare_scored,
    recalibration,
    risk_backtest,
    time_split,
    unit_check,
    weighted_auc,
)
from models.simulation import SimUnit, simulate_panel

OUTCOME_COLUMNS = (
    "churned_next_month", "churned_next_month_voluntary", "churned_next_month_involuntary",
    "log_mrr_change_next", "expanded_next_month", "log_handle_hours_next",
)  # fmt: skip
CX_COLUMNS = (
    "nps_category_latest", "csat_mean", "ces_mean", "first_response_minutes_median", "fcr_rate",
)  # fmt: skip


def warehouse_panel(sim: pl.DataFrame, new_accounts: int = 40) -> pl.DataFrame:
    """simulate_panel's rows as analytics.account_month holds them the day after the last
    simulated month ends: an account is billed in the month it leaves (churned_this_month),
    the last month's next-month outcomes are not known yet (NULL), and `new_accounts`
    accounts are billed for the first time in the last month."""
    last = sim["month"].max()
    rows = sim.with_columns(churned_this_month=pl.lit(False))
    # The month each leaver is billed in and leaves: nothing happens to it after.
    leaving = rows.filter(pl.col("churned_next_month") & (pl.col("month") < last)).with_columns(
        pl.col("month").dt.offset_by("1mo"),
        pl.col("tenure_months") + 1,
        churned_this_month=pl.lit(True),
        is_at_risk_next_month=pl.lit(False),
        **{c: pl.lit(False) for c in OUTCOME_COLUMNS[:3]},
        **{c: pl.lit(None) for c in OUTCOME_COLUMNS[3:]},
    )
    new = (
        rows.filter(pl.col("month") == last)
        .head(new_accounts)
        .with_columns(
            pl.format("{}-new", "account_id").alias("account_id"),
            tenure_months=pl.lit(0),
            log_mrr_change_prior_3m=pl.lit(None),
            **{c: pl.lit(None) for c in CX_COLUMNS},
        )
    )
    if "log_mrr_window_end" in rows.columns:  # not billed when the CX window ended
        new = new.with_columns(log_mrr_window_end=pl.lit(None))
    panel = pl.concat([rows, leaving, new], how="vertical_relaxed")
    # The last month is complete; the next one is not: its outcomes are not known yet.
    is_last = pl.col("month") == last
    return panel.with_columns(
        pl.when(~is_last).then(pl.col("is_at_risk_next_month") & ~pl.col("churned_this_month"))
        .otherwise(False).alias("is_at_risk_next_month"),
        *(pl.when(~is_last).then(pl.col(c)).alias(c) for c in OUTCOME_COLUMNS),
    ).sort("account_id", "month")  # fmt: skip


@pytest.fixture(scope="module")
def company():
    sim = simulate_panel(
        [SimUnit("U", 2500, link=-0.5), SimUnit("V", 1500, link=-0.4)],
        months=24, seed=5, hazard_on="csat",
    )  # fmt: skip
    panel = warehouse_panel(sim)
    return panel, prepare(panel), prepare_scored(panel)


@pytest.fixture(scope="module")
def checked(company):
    _, rows, scored = company
    return predictive_check(rows, {}, test_months=6, replicates=50, scored=scored)


def test_risk_scores_exactly_the_accounts_active_in_the_last_complete_month(company, checked):
    # Before: the last month of the prepared rows (the one before the last complete month)
    # was scored, with the accounts that left in the last month and without the new ones.
    panel, _, _ = company
    _, risk, _ = checked
    last = panel["month"].max()
    in_last = panel.filter(pl.col("month") == last)
    active = set(in_last.filter(~pl.col("churned_this_month"))["account_id"])
    gone = set(in_last.filter(pl.col("churned_this_month"))["account_id"])
    new = {a for a in in_last["account_id"] if a.endswith("-new")}
    assert gone and len(new) == 40  # the case has both
    assert risk["account_id"].n_unique() == risk.height
    assert set(risk["account_id"]) == active
    assert not set(risk["account_id"]) & gone
    assert new <= set(risk["account_id"])
    assert risk["month"].unique().to_list() == [last]
    assert risk["churn_risk_next_3_months"].is_between(0, 1).all()
    assert (risk["churn_risk_next_3_months"] >= risk["churn_risk_next_month"]).all()
    assert risk["main_drivers"].str.contains("CSAT").any()


def test_risk_is_calibrated_on_months_before_the_scored_one(company, checked):
    panel, rows, scored = company
    _, risk, _ = checked
    observed = sorted(rows["month"].unique())
    # The six months with an observed outcome before the scored month; the boosting model
    # trained on the months before those.
    for r in risk.unique(["business_unit"]).iter_rows(named=True):
        assert r["trained_through"] < r["calibrated_from"] <= r["calibrated_through"] < r["month"]
        assert (r["calibrated_from"], r["calibrated_through"]) == (observed[-6], observed[-1])
        assert r["trained_through"] == observed[-7]
    # Rows whose outcome calibrates the risk cannot be scored: asking is an error.
    unit_rows = rows.filter(pl.col("business_unit") == "U")
    overlapping = unit_rows.filter(pl.col("month") == observed[-1])
    with pytest.raises(ValueError, match="not after the last month with an observed outcome"):
        unit_check("U", unit_rows, replicates=10, scored=overlapping)


def test_predictive_check_sees_what_cx_adds(checked):
    checks, _, _ = checked
    assert set(checks["model"]) == {"logistic_l2", "gradient_boosting"}
    for row in checks.iter_rows(named=True):
        assert row["train_last_month"] < row["test_first_month"]
        assert row["auc_gain_ci_low"] <= row["auc_gain"] <= row["auc_gain_ci_high"]
    logistic = checks.filter(pl.col("model") == "logistic_l2", pl.col("business_unit") == "U")
    assert logistic["auc_gain_ci_low"][0] > 0  # a planted CX effect improves prediction


def test_a_month_without_one_segment_is_scored_with_the_models_columns():
    df = pl.DataFrame({
        "log_mrr": [1.0, 2.0], "log_mrr_change_prior_3m": [None, 0.1], "tenure_months": [1, 2],
        "segment": ["SMB", "SMB"],
        **{f"z_{m}": [0.0, 1.0] for m in ("nps", "csat", "ces", "first_response", "fcr")},
    })  # fmt: skip
    X, names = features(df, True, ["Enterprise", "SMB"])
    assert names[4:6] == ["segment_Enterprise", "segment_SMB"]
    assert X[:, 4].tolist() == [0.0, 0.0] and X[:, 5].tolist() == [1.0, 1.0]


# --- the backtest ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtest_rows():
    sim = simulate_panel([SimUnit("U", 1500, link=-0.5)], months=22, seed=9, hazard_on="csat")
    return prepare(sim)


def test_backtest_covers_the_last_six_observed_months_from_earlier_models(backtest_rows):
    table = risk_backtest("U", backtest_rows, seed=1)
    months = sorted(backtest_rows["month"].unique())
    assert table["month"].to_list() == months[-6:]
    for i, r in enumerate(table.iter_rows(named=True)):
        assert r["trained_through"] == months[-13]
        assert (r["calibrated_from"], r["calibrated_through"]) == (months[-12 + i], months[-7 + i])
        assert r["trained_through"] < r["calibrated_from"] <= r["calibrated_through"] < r["month"]


@pytest.mark.parametrize("k", [0, 3])
def test_backtest_month_predictions_never_saw_that_month(backtest_rows, k):
    # Turn every outcome of the k-th backtest month and later upside down: the predictions
    # for that month must not move (the models never saw it), its observed count must.
    before = risk_backtest("U", backtest_rows, seed=1)
    month = before["month"][k]
    voluntary = pl.col("churned_next_month_voluntary")
    flipped = backtest_rows.with_columns(
        pl.when((pl.col("month") >= month) & ~pl.col("churned_next_month_involuntary"))
        .then(~voluntary).otherwise(voluntary).alias("churned_next_month_voluntary")
    )  # fmt: skip
    after = risk_backtest("U", flipped, seed=1)
    same = ["expected_churners", "accounts", "trained_through", "calibrated_through"]
    assert after[: k + 1].select(same).equals(before[: k + 1].select(same))
    assert after["observed_churners"][k] > before["observed_churners"][k]
    if k + 1 < before.height:  # later months are calibrated on the flipped outcomes
        assert not after["expected_churners"][k + 1 :].equals(before["expected_churners"][k + 1 :])


def test_a_large_unit_is_backtested_on_a_sample_of_its_accounts(backtest_rows):
    table = risk_backtest("U", backtest_rows, seed=1, max_accounts=600)
    n = backtest_rows["account_code"].n_unique()
    assert table["account_sample_share"].to_list() == [600 / n] * 6
    assert (table["accounts"] <= 600).all()
    full = risk_backtest("U", backtest_rows, seed=1)
    assert full["account_sample_share"].to_list() == [1.0] * 6
    assert (table["accounts"] < full["accounts"]).all()


def test_backtest_figures_match_the_recipe_done_by_hand(backtest_rows):
    table = risk_backtest("U", backtest_rows, seed=1)
    rows = backtest_rows.filter(~pl.col("churned_next_month_involuntary"))
    months = sorted(rows["month"].unique())
    segments = sorted(rows["segment"].unique())
    fit = rows.filter(pl.col("month") <= months[-13])
    y = "churned_next_month_voluntary"
    gbm = _models(1)["gradient_boosting"]().fit(
        features(fit, True, segments)[0], fit[y].cast(pl.Int8).to_numpy()
    )

    def scored(df):
        return gbm.predict_proba(features(df, True, segments)[0])[:, 1], df[y].cast(int).to_numpy()

    for i, r in enumerate(table.iter_rows(named=True)):
        window = rows.filter(pl.col("month").is_between(months[-12 + i], months[-7 + i]))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(*scored(window))
        raw, outcome = scored(rows.filter(pl.col("month") == r["month"]))
        p = iso.predict(raw)
        assert r["accounts"] == len(outcome)
        assert r["observed_churners"] == outcome.sum()
        assert r["expected_churners"] == pytest.approx(p.sum(), rel=1e-12)
        assert r["brier_score"] == pytest.approx(np.mean((p - outcome) ** 2), rel=1e-12)


def test_calibration_figures_by_hand():
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.05, 0.9, 0.4, 0.0])
    y = np.array([0, 0, 1, 1, 0, 1, 0, 0])
    got = calibration_figures(p, y)
    assert got["accounts"] == 8
    assert got["expected_churners"] == pytest.approx(2.55)
    assert got["observed_churners"] == 3
    # (0.01 + 0.04 + 0.49 + 0.16 + 0.0025 + 0.01 + 0.16 + 0) / 8
    assert got["brier_score"] == pytest.approx(0.8725 / 8)
    # The recalibration is the logistic regression of y on logit(p), p = 0 held at LOGIT_CLIP.
    q = np.clip(p, LOGIT_CLIP, 1 - LOGIT_CLIP)
    ref = sm.Logit(y, sm.add_constant(np.log(q / (1 - q)))).fit(disp=0)
    assert got["calibration_intercept"] == pytest.approx(ref.params[0], rel=1e-8)
    assert got["calibration_slope"] == pytest.approx(ref.params[1], rel=1e-8)
    low, high = ref.conf_int()[1]
    assert got["calibration_slope_ci_low"] == pytest.approx(low, rel=1e-6)
    assert got["calibration_slope_ci_high"] == pytest.approx(high, rel=1e-6)


def test_recalibration_of_calibrated_predictions_is_the_identity():
    rng = np.random.default_rng(2)
    p = rng.beta(1, 30, 200_000)
    fit = recalibration(p, (rng.random(p.size) < p).astype(float))
    assert abs(fit.intercept) < 3 * fit.intercept_se and abs(fit.slope - 1) < 3 * fit.slope_se


def test_recalibration_refuses_what_has_no_answer():
    assert recalibration(np.array([0.1, 0.2]), np.array([0.0, 0.0])) is None  # no churn
    assert recalibration(np.array([0.1, 0.1, 0.1]), np.array([0.0, 1.0, 0.0])) is None
    assert (
        recalibration(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) is None
    )  # separated
    assert calibration_figures(np.array([0.1, 0.2]), np.array([0, 0]))["calibration_slope"] is None


# --- the split and the AUC ----------------------------------------------------------------


def test_time_split_never_trains_on_months_after_the_test_months():
    months = [date(2024, m, 1) for m in range(1, 13)]
    split = time_split(months, 4)
    assert max(split.train_months) < min(split.test_months)
    assert set(split.train_months) | set(split.test_months) == set(months)
    with pytest.raises(ValueError):
        time_split(months[:3], 4)


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
