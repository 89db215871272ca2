"""The calibration harness's scenarios, small (bench/calibration.py runs them at 200
replications per generator and reports the figures in docs/methods/alignment.md).

Each bound is set where a method meeting its target would fail the test with probability
below 1% (a binomial tail at the target rate), so a failure says the method missed it, not
that the dice fell badly. Both generators: models/simulation.py and the latent-CX one."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bench.calibration import SCENARIOS, SEED_BASE, TYPES

DGPS = ("simulation", "latent")
REPS = 2


def _counts(name: str) -> list[dict]:
    np.seterr(all="ignore")
    return [SCENARIOS[name](dgp, SEED_BASE[name] + rep) for dgp in DGPS for rep in range(REPS)]


def _most_allowed(n: int, rate: float) -> int:
    """The largest count a method at `rate` exceeds with probability below 1%."""
    return int(stats.binom.ppf(0.99, n, rate))


def _fewest_allowed(n: int, rate: float) -> int:
    return int(stats.binom.ppf(0.01, n, rate))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["null", "small_null", "region"])
def test_null_units_are_rarely_strong(name):
    counts = _counts(name)
    strong, units = sum(c["strong"] for c in counts), sum(c["units"] for c in counts)
    assert strong <= _most_allowed(units, 0.05), (strong, units)


@pytest.mark.slow
def test_a_unit_at_the_threshold_is_rarely_weak():
    counts = _counts("at_threshold")
    weak, units = sum(c["weak"] for c in counts), sum(c["units"] for c in counts)
    assert weak <= _most_allowed(units, 0.05), (weak, units)


@pytest.mark.slow
def test_a_company_wide_trend_leaves_execution_levels_right():
    counts = _counts("trend")
    right, units = sum(c["right"] for c in counts), sum(c["units"] for c in counts)
    assert right >= _fewest_allowed(units, 0.95), (right, units)


@pytest.mark.slow
def test_other_outcomes_leave_the_retention_verdicts_unchanged():
    counts = _counts("mixed_outcomes")
    assert all(c["unchanged"] == c["units"] for c in counts), counts


@pytest.mark.slow
def test_planted_types_are_recovered_and_never_wrong_with_confidence():
    counts = _counts("types")
    n = len(counts)
    for kind in TYPES:
        right = sum(c[f"{kind}_right"] for c in counts)
        assert right >= _fewest_allowed(n, 0.95), (kind, right, n)
        assert sum(c[f"{kind}_wrong_established"] for c in counts) == 0, kind


@pytest.mark.slow
def test_intervals_cover_the_planted_effect():
    counts = _counts("coverage")
    covered, units = sum(c["covered"] for c in counts), sum(c["units"] for c in counts)
    assert covered >= _fewest_allowed(units, 0.95), (covered, units)
