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

Intervals: a Poisson bootstrap over accounts, on per-account cross-product matrices.
"""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import polars as pl

from models.alignment import METRICS, OUTCOMES, Outcome, outcome_rows
from models.cluster import cluster_codes
from models.parallel import map_units, unit_rng, units_of

METHOD = (
    "LMG relative importance (descriptive, not causal): Shapley decomposition of the linear "
    "model's R2 of the tested outcome over CX metrics, controls always included; 95% account "
    "bootstrap interval"
)


def _columns(df: pl.DataFrame, outcome: Outcome) -> tuple[np.ndarray, list[int], list[list[int]]]:
    """[const, controls..., metric value & missing flag per metric..., y] and the index sets."""
    cols = [np.ones(df.height), df["log_mrr"].to_numpy().astype(float)]
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
    X = np.column_stack(cols)
    return X, base, groups


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
    used = ("account_code", "log_mrr", "log_mrr_change_prior_3m", "segment", "tenure_months",
            *(f"z_{m}" for m in METRICS), "churned_next_month", "churned_next_month_involuntary",
            outcome.column)  # fmt: skip
    df = outcome_rows(
        unit_rows.select(c for c in dict.fromkeys(used) if c in unit_rows.columns), outcome
    )
    accounts = df["account_code"].unique().sort()
    if len(accounts) > max_accounts:
        keep = rng.choice(accounts.to_numpy(), max_accounts, replace=False)
        df = df.filter(pl.col("account_code").is_in(keep))
    if df.height < 100 or df[outcome.column].cast(pl.Float64).std() == 0:
        return rows
    X, base, groups = _columns(df, outcome)
    y = X.shape[1] - 1
    inv, n_acc = cluster_codes(df["account_code"].to_numpy())
    # Per-account cross-products (one bincount per column pair over contiguous columns,
    # never a rows x k^2 array), flattened: each bootstrap replicate is then one product.
    k = X.shape[1]
    XT = np.ascontiguousarray(X.T)
    per_account = np.empty((n_acc, k * k))
    for i in range(k):  # k columns (about 20), not rows
        for j in range(i, k):
            per_account[:, i * k + j] = np.bincount(inv, weights=XT[i] * XT[j], minlength=n_acc)
            per_account[:, j * k + i] = per_account[:, i * k + j]
    M = per_account.sum(axis=0).reshape(k, k)
    importance = lmg(M, base, groups, y)
    total = _r2(M, base + [c for g in groups for c in g], y) - _r2(M, base, y)
    w = rng.poisson(1.0, size=(replicates, n_acc)).astype(float)
    reps = np.array([lmg(Mb.reshape(k, k), base, groups, y) for Mb in w @ per_account])
    lo, hi = np.nanpercentile(reps, [2.5, 97.5], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = reps / reps.sum(axis=1, keepdims=True)
    share_lo, share_hi = np.nanpercentile(shares, [2.5, 97.5], axis=0)
    for i, metric in enumerate(METRICS):
        rows.append({
            "business_unit": unit, "driver": metric, "importance": float(importance[i]),
            "ci_low": float(lo[i]), "ci_high": float(hi[i]),
            "importance_share": float(importance[i] / total) if total > 0 else None,
            "share_ci_low": float(share_lo[i]), "share_ci_high": float(share_hi[i]),
            "cx_explained_r2": float(total), "outcome_tested": outcome.name, "method": METHOD,
        })  # fmt: skip
    return rows
