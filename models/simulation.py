"""Account-month panels with planted truth, for the alignment tests and the calibration harness.

Faster than the full demo generator (no landing files, no warehouse): it writes the
analytics.account_month columns the alignment test reads, directly. Each account has a
latent CX level (unit execution + a lasting account effect + an AR(1) wobble); the panel
carries noisy, partly missing readouts of its mean over the previous six months (NPS
category, CSAT, CES, first response, FCR), and the monthly voluntary churn hazard is

    h = base(segment) x exp(link x z + size_effect x size_z)

where z is either the standardised latent window mean ("latent", the realistic case, where
measurement noise attenuates what any model can see) or the standardised observed CSAT
("csat", where the planted effect is exactly the estimand of a CSAT model, for coverage).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
REGIONS = ("North", "South", "East", "West")
REGION_SHARES = (0.4, 0.3, 0.2, 0.1)
REGION_SCORE = np.array([0.9, 0.0, -0.7, -1.5])  # each region's CX and churn shift (SD units)


@dataclass(frozen=True)
class SimUnit:
    name: str
    accounts: int
    execution: float = 0.0  # unit mean latent CX (SD units)
    link: float = 0.0  # log hazard ratio per SD of the hazard's CX variable
    size_effect: float = 0.0  # log hazard ratio per SD of log MRR
    cx_size_correlation: float = 0.0  # confounding: CX tied to account size
    expansion_link: float = 0.0  # log hazard ratio of expanding next month per SD of CX
    # confounding by region: the account's CX moves by region_cx x its region's score (SD
    # units) and its hazard by exp(region_churn x score); CX itself may do nothing
    region_cx: float = 0.0
    region_churn: float = 0.0
    # A planted change of truth: from month index `change_month` on, the unit's execution
    # and/or link take these values (None: unchanged). For the alerts' detection delay.
    change_month: int | None = None
    execution_after: float | None = None
    link_after: float | None = None

    def execution_at(self, t: int) -> float:
        changed = self.change_month is not None and t >= self.change_month
        return self.execution_after if changed and self.execution_after is not None else self.execution

    def link_at(self, t: int) -> float:
        changed = self.change_month is not None and t >= self.change_month
        return self.link_after if changed and self.link_after is not None else self.link


def simulate_panel(
    units: list[SimUnit],
    months: int = 24,
    seed: int = 0,
    hazard_on: str = "latent",
    base_hazard: float = 0.02,
    involuntary_hazard: float = 0.004,
    first_month: date = date(2024, 1, 1),
    trend: float = 0.0,
) -> pl.DataFrame:
    """trend: a company-wide CX change per month (SD units) added to every account's latent
    CX; churn does not follow it (the hazard's CX variable is measured from the trend)."""
    rng = np.random.default_rng(seed)
    frames = []
    month_dates = [
        date(
            first_month.year + (first_month.month - 1 + k) // 12,
            (first_month.month - 1 + k) % 12 + 1,
            1,
        )
        for k in range(months + 1)
    ]
    for unit in units:
        n = unit.accounts
        seg = rng.choice(3, n, p=(0.6, 0.3, 0.1))
        size_z = rng.normal(0, 1, n)
        log_mrr = np.log([300.0, 2500.0, 15000.0])[seg] + 0.5 * size_z
        account = np.sqrt(1 - unit.cx_size_correlation**2) * rng.normal(0, 0.7, n) + (
            unit.cx_size_correlation * 0.7 * size_z
        )
        region = rng.choice(len(REGIONS), n, p=REGION_SHARES)
        account = account + unit.region_cx * REGION_SCORE[region]
        wobble = rng.normal(0, 0.7, n)
        history: list[np.ndarray] = []
        alive = np.ones(n, bool)
        tenure = rng.integers(0, 36, n)
        ids = np.char.add(f"{unit.name}-", np.arange(n).astype(str))
        for t in range(months):
            wobble = 0.6 * wobble + 0.8 * rng.normal(0, 0.7, n)
            x = unit.execution_at(t) + account + wobble + trend * t
            history.append(x)
            if len(history) < 2:
                continue  # the first month has no window before it
            window = np.mean(history[-7:-1], axis=0)  # the six months before this one
            idx = np.flatnonzero(alive)
            w = window[idx]
            k = len(idx)
            csat = np.clip(3.9 + 0.6 * w + rng.normal(0, 0.35, k), 1, 5)
            csat_obs = np.where(rng.random(k) < (0.0 if hazard_on == "csat" else 0.4), np.nan, csat)
            nps_score = 7.3 + 1.6 * w + rng.normal(0, 1.4, k)
            nps_cat = np.where(
                nps_score >= 8.5, "promoter", np.where(nps_score >= 6.5, "passive", "detractor")
            )
            nps_cat = np.where(rng.random(k) < 0.6, "no_response", nps_cat)
            ces = np.where(
                rng.random(k) < 0.8, np.nan, np.clip(4.8 + 0.8 * w + rng.normal(0, 0.6, k), 1, 7)
            )
            frt = np.where(
                rng.random(k) < 0.3, np.nan, np.exp(np.log(120) - 0.4 * w + rng.normal(0, 0.5, k))
            )
            fcr = np.where(
                rng.random(k) < 0.3, np.nan, np.clip(0.5 + 0.12 * w + rng.normal(0, 0.15, k), 0, 1)
            )
            # the unit's true execution over the window's months (constant unless planted)
            span = np.arange(max(t - 6, 0), t)
            centre_x = float(np.mean([unit.execution_at(int(m)) for m in span]))
            if hazard_on == "csat":
                z = (csat_obs - 3.9) / np.nanstd(csat_obs) if k > 1 else np.zeros(k)
                z = np.nan_to_num(z)
            else:
                # the trend over the window's months (t-6 .. t-1, or fewer at the start)
                z = (w - centre_x - trend * span.mean()) / 0.8
            h = (
                base_hazard
                * np.array([1.3, 0.8, 0.5])[seg[idx]]
                * np.exp(unit.link_at(t) * z + unit.size_effect * size_z[idx]
                         + unit.region_churn * REGION_SCORE[region[idx]])
            )
            voluntary = rng.random(k) < 1 - np.exp(-h)
            involuntary = ~voluntary & (rng.random(k) < involuntary_hazard)
            stays = ~(voluntary | involuntary)
            expands = rng.random(k) < 1 - np.exp(
                -0.03 * np.exp(unit.expansion_link * (w - centre_x) / 0.8)
            )
            frames.append(
                pl.DataFrame(
                    {
                        "account_id": ids[idx],
                        "business_unit": unit.name,
                        "segment": np.array(SEGMENTS)[seg[idx]],
                        "region": np.array(REGIONS)[region[idx]],
                        "month": month_dates[t],
                        "tenure_months": tenure[idx] + t,
                        "log_mrr": log_mrr[idx],
                        "log_mrr_window_end": log_mrr[idx],  # MRR does not move here
                        "log_mrr_change_prior_3m": rng.normal(0, 0.05, k),
                        "is_at_risk_next_month": True,
                        "churned_next_month": voluntary | involuntary,
                        "churned_next_month_voluntary": voluntary,
                        "churned_next_month_involuntary": involuntary,
                        "nps_category_latest": nps_cat,
                        "csat_mean": csat_obs,
                        "ces_mean": ces,
                        "first_response_minutes_median": frt,
                        "fcr_rate": fcr,
                        "log_mrr_change_next": np.where(voluntary | involuntary, np.nan,
                                                        rng.normal(0.005, 0.05, k)),
                        "expanded_next_month": np.where(stays, expands.astype(float), np.nan),
                        "log_handle_hours_next": np.where(stays, np.log1p(rng.exponential(1.0, k)), np.nan),
                    }
                ).with_columns(pl.col(c).fill_nan(None) for c in
                               ("csat_mean", "ces_mean", "first_response_minutes_median", "fcr_rate",
                                "log_mrr_change_next", "log_handle_hours_next", "expanded_next_month"))
                .with_columns(pl.col("expanded_next_month").cast(pl.Boolean))
            )  # fmt: skip
            alive[idx[voluntary | involuntary]] = False
    return pl.concat(frames)
