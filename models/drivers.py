"""Key drivers: which CX metric matters most for a unit's outcome (descriptive, not causal).

LMG relative importance (Lindeman, Merenda & Gold): the Shapley decomposition of a model's
explained variance over groups of predictors. The groups are the five CX metrics (each
with its missing flag); the controls (size, prior MRR change, segment, tenure) are always
in the model, so the importances share out what CX adds beyond them, and they sum to it
exactly: sum(importance) = R2(controls + all CX) - R2(controls).

The model is the linear probability model of the unit's tested outcome. DOMAIN suggests a
pseudo-R2 of the hazard model; the linear R2 is used because every subset's fit then comes
from one cross-product matrix, which makes the 32 subsets x bootstrap replicates affordable
at a million accounts (a reason recorded in docs/methods/alignment.md).

Intervals: a Poisson bootstrap over accounts, on per-account cross-product matrices, with
the bootstrap's estimate of the statistic's upward bias taken off both ends (an importance
cannot be negative, so a plain percentile interval could never reach zero).

Whether a driver matters: the joint Wald test of its group (the metric and its missing flag)
in the full model, with errors clustered by account, and Benjamini-Hochberg across the
unit's drivers; only a driver that passes is called distinguishable.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import polars as pl
from scipy import stats

from models.alignment import METRICS, OUTCOMES, Outcome, benjamini_hochberg, outcome_rows
from models.cluster import cluster_codes
from models.parallel import map_units, unit_rng, units_of

METHOD = (
    "LMG relative importance (descriptive, not causal): Shapley decomposition of the linear "
    "model's R2 of the tested outcome over CX metrics, controls always included; 95% account "
    "bootstrap interval, bias-corrected; distinguishable: joint cluster-robust Wald test of the "
    "metric and its missing flag beside the other metrics, Benjamini-Hochberg q <= 0.10"
)
DISTINGUISHABLE_Q = 0.10  # BH level across a unit's drivers (DOMAIN: q <= 0.10)


def _columns(df: pl.DataFrame, outcome: Outcome) -> tuple[np.ndarray, list[int], list[list[int]]]:
    """[const, controls..., metric value & missing flag per metric..., y], one row per
    column (columns x rows, C order: each column contiguous, as the per-account sums read
    them), and the index sets.

    Size is log MRR at the CX window's end (log_mrr_control, with the flag of accounts new
    since then) where the panel has it, as in the link model; else the month's log MRR."""
    size = "log_mrr_control" if "log_mrr_control" in df.columns else "log_mrr"
    cols = [np.ones(df.height), df[size].to_numpy().astype(float)]
    if "new_since_window" in df.columns:
        cols.append(df["new_since_window"].cast(pl.Float64).to_numpy())
    prior = df["log_mrr_change_prior_3m"].to_numpy().astype(float)
    cols += [np.nan_to_num(prior), np.isnan(prior).astype(float)]
    cats = df.select(
        pl.col("segment").cast(pl.Utf8),
        pl.when(pl.col("tenure_months") < 6).then(pl.lit("t0-5"))
        .when(pl.col("tenure_months") < 12).then(pl.lit("t6-11"))
        .when(pl.col("tenure_months") < 24).then(pl.lit("t12-23")).otherwise(pl.lit("t24+")),
    ).to_dummies(drop_first=True)  # fmt: skip
    cols += [c.to_numpy().astype(float) for c in cats.iter_columns()]
    base = list(range(len(cols)))
    groups = []
    for metric in METRICS:
        v = df[f"z_{metric}"].to_numpy().astype(float)
        start = len(cols)
        cols += [np.nan_to_num(v), np.isnan(v).astype(float)]
        groups.append([start, start + 1])
    cols.append(df[outcome.column].cast(pl.Float64).to_numpy())
    return np.vstack(cols), base, groups


def _r2(M: np.ndarray, cols: list[int], y: int) -> float:
    XtX, Xty = M[np.ix_(cols, cols)], M[cols, y]
    b = np.linalg.lstsq(XtX, Xty, rcond=None)[0]
    n, sy, syy = M[0, 0], M[0, y], M[y, y]
    sst = syy - sy * sy / n
    sse = syy - b @ Xty
    return float(1 - sse / sst) if sst > 0 else math.nan


