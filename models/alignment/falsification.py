"""Falsification checks a "strong" link must pass: a block permutation of CX histories
within the unit, and a negative-control outcome (involuntary churn).

Why the permutation statistic is studentised. The check shuffles whole CX histories among a
unit's accounts and compares the observed association with the shuffled ones. Its statistic
is the score of the model without CX, summed per account: T = sum_i xbar_i S_i (xbar_i: the
account's mean CX, residualised on the controls; S_i: its summed score residual). Where churn
is high, how long an account is observed depends on its outcome: an early leaver has a short,
noisy history and a small |S_i|, a long stayer a precise mean and a large |S_i|. The observed
T pairs them that way; a shuffle hands noisy means to long stayers, so the shuffled T's spread
far more than the observed T can, and the check loses its power exactly where churn is high
(the Inflicted units of issue 18: Wald q below 1e-10, permutation p up to 0.36). Dividing T by
its own cluster-robust standard error, sqrt(sum_i xbar_i^2 S_i^2), recomputed for every
shuffle, removes that mismatch: the studentised permutation test (DiCiccio and Romano 2017,
JASA 112:1211) is exact when histories are exchangeable and asymptotically valid when they
are only independent with unequal variances, and its power is that of the robust score test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr

from models.alignment.config import Outcome
from models.alignment.features import subset
from models.alignment.link import (
    DesignBuffer,
    LinkFit,
    NoFit,
    design,
    fit_cloglog,
    fit_hazard,
)
from models.design import matvec, weighted_gram

PERMUTATION_BLOCK = 16  # permutations drawn and scored together: (16 x accounts) at a time
Z_ONE_SIDED_05 = 1.6448536269514722


def permutation_p(df: pl.DataFrame, outcome: Outcome, measure: str, permutations: int,
                  rng: np.random.Generator, buffer: DesignBuffer | None = None,
                  extra: tuple[str, ...] = ()) -> float | None:  # fmt: skip
    """One-sided p-value (expected direction) of the studentised score statistic when whole
    CX histories are shuffled among the unit's accounts; None when it cannot be computed.

    One null fit (controls only), then each permutation is a gather over account means:
    fast at a million accounts. The measure is residualised on the controls first (ter
    Braak), so shuffling it does not also shuffle its correlation with size, segment or
    tenure; the null model keeps the measure's missing flag, as the link model does."""
    y = df[outcome.column].cast(pl.Float64).to_numpy()
    if outcome.kind == "event" and y.sum() < 5:
        return None
    Z, _ = design(df, measure, extra, with_measure=False, buffer=buffer, measure_flag=True)
    x = np.nan_to_num(df[measure].to_numpy().astype(float), nan=0.0)
    ones = np.ones(len(x))
    try:
        if outcome.kind == "event":
            null = fit_cloglog(y, Z)
            mu = null.mu
            score_resid = (y - mu) * (-np.log1p(-mu) / mu)  # cloglog score weight mu'/V
        else:
            ZtZ, Zty = weighted_gram(Z, ones, y)
            score_resid = y - matvec(Z, np.linalg.lstsq(ZtZ, Zty, rcond=None)[0])
        ZtZ, Ztx = weighted_gram(Z, ones, x)
        x_res = x - matvec(Z, np.linalg.lstsq(ZtZ, Ztx, rcond=None)[0])
    except (np.linalg.LinAlgError, ValueError):
        return None
    del Z
    _, inv = np.unique(df["account_code"].to_numpy(), return_inverse=True)
    n_acc = int(inv.max()) + 1
    count = np.bincount(inv, minlength=n_acc).astype(float)
    x_bar = np.bincount(inv, weights=x_res, minlength=n_acc) / count
    s_sum = np.bincount(inv, weights=score_resid, minlength=n_acc)
    observed = studentised(outcome.expected_sign, x_bar[None, :], s_sum)[0]
    if not np.isfinite(observed):
        return None
    exceed = 0
    for start in range(0, permutations, PERMUTATION_BLOCK):
        k = min(PERMUTATION_BLOCK, permutations - start)
        perms = rng.permuted(np.tile(np.arange(n_acc, dtype=np.int32), (k, 1)), axis=1)
        exceed += int(np.sum(studentised(outcome.expected_sign, x_bar[perms], s_sum) >= observed))
    # One-sided: as large in the expected direction as observed, by chance.
    return float((1 + exceed) / (permutations + 1))


def studentised(sign: int, x_bar: np.ndarray, s_sum: np.ndarray) -> np.ndarray:
    """sign x T / se(T) for each row of x_bar (histories' means in some order), with
    T = x_bar . S and se(T)^2 = sum (x_bar_i S_i)^2 (the cluster-robust variance of the score)."""
    t = x_bar @ s_sum
    v = (x_bar**2) @ (s_sum**2)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sign * t / np.sqrt(v)


@dataclass(frozen=True)
class NegativeControl:
    """CX against involuntary churn (failed payments), beside its link to voluntary churn."""

    fit: LinkFit | NoFit | None  # None: not run (not a retention outcome, or too few events)
    events: int
    failed: bool  # CX "predicts" involuntary churn as it predicts voluntary churn

    @property
    def effect(self) -> float | None:
        return self.fit.effect if isinstance(self.fit, LinkFit) else None

    @property
    def p_value(self) -> float | None:
        """One-sided, in the direction CX protects against voluntary churn."""
        return self.fit.p_expected_direction if isinstance(self.fit, LinkFit) else None


def negative_control(rows: pl.DataFrame, measure: str, link: LinkFit | NoFit,
                     min_events: int, alpha: float, extra: tuple[str, ...] = (),
                     buffer: DesignBuffer | None = None,
                     columns: tuple[str, ...] | None = None) -> NegativeControl:  # fmt: skip
    """The retention link's negative control. CX should not predict failed payments as it
    predicts decisions to leave: the check fails when CX is associated with less
    involuntary churn (one-sided p <= alpha) *and* that association is not clearly weaker
    than the voluntary one (their difference not significant at one-sided alpha). A real
    CX link shows in voluntary churn only and passes; an unmeasured factor that lowers every
    kind of churn where CX is good shows in both and fails. rows: the unit's account-months
    with churned_next_month_voluntary and _involuntary (voluntary exits are censored here);
    columns: the ones the fit reads (default: all), copied once with the rows it keeps."""
    involuntary = subset(rows, ~pl.col("churned_next_month_voluntary"), columns)
    events = int(involuntary["churned_next_month_involuntary"].sum())
    if events < min_events:
        return NegativeControl(None, events, False)
    fit = fit_hazard(involuntary, "churned_next_month_involuntary", measure, extra, -1, buffer)
    if not isinstance(fit, LinkFit):
        return NegativeControl(fit, events, False)
    failed = fit.p_expected_direction <= alpha
    if failed and isinstance(link, LinkFit):
        # Is the voluntary association clearly the stronger (more protective) one?
        z = (fit.effect - link.effect) / np.sqrt(fit.se**2 + link.se**2)
        failed = not bool(ndtr(-z) <= alpha)
    return NegativeControl(fit, events, failed)
