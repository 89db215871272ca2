"""The alignment test: does CX predict the outcome in each business unit, and how well is
CX delivered there? Method: docs/methods/alignment.md (and DOMAIN §3).

Link      discrete-time hazard (cloglog) of next-month voluntary churn on the lagged CX
          measure with controls, standard errors clustered by account; Benjamini-Hochberg
          across units; random-effects shrinkage; block-permutation and negative-control
          falsification; minimum detectable effect at 80% power.
Execution the unit's mean standardised CX against the company, account-bootstrap interval.
Verdict   quadrant (Innovative / Inflicted / Ineffective / Inactive, or Inconclusive) with
          its bootstrap probability and a confidence label.

numpy/polars/scipy, and DuckDB for standardising; no Dagster. The GLM and OLS fits are small numpy implementations
checked against statsmodels in the tests (same estimates and cluster-robust errors), because
statsmodels needed tens of GB at 100k accounts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl
from scipy.special import ndtr, ndtri  # normal CDF and its inverse, as scipy.stats.norm uses

from models.cluster import cr1_covariance, ols_cluster
from models.design import (
    Design,
    as_design,
    level_codes,
    map_blocks,
    matvec,
    tenure_band_codes,
    weighted_gram,
    with_categories,
)
from models.parallel import map_units, poisson_blocks, unit_rng, units_of

METHOD_VERSION = "alignment-v1"

# Features measured over a window that ends before the row's month (analytics.account_month).
# Only these can enter a link model; anything else is refused.
LAGGED_FEATURES = {
    "nps_category_latest", "nps_responses", "csat_mean", "csat_responses", "ces_mean",
    "ces_responses", "tickets", "first_response_minutes_median", "resolution_minutes_median",
    "fcr_rate", "reopen_rate", "handle_hours",
}  # fmt: skip
# The CX metrics and how each becomes a number where higher is better.
METRICS = {
    "nps": "NPS category (promoter 1, passive 0, detractor -1)",
    "csat": "mean CSAT",
    "ces": "mean CES",
    "first_response": "median first response (log minutes, inverted)",
    "fcr": "first-contact resolution rate",
}
COMPOSITE = "cx_composite"

ACTIONS = {
    "Innovative": "Double down: keep measuring impact, reward innovation, keep CX tied to the "
    "unit's changing priorities.",
    "Inflicted": "Act decisively: CX drives retention here and the unit is failing it; get "
    "executive sponsorship and invest in fixing the experience.",
    "Ineffective": "Recalibrate: good scores, outcomes unmoved; audit CX activities and tie them "
    "to the outcomes this unit needs.",
    "Inactive": "Start now: minimal, reactive service with no measurable link; build a "
    "proactive post-sale strategy and measure it.",
    "Inconclusive": "Keep measuring: the evidence cannot yet tell a real link from noise; see "
    "what would settle it.",
}


@dataclass(frozen=True)
class Outcome:
    name: str
    column: str  # in the prepared panel
    kind: str  # event (discrete-time cloglog hazard) | continuous (OLS)
    expected_sign: int  # +1: better CX should raise it; -1: lower it
    label: str


# What a unit's strategy can declare as its primary outcome (strategy.yaml).
OUTCOMES = {
    "retention": Outcome("retention", "churned_next_month_voluntary", "event", -1,
                         "voluntary churn next month"),
    "expansion": Outcome("expansion", "expanded_next_month", "event", +1,
                         "expansion (higher MRR) next month, among accounts that stay"),
    "cost_to_serve": Outcome("cost_to_serve", "log_handle_hours_next", "continuous", -1,
                             "log(1 + support hours next month), among accounts that stay"),
}  # fmt: skip


@dataclass(frozen=True)
class UnitStrategy:
    """A unit's declared strategy: the outcome its CX should move, and its CX targets."""

    primary_outcome: str = "retention"
    # metric -> (floor, target) in the metric's own units (NPS points, CSAT 1-5, CES 1-7,
    # first response minutes, FCR share); execution is then measured against these.
    targets: dict[str, tuple[float, float]] = field(default_factory=dict)


class FeatureLeakError(ValueError):
    """A feature not known to be measured before the outcome month was offered to a model."""


@dataclass(frozen=True)
class AlignmentConfig:
    main_measure: str = COMPOSITE  # or one of METRICS
    materiality_hr: float = 0.85  # a hazard ratio per SD at or below this is material
    fdr_q: float = 0.10
    permutations: int = 200
    falsification_alpha: float = 0.05
    min_negative_control_events: int = 20
    execution_months: int = 12  # recent months that measure execution
    # metric -> (floor, target) for every unit without its own; None = company benchmark
    execution_targets: dict | None = None
    bootstrap_replicates: int = 400
    established_probability: float = 0.8
    seed: int = 20261122
    extra_features: tuple[str, ...] = field(default_factory=tuple)
    # The exploratory per-metric fits and the revenue model (the calibration harness,
    # which only needs the verdicts, turns them off to run faster).
    secondary_metrics: bool = True
    revenue_model: bool = True

    def __post_init__(self):
        if self.main_measure != COMPOSITE and self.main_measure not in METRICS:
            raise ValueError(
                f"alignment.main_measure {self.main_measure!r}: one of {COMPOSITE}, "
                + ", ".join(METRICS)
            )
        if not 0 < self.materiality_hr < 1:
            raise ValueError("alignment.materiality_hr must be between 0 and 1")
        leaked = [f for f in self.extra_features if f not in LAGGED_FEATURES]
        if leaked:
            raise FeatureLeakError(
                f"feature(s) {', '.join(leaked)} are not measured before the outcome month "
                f"(allowed: {', '.join(sorted(LAGGED_FEATURES))}); a feature from the outcome "
                "month or later would manufacture a link"
            )

    @property
    def materiality_log(self) -> float:
        return math.log(self.materiality_hr)


