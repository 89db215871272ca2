"""Execution: how well CX is delivered in a unit, against the company over the same recent
months (or against the unit's declared targets), with an account bootstrap.

Against the company, the score is the unit's mean standardised composite CX over the
execution window minus the company's mean over the same months (company SDs; 0 = the
company's level). A company-wide trend moves both alike and cannot carry a unit across the
line, as a benchmark from all history would (issue 18, point 5). The bootstrap resamples the
company too: each unit draws Poisson(1) weights for its own accounts (its own stream) and
returns its weighted sums per replicate; the company's replicate is the sum of its units'
replicates, so every account carries one weight in its unit and in the company alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

from models.alignment.config import COMPOSITE
from models.parallel import poisson_blocks


@dataclass(frozen=True)
class ExecutionSums:
    """One unit's execution evidence: the composite's sum and count over its recent
    account-months, per month of the execution window (point: months x 2; per bootstrap
    replicate: replicates x months x 2), for the company benchmark; and its score against
    targets when it has them (point and replicates)."""

    composite: np.ndarray  # (months, 2): sum, count
    composite_reps: np.ndarray  # (replicates, months, 2)
    target_score: float | None = None
    target_reps: np.ndarray | None = None


@dataclass(frozen=True)
class Execution:
    score: float  # NaN: not measured
    ci_low: float
    ci_high: float
    level: str  # high | low | indeterminate
    p_side: float | None  # share of replicates on the score's side of the line
    benchmark: str  # company | targets
    replicates: np.ndarray


def _target_position(metric: str, level: np.ndarray, floor: float, target: float) -> np.ndarray:
    """Where a level sits between floor (0) and target (1), in the metric's own units."""
    if metric == "first_response":  # stored as -log(minutes); targets are in minutes
        return (math.log(floor) + level) / (math.log(floor) - math.log(target))
    if metric == "nps":  # stored as promoter 1 / passive 0 / detractor -1; targets in NPS points
        level = 100 * level
    return (level - floor) / (target - floor)


def execution_sums(recent: pl.DataFrame, replicates: int, rng: np.random.Generator,
                   targets: dict[str, tuple[float, float]] | None = None,
                   months: int = 1) -> ExecutionSums:  # fmt: skip
    """recent: the unit's account-months in the execution window (account_code, the window's
    month index 0..months-1 as `window_month`, the composite and, for targets, the metrics'
    levels). With targets, the score is the mean over the targeted metrics of the level's
    position between floor and target, minus 1 (0 = on target, -1 = at the floor)."""
    targets = targets or {}
    if "window_month" not in recent.columns:
        recent = recent.with_columns(pl.lit(0).alias("window_month"))
    composite = [
        pl.when(pl.col("window_month") == t).then(pl.col(COMPOSITE)).alias(f"c{t}")
        for t in range(months)
    ]
    columns = [*(f"c{t}" for t in range(months)), *targets]
    per_account = (
        recent.with_columns(composite)
        .group_by("account_code")
        .agg(
            *[pl.col(c).sum().alias(f"s_{c}") for c in columns],
            *[pl.col(c).count().alias(f"n_{c}") for c in columns],
        )
        .sort("account_code")  # each account keeps its resampling weights on a rerun
    )
    sums = per_account.select(
        pl.col(f"{p}_{c}").cast(pl.Float64) for c in columns for p in ("s", "n")
    ).to_numpy()
    reps = poisson_weighted_sums(rng, replicates, sums)
    point = sums.sum(axis=0)
    target_score = target_reps = None
    if targets:
        parts_point, parts_reps = [], []
        for i, c in enumerate(columns[months:], start=months):
            if point[2 * i + 1] == 0:
                continue
            with np.errstate(invalid="ignore", divide="ignore"):
                level_point = point[2 * i] / point[2 * i + 1]
                level_reps = reps[:, 2 * i] / reps[:, 2 * i + 1]
            floor, target = targets[c]
            parts_point.append(_target_position(c, level_point, floor, target) - 1)
            parts_reps.append(_target_position(c, level_reps, floor, target) - 1)
        target_score = float(np.mean(parts_point)) if parts_point else math.nan
        target_reps = (
            np.mean(parts_reps, axis=0) if parts_reps else np.full(replicates, np.nan)
        )
    k = 2 * months
    return ExecutionSums(point[:k].reshape(months, 2), reps[:, :k].reshape(replicates, months, 2),
                         target_score, target_reps)  # fmt: skip


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


def execution_levels(units: list[ExecutionSums], use_targets: list[bool]) -> list[Execution]:
    """Each unit's execution against the company over the same months (or its targets),
    from every unit's sums: the company is the sum of its units, point and replicates. The
    comparison is month by month, weighted by the unit's own account-months in each month:
    a unit present in only part of the window (a new product line, an acquisition) is
    compared with the company in those months, so a company-wide trend cannot favour it."""
    if not units:
        return []
    company = np.sum([u.composite for u in units], axis=0)  # (months, 2)
    company_reps = np.sum([u.composite_reps for u in units], axis=0)  # (reps, months, 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        company_month = company[:, 0] / company[:, 1]
        company_month_reps = company_reps[..., 0] / company_reps[..., 1]
    out = []
    for u, targeted in zip(units, use_targets, strict=True):
        if targeted:
            score, reps, benchmark = u.target_score, u.target_reps, "targets"
        else:
            score = _month_matched(u.composite, company_month)
            reps = _month_matched(u.composite_reps, company_month_reps)
            benchmark = "company"
        out.append(_level(float(score), reps, benchmark))
    return out


def _month_matched(unit: np.ndarray, company_month: np.ndarray):
    """The unit's mean minus the company's monthly means weighted by the unit's counts
    (unit: (..., months, 2) sums and counts; company_month: (..., months) means)."""
    counts = unit[..., 1]
    total = counts.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        benchmark = np.nansum(np.where(counts > 0, company_month, 0.0) * counts, axis=-1) / total
        return unit[..., 0].sum(axis=-1) / total - benchmark


def _level(score: float, reps: np.ndarray, benchmark: str) -> Execution:
    finite = reps[np.isfinite(reps)]
    if not np.isfinite(score) or len(finite) < 0.9 * len(reps) or not len(reps):
        return Execution(math.nan, math.nan, math.nan, "indeterminate", None, benchmark, reps)
    lo, hi = np.percentile(finite, [2.5, 97.5])
    level = "high" if lo > 0 else "low" if hi < 0 else "indeterminate"
    # (a score of exactly 0, the company itself, is on neither side)
    p_side = float(np.mean(np.sign(finite) == np.sign(score))) if score != 0 else None
    return Execution(score, float(lo), float(hi), level, p_side, benchmark, reps)
