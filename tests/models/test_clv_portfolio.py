"""Valuing a customer base: per-unit fits, segment fits where data suffice, CLV at risk."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from models.clv import rfm_summary
from models.clv.cdnow import read_cdnow
from models.clv.portfolio import ALL_SEGMENTS, CLVParams, contractual_clv, transactional_clv


def _lifetimes(rng, unit, segment, alpha, beta, n, horizon=24):
    theta = rng.beta(alpha, beta, n) if np.isfinite(alpha) else np.full(n, beta)
    lifetime = rng.geometric(theta)
    churned = lifetime <= horizon
    return pl.DataFrame(
        {
            "account_id": [f"{unit}-{segment}-{i}" for i in range(n)],
            "business_unit": unit,
            "segment": segment,
            "churned": churned,
            "periods": np.where(churned, lifetime, horizon),
            "entry_period": 1,
            "current_mrr": np.where(churned, 0.0, 100.0),
        }
    )


def test_units_segments_and_at_risk_value():
    rng = np.random.default_rng(7)
    lifetimes = pl.concat(
        [
            _lifetimes(rng, "U1", "SMB", 0.8, 2.0, 4000),
            _lifetimes(rng, "U1", "Enterprise", 0.8, 6.0, 150),  # too small for its own fit
            _lifetimes(rng, "U2", "SMB", 1.5, 4.0, 3000),
        ]
    )
    band = lifetimes.select("account_id").with_columns(
        (pl.int_range(pl.len()) % 4 == 0).alias("in_bottom_cx_band")
    )
    params = CLVParams(min_segment_accounts=1000, min_segment_churn_events=100)
    fits, accounts = contractual_clv(lifetimes, band, params)

    scopes = {(r["business_unit"], r["segment"]) for r in fits.iter_rows(named=True)}
    assert scopes == {("U1", ALL_SEGMENTS), ("U1", "SMB"), ("U2", ALL_SEGMENTS), ("U2", "SMB")}
    # Every active account is valued exactly once, with its segment's fit where there is one.
    active = lifetimes.filter(~pl.col("churned"))
    assert accounts.height == active.height
    assert accounts["account_id"].n_unique() == accounts.height
    by_model = dict(accounts.group_by("segment", "model").len().select(
        pl.concat_str("segment", "model", separator="/"), "len").iter_rows())  # fmt: skip
    assert (
        by_model["Enterprise/sbg_unit"] == active.filter(pl.col("segment") == "Enterprise").height
    )
    assert "SMB/sbg_unit" not in by_model

    u1 = fits.filter((pl.col("business_unit") == "U1") & (pl.col("segment") == "SMB")).row(
        0, named=True
    )
    assert abs(u1["sbg_alpha"] - 0.8) < 3 * u1["sbg_alpha_se"]
    assert abs(u1["sbg_beta"] - 2.0) < 3 * u1["sbg_beta_se"]
    # Totals and CLV at risk are the sums over the accounts each row values.
    all_u2 = fits.filter((pl.col("business_unit") == "U2") & (pl.col("segment") == ALL_SEGMENTS))
    u2_accounts = accounts.filter(pl.col("business_unit") == "U2")
    assert all_u2["total_residual_clv"][0] == pytest.approx(u2_accounts["residual_clv"].sum())
    assert all_u2["clv_at_risk"][0] == pytest.approx(
        u2_accounts.filter(pl.col("in_bottom_cx_band"))["residual_clv"].sum()
    )
    # residual CLV = margin x MRR x DERL
    row = accounts.row(0, named=True)
    assert row["residual_clv"] == pytest.approx(0.8 * 100 * row["derl"])
    # Heterogeneous retention: the naive constant-churn figure undervalues the survivors.
    assert all_u2["naive_residual_clv"][0] < all_u2["total_residual_clv"][0]


def _with_a_tiny_unit():
    # Two accounts: one left after a month, one is still billed after five. The likelihood
    # is flattest at the bounds (no heterogeneity can be told from one departure), so the
    # sBG cannot be estimated.
    rng = np.random.default_rng(11)
    tiny = pl.DataFrame(
        {
            "account_id": ["T-1", "T-2"], "business_unit": "Tiny", "segment": "SMB",
            "churned": [True, False], "periods": [1, 5], "entry_period": 1,
            "current_mrr": [0.0, 80.0],
        }
    )  # fmt: skip
    lifetimes = pl.concat([_lifetimes(rng, "U1", "SMB", 0.8, 2.0, 2000), tiny])
    band = lifetimes.select("account_id").with_columns(pl.lit(False).alias("in_bottom_cx_band"))
    return lifetimes, *contractual_clv(lifetimes, band, CLVParams())


def test_a_unit_too_small_to_identify_the_model_is_reported_not_fatal():
    # The other unit must still be valued, the small one reported.
    lifetimes, fits, accounts = _with_a_tiny_unit()

    row = fits.filter(pl.col("business_unit") == "Tiny").row(0, named=True)
    assert row["model"] == "none"
    assert row["fit_note"].startswith("not estimated: sBG: estimate of")
    assert "do not identify the model" in row["fit_note"]
    assert (row["accounts"], row["churn_events"]) == (2, 1)
    assert set(accounts["business_unit"]) == {"U1"}
    assert (
        accounts.height
        == lifetimes.filter((pl.col("business_unit") == "U1") & ~pl.col("churned")).height
    )


def test_a_unit_without_a_fit_has_null_value_not_zero():
    # Its value is unknown, not nothing: NULL (shown as "not estimated"), with the reason.
    _, fits, _ = _with_a_tiny_unit()
    row = fits.filter(pl.col("business_unit") == "Tiny").row(0, named=True)
    for column in ("total_residual_clv", "clv_at_risk", "clv_at_risk_share",
                   "naive_residual_clv", "loglik"):  # fmt: skip
        assert row[column] is None, column
    assert "do not identify the model" in row["not_estimated_reason"]
    fitted = fits.filter(pl.col("business_unit") == "U1")
    assert fitted["not_estimated_reason"].is_null().all()
    assert fitted["total_residual_clv"].is_not_null().all()


def test_the_scorecard_says_not_estimated_where_there_is_no_fit():
    from pipelines.scorecard.language import money
    from pipelines.scorecard.render import _env

    _, fits, _ = _with_a_tiny_unit()
    page = _env({}).get_template("_value_at_stake.html")  # no unit named apart from others
    rows = {r["business_unit"]: r for r in fits.filter(pl.col("segment") == ALL_SEGMENTS)
            .iter_rows(named=True)}  # fmt: skip
    tiny = page.render(clv=rows["Tiny"])
    assert "not estimated</strong>: " + rows["Tiny"]["not_estimated_reason"][:20] in tiny
    assert ">0<" not in tiny and "n/a" not in tiny
    fitted = page.render(clv=rows["U1"])
    assert money(rows["U1"]["total_residual_clv"]) in fitted
    assert "discounted as the model is" in fitted and "not estimated" not in fitted


def test_homogeneous_retention_falls_back_to_constant_retention():
    # Exactly 10% leave every month: no heterogeneity, so the sBG estimate runs to infinity.
    survivors = [10_000, 9_000, 8_100, 7_290, 6_561, 5_905]
    rows = []
    for t in range(1, len(survivors)):
        rows += [(True, t)] * (survivors[t - 1] - survivors[t])
    rows += [(False, len(survivors) - 1)] * survivors[-1]
    lifetimes = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(rows))],
            "business_unit": "U1",
            "segment": "SMB",
            "churned": [r[0] for r in rows],
            "periods": [r[1] for r in rows],
            "entry_period": 1,
            "current_mrr": [0.0 if r[0] else 50.0 for r in rows],
        }
    )
    band = pl.DataFrame(schema={"account_id": pl.Utf8, "in_bottom_cx_band": pl.Boolean})
    fits, accounts = contractual_clv(lifetimes, band, CLVParams(min_segment_accounts=10**6))
    row = fits.row(0, named=True)
    assert row["model"] == "geometric"
    assert "no heterogeneity" in row["fit_note"]
    assert json.loads(row["parameters"])["churn_rate"] == pytest.approx(0.1, rel=1e-4)
    assert set(accounts["model"]) == {"geometric_unit"}
    # DERL of constant retention 0.9 at monthly discount d: 0.9 / (1 - 0.9 / (1 + d)).
    d = CLVParams().monthly_discount
    assert accounts["derl"][0] == pytest.approx(0.9 / (1 - 0.9 / (1 + d)), rel=1e-3)


def test_the_naive_figure_is_discounted_as_derl_is():
    # The naive figure is every account at the unit's average churn rate c, discounted and
    # timed as DERL: margin x MRR x sum over t >= 1 of (1 - c)^t / (1 + d)^(t - 1). Where
    # retention is constant the model finds the same rate, so the two figures agree: what
    # separates them elsewhere is heterogeneity, not discounting. (Before, the naive figure
    # was margin x MRR / c, undiscounted: 2.0x the model's here.)
    survivors = [10_000, 9_000, 8_100, 7_290, 6_561, 5_905]
    rows = []
    for t in range(1, len(survivors)):
        rows += [(True, t)] * (survivors[t - 1] - survivors[t])
    rows += [(False, len(survivors) - 1)] * survivors[-1]
    lifetimes = pl.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(len(rows))], "business_unit": "U1",
            "segment": "SMB", "churned": [r[0] for r in rows], "periods": [r[1] for r in rows],
            "entry_period": 1, "current_mrr": [0.0 if r[0] else 50.0 for r in rows],
        }
    )  # fmt: skip
    band = pl.DataFrame(schema={"account_id": pl.Utf8, "in_bottom_cx_band": pl.Boolean})
    params = CLVParams(min_segment_accounts=10**6)
    row = contractual_clv(lifetimes, band, params)[0].row(0, named=True)
    assert row["naive_residual_clv"] == pytest.approx(row["total_residual_clv"], rel=1e-9)
    c, d = row["monthly_churn_rate"], params.monthly_discount
    t = np.arange(1, 5000)
    direct = 0.8 * 50.0 * survivors[-1] * np.sum((1 - c) ** t / (1 + d) ** (t - 1))
    assert row["naive_residual_clv"] == pytest.approx(direct, rel=1e-9)


def _cdnow_units() -> pl.DataFrame:
    return rfm_summary(
        read_cdnow(Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"),
        date(1997, 9, 30),
    ).with_columns(
        pl.when(pl.col("customer_id").cast(pl.Int64) % 2 == 0).then(pl.lit("Even")).otherwise(pl.lit("Odd"))
        .alias("business_unit"),
        pl.lit("SMB").alias("segment"),
    )  # fmt: skip


def test_transactional_accounts_by_unit():
    summary = _cdnow_units()
    band = summary.select(pl.col("customer_id").alias("account_id")).with_columns(
        pl.lit(False).alias("in_bottom_cx_band")
    )
    fits, accounts = transactional_clv(summary, band, CLVParams())
    assert set(fits["business_unit"]) == {"Even", "Odd"}
    assert accounts.height == summary.height
    assert accounts["p_alive"].is_between(0, 1).all()
    assert (accounts["residual_clv"] >= 0).all()
    assert fits["clv_at_risk"].sum() == 0
    # Gamma-Gamma's independence check beside its parameters, per unit.
    for row in fits.iter_rows(named=True):
        gg = json.loads(row["parameters"])["gamma_gamma"]
        assert row["spend_frequency_correlation"] == gg["spend_frequency_correlation"]
        assert -1 < row["spend_frequency_correlation"] < 1


def test_a_transactional_unit_whose_spend_has_no_mean_is_not_estimated():
    # Spend so heavy-tailed that the Gamma-Gamma's q <= 1: its mean does not exist. That
    # unit is reported, NULL with the reason; the other is valued (before, the night went
    # on to value it with a meaningless mean). CDNOW's purchases, split in two units; the
    # odd unit's repeat buyers get spend drawn with q = 0.7.
    summary = _cdnow_units()
    rng = np.random.default_rng(5)
    x = summary["x"].to_numpy()
    odd = (summary["business_unit"] == "Odd").to_numpy() & (x > 0)
    spend = summary["mean_repeat_spend"].to_numpy().copy()
    spend[odd] = rng.gamma(4.0 * x[odd], 1 / rng.gamma(0.7, 1 / 20, odd.sum())) / x[odd]
    summary = summary.with_columns(pl.Series("mean_repeat_spend", spend))
    band = summary.select(pl.col("customer_id").alias("account_id")).with_columns(
        pl.lit(False).alias("in_bottom_cx_band")
    )
    fits, accounts = transactional_clv(summary, band, CLVParams())
    heavy_row = fits.filter(pl.col("business_unit") == "Odd").row(0, named=True)
    assert heavy_row["model"] == "none" and heavy_row["total_residual_clv"] is None
    assert "p*gamma/(q - 1) is undefined" in heavy_row["not_estimated_reason"]
    assert set(accounts["business_unit"]) == {"Even"}
    even = fits.filter(pl.col("business_unit") == "Even").row(0, named=True)
    assert even["model"] == "bgnbd_gg" and even["total_residual_clv"] > 0
