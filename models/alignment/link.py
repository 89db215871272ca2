"""The link model: a discrete-time hazard (cloglog) of the outcome next month on the lagged
main CX measure with controls, standard errors clustered by account (or OLS for a continuous
outcome). A fit that cannot be made says why (NoFit); one that did not converge says so.

The GLM and OLS are small numpy implementations checked against statsmodels in the tests
(same estimates and cluster-robust errors), because statsmodels needed tens of GB at 100k
accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri  # normal CDF and its inverse, as scipy.stats.norm uses

from models.alignment.config import Outcome
from models.alignment.features import OPTIONAL_COLUMNS
from models.cluster import cr1_covariance, ols_cluster
from models.design import (
    Design,
    as_design,
    level_codes,
    map_blocks,
    tenure_band_codes,
    with_categories,
)

Z95 = 1.959963984540054  # two-sided 95%
SEPARATION_LOG_HR = 10.0
Z95_ONE_SIDED = 1.6448536269514722


@dataclass(frozen=True)
class LinkFit:
    effect: float  # log hazard ratio (cloglog coefficient) per SD of the measure, or OLS slope
    se: float
    p_two_sided: float
    p_expected_direction: float  # one-sided in the outcome's expected direction
    n_rows: int
    n_accounts: int
    n_events: int
    converged: bool = True
    # NPS non-response's own coefficient beside the measure (None when not in the model).
    nonresponse_effect: float | None = None
    nonresponse_se: float | None = None

    @property
    def ci(self) -> tuple[float, float]:
        return (self.effect - Z95 * self.se, self.effect + Z95 * self.se)

    @property
    def mde(self) -> float:
        """Smallest |effect| detectable with 80% power at two-sided 5%."""
        return (ndtri(0.975) + ndtri(0.8)) * self.se


# Why a fit could not be made, in words for link_reason.
NO_FIT_REASONS = {
    "too_few_events": "too few events to fit the model",
    "no_variation": "the CX measure does not vary among the unit's accounts",
    "singular": "the model could not be estimated (its terms are collinear in this unit)",
    "too_few_rows": "too few account-months to fit the model",
    "not_converged": "the model's fit did not converge",
    "separated": "the unit's few events all lie on one side of the CX measure, so the "
                 "model has no finite estimate (separation)",
}
# Beyond this |log hazard ratio| per SD of the measure (a hazard ratio of about 22,000 per
# SD) an estimate is not a finding but a fit running off to infinity: under (quasi-)
# separation the deviance settles while the measure's coefficient keeps growing (a small unit
# once showed a hazard ratio of 5e59). Real links are below 2.


@dataclass(frozen=True)
class NoFit:
    reason: str  # a key of NO_FIT_REASONS

    @property
    def words(self) -> str:
        return NO_FIT_REASONS[self.reason]


class DesignBuffer:
    """One column-major block that a unit's successive design matrices are written into.

    A fresh (rows x columns) array per fit pays its page faults again: about a second per
    700 MB at a million accounts, where the kernel backs large arrays with huge pages and
    compacts memory to find them. A matrix taken from the buffer is valid until the next
    take()."""

    def __init__(self) -> None:
        self._block: np.ndarray | None = None

    def take(self, rows: int, columns: int) -> np.ndarray:
        block = self._block
        if block is None or block.shape[0] < rows or block.shape[1] < columns:
            self._block = block = None  # release the smaller one first
            self._block = block = np.empty((rows, columns), order="F")
        return block[:rows, :columns]


def design(
    df: pl.DataFrame, measure: str, extra: tuple[str, ...] = (), with_measure: bool = True,
    buffer: DesignBuffer | None = None, measure_flag: bool = False,
) -> tuple[Design, list[str]]:  # fmt: skip
    """Design matrix: the measure (0 where missing, with a missing flag); what was not
    measured (NPS non-response; how many of the five metrics were observed, where that
    count says more than the missing flag); the size control (log MRR at the CX window's
    end, with a flag for accounts new since) and the prior MRR change (0 where missing, with a
    flag); segment, tenure band, calendar quarter, and region and plan where supplied.
    with_measure=False: everything but the measure (the null model of the permutation
    check), with its missing flag when measure_flag: the null model keeps every term of the
    full model but the measure's coefficient. (Without the flag, a missing measure coded 0
    -- the company's level -- sits above a low-execution unit's own level and below a high
    one's; where missing windows go with early churn, that alone tilts the test.)

    Columns that do not vary are left out (the constant aside). The float columns are
    allocated once and filled a column at a time (at millions of rows a stacked copy is
    gigabytes), column-major; the indicators are kept as each row's cell, its combination
    of the categorical levels (models.design.with_categories). buffer: write the float
    columns there (see DesignBuffer) instead of into a new array."""
    parts: list[tuple[str, np.ndarray]] = []
    if with_measure or measure_flag:
        x = df[measure].to_numpy().astype(float)
        missing = np.isnan(x)
        if with_measure:
            parts.append((measure, np.nan_to_num(x, nan=0.0)))
        parts.append((f"{measure}_missing", missing))
        del x
    if measure != "z_nps":  # for an NPS measure, its missing flag is the non-response
        parts.append(("nps_no_response", df["nps_no_response"].to_numpy()))
    observed = df["cx_metrics_observed"].to_numpy()
    if len(observed) and len(np.unique(observed)) > 2:  # else it only repeats the flag
        parts.append(("cx_metrics_observed", observed.astype(float)))
    parts.append(("log_mrr_control", df["log_mrr_control"].to_numpy().astype(float)))
    parts.append(("new_since_window", df["new_since_window"].to_numpy()))
    prior = df["log_mrr_change_prior_3m"].to_numpy().astype(float)
    parts.append(("log_mrr_change_prior_3m", np.nan_to_num(prior, nan=0.0)))
    parts.append(("prior_change_missing", np.isnan(prior)))
    del prior
    for f in extra:
        parts.append((f, np.nan_to_num(df[f].cast(pl.Float64).to_numpy(), nan=0.0)))
    varying = [(n, v) for n, v in parts if len(v) and v.max() > v.min()]
    shape = (df.height, 1 + len(varying))
    dense = buffer.take(*shape) if buffer is not None else np.empty(shape, order="F")
    dense[:, 0] = 1.0
    for j, (_, v) in enumerate(varying, start=1):
        dense[:, j] = v
    X, dummy_names = with_categories(dense, categories(df))
    return X, ["const", *(n for n, _ in varying), *dummy_names]


TENURE_BANDS = ("t0-5", "t6-11", "t12-23", "t24+")  # under 6, 12 and 24 months, and older


def categories(
    df: pl.DataFrame, period: str = "quarter"
) -> list[tuple[np.ndarray, list[str], str]]:
    """Segment, tenure band, calendar period (quarter, or month: `period`), and region and
    plan where the rows have more than one level of them, as integer codes with their level
    names."""
    segment, levels = level_codes(df["segment"])
    per_year = 12 if period == "month" else 4
    part = pl.col("month").dt.month() - 1 if period == "month" else pl.col("month").dt.quarter() - 1
    calendar = df.select(pl.col("month").dt.year() * per_year + part).to_series().to_numpy()
    first = int(calendar.min()) if len(calendar) else 0
    calendar_names = [
        f"{c // 12}-{c % 12 + 1:02d}" if period == "month" else f"{c // 4}Q{c % 4 + 1}"
        for c in (range(first, int(calendar.max()) + 1) if len(calendar) else [])
    ]
    out = [
        (segment, levels, "segment"),
        (tenure_band_codes(df["tenure_months"]), list(TENURE_BANDS), "tenure_band"),
        ((calendar - first).astype(np.int16), calendar_names, period),
    ]
    for name in OPTIONAL_COLUMNS:
        if name in df.columns and df[name].drop_nulls().n_unique() > 1:
            codes, names = level_codes(df[name])
            out.append((codes, names, name))
    return out


def controls_note(df: pl.DataFrame) -> str:
    """Which optional controls the unit's model used, and why any was left out."""
    words = []
    for name in OPTIONAL_COLUMNS:
        if name not in df.columns or df[name].drop_nulls().is_empty():
            words.append(f"{name}: not supplied")
        elif df[name].drop_nulls().n_unique() < 2:
            words.append(f"{name}: one level only, dropped")
        else:
            words.append(f"{name}: {df[name].drop_nulls().n_unique()} levels")
    return "; ".join(words)