def lmg(M: np.ndarray, base: list[int], groups: list[list[int]], y: int) -> np.ndarray:
    """Shapley shares of R2 among the groups, given the cross-product matrix M."""
    k = len(groups)
    r2 = {}
    for size in range(k + 1):
        for subset in combinations(range(k), size):
            cols = base + [c for g in subset for c in groups[g]]
            r2[subset] = _r2(M, cols, y)
    out = np.zeros(k)
    for g in range(k):
        others = [h for h in range(k) if h != g]
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for subset in combinations(others, size):
                with_g = tuple(sorted((*subset, g)))
                out[g] += weight * (r2[with_g] - r2[subset])
    return out


def bias_corrected_interval(
    estimate: np.ndarray, reps: np.ndarray, bounds: tuple[float, float] = (0.0, math.inf),
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The replicates' percentile interval moved down by the bootstrap's estimate of bias.

    A statistic that cannot be negative has replicates that cannot be either, so their
    percentile interval never reaches zero; and each replicate adds chance R2 of its own on
    top of the estimate's, so for a metric with no effect the replicates sit above the
    estimate. Their mean minus the estimate measures that excess (for a metric with no
    effect, the chance R2 it picks up: the statistic's null expectation); both ends are moved
    down by it, then kept within `bounds`, the values the statistic can take. The shift is
    held within the replicates' own interval, so the estimate always lies inside its
    interval. Columns are statistics, rows replicates.
    """
    tail = 100 * (1 - level) / 2
    lo, hi = np.nanpercentile(reps, [tail, 100 - tail], axis=0)
    bias = np.clip(np.nanmean(reps, axis=0) - estimate, lo - estimate, hi - estimate)
    return np.clip(lo - bias, *bounds), np.clip(hi - bias, *bounds)


def _pinv(A: np.ndarray, rcond: float = 1e-10) -> tuple[np.ndarray, int]:
    """Pseudo-inverse and rank of a cross-product matrix, equilibrated first (its columns
    differ in scale by orders of magnitude); a direction with an eigenvalue below `rcond` of
    the largest (a column another spans) is treated as absent."""
    d = np.sqrt(np.diag(A))
    d = np.where(d > 0, 1 / np.where(d > 0, d, 1), 1.0)
    values, vectors = np.linalg.eigh(A * d[:, None] * d[None, :])
    keep = values > rcond * max(values.max(initial=0.0), 0.0)
    inv = (vectors[:, keep] / values[keep]) @ vectors[:, keep].T
    return inv * d[:, None] * d[None, :], int(keep.sum())


def _identified(M: np.ndarray, before: list[int], cols: list[int]) -> list[int]:
    """The columns of `cols` that add a direction to `before` (and to the earlier ones kept):
    a constant column, or one another column already spans (a missing flag identical to
    another metric's), has no coefficient of its own to test."""
    kept: list[int] = []
    for j in cols:
        span = before + kept
        own = M[j, j] - M[j, span] @ _pinv(M[np.ix_(span, span)])[0] @ M[span, j]
        centred = M[j, j] - M[0, j] ** 2 / M[0, 0]  # column 0 is the constant
        if centred > 1e-12 * max(M[j, j], 1.0) and own > 1e-8 * centred:
            kept.append(j)
    return kept


def group_wald_p(
    P: np.ndarray, M: np.ndarray, base: list[int], groups: list[list[int]], y: int
) -> np.ndarray:
    """Per group: p-value of the joint Wald test that its coefficients are zero in the model
    with the controls and every other group, errors clustered by account (CR1), F reference
    with G - 1 denominator degrees of freedom. NaN where the group has nothing to test.

    P: per-account cross-products, accounts x k x k (a view); M: their sum.
    """
    n_acc, k = P.shape[0], M.shape[0]
    n = M[0, 0]
    out = np.full(len(groups), np.nan)
    for g, cols in enumerate(groups):  # five groups, not rows
        others = base + [c for h, other in enumerate(groups) if h != g for c in other]
        tested = _identified(M, others, cols)
        if not tested or n_acc < 2:
            continue
        full = others + tested
        bread, rank = _pinv(M[np.ix_(full, full)])
        b = bread @ M[full, y]
        b_all = np.zeros(k)
        b_all[full] = b
        # Each account's score, sum over its rows of x (y - x'b): from its cross-products.
        scores = P[:, full, y] - (P @ b_all)[:, full]
        small_sample = n_acc / (n_acc - 1) * (n - 1) / max(n - rank, 1)
        cov = small_sample * bread @ (scores.T @ scores) @ bread
        at = np.arange(len(others), len(full))
        bg = b[at]
        wald = float(bg @ _pinv(cov[np.ix_(at, at)])[0] @ bg)
        df = len(tested)
        out[g] = float(stats.f.sf(wald / df, df, n_acc - 1))
    return out


def _or_none(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def key_drivers(data: pl.DataFrame, outcomes: dict[str, str], replicates: int = 100,
                seed: int = 0, max_accounts: int = 50_000) -> pl.DataFrame:  # fmt: skip
    """Per unit: each CX metric's share of the explained variance, with a bootstrap interval.

    data: the alignment panel after models.alignment.prepare (z_<metric>, account_code ...).
    outcomes: unit -> tested outcome name. See unit_drivers.
    """
    rows = map_units(
        lambda item: unit_drivers(item[0], item[1], outcomes.get(item[0], "retention"),
                                  replicates, seed, max_accounts),
        units_of(data),
    )  # fmt: skip
    return pl.DataFrame([r for unit_rows in rows for r in unit_rows], infer_schema_length=None)


def unit_drivers(unit: str, unit_rows: pl.DataFrame, outcome_name: str = "retention",
                 replicates: int = 100, seed: int = 0, max_accounts: int = 50_000) -> list[dict]:  # fmt: skip
    """One unit's driver rows. A unit with more than `max_accounts` accounts is measured on a
    random sample of that many accounts (the importances are descriptive)."""
    rng = unit_rng(seed, unit, "drivers")
    rows: list[dict] = []
    outcome = OUTCOMES[outcome_name]
    used = ("account_code", "log_mrr", "log_mrr_control", "new_since_window",
            "log_mrr_change_prior_3m", "segment", "tenure_months",
            *(f"z_{m}" for m in METRICS), "churned_next_month", "churned_next_month_involuntary",
            outcome.column)  # fmt: skip
    unit_rows = unit_rows.select(c for c in dict.fromkeys(used) if c in unit_rows.columns)
    # The sample of accounts is drawn before the rows are copied: at a million accounts a
    # unit's rows are millions and the sample a quarter of them.
    accounts = outcome_rows(unit_rows, outcome, ("account_code",))["account_code"].unique().sort()
    if len(accounts) > max_accounts:
        keep = rng.choice(accounts.to_numpy(), max_accounts, replace=False)
        unit_rows = unit_rows.filter(pl.col("account_code").is_in(keep))
    df = outcome_rows(unit_rows, outcome)
    del unit_rows
    if df.height < 100 or df[outcome.column].cast(pl.Float64).std() == 0:
        return rows
    XT, base, groups = _columns(df, outcome)
    k = XT.shape[0]
    y = k - 1
    inv, n_acc = cluster_codes(df["account_code"].to_numpy())
    del df
    # Per-account cross-products (one bincount per column pair over contiguous columns,
    # never a rows x k^2 array), flattened: each bootstrap replicate is then one product.
    per_account = np.empty((n_acc, k * k))
    for i in range(k):  # k columns (about 20), not rows
        for j in range(i, k):
            per_account[:, i * k + j] = np.bincount(inv, weights=XT[i] * XT[j], minlength=n_acc)
            per_account[:, j * k + i] = per_account[:, i * k + j]
    M = per_account.sum(axis=0).reshape(k, k)
    importance = lmg(M, base, groups, y)
    total = _r2(M, base + [c for g in groups for c in g], y) - _r2(M, base, y)
    p_value = group_wald_p(per_account.reshape(n_acc, k, k), M, base, groups, y)
    q_value = benjamini_hochberg(p_value)
    w = rng.poisson(1.0, size=(replicates, n_acc)).astype(float)
    reps = np.array([lmg(Mb.reshape(k, k), base, groups, y) for Mb in w @ per_account])
    lo, hi = bias_corrected_interval(importance, reps)
    share = importance / total if total > 0 else np.full(len(groups), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = reps / reps.sum(axis=1, keepdims=True)
    share_lo, share_hi = bias_corrected_interval(share, shares, bounds=(0.0, 1.0))
    for i, metric in enumerate(METRICS):
        rows.append({
            "business_unit": unit, "driver": metric, "importance": float(importance[i]),
            "ci_low": float(lo[i]), "ci_high": float(hi[i]),
            "importance_share": _or_none(share[i]),
            "share_ci_low": _or_none(share_lo[i]), "share_ci_high": _or_none(share_hi[i]),
            "cx_explained_r2": float(total),
            "p_value": _or_none(p_value[i]), "q_value": _or_none(q_value[i]),
            "distinguishable": bool(q_value[i] <= DISTINGUISHABLE_Q),
            "outcome_tested": outcome.name, "method": METHOD,
        })  # fmt: skip
    return rows
