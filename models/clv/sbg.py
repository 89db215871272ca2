"""Shifted-beta-geometric (sBG) retention model for contractual customers.

Fader & Hardie (2007), "How to project customer retention", J. Interactive Marketing.
Each customer renews each period with her own probability 1 - theta, theta ~ Beta(alpha, beta):

    P(T = t) = B(alpha + 1, beta + t - 1) / B(alpha, beta)      t = 1, 2, ...
    S(t)     = P(T > t) = B(alpha, beta + t) / B(alpha, beta)

T is the period in which the customer leaves (she paid for T periods). Retention rises
with tenure because the customers likeliest to leave leave first; that is why the naive
"margin / churn rate" value undervalues long-tenured accounts.

Data are per customer: the periods observed, whether she left, and (for customers who
were already customers when observation began) the period of entry, which left-truncates
her contribution. A cohort's survivor counts are the special case without truncation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, digamma, hyp2f1

from models.clv._optim import Fit, fit_mle


class SBGInputError(ValueError):
    """Input that the sBG model cannot take; the message says which and why."""


def lifetimes_from_survivors(survivors) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cohort survivor counts [n_0, n_1, ..., n_T] -> (periods, churned, count).

    n_0 - n_1 customers left in period 1, ..., n_{T-1} - n_T in period T, and n_T are still
    customers after period T (right-censored at T).
    """
    n = np.asarray(survivors, dtype=float)
    if n.ndim != 1 or len(n) < 2:
        raise SBGInputError("survivors needs at least two counts: the cohort size and one period")
    if np.any(n < 0) or np.any(np.diff(n) > 0):
        raise SBGInputError("survivor counts must be non-negative and never increase")
    t = np.arange(1, len(n))
    lost = n[:-1] - n[1:]
    periods = np.concatenate([t, [len(n) - 1]])
    churned = np.concatenate([np.ones(len(t), bool), [False]])
    counts = np.concatenate([lost, [n[-1]]])
    keep = counts > 0
    return periods[keep], churned[keep], counts[keep]


def log_survival(t, alpha, beta):
    return betaln(alpha, beta + t) - betaln(alpha, beta)


def log_pmf(t, alpha, beta):
    return betaln(alpha + 1, beta + t - 1) - betaln(alpha, beta)


def neg_loglik(params, periods, churned, counts, entry):
    alpha, beta = params
    ll = np.where(
        churned, log_pmf(periods, alpha, beta), log_survival(periods, alpha, beta)
    ) - log_survival(entry - 1, alpha, beta)
    return -float(np.sum(counts * ll))


def neg_loglik_gradient(params, periods, churned, counts, entry) -> np.ndarray:
    """d neg_loglik / d(alpha, beta), from d ln B(a, b)/da = digamma(a) - digamma(a + b).

    A row's log-likelihood is ln B(alpha + 1, beta + t - 1) (left in period t) or
    ln B(alpha, beta + t) (still here after t), minus ln B(alpha, beta + entry - 1); the
    ln B(alpha, beta) of the pmf, the survival and the truncation cancel. An exact gradient
    lets the optimiser converge where a finite-difference one stalls: a unit of 20,000
    lifetimes has a log-likelihood near 5e4, whose differences drown the gradient's last
    digits.
    """
    alpha, beta = params
    total = digamma(alpha + beta + periods)
    d_alpha = np.where(churned, digamma(alpha + 1), digamma(alpha)) - total
    d_beta = np.where(churned, digamma(beta + periods - 1), digamma(beta + periods)) - total
    entered = digamma(alpha + beta + entry - 1)
    d_alpha -= digamma(alpha) - entered
    d_beta -= digamma(beta + entry - 1) - entered
    return -np.array([np.sum(counts * d_alpha), np.sum(counts * d_beta)])


@dataclass(frozen=True)
class SBGFit:
    alpha: float
    beta: float
    alpha_se: float
    beta_se: float
    loglik: float
    customers: float
    churn_events: float

    def survival(self, t) -> np.ndarray:
        """P(still a customer after t periods)."""
        return np.exp(log_survival(np.asarray(t, dtype=float), self.alpha, self.beta))

    def retention_rate(self, t) -> np.ndarray:
        """P(renew at the end of period t | renewed t - 1 times) = (beta + t - 1)/(alpha + beta + t - 1)."""
        t = np.asarray(t, dtype=float)
        return (self.beta + t - 1) / (self.alpha + self.beta + t - 1)

    def derl(self, discount: float, renewals=0) -> np.ndarray:
        """Discounted expected residual lifetime (Fader & Hardie 2010, eq. 6).

        For a customer who has renewed `renewals` times (n - 1 = renewals): the expected number
        of future payments, the next one undiscounted, later ones discounted at `discount` per
        period.
        """
        if discount <= 0:
            raise SBGInputError("the discount rate per period must be positive")
        n = np.asarray(renewals, dtype=float) + 1
        return (
            (self.beta + n - 1)
            / (self.alpha + self.beta + n - 1)
            * hyp2f1(1.0, self.beta + n, self.alpha + self.beta + n, 1.0 / (1.0 + discount))
        )

    def summary(self) -> dict:
        return {
            "alpha": self.alpha, "alpha_se": self.alpha_se, "beta": self.beta,
            "beta_se": self.beta_se, "loglik": self.loglik, "customers": self.customers,
            "churn_events": self.churn_events,
        }  # fmt: skip


