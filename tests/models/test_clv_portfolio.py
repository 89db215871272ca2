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


def test_a_unit_too_small_to_identify_the_model_is_reported_not_fatal():
    # Two accounts: one left after a month, one is still billed after five. The likelihood
    # is flattest at the bounds (no heterogeneity can be told from one departure), so the
    # sBG cannot be estimated; the other unit must still be valued, the small one reported.
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
    fits, accounts = contractual_clv(lifetimes, band, CLVParams())

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


def test_transactional_accounts_by_unit():
    summary = rfm_summary(
        read_cdnow(Path(__file__).parents[1] / "fixtures" / "cdnow" / "CDNOW_sample.txt"),
        date(1997, 9, 30),
    ).with_columns(
        pl.when(pl.col("customer_id").cast(pl.Int64) % 2 == 0).then(pl.lit("Even")).otherwise(pl.lit("Odd"))
        .alias("business_unit"),
        pl.lit("SMB").alias("segment"),
    )  # fmt: skip
    band = summary.select(pl.col("customer_id").alias("account_id")).with_columns(
        pl.lit(False).alias("in_bottom_cx_band")
    )
    fits, accounts = transactional_clv(summary, band, CLVParams())
    assert set(fits["business_unit"]) == {"Even", "Odd"}
    assert accounts.height == summary.height
    assert accounts["p_alive"].is_between(0, 1).all()
    assert (accounts["residual_clv"] >= 0).all()
    assert fits["clv_at_risk"].sum() == 0