def _cloglog_mean(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """exp(eta), the mean 1 - exp(-exp(eta)) (kept inside (0, 1)) and its derivative."""
    e = np.exp(eta)
    mu = np.clip(-np.expm1(-e), 1e-12, 1 - 1e-12)
    return e, mu, np.exp(eta - e)


@dataclass(frozen=True)
class GlmFit:
    beta: np.ndarray
    se: np.ndarray | None  # None: the information matrix is singular
    mu: np.ndarray
    converged: bool
    singular: bool = False  # the design's columns are collinear: no estimate exists


def fit_cloglog(
    y: np.ndarray, X: np.ndarray | Design, groups: np.ndarray | None = None, maxiter: int = 100,
    tol: float = 1e-10, weights: np.ndarray | None = None, start: np.ndarray | None = None,
) -> GlmFit:  # fmt: skip
    """Binomial GLM with a complementary log-log link by IRLS.

    The same estimates as statsmodels' GLM(Binomial(CLogLog)), with cluster-robust (CR1)
    standard errors when `groups` is given, computed with normal equations and per-cluster
    score sums so memory stays O(rows x columns) at millions of rows. se is None when the
    information matrix is singular; converged is False when IRLS ran out of iterations.

    Each iteration works a block of rows at a time (map_blocks): the linear predictor, the
    weights and the working response of a block go straight into its share of the normal
    equations. X: a matrix or a compact Design (models.design).

    weights: frequency weights per row (an account bootstrap's replicate: every row of an
    account drawn twice counts twice, one not drawn not at all); start: the coefficients to
    start from (a replicate starts from the estimate and settles in a few steps).
    """
    if weights is not None and groups is not None:
        raise ValueError("cluster-robust errors are for unweighted fits (a replicate has none)")
    X = as_design(X)
    n, k = X.shape
    if weights is None:
        ybar = y.mean()
    else:
        ybar = float(weights @ y / weights.sum())
    ybar = min(max(ybar, 1e-6), 1 - 1e-6)
    beta = np.zeros(k)
    beta[0] = math.log(-math.log(1 - ybar))
    if start is not None:
        beta = np.asarray(start, dtype=float).copy()

    def irls_block(start: int, stop: int):
        eta = np.clip(X.dot(start, stop, beta), -30, 3)
        _, mu, dmu = _cloglog_mean(eta)
        w = dmu**2 / (mu * (1 - mu))
        yb = y[start:stop]
        z = eta + (yb - mu) / np.maximum(dmu, 1e-300)
        ll = yb * np.log(mu) + (1 - yb) * np.log1p(-mu)
        if weights is not None:
            w = w * weights[start:stop]
            ll = ll * weights[start:stop]
        return X.gram_part(start, stop, w, z), float(np.sum(ll))

    def final_block(start: int, stop: int):
        yb = y[start:stop]
        eta = np.clip(X.dot(start, stop, beta), -30, 3)
        e, mu, dmu = _cloglog_mean(eta)
        if groups is None:
            return None, mu, None
        var = mu * (1 - mu)
        # The bread uses the observed information, as statsmodels does for a non-canonical
        # link: -d2l/deta2 = mu'^2/V - (y - mu) (mu'' V - mu'^2 (1 - 2 mu)) / V^2,
        # mu'' = mu' (1 - e^eta).
        d2mu = dmu * (1 - e)
        w_obs = dmu**2 / var - (yb - mu) * (d2mu * var - dmu**2 * (1 - 2 * mu)) / var**2
        return X.gram_part(start, stop, w_obs, None), mu, (yb - mu) * dmu / var

    def mean_at_beta() -> np.ndarray:
        means = map_blocks(
            lambda start, stop: _cloglog_mean(np.clip(X.dot(start, stop, beta), -30, 3))[1], n
        )
        return np.concatenate(means) if means else np.empty(0)

    # Converged: the coefficients settle (tol), or else the deviance does (R's glm rule,
    # |change| / (|deviance| + 0.1) < 1e-8): with a cell that has no events, that cell's
    # indicator drifts towards -infinity and never settles while the fit itself has. A step
    # that raises the deviance is halved until it does not (as R's glm.fit does): without
    # it, a small unit's fit could run off to an effect of -1e7 (issue 18 review).
    converged, deviance, previous_beta = False, math.inf, None
    for _ in range(maxiter):
        blocks = map_blocks(irls_block, n)
        trial = -2 * sum(ll for _, ll in blocks)
        halvings = 0
        while previous_beta is not None and not trial <= deviance + 1e-9 * abs(deviance):
            if halvings == 30:
                beta = previous_beta
                return GlmFit(beta, None, mean_at_beta(), False)
            beta = (beta + previous_beta) / 2
            blocks = map_blocks(irls_block, n)
            trial = -2 * sum(ll for _, ll in blocks)
            halvings += 1
        change = abs(deviance - trial) / (abs(trial) + 0.1)
        deviance = trial
        H, g = X.gram_total([b for b, _ in blocks])
        if previous_beta is None and np.linalg.matrix_rank(H) < k:
            return GlmFit(beta, None, mean_at_beta(), False, singular=True)
        converged = change < 1e-8
        if change < 1e-12:  # settled to rounding: more steps only move a drifting indicator
            break
        try:
            new = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return GlmFit(beta, None, mean_at_beta(), False)
        if not np.all(np.isfinite(new)):
            return GlmFit(beta, None, mean_at_beta(), False)
        done = np.max(np.abs(new - beta)) < tol * (1 + np.max(np.abs(beta)))
        previous_beta, beta = beta, new
        if done:
            converged = True
            break
    parts = map_blocks(final_block, n)
    mu = np.concatenate([m for _, m, _ in parts])
    if groups is None:
        return GlmFit(beta, None, mu, converged)
    try:
        bread = np.linalg.inv(X.gram_total([h for h, _, _ in parts])[0])
    except np.linalg.LinAlgError:
        return GlmFit(beta, None, mu, converged)
    resid = np.concatenate([r for _, _, r in parts])
    del parts
    cov = cr1_covariance(bread, X, resid, groups)
    return GlmFit(beta, np.sqrt(np.maximum(np.diag(cov), 0)), mu, converged)


def _link_fit(beta: np.ndarray, ses: np.ndarray, names: list[str], expected_sign: int,
              df: pl.DataFrame, events: int, converged: bool) -> LinkFit | NoFit:  # fmt: skip
    b, se = float(beta[1]), float(ses[1])
    if not (np.isfinite(b) and np.isfinite(se) and se > 0):
        return NoFit("singular")
    z = b / se
    nr = names.index("nps_no_response") if "nps_no_response" in names else None
    return LinkFit(
        effect=b, se=se, p_two_sided=float(2 * ndtr(-abs(z))),
        p_expected_direction=float(ndtr(-expected_sign * z)), n_rows=df.height,
        n_accounts=int(df["account_code"].n_unique()), n_events=events, converged=converged,
        nonresponse_effect=float(beta[nr]) if nr is not None else None,
        nonresponse_se=float(ses[nr]) if nr is not None else None,
    )  # fmt: skip


def fit_hazard(
    df: pl.DataFrame,
    outcome: str,
    measure: str,
    extra: tuple[str, ...] = (),
    expected_sign: int = -1,
    buffer: DesignBuffer | None = None,
) -> LinkFit | NoFit:
    """cloglog discrete-time hazard of `outcome` on the measure and the controls.

    p_expected_direction is one-sided in `expected_sign` (-1: better CX, fewer events)."""
    y = df[outcome].cast(pl.Float64).to_numpy()
    events = int(y.sum())
    if events < 5:
        return NoFit("too_few_events")
    if df[measure].drop_nulls().n_unique() < 2:
        return NoFit("no_variation")
    X, names = design(df, measure, extra, buffer=buffer)
    if names[1] != measure:
        return NoFit("no_variation")
    fit = fit_cloglog(y, X, df["account_code"].to_numpy())
    if fit.singular:
        return NoFit("singular")
    if not fit.converged:  # its estimates mean nothing: kept out of BH and the pooling too
        return NoFit("not_converged")
    if fit.se is None:
        return NoFit("singular")
    if not abs(fit.beta[1]) <= SEPARATION_LOG_HR:
        return NoFit("separated")
    return _link_fit(fit.beta, fit.se, names, expected_sign, df, events, fit.converged)


def fit_ols(
    df: pl.DataFrame, outcome: str, measure: str, expected_sign: int = 1,
    buffer: DesignBuffer | None = None,
) -> LinkFit | NoFit:  # fmt: skip
    """A continuous outcome on the same features (OLS, CR1 errors clustered by account)."""
    sub = df.filter(pl.col(outcome).is_not_null())
    if sub.height < 50:
        return NoFit("too_few_rows")
    if sub[measure].drop_nulls().n_unique() < 2:
        return NoFit("no_variation")
    X, names = design(sub, measure, buffer=buffer)
    if names[1] != measure:
        return NoFit("no_variation")
    y = sub[outcome].cast(pl.Float64).to_numpy()
    beta, ses = ols_cluster(y, X, sub["account_code"].to_numpy())
    return _link_fit(beta, ses, names, expected_sign, sub, 0, True)


def fit_link(
    df: pl.DataFrame, outcome: Outcome, measure: str, extra: tuple[str, ...] = (),
    buffer: DesignBuffer | None = None,
) -> LinkFit | NoFit:  # fmt: skip
    if outcome.kind == "event":
        return fit_hazard(df, outcome.column, measure, extra, outcome.expected_sign, buffer)
    return fit_ols(df, outcome.column, measure, outcome.expected_sign, buffer)


def one_sided_bound(fit: LinkFit, sign: int) -> float:
    """The one-sided 95% bound of the effect in the expected direction, on the expected
    direction's scale (sign x effect + 1.645 SE): how large the effect could plausibly be."""
    return sign * fit.effect + Z95_ONE_SIDED * fit.se