# --- features ----------------------------------------------------------------------------

# The five CX metrics as numbers where higher is better (NULL where not measured), in SQL:
# standardising runs in DuckDB, over the warehouse or over an in-memory frame alike.
METRIC_SQL = {
    "nps": "case nps_category_latest when 'promoter' then 1.0 when 'passive' then 0.0 "
           "when 'detractor' then -1.0 end",
    "csat": "csat_mean::double",
    "ces": "ces_mean::double",
    # (not greatest(): it skips a NULL, and a missing median must stay missing)
    "first_response": "-ln(case when first_response_minutes_median < 1 then 1 "
                      "else first_response_minutes_median end)",
    "fcr": "fcr_rate::double",
}  # fmt: skip
# The account-months a next-month model can use: the next month is observed, and the
# account is billed this month.
AT_RISK_SQL = "is_at_risk_next_month and log_mrr is not null"
# Columns of analytics.account_month the models read (besides config.extra_features).
PANEL_COLUMNS = (
    "account_id", "business_unit", "month", "segment", "tenure_months", "mrr", "log_mrr",
    "log_mrr_change_prior_3m", "churned_next_month", "churned_next_month_voluntary",
    "churned_next_month_involuntary", "is_at_risk_next_month", "nps_category_latest",
    "csat_mean", "ces_mean", "first_response_minutes_median", "fcr_rate",
)  # fmt: skip


@dataclass(frozen=True)
class Scale:
    """The company's scale: each metric's mean and SD, and the composite's, over the
    company's at-risk account-months. Every unit is measured on this one scale."""

    metrics: dict[str, tuple[float, float]]  # metrics with spread only
    composite: tuple[float, float] | None


def _z(metric: str, mean: float, sd: float) -> str:
    """SQL: the metric's z-score (repr keeps every bit of the float; ::double keeps DuckDB
    from reading the literal as a DECIMAL)."""
    return f"(({metric} - {mean!r}::double) / {sd!r}::double)"


def _raw_composite(metrics: dict[str, tuple[float, float]]) -> str:
    """SQL: the mean of the available z-scores (NULL when none is)."""
    z = [_z(m, mu, sd) for m, (mu, sd) in metrics.items()]
    total = " + ".join(f"coalesce({e}, 0)" for e in z)
    count = " + ".join(f"({e} is not null)::int" for e in z)
    return f"({total}) / nullif({count}, 0)"


def company_scale(con: duckdb.DuckDBPyConnection, source: str) -> Scale:
    """Means and SDs of the metrics and of the composite over the at-risk rows of `source`
    (a table, or a frame registered on `con`). A metric with no spread (or no data) gets no
    z-score: it is NULL, like a missing answer.

    The five columns are read in a fixed order and summed by numpy: a parallel SQL avg can
    combine its partial sums in any order and differ in the last bit from one run to the
    next, which the fits would carry into every number downstream.
    """
    metrics_sql = ", ".join(f"{e} as {m}" for m, e in METRIC_SQL.items())
    frame = con.sql(
        f"select {metrics_sql} from {source} where {AT_RISK_SQL} order by account_id, month"
    ).pl()
    values = {m: frame[m].cast(pl.Float64).to_numpy() for m in METRIC_SQL}
    del frame
    metrics = {}
    for m, v in values.items():
        v = v[~np.isnan(v)]
        if len(v) > 1 and np.std(v) > 0:
            metrics[m] = (float(np.mean(v)), float(np.std(v, ddof=1)))
    if not metrics:
        return Scale(metrics, None)
    z = np.column_stack([(values[m] - mu) / sd for m, (mu, sd) in metrics.items()])
    present = ~np.isnan(z)
    with np.errstate(invalid="ignore"):
        composite = np.where(present, z, 0.0).sum(axis=1) / present.sum(axis=1)
    composite = composite[~np.isnan(composite)]
    if len(composite) < 2 or not np.std(composite) > 0:
        return Scale(metrics, None)
    return Scale(metrics, (float(np.mean(composite)), float(np.std(composite, ddof=1))))


# Columns of the source that prepared() reads and does not return: the metrics replace the
# raw CX columns, and every row returned is at risk. At a million accounts a unit's rows
# are millions, and these columns were a fifth of their memory.
REPLACED_COLUMNS = (
    "nps_category_latest", "csat_mean", "ces_mean", "first_response_minutes_median",
    "fcr_rate", "is_at_risk_next_month", "mrr",
)  # fmt: skip


