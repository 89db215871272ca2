"""BG/NBD repeat-purchase model and the Gamma-Gamma spend model, for non-contractual customers.

BG/NBD: Fader, Hardie & Lee (2005), "Counting your customers the easy way", Marketing
Science. While alive a customer buys at rate lambda ~ Gamma(r, alpha); after each purchase
she drops out with probability p ~ Beta(a, b). Per customer: x repeat purchases, t_x the
time of the last one and T the time observed, both from her first purchase.

Gamma-Gamma: Fader & Hardie (2013), "The Gamma-Gamma model of monetary value". Spend per
transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma), independent of the purchase process;
fitted on repeat buyers' mean repeat spend. The population's mean spend p gamma / (q - 1)
exists only for q > 1, so a fit with q <= 1 is refused; the correlation between repeat
purchases and mean spend among repeat buyers is reported as the check of independence
Fader & Hardie make (near zero where the model's assumption holds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from scipy.special import betaln, gammaln, hyp2f1

from models.clv._optim import FitError, fit_mle

# The warehouse's SQL is the one definition of the purchase summary.
SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


class TransactionInputError(ValueError):
    """A transaction log or summary the models cannot take; the message says where."""


def rfm_summary(
    transactions: pl.DataFrame,
    calibration_end,
    customer_col: str = "customer_id",
    date_col: str = "date",
    amount_col: str = "amount",
) -> pl.DataFrame:
    """Raw transactions -> one row per customer: x, t_x, T (weeks) and mean repeat spend.

    Runs the warehouse's own definition (sql/intermediate/int_transaction_rfm.sql) in an
    in-memory DuckDB: purchases on the same day are one purchase, only purchases up to and
    including `calibration_end` count, and the first purchase day is not a repeat.
    """
    missing = {customer_col, date_col, amount_col} - set(transactions.columns)
    if missing:
        raise TransactionInputError(f"transactions lack column(s) {', '.join(sorted(missing))}")
    tx = transactions.select(
        pl.col(customer_col).cast(pl.Utf8).alias("account_id"),
        pl.col(date_col).cast(pl.Date, strict=False).alias("purchase_day"),
        pl.col(amount_col).cast(pl.Float64, strict=False).alias("amount"),
    )
    bad = tx.with_row_index("row").filter(
        pl.col("account_id").is_null() | pl.col("purchase_day").is_null()
        | pl.col("amount").is_null() | (pl.col("amount") < 0)
    )  # fmt: skip
    if bad.height:
        r = bad.row(0, named=True)
        raise TransactionInputError(
            f"{bad.height} transaction(s) with a missing or unreadable customer, date or amount, "
            f"or a negative amount; first at data row {r['row'] + 1}: {r}"
        )
    sql = (SQL_DIR / "intermediate" / "int_transaction_rfm.sql").read_text(encoding="utf-8")
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute("create schema staging")
        con.register("transactions_frame", tx)
        con.execute("create view staging.stg_transactions as select * from transactions_frame")
        summary = con.execute(sql, {"as_of": calibration_end}).pl()
    finally:
        con.close()
    return summary.rename({"account_id": "customer_id"}).sort("customer_id")


def _check_summary(x, t_x, T) -> None:
    if np.any(x < 0) or np.any(x != np.round(x)):
        raise TransactionInputError("x (repeat purchases) must be whole numbers >= 0")
    if np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise TransactionInputError("need 0 <= t_x <= T for every customer")
    if np.any((x == 0) & (t_x > 0)):
        raise TransactionInputError("a customer without repeat purchases has t_x = 0")


def bgnbd_loglik_terms(params, x, t_x, T) -> np.ndarray:
    r, alpha, a, b = params
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = betaln(a, b + x) - betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    ln_a4 = np.where(
        x > 0,
        betaln(a + 1, b + np.maximum(x, 1) - 1) - betaln(a, b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return ln_a1 + np.logaddexp(ln_a2 + ln_a3, ln_a4)


@dataclass(frozen=True)
class BGNBDFit:
    r: float
    alpha: float
    a: float
    b: float
    std_errors: dict[str, float]
    loglik: float
    customers: int

    @property
    def params(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        r, alpha, a, b = self.params
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        ratio = np.where(
            x > 0, a / (b + np.maximum(x, 1) - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0
        )
        return 1.0 / (1.0 + ratio)

    def expected_purchases(self, t, x, t_x, T) -> np.ndarray:
        """E[purchases in (T, T + t] | x, t_x, T] (FHL 2005, eq. 10)."""
        r, alpha, a, b = self.params
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        t = np.asarray(t, dtype=float)
        hyp = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        numer = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
        return numer * self.p_alive(x, t_x, T)

    def summary(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b,
                "std_errors": self.std_errors, "loglik": self.loglik,
                "customers": self.customers}  # fmt: skip


def fit_bgnbd(x, t_x, T) -> BGNBDFit:
    x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
    _check_summary(x, t_x, T)
    if len(x) < 10 or x.sum() == 0:
        raise TransactionInputError("need at least 10 customers and some repeat purchases")
    fit = fit_mle(
        lambda p: -float(np.sum(bgnbd_loglik_terms(p, x, t_x, T))),
        ("r", "alpha", "a", "b"),
        np.array([1.0, max(float(np.mean(T)), 1.0), 1.0, 1.0]),
        "BG/NBD",
    )
    p = fit.params
    return BGNBDFit(p["r"], p["alpha"], p["a"], p["b"], fit.std_errors, fit.loglik, len(x))


def gamma_gamma_loglik_terms(params, x, mean_spend) -> np.ndarray:
    p, q, gamma = params
    return (
        gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(gamma)
        + (p * x - 1) * np.log(mean_spend) + p * x * np.log(x)
        - (p * x + q) * np.log(gamma + x * mean_spend)
    )  # fmt: skip


class GammaGammaMeanUndefined(FitError):
    """The Gamma-Gamma estimate has q <= 1: the mean spend p gamma / (q - 1) is undefined."""


@dataclass(frozen=True)
class GammaGammaFit:
    p: float
    q: float
    gamma: float
    std_errors: dict[str, float]
    loglik: float
    customers: int
    # Pearson correlation of repeat purchases (x) and mean repeat spend among the repeat
    # buyers fitted: the model assumes spend independent of frequency.
    spend_frequency_correlation: float = float("nan")

    def expected_spend(self, x, mean_spend) -> np.ndarray:
        """E[spend per transaction | x, mean spend]: shrinks her mean towards the population's."""
        x, z = np.asarray(x, dtype=float), np.asarray(mean_spend, dtype=float)
        population = self.p * self.gamma / (self.q - 1)
        own = (self.gamma + x * z) * self.p / (self.p * x + self.q - 1)
        return np.where(x > 0, own, population)

    def summary(self) -> dict:
        return {"p": self.p, "q": self.q, "gamma": self.gamma, "std_errors": self.std_errors,
                "loglik": self.loglik, "customers": self.customers,
                "spend_frequency_correlation": None if np.isnan(self.spend_frequency_correlation)
                else self.spend_frequency_correlation}  # fmt: skip


