"""The what-if engine: change syntax, the hand-worked example of docs/methods/whatif.md,
planted truth (a lever that drives churn; a lever that is only a symptom), the backtest,
and the published machinery giving the same figures as the fitted one."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from models import whatif as W
from models.alignment.link import fit_cloglog
from models.simulation_whatif import WhatifSim, simulate, warehouse

# ------------------------------------------------------------------ the change syntax


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first_response=-20%", W.Change("first_response", "relative", -0.2)),
        ("frt=+15%", W.Change("first_response", "relative", 0.15)),
        ("fcr=+10pts", W.Change("fcr", "points", 0.10)),
        ("reopen = -5pts", W.Change("reopen", "points", -0.05)),
        ("detractor=-5pts", W.Change("detractor", "points", -0.05)),
        ("csat=+0.3", W.Change("csat", "points", 0.3)),
        ("ces=best", W.Change("ces", "best_quartile")),
    ],
)
def test_changes_are_read_as_written(text, expected):
    assert W.parse_change(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("first_response=-20", "relative"),
        ("fcr=+10%", "percentage points"),
        ("csat=+10pts", "points of its scale"),
        ("speed=-20%", "unknown lever"),
        ("first_response", "cannot read"),
        ("first_response=-120%", "100%"),
    ],
)
def test_a_change_the_engine_cannot_read_says_what_it_accepts(text, words):
    with pytest.raises(W.ChangeError, match=words):
        W.parse_change(text)


# ------------------------------------------------------------------ weighted refits


def test_a_replicate_weight_counts_a_row_as_often_as_it_is_drawn():
    """fit_cloglog with integer weights is the fit on the rows repeated that many times."""
    rng = np.random.default_rng(3)
    n = 3000
    X = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    y = (rng.random(n) < 1 - np.exp(-np.exp(-3 + 0.5 * X[:, 1]))).astype(float)
    w = rng.poisson(1.0, n).astype(float)
    weighted = fit_cloglog(y, X, weights=w)
    repeated = fit_cloglog(np.repeat(y, w.astype(int)), np.repeat(X, w.astype(int), axis=0))
    np.testing.assert_allclose(weighted.beta, repeated.beta, rtol=1e-8, atol=1e-10)
    warm = fit_cloglog(y, X, weights=w, start=weighted.beta)
    np.testing.assert_allclose(warm.beta, weighted.beta, rtol=1e-8, atol=1e-10)


def test_score_draws_spread_as_refitted_replicates_do():
    """The bootstrap's one-step score draws (fit_draws, refit_steps 0) are first-order the
    refitted account-cluster bootstrap: with the same replicates' weights, each lever's
    draws spread as those of replicates refitted by three IRLS steps, and centre on the
    estimate. Tolerances from sampling error: an SD from 400 draws has a relative standard
    error of 1/sqrt(2 x 399) = 3.5%, and the two share their weights, so their ratio varies
    far less; a mean of 400 draws is within 4 of its standard errors of the estimate."""
    s = simulate(WhatifSim(accounts=1500, lever_effect=0.8), seed=21)
    rows = W.read_rows(warehouse(s.panel), "Planted")
    at_risk, _ = W.split_rows(rows)
    fit_rows = at_risk.filter(~pl.col("churned_next_month_involuntary"))
    score = W.fit_draws(fit_rows, "within_account", 400, np.random.default_rng(5))
    refit = W.fit_draws(fit_rows, "within_account", 400, np.random.default_rng(5), refit_steps=3)
    assert score.failed == 0 and len(score.draws) == 400
    assert score.terms == refit.terms
    np.testing.assert_array_equal(score.estimate, refit.estimate)
    for term in ("first_response_within", "first_response_between", "fcr_within", "csat_within"):
        j = score.terms.index(term)
        sd_score, sd_refit = score.draws[:, j].std(ddof=1), refit.draws[:, j].std(ddof=1)
        assert abs(sd_score / sd_refit - 1) < 0.07, term
        # the same replicates move the same way
        assert np.corrcoef(score.draws[:, j], refit.draws[:, j])[0, 1] > 0.95, term
        assert abs(score.draws[:, j].mean() - score.estimate[j]) < 4 * sd_score / math.sqrt(400)


# ------------------------------------------------------------------ the hand-worked example


def _book(minutes: list[float | None], mrr: list[float]) -> W.Book:
    n = len(minutes)
    lever = [None if m is None else math.log(m) for m in minutes]
    rows = pl.DataFrame({
        "account_id": [f"a{i}" for i in range(n)], "month": [date(2026, 10, 1)] * n,
        "segment": ["SMB"] * n, "region": ["North"] * n, "plan": ["Standard"] * n,
        "tenure_months": [30] * n, "mrr": mrr, "log_mrr_control": [math.log(m) for m in mrr],
        "new_since_window": [False] * n, "log_mrr_change_prior_3m": [0.0] * n,
        "lever_first_response": lever, "mean_first_response": lever,
        **{f"lever_{lv}": [None] * n for lv in W.LEVERS if lv != "first_response"},
        **{f"mean_{lv}": [None] * n for lv in W.LEVERS if lv != "first_response"},
    }, schema_overrides={f"{p}_{lv}": pl.Float64 for p in ("lever", "mean") for lv in W.LEVERS})  # fmt: skip
    return W.book_of(rows)


def test_the_hand_worked_example_of_the_methods_page():
    """docs/methods/whatif.md, "A worked example": three accounts, two months."""
    book = _book([100.0, 400.0, None], [100.0, 400.0, 1000.0])
    # exp(eta) = 0.005 x sqrt(minutes); an account without tickets: 0.005 x 4 = 0.02
    draws = W.HazardDraws("association", ["const", "first_response", "first_response_missing"],
                          np.array([math.log(0.005), 0.5, math.log(4.0)]), np.empty((0, 3)))  # fmt: skip
    context = W.Context(involuntary=0.01, margin=0.8, monthly_discount=0.01, geometric_churn=0.02)
    applied = W.apply_changes(book, [W.parse_change("first_response=-20%")], W.levels(book.rows), None)
    np.testing.assert_allclose(applied.shifts["first_response"], [math.log(0.8), math.log(0.8), 0])
    fig = W.scenario_figures(book, draws, applied, context, months=2)
    # the figures the page works out, to the decimals it prints
    assert round(fig.expected_churn_baseline, 6) == 0.314123
    assert round(float(fig.churn_avoided[0]), 6) == 0.026950
    assert round(float(fig.mrr_retained[0]), 4) == 12.0918
    assert round(float(fig.clv_retained[0]), 4) == 211.1882
    eta, tenure_effect, bands, season = W._eta_parts(book, draws, 2)
    p = W.project(eta, tenure_effect, bands, season, 0.0, 0.01, 0.01)
    np.testing.assert_allclose(p.churn[:, 0], [0.094699, 0.180408, 0.039016], atol=5e-7)
    np.testing.assert_allclose(p.survival_end[:, 0], [0.886831, 0.802438, 0.941670], atol=5e-7)


def test_a_detractor_change_converts_the_share_it_names():
    """Detractor share 50% -> 40%: each detractor stays one with probability 0.8, and the
    projection is the mixture of the two paths, exactly."""
    book = _book([100.0] * 4, [100.0] * 4)
    book.rows = book.rows.with_columns(lever_detractor=pl.Series([1.0, 1.0, 0.0, 0.0]))
    applied = W.apply_changes(book, [W.parse_change("detractor=-10pts")], W.levels(book.rows), None)
    np.testing.assert_allclose(applied.detractor_after, [0.8, 0.8, 0.0, 0.0])
    assert applied.after["detractor"] == pytest.approx(0.4)
    draws = W.HazardDraws("association", ["const", "detractor"], np.array([math.log(0.05), 0.7]),
                          np.empty((0, 2)))  # fmt: skip
    ctx = W.Context(0.0)
    fig = W.scenario_figures(book, draws, applied, ctx, months=1)
    h1, h0 = 1 - math.exp(-0.05 * math.exp(0.7)), 1 - math.exp(-0.05)
    assert fig.churn_avoided[0] == pytest.approx(2 * 0.2 * (h1 - h0), rel=1e-12)


def test_best_quartile_moves_only_units_short_of_it():
    levels = {"a": {"fcr": 0.5, "first_response": 5.0}, "b": {"fcr": 0.6, "first_response": 4.0},
              "c": {"fcr": 0.7, "first_response": 3.0}, "d": {"fcr": 0.8, "first_response": 2.0}}  # fmt: skip
    best = W.best_quartile({u: {**{lv: None for lv in W.LEVERS}, **v} for u, v in levels.items()})
    assert best["fcr"] == pytest.approx(0.725)  # the 75th percentile: higher is better
    assert best["first_response"] == pytest.approx(2.75)  # the 25th: lower is better
    book = _book([math.exp(2.0), math.exp(2.5)], [1.0, 1.0])
    applied = W.apply_changes(book, [W.Change("first_response", "best_quartile")],
                              W.levels(book.rows), best)  # fmt: skip
    np.testing.assert_allclose(applied.shifts["first_response"], [0.0, 0.0])  # already better


# ------------------------------------------------------------------ planted truth

CONFIG = W.WhatifConfig(replicates=100)


def _run(sim: WhatifSim, seed: int, change: str = "first_response=-20%"):
    s = simulate(sim, seed)
    rows = W.read_rows(warehouse(s.panel), sim.unit)
    models = W.fit_unit_models(sim.unit, rows, CONFIG, None)
    return s, rows, models, W.run_scenario(models, [W.parse_change(change)], None, 12)


@pytest.fixture(scope="module")
def drives():
    """First response drives churn: log HR 0.8 per log minute (a 20% faster response is
    about 16% less churn), nothing hidden."""
    return _run(WhatifSim(accounts=2000, lever_effect=0.8), seed=11)


@pytest.fixture(scope="module")
def symptom():
    """First response does nothing; a hidden trait drives churn (log HR 0.8 per SD) and
    slows responses (0.5 log minutes per SD)."""
    return _run(WhatifSim(accounts=2000, hidden_effect=0.8, symptom=0.5), seed=12)


def test_a_lever_that_drives_churn_is_recovered_within_its_interval(drives):
    s, _, _, result = drives
    truth = s.truth(-0.2)
    row = result.row()
    assert row["churn_avoided_ci_low"] <= truth <= row["churn_avoided_ci_high"]
    # and the estimate within three bootstrap SEs of the truth (sampling error, not a tuned
    # tolerance: the SE is the replicates' own spread)
    se = float(np.std(result.association.churn_avoided[1:], ddof=1))
    assert abs(row["churn_avoided"] - truth) < 3 * se
    assert row["churn_avoided_within_ci_low"] <= truth <= row["churn_avoided_within_ci_high"]
    assert row["evidence_grade"] == "within-account"
    # MRR follows the accounts kept
    assert row["mrr_retained_per_year_ci_low"] > 0


def test_a_symptom_is_overstated_by_association_and_not_within_accounts(symptom):
    s, _, _, result = symptom
    row = result.row()
    assert s.truth(-0.2) == 0.0
    assert row["churn_avoided_ci_low"] > 0  # across accounts: slow responders churn more
    assert row["churn_avoided_within_ci_low"] <= 0 <= row["churn_avoided_within_ci_high"]
    assert row["evidence_grade"] == "association"
    assert row["evidence_agreement"] in ("disagree", "not confirmed within accounts")
    assert "something else about them" in row["evidence_note"]
    assert "cause" not in row["evidence_note"].lower().replace("because", "")


def test_the_backtest_expects_what_happened(drives):
    """The no-change projection on held-out months: observed within three SDs of expected
    (the SD of a sum of independent Bernoulli outcomes at the predicted chances)."""
    _, rows, _, _ = drives
    bt = W.backtest(rows, 6, CONFIG, "Planted")
    assert bt is not None and bt.accounts > 1000
    assert abs(bt.observed - bt.expected) < 3 * bt.sd


def test_a_large_unit_is_fitted_on_a_fixed_sample_of_its_accounts_and_projects_them_all(drives):
    s, rows, _, _ = drives
    con = warehouse(s.panel)
    small = W.read_rows(con, "Planted", max_accounts=500, seed=1)
    at_risk, active = W.split_rows(small)
    assert at_risk["account_id"].n_unique() == 500
    assert small["fit_account_share"][0] == pytest.approx(500 / W.split_rows(rows)[0]["account_id"].n_unique())
    assert active.height == W.split_rows(rows)[1].height  # every active account
    assert W.read_rows(con, "Planted", max_accounts=500, seed=1).equals(small)  # the same sample
    assert not W.read_rows(con, "Planted", max_accounts=500, seed=2).equals(small)


def test_the_published_machinery_gives_the_same_figures(drives):
    """What `cxalign whatif` reads back (analytics.unit_whatif_model) projects exactly as
    the fitted models did."""
    _, rows, models, result = drives
    frame = W.model_frame(models)
    assert W.sample_of(frame) == (CONFIG.max_fit_accounts, CONFIG.seed)
    back = W.models_from_frame("Planted", frame, rows)
    again = W.run_scenario(back, result.changes, None, 12)
    for measure in ("churn_avoided", "mrr_retained"):
        np.testing.assert_allclose(getattr(again.association, measure),
                                   getattr(result.association, measure), rtol=1e-12)  # fmt: skip
        np.testing.assert_allclose(getattr(again.within, measure),
                                   getattr(result.within, measure), rtol=1e-12)  # fmt: skip


def test_the_page_says_which_grade_a_symptom_gets(symptom, drives):
    """The unit page's words: for the symptom, the association figure with the warning that
    the difference may come from something else; for the driver, the within-account figure."""
    import re

    from pipelines.scorecard.language import whatif_summary

    strong = {"outcome_tested": "retention", "link_verdict": "strong", "link_reason": ""}
    words = {}
    for name, (_, _, _, result) in (("symptom", symptom), ("drives", drives)):
        row = {**result.row(), "lever": "first_response", "not_estimated_reason": None}
        summary = whatif_summary(strong, [row])
        assert summary["lead"].startswith("Bringing first response time from")
        words[name] = summary["evidence"]
        assert not re.search(r"\bcaus(e|es|ed|ing)\b", summary["lead"] + words[name], re.I)
    assert "Evidence: association" in words["symptom"]
    assert "something else about them" in words["symptom"]
    assert "Evidence: within-account" in words["drives"] and "Within the same accounts:" in words["drives"]


def test_a_non_finite_lever_value_is_read_as_not_measured():
    """One NaN or infinity in a lever column (the account_month contract allows them) made
    the decimal sums of whatif_rows.sql and company_levels fail for every unit."""
    s = simulate(WhatifSim(accounts=300, lever_effect=0.8), seed=3)
    panel = s.panel.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(float("nan"))
        .when(pl.int_range(pl.len()) == 1).then(float("inf"))
        .otherwise(pl.col("fcr_rate")).alias("fcr_rate")
    )  # fmt: skip
    con = warehouse(panel)
    rows = W.read_rows(con, "Planted")
    assert rows.height == W.read_rows(warehouse(s.panel), "Planted").height
    assert rows["lever_fcr"].null_count() == 2
    assert W.company_levels(con)["Planted"]["fcr"] is not None


def test_a_lever_constant_at_an_inexact_binary_value_leaves_the_within_model_standing():
    """fcr constant at 0.7 differed from its own (exact decimal) mean by 1e-16: a column of
    rounding noise that stopped the within-account fit for every lever."""
    s = simulate(WhatifSim(accounts=1200, lever_effect=0.8), seed=4)
    rows = W.read_rows(warehouse(s.panel.with_columns(fcr_rate=pl.lit(0.7))), "Planted")
    models = W.fit_unit_models("Planted", rows, W.WhatifConfig(replicates=20), None)
    assert models.within is not None, models.within_reason
    assert "first_response_within" in models.within.terms
    assert "fcr_within" not in models.within.terms


def test_intervals_below_zero_are_not_read_as_churning_less():
    grade = W.evidence((-25.2, -30.1, -20.5), (-20.0, -29.3, -13.2), "first response time")
    assert grade.agreement == "opposite" and grade.grade == "association"
    assert "churned more, not less" in grade.note
    assert "churn less" not in grade.note.replace("not less", "")
    assert "cause" not in grade.note.lower().replace("because", "")
