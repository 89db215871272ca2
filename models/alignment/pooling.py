"""Across units, one outcome at a time: Benjamini-Hochberg q-values over the units that test
the same outcome, and a random-effects (DerSimonian-Laird) pooled effect with each unit's
shrunk estimate, for display and the company summary. Never across outcomes (a retention
log hazard ratio, an expansion log hazard ratio and a cost-to-serve slope are not one
quantity), and never for a verdict.

The q-values are statsmodels' multipletests (fdr_bh). The pooling is written out (a few
lines, checked by hand in the tests) because statsmodels 0.15's combine_effects
(method_re="dl") does not truncate DerSimonian-Laird's tau^2 at zero: with units more alike
than their standard errors, its tau^2 is negative and its random-effects SE NaN; and it does
not give the shrunk (empirical Bayes) unit estimates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from statsmodels.stats.multitest import multipletests


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    q = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


@dataclass(frozen=True)
class Pooled:
    mean: float
    se: float
    tau2: float
    shrunk: np.ndarray
    shrunk_se: np.ndarray


def random_effects(effects: np.ndarray, ses: np.ndarray) -> Pooled:
    """DerSimonian-Laird pooling and each unit's shrunk (empirical Bayes) estimate:
    shrink_i = tau^2 / (tau^2 + se_i^2), shrunk_i = shrink_i b_i + (1 - shrink_i) mean, with
    the mean's own uncertainty carried into the shrunk SE."""
    b, s2 = np.asarray(effects, float), np.asarray(ses, float) ** 2
    k = len(b)
    if k == 1:
        se = math.sqrt(s2[0])
        return Pooled(float(b[0]), se, 0.0, b.copy(), np.sqrt(s2))
    w = 1 / s2
    fixed = np.sum(w * b) / np.sum(w)
    q = np.sum(w * (b - fixed) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2 = max(0.0, float((q - (k - 1)) / c)) if c > 0 else 0.0
    w_star = 1 / (s2 + tau2)
    mean = float(np.sum(w_star * b) / np.sum(w_star))
    se = math.sqrt(1 / np.sum(w_star))
    if tau2 > 0:
        shrink = tau2 / (tau2 + s2)
        shrunk = shrink * b + (1 - shrink) * mean
        shrunk_se = np.sqrt(1 / (1 / s2 + 1 / tau2) + ((1 - shrink) * se) ** 2)
    else:
        shrunk = np.full(k, mean)
        shrunk_se = np.full(k, se)
    return Pooled(mean, se, tau2, shrunk, shrunk_se)
