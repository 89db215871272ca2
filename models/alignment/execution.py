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
    account-months (point and per bootstrap replicate, for the company benchmark), and its
    score against targets when it has them (point and replicates)."""

    composite: np.ndarray  # (2,): sum, count
    composite_reps: np.ndarray  # (replicates, 2)
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
                   targets: dict[str, tuple[float, float]] | None = None) -> ExecutionSums:  # fmt: skip
    """recent: the unit's account-months in the execution window (account_code, the
    composite and, for targets, the metrics' levels). With targets, the score is the mean
    over the targeted metrics of the level's position between floor and target, minus 1
    (0 = on target, -1 = at the floor)."""
    targets = targets or {}
    columns = list(dict.fromkeys([COMPOSITE, *targets]))
    per_account = (
        recent.group_by("account_code")
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
        for i, c in enumerate(columns):
            if c not in targets or point[2 * i + 1] == 0:
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
    return ExecutionSums(point[:2], reps[:, :2], target_score, target_reps)


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
    from every unit's sums: the company is the sum of its units, point and replicates."""
    company = np.sum([u.composite for u in units], axis=0) if units else np.zeros(2)
    company_reps = np.sum([u.composite_reps for u in units], axis=0) if units else None
    with np.errstate(invalid="ignore", divide="ignore"):
        company_level = company[0] / company[1]
        company_rep_levels = company_reps[:, 0] / company_reps[:, 1] if units else None
    out = []
    for u, targeted in zip(units, use_targets, strict=True):
        if targeted:
            score, reps, benchmark = u.target_score, u.target_reps, "targets"
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                score = u.composite[0] / u.composite[1] - company_level
                reps = u.composite_reps[:, 0] / u.composite_reps[:, 1] - company_rep_levels
            benchmark = "company"
        out.append(_level(float(score), reps, benchmark))
    return out


def _level(score: float, reps: np.ndarray, benchmark: str) -> Execution:
    finite = reps[np.isfinite(reps)]
    if not np.isfinite(score) or len(finite) < 0.9 * len(reps) or not len(reps):
        return Execution(math.nan, math.nan, math.nan, "indeterminate", None, benchmark, reps)
    lo, hi = np.percentile(finite, [2.5, 97.5])
    level = "high" if lo > 0 else "low" if hi < 0 else "indeterminate"
    p_side = float(np.mean((finite > 0) == (score > 0)))
    return Execution(score, float(lo), float(hi), level, p_side, benchmark, reps)