def spend_frequency_correlation(x, mean_spend) -> float:
    """Correlation of repeat purchases and mean repeat spend among repeat buyers (x > 0,
    spend > 0); NaN when either does not vary."""
    x, z = np.asarray(x, dtype=float), np.asarray(mean_spend, dtype=float)
    keep = (x > 0) & (z > 0)
    x, z = x[keep], z[keep]
    if len(x) < 2 or np.std(x) == 0 or np.std(z) == 0:
        return float("nan")
    return float(np.corrcoef(x, z)[0, 1])


def fit_gamma_gamma(x, mean_spend) -> GammaGammaFit:
    """Fit on repeat buyers (x > 0) with their mean repeat spend (> 0)."""
    x, z = np.asarray(x, dtype=float), np.asarray(mean_spend, dtype=float)
    keep = (x > 0) & (z > 0)
    if keep.sum() < 10:
        raise TransactionInputError("Gamma-Gamma needs at least 10 repeat buyers with spend > 0")
    x, z = x[keep], z[keep]
    fit = fit_mle(
        lambda prm: -float(np.sum(gamma_gamma_loglik_terms(prm, x, z))),
        ("p", "q", "gamma"),
        np.array([1.0, 2.0, float(np.mean(z))]),
        "Gamma-Gamma",
    )
    prm = fit.params
    if prm["q"] <= 1:
        raise GammaGammaMeanUndefined(
            f"Gamma-Gamma: q = {prm['q']:.3g} <= 1 (p = {prm['p']:.3g}, gamma = "
            f"{prm['gamma']:.3g}): the mean spend per purchase p*gamma/(q - 1) is undefined, so "
            f"expected spend cannot be computed; spend is too heavy-tailed for the model "
            f"(check the largest orders, or value these customers another way)",
            estimate=prm,
        )
    return GammaGammaFit(
        prm["p"], prm["q"], prm["gamma"], fit.std_errors, fit.loglik, int(keep.sum()),
        spend_frequency_correlation(x, z),
    )  # fmt: skip


def discounted_expected_purchases(
    model: BGNBDFit, x, t_x, T, horizon: int, discount_per_period: float
) -> np.ndarray:
    """Sum over the next `horizon` periods of each period's expected purchases, discounted."""
    k = np.arange(1, horizon + 1, dtype=float)[:, None]
    cumulative = model.expected_purchases(k, x, t_x, T)  # periods x customers
    per_period = np.diff(np.vstack([np.zeros((1, cumulative.shape[1])), cumulative]), axis=0)
    return (per_period / (1 + discount_per_period) ** k).sum(axis=0)
