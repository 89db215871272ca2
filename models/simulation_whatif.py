"""Account-month panels with a planted what-if truth, for the what-if tests and bench.

One business unit, written with the analytics.account_month columns the what-if rows read
(sql/models/whatif_rows.sql), so a test runs the engine through its real SQL. Each account
has a hidden trait U ~ N(0, 1) that never reaches the panel. Its first response (log minutes)
is an account level (`symptom` x U plus a lasting account part) plus a month-to-month
wobble; the other levers are noise. The monthly voluntary hazard is

    cloglog h = base + segment + lever_effect x (log minutes - 4.5) + hidden_effect x U

so with lever_effect != 0 and hidden_effect = 0 first response drives churn (the case the
scenario must recover), and with lever_effect = 0, hidden_effect != 0 and symptom != 0 it is
only a symptom of U (accounts with slow responses churn more, but not because of them).

truth() gives the scenario's true expected churn avoided among the last month's active
accounts, from the planted hazards (U included), computed directly: not by the engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_EFFECT = np.array([0.25, 0.0, -0.4])
CENTRE = 4.5  # log minutes (about 90 minutes)


@dataclass(frozen=True)
class WhatifSim:
    accounts: int = 2000
    months: int = 24
    lever_effect: float = 0.0  # log hazard ratio per log minute of first response
    hidden_effect: float = 0.0  # log hazard ratio per SD of the hidden trait
    symptom: float = 0.0  # first response's loading on the hidden trait (log minutes per SD)
    base: float = math.log(0.02)
    involuntary: float = 0.003
    unit: str = "Planted"


@dataclass(frozen=True)
class Simulated:
    panel: pl.DataFrame  # analytics.account_month columns
    active: pl.DataFrame  # account_id, log_minutes, segment, hidden: the last month's accounts
    sim: WhatifSim

    def truth(self, relative_change: float, months: int = 12) -> float:
        """Expected voluntary churners avoided over `months` among the active accounts when
        every measured first response changes by `relative_change` (e.g. -0.2), from the
        planted hazards (constant over months here: no tenure or season in the truth)."""
        s = self.sim
        seg = self.active["segment_code"].to_numpy()
        x = self.active["log_minutes"].to_numpy()
        u = self.active["hidden"].to_numpy()

        def churn(xv):
            eta = s.base + SEGMENT_EFFECT[seg] + s.lever_effect * (xv - CENTRE) + s.hidden_effect * u
            h = -np.expm1(-np.exp(eta))
            stay = (1 - h) * (1 - s.involuntary)
            # sum over t = 1..months of S_(t-1) h, S_t = stay^t
            return h * (1 - stay**months) / (1 - stay)

        shifted = np.maximum(x + math.log1p(relative_change), 0.0)
        return float((churn(x) - churn(shifted)).sum())


def simulate(sim: WhatifSim, seed: int, first_month: date = date(2024, 1, 1)) -> Simulated:
    rng = np.random.default_rng(seed)
    n = sim.accounts
    seg = rng.choice(3, n, p=(0.6, 0.3, 0.1))
    log_mrr = np.log([300.0, 2500.0, 15000.0])[seg] + 0.4 * rng.normal(0, 1, n)
    hidden = rng.normal(0, 1, n)
    level = CENTRE + sim.symptom * hidden + 0.3 * rng.normal(0, 1, n)
    wobble = rng.normal(0, 0.4, n)
    tenure = rng.integers(0, 36, n)
    alive = np.ones(n, bool)
    ids = np.char.add(f"{sim.unit}-", np.arange(n).astype(str))
    frames = []
    for t in range(sim.months + 1):
        month = date(first_month.year + (first_month.month - 1 + t) // 12,
                     (first_month.month - 1 + t) % 12 + 1, 1)  # fmt: skip
        wobble = 0.5 * wobble + math.sqrt(1 - 0.25) * rng.normal(0, 0.4, n)
        x = level + wobble
        idx = np.flatnonzero(alive)
        k = len(idx)
        last = t == sim.months
        eta = (sim.base + SEGMENT_EFFECT[seg[idx]] + sim.lever_effect * (x[idx] - CENTRE)
               + sim.hidden_effect * hidden[idx])  # fmt: skip
        h = -np.expm1(-np.exp(eta))
        voluntary = (rng.random(k) < h) & (not last)
        involuntary = ~voluntary & (rng.random(k) < sim.involuntary) & (not last)
        frt = np.exp(x[idx])
        frt_obs = np.where(rng.random(k) < 0.1, np.nan, frt)
        frames.append(pl.DataFrame({
            "account_id": ids[idx], "business_unit": sim.unit, "month": month,
            "segment": np.array(SEGMENTS)[seg[idx]], "region": "North", "plan": "Standard",
            "tenure_months": tenure[idx] + t,
            "mrr": np.exp(log_mrr[idx]), "log_mrr": log_mrr[idx], "log_mrr_window_end": log_mrr[idx],
            "log_mrr_change_prior_3m": rng.normal(0, 0.05, k),
            "churned_this_month": np.zeros(k, bool),
            "churned_next_month": None if last else (voluntary | involuntary),
            "churned_next_month_voluntary": None if last else voluntary,
            "churned_next_month_involuntary": None if last else involuntary,
            "is_at_risk_next_month": not last,
            "first_response_minutes_median": frt_obs,
            "fcr_rate": np.clip(0.6 + 0.15 * rng.normal(0, 1, k), 0, 1),
            "reopen_rate": np.clip(0.1 + 0.05 * rng.normal(0, 1, k), 0, 1),
            "csat_mean": np.where(rng.random(k) < 0.5, np.nan, np.clip(4 + 0.5 * rng.normal(0, 1, k), 1, 5)),
            "ces_mean": np.where(rng.random(k) < 0.7, np.nan, np.clip(5 + 0.8 * rng.normal(0, 1, k), 1, 7)),
            "nps_category_latest": rng.choice(["promoter", "passive", "detractor", "no_response"], k,
                                              p=(0.2, 0.15, 0.1, 0.55)),
        }).with_columns(pl.col("first_response_minutes_median", "csat_mean", "ces_mean").fill_nan(None)))  # fmt: skip
        if last:
            active = pl.DataFrame({"account_id": ids[idx], "log_minutes": x[idx],
                                   "segment_code": seg[idx], "hidden": hidden[idx]})  # fmt: skip
            # the truth holds the measured value; an unmeasured one is not changed by the
            # scenario, so its account contributes nothing (as in the engine)
            measured = ~np.isnan(frt_obs)
            active = active.filter(pl.Series(measured))
        alive[idx[voluntary | involuntary]] = False
    panel = pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.col("churned_next_month", "churned_next_month_voluntary",
               "churned_next_month_involuntary").cast(pl.Boolean)
    )  # fmt: skip
    return Simulated(panel, active, sim)


def warehouse(panel: pl.DataFrame):
    """An in-memory DuckDB holding the panel as analytics.account_month."""
    import duckdb

    con = duckdb.connect()
    con.execute("create schema analytics")
    con.register("panel_frame", panel)
    con.execute("create table analytics.account_month as select * from panel_frame")
    con.unregister("panel_frame")
    return con