def prepared(con: duckdb.DuckDBPyConnection, source: str, scale: Scale,
             params: dict | None = None, keep: tuple[str, ...] = ()) -> pl.DataFrame:  # fmt: skip
    """The at-risk rows of `source` with the metrics, their z-scores on the company's scale,
    the composite (the mean of the available z's, re-standardised) and an integer code per
    account, by account and month. The REPLACED_COLUMNS are left out, except those in
    `keep` (a model's extra features)."""
    z = ", ".join(
        (_z(m, *scale.metrics[m]) if m in scale.metrics else "null::double") + f" as z_{m}"
        for m in METRIC_SQL
    )
    composite = (
        _z(f"({_raw_composite(scale.metrics)})", *scale.composite)
        if scale.composite
        else "null::double"
    )
    metrics_sql = ", ".join(f"{e} as {m}" for m, e in METRIC_SQL.items())
    # (limit 0: the columns without running the query; a relation made with parameters,
    # con.sql(..., params=...), runs it: 7 s for an L unit)
    empty = con.execute(f"select * from {source} limit 0", params or {})
    present = [d[0] for d in empty.description]
    dropped = [c for c in REPLACED_COLUMNS if c in present and c not in keep]
    exclude = f"exclude ({', '.join(dropped)})" if dropped else ""
    query = f"""
        select * {exclude}, {composite} as {COMPOSITE}
        from (select *, {z} from (select *, {metrics_sql} from {source} where {AT_RISK_SQL}))
        order by account_id, month
    """
    df = con.execute(query, params or {}).pl()
    return df.with_columns(
        (pl.col("account_id").rank("dense") - 1).cast(pl.UInt32).alias("account_code")
    )


# --- the link model ----------------------------------------------------------------------


@dataclass(frozen=True)
class LinkFit:
    effect: float  # log hazard ratio (cloglog coefficient) per SD of the measure
    se: float
    p_two_sided: float
    p_expected_direction: float  # one-sided: better CX, lower hazard
    n_rows: int
    n_accounts: int
    n_events: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.effect - 1.959964 * self.se, self.effect + 1.959964 * self.se)

    @property
    def mde(self) -> float:
        """Smallest |log HR| per SD detectable with 80% power at two-sided 5%."""
        return (ndtri(0.975) + ndtri(0.8)) * self.se


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
    buffer: DesignBuffer | None = None,
) -> tuple[Design, list[str]]:  # fmt: skip
    """Design matrix: the measure (0 where missing, with a missing flag), log MRR, segment,
    tenure band, calendar quarter, prior MRR change (0 where missing, with a flag).
    with_measure=False: the controls alone (the null model of the permutation check).

    Columns that do not vary are left out (the constant aside). The float columns are
    allocated once and filled a column at a time (at millions of rows a stacked copy is
    gigabytes), column-major, so each column is written (and later read by cluster_scores)
    contiguously; the indicators are kept as each row's cell, its combination of segment,
    tenure band and quarter (models.design.with_categories). buffer: write the float
    columns there (see DesignBuffer) instead of into a new array."""
    parts: list[tuple[str, np.ndarray]] = []
    if with_measure:
        x = df[measure].to_numpy().astype(float)
        missing = np.isnan(x)
        parts.append((measure, np.nan_to_num(x, nan=0.0)))
        parts.append((f"{measure}_missing", missing))
        del x
    parts.append(("log_mrr", df["log_mrr"].to_numpy().astype(float)))
    prior = df["log_mrr_change_prior_3m"].to_numpy().astype(float)
    prior_missing = np.isnan(prior)
    parts.append(("log_mrr_change_prior_3m", np.nan_to_num(prior, nan=0.0)))
    parts.append(("prior_change_missing", prior_missing))
    del prior
    for f in extra:
        parts.append((f, np.nan_to_num(df[f].cast(pl.Float64).to_numpy(), nan=0.0)))
    varying = [(n, v) for n, v in parts if len(v) and v.max() > v.min()]
    shape = (df.height, 1 + len(varying))
    dense = buffer.take(*shape) if buffer is not None else np.empty(shape, order="F")
    dense[:, 0] = 1.0
    for j, (_, v) in enumerate(varying, start=1):
        dense[:, j] = v
    X, dummy_names = with_categories(dense, _categories(df))
    return X, ["const", *(n for n, _ in varying), *dummy_names]


TENURE_BANDS = ("t0-5", "t6-11", "t12-23", "t24+")  # under 6, 12 and 24 months, and older


def _categories(df: pl.DataFrame) -> list[tuple[np.ndarray, list[str], str]]:
    """Segment, tenure band and calendar quarter as integer codes with their level names."""
    segment, levels = level_codes(df["segment"])
    quarter = df.select(pl.col("month").dt.year() * 4 + pl.col("month").dt.quarter() - 1)
    quarter = quarter.to_series().to_numpy()
    first = int(quarter.min()) if len(quarter) else 0
    quarter_names = (
        [f"{c // 4}Q{c % 4 + 1}" for c in range(first, int(quarter.max()) + 1)]
        if len(quarter)
        else []
    )
    return [
        (segment, levels, "segment"),
        (tenure_band_codes(df["tenure_months"]), list(TENURE_BANDS), "tenure_band"),
        ((quarter - first).astype(np.int16), quarter_names, "quarter"),
    ]  # fmt: skip


