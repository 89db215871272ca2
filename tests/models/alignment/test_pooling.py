"""Across units: Benjamini-Hochberg and random-effects pooling."""

from __future__ import annotations

import numpy as np
import pytest

from models.alignment.pooling import benjamini_hochberg, random_effects


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


def test_units_more_alike_than_their_errors_pool_with_no_spread():
    # statsmodels' combine_effects(method_re="dl") leaves tau^2 negative here (and its SE
    # NaN); DerSimonian-Laird truncates it at zero.
    b, se = np.array([-0.1, -0.1001, -0.0999, -0.1]), np.array([0.1, 0.1, 0.2, 0.1])
    pooled = random_effects(b, se)
    assert pooled.tau2 == 0.0
    w = 1 / se**2
    assert pooled.mean == pytest.approx((w * b).sum() / w.sum())
    assert pooled.se == pytest.approx(np.sqrt(1 / w.sum()))
    np.testing.assert_allclose(pooled.shrunk, pooled.mean)
