"""Execution: against the company over the same months, with an account bootstrap."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from helpers import FAST

from models.alignment import align_units, prepare
from models.simulation import SimUnit, simulate_panel


def test_replicate_weights_drawn_in_blocks_are_one_draw():
    from models.alignment.execution import poisson_weighted_sums
    from models.parallel import REPLICATE_BLOCK

    values = np.random.default_rng(1).normal(size=(1000, 3))
    replicates = 2 * REPLICATE_BLOCK + 5  # a partial last block
    weights = np.random.default_rng(7).poisson(1.0, size=(replicates, 1000))
    got = poisson_weighted_sums(np.random.default_rng(7), replicates, values)
    np.testing.assert_allclose(got, weights @ values, rtol=1e-12)


def test_a_company_wide_trend_does_not_carry_a_unit_across_the_line():
    # Two units planted 0.3 SD above and below; every account's CX then rises 0.05 SD a month
    # company-wide. v1 measured the unit's recent mean on an all-history scale, so the trend
    # lifted the unit below the company to "high"; against the company over the same months
    # each stays on its side.
    panel = simulate_panel([SimUnit("Above", 2000, execution=0.3), SimUnit("Below", 2000, execution=-0.3)],
                           months=24, seed=11)  # fmt: skip
    data = prepare(panel)
    first = data["month"].min()
    months = (data["month"].dt.year() - first.year) * 12 + data["month"].dt.month() - first.month
    trended = data.with_columns(pl.col("cx_composite") + 0.05 * months)
    units, _, _ = align_units(panel, FAST, data=trended)
    level = dict(zip(units["business_unit"], units["execution_level"], strict=True))
    assert level == {"Above": "high", "Below": "low"}
    score = dict(zip(units["business_unit"], units["execution_score"], strict=True))
    assert score["Above"] > 0 > score["Below"]


def test_the_company_is_resampled_with_the_unit():
    # The company's replicate is the sum of its units' replicates: the interval of a unit's
    # difference from the company is wider than that of its own level alone would suggest
    # only by the company's share of the noise, and the point estimate is the difference.
    from models.alignment.execution import execution_levels, execution_sums

    rng = np.random.default_rng(2)
    frames = [
        pl.DataFrame({"account_code": np.repeat(np.arange(n), 6).astype(np.uint32),
                      "cx_composite": rng.normal(mu, 1.0, 6 * n)})
        for n, mu in ((500, 0.2), (1500, -0.1))
    ]  # fmt: skip
    sums = [execution_sums(f, 400, np.random.default_rng(i)) for i, f in enumerate(frames)]
    levels = execution_levels(sums, [False, False])
    company = np.mean(np.concatenate([f["cx_composite"].to_numpy() for f in frames]))
    assert levels[0].score == pytest.approx(frames[0]["cx_composite"].mean() - company)
    assert levels[1].score == pytest.approx(frames[1]["cx_composite"].mean() - company)
    # The two units' differences from the company move against each other across replicates.
    assert np.corrcoef(levels[0].replicates, levels[1].replicates)[0, 1] < -0.2


def test_a_unit_present_in_part_of_the_window_is_compared_month_by_month():
    # A unit at the company's level that exists only in the window's last six months (an
    # acquisition), under a company-wide trend: pooled over the window, the company's mean
    # included the early, lower months and the newcomer looked "high" (review of issue 18).
    panel = simulate_panel([SimUnit("Old", 3000), SimUnit("New", 1500)], months=24, seed=12)
    data = prepare(panel)
    first = data["month"].min()
    months = (data["month"].dt.year() - first.year) * 12 + data["month"].dt.month() - first.month
    data = data.with_columns(pl.col("cx_composite") + 0.05 * months, month_index=months)
    data = data.filter((pl.col("business_unit") == "Old") | (pl.col("month_index") >= 18))
    units, _, _ = align_units(panel, FAST, data=data.drop("month_index"))
    new = units.row(by_predicate=pl.col("business_unit") == "New", named=True)
    assert abs(new["execution_score"]) < 0.1, new["execution_score"]
    assert new["execution_level"] != "high"
