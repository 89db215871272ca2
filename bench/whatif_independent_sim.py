"""An independent generator for the what-if engine: written during the issue-21 hostile
review by a reviewer who had not written the engine, and kept as written, apart from
formatting (it shares no code with models/simulation_whatif.py; keep it that way: a release
should also be checked by a generator someone else writes). bench/whatif_independent.py
runs it.

Each account-month row m carries levers measured over the window before m; the outcome is
voluntary churn next month. The true monthly voluntary hazard (row month m, tenure k):

  link(h) = base[seg] + tenure_fx(k) + season_fx(calendar month of m) + trend*(m/12)
            + lever_fx(x_true, seg) + hidden*U + distress*Z_m + shock_m + fcr_effect*(fcr_true-0.6)

link = logit (default) or cloglog. x_true = log minutes of first response (latent), measured
with optional noise and missing-not-at-random. Accounts may arrive during the panel.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
CENTRE = 4.5


@dataclass(frozen=True)
class Dgp:
    accounts: int = 1500
    months: int = 24
    link: str = "logit"
    base: tuple = (math.log(0.03 / 0.97), math.log(0.02 / 0.98), math.log(0.012 / 0.988))
    tenure_new: float = 0.0     # added to the link for tenure < 6 months
    tenure_mid: float = 0.0     # for 6 <= tenure < 12
    season_amp: float = 0.0     # amplitude of a monthly cosine peaking in December rows (January churn)
    trend: float = 0.0          # link per year, company-wide
    x_trend: float = 0.0        # log minutes per year, company-wide
    lever: tuple = (0.0, 0.0, 0.0)  # log-odds per log minute, per segment
    threshold: float | None = None  # if set, the lever acts only above this log minutes: lever*max(0,x-thr)
    hidden: float = 0.0         # churn per SD of fixed trait U
    symptom: float = 0.0        # log minutes per SD of U
    distress: float = 0.0       # churn per SD of time-varying distress Z (AR(1))
    distress_x: float = 0.0     # log minutes per SD of Z
    shock_sd: float = 0.0       # company-wide monthly shock SD (adds to churn link and to log minutes)
    shock_x: float = 0.0
    meas_sd: float = 0.0        # measurement noise on log minutes
    miss_base: float = 0.1
    miss_mnar: float = 0.0      # logit(missing) slope on (x_true - CENTRE) and on risk
    fcr_effect: float = 0.0     # churn per unit of true FCR share (negative: better fcr, less churn)
    fcr_x: float = 0.0          # log minutes per unit FCR deviation (negative correlation)
    fcr_tickets: float = 0.0    # 0: FCR measured exactly; else binomial of Poisson(k) tickets
    arrivals: float = 0.0       # share of accounts arriving during the panel
    involuntary: float = 0.004
    unit: str = "Hostile"


def inv_link(eta, link):
    if link == "logit":
        return 1 / (1 + np.exp(-eta))
    return -np.expm1(-np.exp(eta))


def season_fx(d: Dgp, cal_month):  # cal_month 1..12 of the row's month
    return d.season_amp * np.cos(2 * np.pi * (cal_month - 12) / 12)


def tenure_fx(d: Dgp, k):
    return np.where(k < 6, d.tenure_new, np.where(k < 12, d.tenure_mid, 0.0))


def lever_fx(d: Dgp, x, seg):
    slope = np.asarray(d.lever)[seg]
    if d.threshold is None:
        return slope * (x - CENTRE)
    return slope * np.maximum(0.0, x - d.threshold)


def month_of(first: date, t: int) -> date:
    y, m = divmod(first.month - 1 + t, 12)
    return date(first.year + y, m + 1, 1)


@dataclass
class Sim:
    panel: pl.DataFrame
    d: Dgp
    act: dict  # last-month active accounts: arrays

    def truth(self, rel=-0.2, months=12, frozen_trend=False):
        d, a = self.d, self.act
        T = d.months
        keep = a["measured"]
        seg, x, k, u, z, fcr = (a[c][keep] for c in ("seg", "x", "tenure", "u", "z", "fcr"))
        def churn(xv):
            S = np.ones(len(xv))
            tot = np.zeros(len(xv))
            for t in range(months):
                m_idx = T + t
                cal = (month_of(date(2024, 1, 1), m_idx).month)
                tr = d.trend * ((T if frozen_trend else m_idx) / 12)
                eta = (np.asarray(d.base)[seg] + tenure_fx(d, k + t) + season_fx(d, cal) + tr
                       + lever_fx(d, xv, seg) + d.hidden * u + d.distress * z
                       + d.fcr_effect * (fcr - 0.6))
                h = inv_link(eta, d.link)
                tot += S * h
                S = S * (1 - h) * (1 - d.involuntary)
            return tot
        return float((churn(x) - churn(np.maximum(x + math.log1p(rel), 0.0))).sum())


def simulate(d: Dgp, seed: int) -> Sim:
    rng = np.random.default_rng(seed)
    n, T = d.accounts, d.months
    seg = rng.choice(3, n, p=(0.6, 0.3, 0.1))
    log_mrr = np.log([300.0, 2500.0, 15000.0])[seg] + 0.4 * rng.normal(0, 1, n)
    u = rng.normal(0, 1, n)
    level = CENTRE + np.array([0.3, 0.0, -0.4])[seg] + d.symptom * u + 0.35 * rng.normal(0, 1, n)
    fcr_level = np.clip(0.6 + 0.1 * rng.normal(0, 1, n), 0.05, 0.95)
    start = np.where(rng.random(n) < d.arrivals, rng.integers(1, T - 3, n), 0)
    tenure0 = np.where(start > 0, 0, rng.integers(0, 48, n))
    alive = np.zeros(n, bool)
    gone = np.zeros(n, bool)
    wob = rng.normal(0, 0.4, n)
    z = rng.normal(0, 1, n)
    fw = rng.normal(0, 0.08, n)
    region = rng.choice(["North", "South"], n)
    ids = np.char.add(f"{d.unit}-", np.arange(n).astype(str))
    frames = []
    act = None
    first = date(2024, 1, 1)
    for t in range(T + 1):
        month = month_of(first, t)
        alive = ~gone & (start <= t)
        shock = rng.normal(0, d.shock_sd) if d.shock_sd > 0 else 0.0
        wob = 0.5 * wob + math.sqrt(0.75) * rng.normal(0, 0.4, n)
        z = 0.7 * z + math.sqrt(0.51) * rng.normal(0, 1, n)
        fw = 0.5 * fw + math.sqrt(0.75) * rng.normal(0, 0.08, n)
        fcr_true = np.clip(fcr_level + fw, 0.0, 1.0)
        x = (level + wob + d.x_trend * t / 12 + d.distress_x * z + d.shock_x * shock
             + d.fcr_x * (fcr_true - fcr_level))
        idx = np.flatnonzero(alive)
        kk = len(idx)
        last = t == T
        k = tenure0[idx] + (t - start[idx])
        eta = (np.asarray(d.base)[seg[idx]] + tenure_fx(d, k) + season_fx(d, month.month)
               + d.trend * t / 12 + lever_fx(d, x[idx], seg[idx]) + d.hidden * u[idx]
               + d.distress * z[idx] + shock + d.fcr_effect * (fcr_true[idx] - 0.6))
        h = inv_link(eta, d.link)
        vol = (rng.random(kk) < h) & (not last)
        invol = ~vol & (rng.random(kk) < d.involuntary) & (not last)
        xm = x[idx] + (d.meas_sd * rng.normal(0, 1, kk) if d.meas_sd else 0.0)
        lm = math.log(d.miss_base / (1 - d.miss_base)) + d.miss_mnar * ((x[idx] - CENTRE) + (eta - eta.mean()))
        miss = rng.random(kk) < 1 / (1 + np.exp(-lm))
        frt = np.where(miss, np.nan, np.exp(xm))
        if d.fcr_tickets > 0:
            nt = np.maximum(rng.poisson(d.fcr_tickets, kk), 1)
            fcr_obs = rng.binomial(nt, fcr_true[idx]) / nt
        else:
            fcr_obs = fcr_true[idx]
        new = (t - start[idx]) < 1
        prior_missing = (t - start[idx]) < 3
        frames.append(pl.DataFrame({
            "account_id": ids[idx], "business_unit": d.unit, "month": month,
            "segment": np.array(SEGMENTS)[seg[idx]], "region": region[idx], "plan": "Standard",
            "tenure_months": k.astype(np.int64),
            "mrr": np.exp(log_mrr[idx]), "log_mrr": log_mrr[idx],
            "log_mrr_window_end": np.where(new, np.nan, log_mrr[idx]),
            "log_mrr_change_prior_3m": np.where(prior_missing, np.nan, rng.normal(0, 0.05, kk)),
            "churned_this_month": np.zeros(kk, bool),
            "churned_next_month": None if last else (vol | invol),
            "churned_next_month_voluntary": None if last else vol,
            "churned_next_month_involuntary": None if last else invol,
            "is_at_risk_next_month": not last,
            "first_response_minutes_median": frt,
            "fcr_rate": fcr_obs,
            "reopen_rate": np.clip(0.1 + 0.05 * rng.normal(0, 1, kk), 0, 1),
            "csat_mean": np.where(rng.random(kk) < 0.5, np.nan, np.clip(4 + 0.5 * rng.normal(0, 1, kk), 1, 5)),
            "ces_mean": np.where(rng.random(kk) < 0.7, np.nan, np.clip(5 + 0.8 * rng.normal(0, 1, kk), 1, 7)),
            "nps_category_latest": rng.choice(["promoter", "passive", "detractor", "no_response"], kk,
                                              p=(0.2, 0.15, 0.1, 0.55)),
        }).with_columns(pl.col("first_response_minutes_median", "csat_mean", "ces_mean",
                               "log_mrr_window_end", "log_mrr_change_prior_3m").fill_nan(None)))
        if last:
            act = {"seg": seg[idx], "x": x[idx], "tenure": k, "u": u[idx], "z": z[idx],
                   "fcr": fcr_true[idx], "measured": ~miss}
        gone[idx[vol | invol]] = True
    panel = pl.concat(frames, how="vertical_relaxed").with_columns(
        pl.col("churned_next_month", "churned_next_month_voluntary",
               "churned_next_month_involuntary").cast(pl.Boolean))
    return Sim(panel, d, act)


def warehouse(panel):
    import duckdb
    con = duckdb.connect()
    con.execute("create schema analytics")
    con.register("panel_frame", panel)
    con.execute("create table analytics.account_month as select * from panel_frame")
    con.unregister("panel_frame")
    return con


E = 0.8
DGPS = {
    # mild misspecification: logistic hazard, tenure and season in the truth, arrivals
    "logit_tenure_season": Dgp(lever=(E, E, E), tenure_new=0.7, tenure_mid=0.3, season_amp=0.4, arrivals=0.35),
    # effect heterogeneous by segment (SMB 1.4, Mid 0.4, Ent 0)
    "hetero_segment": Dgp(lever=(1.4, 0.4, 0.0), tenure_new=0.5, season_amp=0.3, arrivals=0.2),
    # threshold dose-response: only minutes above e^5 (~150 min) matter, slope 1.6
    "threshold": Dgp(lever=(1.6, 1.6, 1.6), threshold=5.0, arrivals=0.2),
    # lever measured with noise (SD 0.4 log min) and missing not at random
    "noisy_mnar": Dgp(lever=(E, E, E), meas_sd=0.4, miss_base=0.15, miss_mnar=1.0, arrivals=0.2),
    # company-wide trend in churn and first response + monthly shocks in both; lever does nothing
    "trend_shock_null": Dgp(trend=0.4, x_trend=0.3, shock_sd=0.25, shock_x=1.0, arrivals=0.2),
    # time-varying account distress raises churn and slows responses; lever does nothing
    "distress_null": Dgp(distress=0.6, distress_x=0.3, arrivals=0.2),
    # FCR drives churn; FRT moves with FCR within accounts; FCR measured from ~4 tickets; FRT does nothing
    "corr_levers_null": Dgp(fcr_effect=-4.0, fcr_x=-3.0, fcr_tickets=4, arrivals=0.2),
    # trend in churn and in FRT, lever real (truth with continuing trend vs frozen)
    "trend_causal": Dgp(lever=(E, E, E), trend=0.5, x_trend=-0.3, arrivals=0.2),
}
DGPS.update({
    # sanity control: cloglog, constant hazard, causal (close to the team's own DGP)
    "control_cloglog": Dgp(link="cloglog", lever=(E, E, E)),
    # only a company-wide linear trend in churn and first response; lever does nothing
    "trend_null": Dgp(trend=0.4, x_trend=0.3, arrivals=0.2),
    # only company-wide monthly shocks (an outage month slows responses for all and raises churn)
    "shock_null": Dgp(shock_sd=0.25, shock_x=1.0, arrivals=0.2),
    # FRT correlated with FCR, FCR measured exactly: the joint model should adjust
    "corr_levers_exact_null": Dgp(fcr_effect=-4.0, fcr_x=-3.0, fcr_tickets=0, arrivals=0.2),
})
DGPS.update({
    # split of noisy_mnar: measurement noise only / missing-not-at-random only
    "noisy_only": Dgp(lever=(E, E, E), meas_sd=0.4, arrivals=0.2),
    "mnar_only": Dgp(lever=(E, E, E), miss_base=0.15, miss_mnar=1.0, arrivals=0.2),
})