def fit_sbg(periods, churned, counts=None, entry=None) -> SBGFit:
    """Fit alpha, beta by maximum likelihood.

    periods: for a customer who left, the period she left in (1 = after the first period);
             for one still here, the periods completed so far (0 = first period under way).
    churned: whether she left. counts: customers per row (default 1).
    entry:   the period in which observation of her began (1 = from the start; a customer
             first seen in her 13th month has entry 13); she must have survived to it.
    """
    periods = np.asarray(periods, dtype=float)
    churned = np.asarray(churned, dtype=bool)
    counts = np.ones_like(periods) if counts is None else np.asarray(counts, dtype=float)
    entry = np.ones_like(periods) if entry is None else np.asarray(entry, dtype=float)
    if not (len(periods) == len(churned) == len(counts) == len(entry)):
        raise SBGInputError("periods, churned, counts and entry must have the same length")
    if len(periods) == 0 or counts.sum() <= 0:
        raise SBGInputError("no customers to fit")
    if np.any(~np.isfinite(periods)) or np.any(periods < 0) or np.any(periods != np.round(periods)):
        raise SBGInputError("periods must be whole numbers >= 0")
    if np.any(churned & (periods < 1)):
        raise SBGInputError("a customer who left did so in period 1 or later")
    if (
        np.any(entry < 1)
        or np.any(churned & (entry > periods))
        or np.any(~churned & (entry - 1 > periods))
    ):
        raise SBGInputError("entry must be >= 1 and not after the customer's last observed period")
    events = float(counts[churned].sum())
    if events == 0:
        raise SBGInputError("no customer left: retention cannot be estimated from survivors alone")
    fit: Fit = fit_mle(
        lambda p: neg_loglik(p, periods, churned, counts, entry),
        ("alpha", "beta"),
        np.array([1.0, 1.0]),
        "sBG",
        gradient=lambda p: neg_loglik_gradient(p, periods, churned, counts, entry),
    )
    return SBGFit(
        alpha=fit.params["alpha"], beta=fit.params["beta"],
        alpha_se=fit.std_errors["alpha"], beta_se=fit.std_errors["beta"],
        loglik=fit.loglik, customers=float(counts.sum()), churn_events=events,
    )  # fmt: skip


def geometric_derl(churn_rate, discount: float):
    """DERL under constant retention 1 - c, timed as the sBG's DERL (the next payment, made
    with probability 1 - c, undiscounted): sum over t >= 1 of (1 - c)^t / (1 + d)^(t - 1)
    = (1 - c)(1 + d) / (c + d)."""
    if discount <= 0:
        raise SBGInputError("the discount rate per period must be positive")
    keep = 1 - np.asarray(churn_rate, dtype=float)
    return keep / (1 - keep / (1 + discount))


@dataclass(frozen=True)
class GeometricFit:
    """Constant retention: the sBG's limit when alpha and beta run to infinity together.

    Used where the data show no heterogeneity in retention (the sBG estimate has no finite
    maximum). Same interface as SBGFit.
    """

    churn_rate: float
    churn_rate_se: float
    loglik: float
    customers: float
    churn_events: float

    def survival(self, t) -> np.ndarray:
        return (1 - self.churn_rate) ** np.asarray(t, dtype=float)

    def retention_rate(self, t) -> np.ndarray:
        return np.full(np.shape(t), 1 - self.churn_rate)

    def derl(self, discount: float, renewals=0) -> np.ndarray:
        return np.full(np.shape(renewals), geometric_derl(self.churn_rate, discount))

    def summary(self) -> dict:
        return {"churn_rate": self.churn_rate, "churn_rate_se": self.churn_rate_se,
                "loglik": self.loglik, "customers": self.customers,
                "churn_events": self.churn_events}  # fmt: skip


def fit_geometric(periods, churned, counts=None, entry=None) -> GeometricFit:
    """Maximum likelihood for constant retention, on the same data as fit_sbg."""
    periods = np.asarray(periods, dtype=float)
    churned = np.asarray(churned, dtype=bool)
    counts = np.ones_like(periods) if counts is None else np.asarray(counts, dtype=float)
    entry = np.ones_like(periods) if entry is None else np.asarray(entry, dtype=float)
    # Each customer is at risk in periods entry .. periods (churned) or entry .. periods (alive:
    # completed periods); the churn probability per period at risk is events / exposure.
    exposure = float(np.sum(counts * (periods - entry + 1)))
    events = float(counts[churned].sum())
    if exposure <= 0 or events == 0:
        raise SBGInputError("no churn events or no exposure: retention cannot be estimated")
    c = events / exposure
    loglik = events * np.log(c) + (exposure - events) * np.log(1 - c)
    return GeometricFit(c, float(np.sqrt(c * (1 - c) / exposure)), float(loglik),
                        float(counts.sum()), events)  # fmt: skip


def fit_survivors(survivors) -> SBGFit:
    """Fit a single cohort's survivor counts [n_0, n_1, ..., n_T]."""
    return fit_sbg(*lifetimes_from_survivors(survivors))