def _cloglog_mean(eta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """exp(eta), the mean 1 - exp(-exp(eta)) (kept inside (0, 1)) and its derivative."""
    e = np.exp(eta)
    mu = np.clip(-np.expm1(-e), 1e-12, 1 - 1e-12)
    return e, mu, np.exp(eta - e)


def fit_cloglog(
    y: np.ndarray, X: np.ndarray | Design, groups: np.ndarray | None = None, maxiter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:  # fmt: skip
    """Binomial GLM with a complementary log-log link by IRLS; returns (beta, se, mu).

    The same estimates as statsmodels' GLM(Binomial(CLogLog)), with cluster-robust (CR1)
    standard errors when `groups` is given, computed with normal equations and per-cluster
    score sums so memory stays O(rows x columns) at millions of rows (statsmodels' path
    needed tens of GB at 100k accounts). None for se when the information matrix is singular.

    Each iteration works a block of rows at a time (map_blocks): the linear predictor, the
    weights and the working response of a block go straight into its share of the normal
    equations: no full-length temporaries, and each block is read while it is in cache.
    X: a matrix or a compact Design (models.design).
    """
    X = as_design(X)
    n, k = X.shape
    ybar = min(max(y.mean(), 1e-6), 1 - 1e-6)
    beta = np.zeros(k)
    beta[0] = math.log(-math.log(1 - ybar))

    def irls_block(start: int, stop: int):
        eta = np.clip(X.dot(start, stop, beta), -30, 3)
        _, mu, dmu = _cloglog_mean(eta)
        w = dmu**2 / (mu * (1 - mu))
        z = eta + (y[start:stop] - mu) / np.maximum(dmu, 1e-300)
        return X.gram_part(start, stop, w, z)

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
        return np.concatenate(means)

    for _ in range(maxiter):
        H, g = X.gram_total(map_blocks(irls_block, n))
        try:
            new = np.linalg.solve(H, g)
        except np.linalg.LinAlgError:
            return beta, None, mean_at_beta()
        done = np.max(np.abs(new - beta)) < tol * (1 + np.max(np.abs(beta)))
        beta = new
        if done:
            break
    parts = map_blocks(final_block, n)
    mu = np.concatenate([m for _, m, _ in parts])
    if groups is None:
        return beta, None, mu
    try:
        bread = np.linalg.inv(X.gram_total([h for h, _, _ in parts])[0])
    except np.linalg.LinAlgError:
        return beta, None, mu
    resid = np.concatenate([r for _, _, r in parts])
    del parts
    cov = cr1_covariance(bread, X, resid, groups)
    return beta, np.sqrt(np.maximum(np.diag(cov), 0)), mu


def fit_hazard(
    df: pl.DataFrame,
    outcome: str,
    measure: str,
    extra: tuple[str, ...] = (),
    expected_sign: int = -1,
    buffer: DesignBuffer | None = None,
) -> LinkFit | None:
    """cloglog discrete-time hazard; None when there are too few events to fit.

    p_expected_direction is one-sided in `expected_sign` (-1: better CX, fewer events)."""
    y = df[outcome].cast(pl.Float64).to_numpy()
    events = int(y.sum())
    if events < 5 or df[measure].drop_nulls().n_unique() < 2:
        return None
    X, names = design(df, measure, extra, buffer=buffer)
    beta, ses, _ = fit_cloglog(y, X, df["account_code"].to_numpy())
    if ses is None:
        return None
    b, se = float(beta[1]), float(ses[1])
    if not (np.isfinite(b) and np.isfinite(se) and se > 0):
        return None
    z = b / se
    return LinkFit(
        effect=b, se=se, p_two_sided=float(2 * ndtr(-abs(z))),
        p_expected_direction=float(ndtr(-expected_sign * z)), n_rows=df.height,
        n_accounts=int(df["account_code"].n_unique()), n_events=events,
    )  # fmt: skip


def fit_ols(
    df: pl.DataFrame, outcome: str, measure: str, expected_sign: int = 1,
    buffer: DesignBuffer | None = None,
) -> LinkFit | None:  # fmt: skip
    """A continuous outcome on the same features (OLS, CR1 errors clustered by account)."""
    sub = df.filter(pl.col(outcome).is_not_null())
    if sub.height < 50 or sub[measure].drop_nulls().n_unique() < 2:
        return None
    X, _ = design(sub, measure, buffer=buffer)
    y = sub[outcome].cast(pl.Float64).to_numpy()
    beta, ses = ols_cluster(y, X, sub["account_code"].to_numpy())
    b, se = float(beta[1]), float(ses[1])
    z = b / se if se > 0 else 0.0
    return LinkFit(b, se, float(2 * ndtr(-abs(z))), float(ndtr(-expected_sign * z)),
                   sub.height, int(sub["account_code"].n_unique()), 0)  # fmt: skip


def fit_link(
    df: pl.DataFrame, outcome: Outcome, measure: str, extra: tuple[str, ...] = (),
    buffer: DesignBuffer | None = None,
) -> LinkFit | None:  # fmt: skip
    if outcome.kind == "event":
        return fit_hazard(df, outcome.column, measure, extra, outcome.expected_sign, buffer)
    return fit_ols(df, outcome.column, measure, outcome.expected_sign, buffer)


# --- falsification: block permutation of CX histories -------------------------------------


def permutation_p(df: pl.DataFrame, outcome: Outcome, measure: str, permutations: int,
                  rng: np.random.Generator,
                  buffer: DesignBuffer | None = None) -> float | None:  # fmt: skip
    """p-value of the CX-outcome association when whole CX histories are shuffled among the
    unit's accounts.

    Score statistic of the null model (controls only): T = sum over accounts of the account's
    mean residualised CX times its summed score residual. Shuffling which account a history
    belongs to keeps each history intact (the block) and breaks only its tie to the outcome.
    One null fit, then a vectorised gather per permutation: fast at a million accounts.
    """
    y = df[outcome.column].cast(pl.Float64).to_numpy()
    if outcome.kind == "event" and y.sum() < 5:
        return None
    Z, _ = design(df, measure, with_measure=False, buffer=buffer)
    x = np.nan_to_num(df[measure].to_numpy().astype(float), nan=0.0)
    ones = np.ones(len(x))
    try:
        if outcome.kind == "event":
            _, _, mu = fit_cloglog(y, Z)
            score_resid = (y - mu) * (-np.log1p(-mu) / mu)  # cloglog score weight
        else:
            ZtZ, Zty = weighted_gram(Z, ones, y)
            score_resid = y - matvec(Z, np.linalg.lstsq(ZtZ, Zty, rcond=None)[0])
    except (np.linalg.LinAlgError, ValueError):
        return None
    # Residualise the measure on the controls (ter Braak) so shuffling it does not also
    # shuffle its correlation with size, segment or tenure. (Least squares through the
    # normal equations: a k x k solve instead of a decomposition of the rows x k matrix.)
    ZtZ, Ztx = weighted_gram(Z, ones, x)
    x_res = x - matvec(Z, np.linalg.lstsq(ZtZ, Ztx, rcond=None)[0])
    del Z
    _, inv = np.unique(df["account_code"].to_numpy(), return_inverse=True)
    n_acc = inv.max() + 1
    count = np.bincount(inv, minlength=n_acc).astype(float)
    x_bar = np.bincount(inv, weights=x_res, minlength=n_acc) / count
    s_sum = np.bincount(inv, weights=score_resid, minlength=n_acc)
    observed = outcome.expected_sign * float(x_bar @ s_sum)
    perms = rng.permuted(np.tile(np.arange(n_acc), (permutations, 1)), axis=1)
    null_t = outcome.expected_sign * (x_bar[perms] @ s_sum)
    # One-sided: as large in the expected direction as observed, by chance.
    return float((1 + np.sum(null_t >= observed)) / (permutations + 1))


# --- across units ------------------------------------------------------------------------


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    q = np.full(len(p), np.nan)
    ok = ~np.isnan(p)
    if not ok.any():
        return q
    pv = p[ok]
    order = np.argsort(pv)
    ranked = pv[order] * len(pv) / (np.arange(len(pv)) + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(len(pv))
    out[order] = np.minimum(ranked, 1.0)
    q[ok] = out
    return q


@dataclass(frozen=True)
class Pooled:
    mean: float
    se: float
    tau2: float
    shrunk: np.ndarray
    shrunk_se: np.ndarray


def random_effects(effects: np.ndarray, ses: np.ndarray) -> Pooled:
    """DerSimonian-Laird pooling and each unit's shrunk (empirical Bayes) estimate."""
    b, s2 = np.asarray(effects, float), np.asarray(ses, float) ** 2
    w = 1 / s2
    fixed = np.sum(w * b) / np.sum(w)
    k = len(b)
    Q = np.sum(w * (b - fixed) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2 = max(0.0, (Q - (k - 1)) / c) if k > 1 and c > 0 else 0.0
    w_star = 1 / (s2 + tau2)
    mean = np.sum(w_star * b) / np.sum(w_star)
    se = math.sqrt(1 / np.sum(w_star))
    if tau2 > 0:
        shrink = tau2 / (tau2 + s2)
        shrunk = shrink * b + (1 - shrink) * mean
        shrunk_se = np.sqrt(1 / (1 / s2 + 1 / tau2) + ((1 - shrink) * se) ** 2)
    else:
        shrunk = np.full(k, mean)
        shrunk_se = np.full(k, se)
    return Pooled(mean, se, tau2, shrunk, shrunk_se)


# --- execution ---------------------------------------------------------------------------


def _target_position(metric: str, level: np.ndarray, floor: float, target: float) -> np.ndarray:
    """Where a level sits between floor (0) and target (1), in the metric's own units."""
    if metric == "first_response":  # stored as -log(minutes); targets are in minutes
        return (math.log(floor) + level) / (math.log(floor) - math.log(target))
    if metric == "nps":  # stored as promoter 1 / passive 0 / detractor -1; targets in NPS points
        level = 100 * level
    return (level - floor) / (target - floor)


def execution_scores(
    recent: pl.DataFrame, config: AlignmentConfig, rng: np.random.Generator, targets: dict[str, tuple[float, float]] | None = None,
) -> tuple[float, np.ndarray]:  # fmt: skip
    """The unit's execution score and its account-bootstrap replicates.

    Against the company benchmark: the mean standardised composite CX of the unit's recent
    account-months (0 = the company's level, in company SDs). Against targets (the unit's
    strategy, or alignment.execution_targets): the mean over the targeted metrics of the
    level's position between floor and target, minus 1 (0 = on target, -1 = at the floor).
    """
    targets = targets or config.execution_targets or {}
    columns = list(targets) if targets else [COMPOSITE]
    per_account = (
        recent.group_by("account_code")
        .agg(
            *[pl.col(c).sum().alias(f"s_{c}") for c in columns],
            *[pl.col(c).count().alias(f"n_{c}") for c in columns],
        )
        .sort("account_code")  # each account keeps its resampling weights on a rerun
    )
    if per_account.height == 0:
        return math.nan, np.full(config.bootstrap_replicates, np.nan)
    measured = [c for c in columns if per_account[f"n_{c}"].sum() > 0]
    # Each measured column's sum and count per account, and under each replicate's weights.
    sums = per_account.select(
        pl.col(f"{p}_{c}").cast(pl.Float64) for c in measured for p in ("s", "n")
    ).to_numpy()
    reps = poisson_weighted_sums(rng, config.bootstrap_replicates, sums)
    point = sums.sum(axis=0)
    parts_point, parts_reps = [], []
    for i, c in enumerate(measured):
        with np.errstate(invalid="ignore", divide="ignore"):
            level_point = point[2 * i] / point[2 * i + 1]
            level_reps = reps[:, 2 * i] / reps[:, 2 * i + 1]
        if targets:
            floor, target = targets[c]
            level_point = _target_position(c, level_point, floor, target) - 1
            level_reps = _target_position(c, level_reps, floor, target) - 1
        parts_point.append(level_point)
        parts_reps.append(level_reps)
    if not parts_point:
        return math.nan, np.full(config.bootstrap_replicates, np.nan)
    return float(np.mean(parts_point)), np.mean(parts_reps, axis=0)


def poisson_weighted_sums(
    rng: np.random.Generator, replicates: int, values: np.ndarray
) -> np.ndarray:
    """(replicates x columns): the columns of `values` (accounts x columns) summed under
    each replicate's Poisson(1) weights per account, drawn a block of replicates at a time.
    The same draws, in the same order, as one (replicates x accounts) array, which at a
    million accounts is gigabytes."""
    out = np.empty((replicates, values.shape[1]))
    for start, stop, counts in poisson_blocks(rng, replicates, values.shape[0]):
        out[start:stop] = counts @ values
    return out


# --- putting it together -----------------------------------------------------------------


def outcome_rows(
    rows: pl.DataFrame, outcome: Outcome, columns: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """The account-months at risk for an outcome, with its column not NULL; only `columns`
    (default: all), so the copy holds only what its fit reads."""
    if outcome.column not in rows.columns:
        return rows.head(0)
    at_risk = (
        ~pl.col("churned_next_month_involuntary")  # involuntary churn censors
        if outcome.name == "retention"
        else ~pl.col("churned_next_month")
    )
    return _subset(rows, at_risk & pl.col(outcome.column).is_not_null(), columns)


def _subset(rows: pl.DataFrame, keep: pl.Expr, columns: tuple[str, ...] | None) -> pl.DataFrame:
    """The rows where `keep` holds, in one copy of only `columns` (default: all)."""
    if columns is None:
        return rows.filter(keep)
    return rows.lazy().filter(keep).select(list(dict.fromkeys(columns))).collect()


def prepare(panel: pl.DataFrame) -> pl.DataFrame:
    """A whole panel in memory through prepared(), on its own company scale. (The nightly
    asset reads the warehouse one unit at a time instead, on the same scale.)"""
    con = duckdb.connect()
    try:
        con.register("panel", panel)
        return prepared(con, "panel", company_scale(con, "panel"))
    finally:
        con.close()


def _link_verdict(fit: LinkFit | None, q: float, shrunk: float, falsified: bool,
                  config: AlignmentConfig, sign: int = -1) -> tuple[str, str]:  # fmt: skip
    if fit is None:
        return "inconclusive", "too few events to fit the model"
    # Material: at least the threshold's size, in the direction the strategy expects.
    material = sign * shrunk >= abs(config.materiality_log)
    if q <= config.fdr_q and sign * fit.effect > 0 and material:
        if falsified:
            return "inconclusive", "significant and material, but a falsification check failed"
        return "strong", "significant (BH), material after shrinkage, falsification checks passed"
    if fit.mde <= abs(config.materiality_log):
        return "weak", "powered to detect a material effect and none was found"
    return "inconclusive", "not enough data to detect a material effect (MDE above threshold)"


def recent_start(last_month, config: AlignmentConfig):
    """The first month of the execution window that ends at the company's last month."""
    return pl.select(pl.lit(last_month).dt.offset_by(f"-{config.execution_months - 1}mo")).item()


# What every design matrix reads (design()), besides the measure and extra features.
DESIGN_COLUMNS = (
    "account_code", "month", "segment", "tenure_months", "log_mrr", "log_mrr_change_prior_3m",
)  # fmt: skip
# What the fits read of a unit's prepared rows (besides config.extra_features); the
# metrics' own levels are for execution against targets.
FIT_COLUMNS = (
    "account_code", "month", "segment", "tenure_months", "log_mrr", "log_mrr_change_prior_3m",
    COMPOSITE, *(f"z_{m}" for m in METRICS), *METRICS, "churned_next_month",
    "churned_next_month_voluntary", "churned_next_month_involuntary", "log_mrr_change_next",
    "expanded_next_month", "log_handle_hours_next",
)  # fmt: skip


def fit_unit(unit: str, rows: pl.DataFrame, config: AlignmentConfig,
             strategy: UnitStrategy | None = None, recent_from=None) -> tuple[dict, list[dict]]:  # fmt: skip
    """One unit's link fit, falsification checks, revenue model, execution and exploratory
    per-metric fits. rows: the unit's prepared rows by account and month; recent_from: the
    first month of the execution window (default: from the unit's own last month).

    Each subset of rows a fit needs is made (with only the columns the fits read), used and
    released before the next: at a million accounts a unit has millions of rows."""
    measure = COMPOSITE if config.main_measure == COMPOSITE else f"z_{config.main_measure}"
    if recent_from is None:
        recent_from = recent_start(rows["month"].max(), config)
    wanted = dict.fromkeys((*FIT_COLUMNS, *config.extra_features))
    rows = rows.select(c for c in wanted if c in rows.columns)  # no copy: columns are shared
    unit_random = unit_rng(config.seed, unit, "alignment")
    strategy = strategy or UnitStrategy()
    outcome = OUTCOMES[strategy.primary_outcome]
    # What every design matrix reads, then what each fit adds to it.
    base = tuple(c for c in (*DESIGN_COLUMNS, *config.extra_features) if c in rows.columns)
    z_columns = tuple(f"z_{m}" for m in METRICS) if config.secondary_metrics else ()
    retention = OUTCOMES["retention"]
    at_risk = outcome_rows(
        rows, outcome,
        (*base, measure, outcome.column, *(z_columns if outcome.name == "retention" else ())),
    )  # fmt: skip
    buffer = DesignBuffer()  # one block for all of this unit's design matrices
    fit = fit_link(at_risk, outcome, measure, config.extra_features, buffer)
    perm = permutation_p(at_risk, outcome, measure, config.permutations, unit_random, buffer)
    counts = {
        "n_accounts": at_risk["account_code"].n_unique(), "n_rows": at_risk.height,
        "n_events": int(at_risk[outcome.column].sum()) if outcome.kind == "event" else 0,
    }  # fmt: skip
    # The exploratory per-metric fits are on the retention rows: the same rows when the
    # unit tests retention.
    voluntary = at_risk if outcome.name == "retention" else None
    del at_risk
    # Negative control (retention): CX should not predict failed payments.
    involuntary = _subset(rows, ~pl.col("churned_next_month_voluntary"),
                          (*base, measure, "churned_next_month_involuntary"))  # fmt: skip
    nc_events = int(involuntary["churned_next_month_involuntary"].sum())
    nc = (
        fit_hazard(involuntary, "churned_next_month_involuntary", measure, buffer=buffer)
        if outcome.name == "retention" and nc_events >= config.min_negative_control_events
        else None
    )
    del involuntary
    revenue = (
        fit_ols(
            _subset(rows, ~pl.col("churned_next_month"), (*base, measure, "log_mrr_change_next")),
            "log_mrr_change_next",
            measure,
            buffer=buffer,
        )
        if config.revenue_model and "log_mrr_change_next" in rows.columns
        else None
    )
    exec_score, exec_reps = execution_scores(
        _subset(rows, pl.col("month") >= recent_from, ("account_code", COMPOSITE, *METRICS)),
        config, unit_random, strategy.targets,
    )  # fmt: skip
    result = {
        "business_unit": unit, "fit": fit, "perm": perm, "nc": nc, "nc_events": nc_events,
        "revenue": revenue, "exec": exec_score, "exec_reps": exec_reps, "outcome": outcome,
        "targets": bool(strategy.targets), **counts,
    }  # fmt: skip
    metric_rows = []
    if not config.secondary_metrics:
        return result, metric_rows
    if voluntary is None:
        voluntary = outcome_rows(rows, retention, (*base, *z_columns, retention.column))
    for metric in METRICS:
        z = f"z_{metric}"
        m_fit = fit_hazard(voluntary, "churned_next_month_voluntary", z, buffer=buffer)
        metric_rows.append({
            "business_unit": unit, "metric": metric, "description": METRICS[metric],
            "effect": m_fit.effect if m_fit else None, "se": m_fit.se if m_fit else None,
            "p_value": m_fit.p_two_sided if m_fit else None,
            "n_rows": m_fit.n_rows if m_fit else rows.height,
            "accounts_measured": rows.select(
                pl.col("account_code").filter(pl.col(z).is_not_null()).n_unique()
            ).item(),
        })  # fmt: skip
    return result, metric_rows


def align_units(
    panel: pl.DataFrame,
    config: AlignmentConfig,
    strategies: dict[str, UnitStrategy] | None = None,
    data: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The alignment verdict per business unit, for a whole panel in memory.

    panel: analytics.account_month columns, plus for the other outcomes and the revenue model
    log_mrr_change_next, expanded_next_month and log_handle_hours_next (next month, for
    accounts still billed). strategies: each unit's declared outcome and targets (default:
    retention against the company benchmark). `data`: the panel already through prepare(),
    when the caller has it. Returns (units, company, metrics).
    """
    data = prepare(panel) if data is None else data
    strategies = strategies or {}
    recent_from = recent_start(data["month"].max(), config)
    fitted = map_units(
        lambda item: fit_unit(item[0], item[1], config, strategies.get(item[0]), recent_from),
        units_of(data),
        quiet=True,
    )
    return summarise_units(fitted, config, int(data["account_code"].n_unique()))


def summarise_units(fitted_units: list[tuple[dict, list[dict]]], config: AlignmentConfig,
                    n_accounts: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Across units (in a fixed order): Benjamini-Hochberg, random-effects shrinkage, the
    verdicts and CX types; the company summary; the per-metric rows."""
    rng = np.random.default_rng(config.seed)
    units = [u for u, _ in fitted_units]
    metric_rows = [m for _, ms in fitted_units for m in ms]

    fitted = [u for u in units if u["fit"] is not None]
    q = benjamini_hochberg(np.array([u["fit"].p_expected_direction for u in fitted]))
    pooled = (
        random_effects(np.array([u["fit"].effect for u in fitted]), np.array([u["fit"].se for u in fitted]))
        if fitted else None
    )  # fmt: skip
    for i, u in enumerate(fitted):
        u["q"], u["shrunk"], u["shrunk_se"] = q[i], pooled.shrunk[i], pooled.shrunk_se[i]

    rows_out = []
    alpha = config.falsification_alpha
    for u in units:
        fit = u["fit"]
        perm_failed = u["perm"] is not None and u["perm"] > alpha
        nc_failed = u["nc"] is not None and u["nc"].p_two_sided <= alpha and u["nc"].effect < 0
        sign = u["outcome"].expected_sign
        verdict, reason = _link_verdict(fit, u.get("q", 1.0), u.get("shrunk", 0.0),
                                        perm_failed or nc_failed, config, sign)  # fmt: skip
        exec_reps = u["exec_reps"]
        lo, hi = (np.nanpercentile(exec_reps, [2.5, 97.5]) if np.isfinite(exec_reps).any()
                  else (math.nan, math.nan))  # fmt: skip
        level = "high" if lo > 0 else "low" if hi < 0 else "indeterminate"
        side = "high" if u["exec"] > 0 else "low"
        if verdict == "inconclusive":
            quadrant, probability = "Inconclusive", None
        else:
            quadrant = _quadrant(side, verdict)
            link_draws = rng.normal(u["shrunk"], u["shrunk_se"], len(exec_reps))
            same_side = (exec_reps > 0) == (side == "high")
            same_link = (sign * link_draws >= abs(config.materiality_log)) == (verdict == "strong")
            probability = float(np.mean(same_side & same_link))
        confidence = (
            "established"
            if probability is not None
            and probability >= config.established_probability
            and level != "indeterminate"
            else "provisional"
        )
        needed = (
            int(math.ceil(u["n_accounts"] * (fit.mde / abs(config.materiality_log)) ** 2))
            if fit is not None
            and verdict == "inconclusive"
            and fit.mde > abs(config.materiality_log)
            else None
        )
        ci = fit.ci if fit else (None, None)
        rev = u["revenue"]
        rows_out.append(
            {
                "business_unit": u["business_unit"],
                "outcome_tested": u["outcome"].name,
                "outcome_description": u["outcome"].label,
                "execution_benchmark": "targets"
                if (u["targets"] or config.execution_targets)
                else "company",
                "main_measure": config.main_measure,
                "n_accounts": u["n_accounts"],
                "n_account_months": u["n_rows"],
                "n_events": u["n_events"],
                "execution_score": u["exec"],
                "execution_ci_low": float(lo),
                "execution_ci_high": float(hi),
                "execution_level": level,
                "link_effect": fit.effect if fit else None,
                "link_se": fit.se if fit else None,
                "link_ci_low": ci[0],
                "link_ci_high": ci[1],
                "link_hazard_ratio": math.exp(fit.effect) if fit else None,
                "link_effect_shrunk": u.get("shrunk"),
                "link_shrunk_ci_low": u["shrunk"] - 1.959964 * u["shrunk_se"] if fit else None,
                "link_shrunk_ci_high": u["shrunk"] + 1.959964 * u["shrunk_se"] if fit else None,
                "p_value": fit.p_expected_direction if fit else None,
                "q_value": u.get("q"),
                "mde": fit.mde if fit else None,
                "materiality_threshold": config.materiality_log,
                "link_verdict": verdict,
                "link_reason": reason,
                "permutation_p": u["perm"],
                "negative_control_effect": u["nc"].effect if u["nc"] else None,
                "negative_control_p": u["nc"].p_two_sided if u["nc"] else None,
                "negative_control_events": u["nc_events"],
                "falsification_passed": not (perm_failed or nc_failed) if fit else None,
                "revenue_effect": rev.effect if rev else None,
                "revenue_ci_low": rev.ci[0] if rev else None,
                "revenue_ci_high": rev.ci[1] if rev else None,
                "quadrant": quadrant,
                "quadrant_probability": probability,
                "confidence": confidence,
                "recommended_action": ACTIONS[quadrant],
                "accounts_needed": needed,
                "method_version": METHOD_VERSION,
            }
        )
    units_frame = pl.DataFrame(rows_out, infer_schema_length=None)
    company = pl.DataFrame([{
        "units": len(units),
        "units_fitted": len(fitted),
        "pooled_effect": pooled.mean if pooled else None,
        "pooled_ci_low": pooled.mean - 1.959964 * pooled.se if pooled else None,
        "pooled_ci_high": pooled.mean + 1.959964 * pooled.se if pooled else None,
        "pooled_hazard_ratio": math.exp(pooled.mean) if pooled else None,
        "between_unit_sd": math.sqrt(pooled.tau2) if pooled else None,
        "units_strong": int((units_frame["link_verdict"] == "strong").sum()),
        "units_weak": int((units_frame["link_verdict"] == "weak").sum()),
        "units_inconclusive": int((units_frame["link_verdict"] == "inconclusive").sum()),
        **{f"units_{k.lower()}" + ("_type" if k == "Inconclusive" else ""): int((units_frame["quadrant"] == k).sum()) for k in ACTIONS},
        "n_accounts": n_accounts,
        "n_events": int(sum(u["n_events"] for u in units)),
        "main_measure": config.main_measure,
        "method_version": METHOD_VERSION,
    }])  # fmt: skip
    return units_frame, company, pl.DataFrame(metric_rows, infer_schema_length=None)


def _quadrant(execution_side: str, link: str) -> str:
    return {
        ("high", "strong"): "Innovative",
        ("low", "strong"): "Inflicted",
        ("high", "weak"): "Ineffective",
        ("low", "weak"): "Inactive",
    }[(execution_side, link)]
