"""A second data-generating process for the alignment calibration harness: CX as a latent
quality that moves month to month, read with noise by surveys and tickets, and churn that
runs high where execution is low.

Independent of models/simulation.py by design (issue 18, deliverable 9): the harness runs
every scenario on both, so a method tuned to one generator's shortcuts shows it on the other.
The frame has simulation.py's columns and types (analytics.account_month's columns that the
alignment model reads, plus the next-month outcomes) and region, plan and mrr.

Latent CX of account i in unit u at month t, in SD units (one SD: the spread of accounts'
monthly quality within a unit):

    q_i(t) = execution_u + (drift_u + trend) * t + a_i + r_i(t)

    a_i   lasting account effect, variance `lasting_share`; part of it can follow the
          account's region (correlation region_cx) and its size (cx_size_correlation)
    r_i   stationary AR(1), persistence `persistence`, variance 1 - lasting_share

Measurement, month by month while the account is a customer: tickets (Poisson by segment,
scaled by contact_rate); per ticket a first response time (lognormal, faster with better q)
and first-contact resolution (logistic in q); a CSAT answer (integer 1-5) after some
tickets; CES (1-7) now and then; NPS (0-10) invitations, answered with probability logistic
in q (nonresponse_slope > 0: unhappy customers answer less often; < 0: more often). A row's
CX columns summarise the `window` months ending `notice_lag` months before the row's month
(default months m-6..m-1, as analytics.account_month): CSAT and CES means, the median first
response (the tickets' geometric mean: a lognormal's median), the FCR rate, and the latest
NPS answer in the window as its category, or "no_response".

Churn. The row at month m is at risk of leaving in month m+1, with voluntary hazard
(cloglog: P = 1 - exp(-h))

    h = base_hazard * exp(-execution_coupling * level_u(m)) * segment * early tenure
          * exp(link_u * z + region_churn_u * region score + size_effect_u * size)

    level_u(m)  the unit's planted level (execution + drift * m, + trend * m when
                churn_follows_trend): churn runs high where execution is low, by default
                1.0 %/month at +0.5 SD, 2.5 % at 0 and 6.1 % at -0.5 (before segment/tenure)
    z           hazard_on="latent": the account's latent quality averaged over the row's CX
                window (the months it was a customer), less the unit's planted level over
                the same months (and less the company trend unless churn_follows_trend),
                per SD of a full window's mean (window_sd); 0 without a window (a new
                account's first month). The decision month itself never enters.
                hazard_on="measured": the row's own measured `measured_metric` on the fixed
                MEASURED_SCALE, 0 where it is missing (the model's missing flag absorbs
                that); measured_estimand() gives the effect per SD of the company's scale.
    size        log MRR at the window's end within the segment, in SD (0.5 log points)

plus involuntary churn (failed payments), `involuntary_hazard` a month, unrelated to CX.

Accounts join over time (`initial_share` of them are customers at the first month, with
tenure up to four years and a CX history before it; the rest join over the later months at
tenure 0) and leave; MRR moves with occasional upgrades (more likely with better CX when
expansion_link > 0) and downgrades (more likely with worse CX: downgrade_link), so
log_mrr_change_prior_3m is real and the MRR at m can differ from the MRR at the window's end
(log_mrr_window_end).

Each unit draws from a stream of its own (seed and unit name): adding a unit leaves the
other units' accounts as they were. Vectorised over accounts; one loop over months (AR(1)).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
SEGMENT_SHARES = (0.6, 0.3, 0.1)
SEGMENT_MRR = np.array((300.0, 2500.0, 15000.0))
SEGMENT_HAZARD = np.array((1.2, 0.85, 0.6))  # relative voluntary hazard
SEGMENT_TICKETS = np.array((0.9, 1.4, 2.2))  # tickets a month at contact_rate 1
EARLY_TENURE_HAZARD = 1.4  # relative voluntary hazard in the first six months
REGIONS = ("NA", "EMEA", "APAC", "LATAM")
REGION_SHARES = np.array((0.45, 0.3, 0.18, 0.07))
PLANS = ("Starter", "Growth", "Scale")
_RAW_REGION = np.array((0.6, -0.2, -0.8, -1.6))
_CENTRED = _RAW_REGION - REGION_SHARES @ _RAW_REGION
# Each region's score, mean 0 and SD 1 over accounts. In a confounded unit both better CX
# (region_cx > 0) and lower churn (region_churn < 0) follow it.
REGION_SCORE = _CENTRED / math.sqrt(REGION_SHARES @ _CENTRED**2)
METRIC_NAMES = ("nps", "csat", "ces", "first_response", "fcr")
# Fixed scales for hazard_on="measured": (mean, SD) of each metric coded as the alignment
# model codes it (models.alignment METRIC_SQL: NPS category 1/0/-1, -ln first response
# minutes), and of the composite (the mean of the available z-scores), about as they come
# out over a company at execution 0 with the defaults.
MEASURED_SCALE = {
    "nps": (0.04, 0.81),
    "csat": (3.91, 0.71),
    "ces": (4.73, 1.22),
    "first_response": (-4.78, 0.49),
    "fcr": (0.56, 0.25),
    "composite": (0.0, 0.70),
}
CSAT_PER_TICKET = 0.35  # chance that a ticket gets a CSAT answer
MAX_TICKETS = 8  # tickets a month are capped here (CSAT is drawn per ticket)
NPS_CODES = np.array(["detractor", "passive", "promoter", "no_response"])

COLUMNS = (
    "account_id", "business_unit", "segment", "region", "plan", "month", "tenure_months",
    "mrr", "log_mrr", "log_mrr_window_end", "log_mrr_change_prior_3m",
    "is_at_risk_next_month", "churned_next_month", "churned_next_month_voluntary",
    "churned_next_month_involuntary", "nps_category_latest", "csat_mean", "ces_mean",
    "first_response_minutes_median", "fcr_rate", "log_mrr_change_next",
    "expanded_next_month", "log_handle_hours_next",
)  # fmt: skip
# with_truth=True: the latent quality in the row's own month (which its hazard does not
# see) and the CX variable its hazard used.
TRUTH_COLUMNS = ("latent_quality", "hazard_cx")


@dataclass(frozen=True)
class LatentUnit:
    """A business unit and its planted truth."""

    name: str
    accounts: int = 2500  # accounts over the whole panel (a share of them join later)
    execution: float = 0.0  # the unit's CX level against the company's (SD units)
    link: float = 0.0  # log hazard ratio per SD of the hazard's CX variable (hazard_on)
    drift: float = 0.0  # the unit's own CX change per month (SD units)
    region_cx: float = 0.0  # correlation of the lasting account effect with region score
    region_churn: float = 0.0  # log hazard ratio per SD of region score
    cx_size_correlation: float = 0.0  # correlation of the lasting account effect with size
    size_effect: float = 0.0  # log hazard ratio per SD of log MRR (negative: big ones stay)
    expansion_link: float = 0.0  # log hazard ratio of an upgrade per SD of the latent window
    downgrade_link: float = 0.3  # log hazard ratio of a downgrade per SD of worse CX

    def __post_init__(self):
        if self.region_cx**2 + self.cx_size_correlation**2 > 1:
            raise ValueError(f"{self.name}: region_cx^2 + cx_size_correlation^2 must be <= 1")
        if self.accounts < 1:
            raise ValueError(f"{self.name}: accounts must be positive")


def window_sd(window: int = 6, persistence: float = 0.7, lasting_share: float = 0.5) -> float:
    """SD of a full window's mean latent quality within a unit (the latent link's 'per SD')."""
    lags = np.abs(np.subtract.outer(np.arange(window), np.arange(window)))
    return math.sqrt(lasting_share + (1 - lasting_share) * np.mean(persistence**lags))


def simulate_latent_panel(
    units: list[LatentUnit],
    months: int = 30,
    seed: int = 0,
    *,
    hazard_on: str = "latent",
    measured_metric: str = "csat",
    trend: float = 0.0,
    churn_follows_trend: bool = False,
    base_hazard: float = 0.025,
    execution_coupling: float = 1.8,
    involuntary_hazard: float = 0.002,
    nonresponse_slope: float = 0.5,
    contact_rate: float = 1.0,
    window: int = 6,
    notice_lag: int = 1,
    persistence: float = 0.7,
    lasting_share: float = 0.5,
    initial_share: float = 0.6,
    first_month: date = date(2024, 1, 1),
    with_truth: bool = False,
) -> pl.DataFrame:
    """The account-month panel of `units` over `months` months from `first_month`.

    hazard_on: "latent" (the link per SD of the latent window mean) or "measured" (per SD of
    the row's measured `measured_metric`, one of METRIC_NAMES or "composite", on the fixed
    MEASURED_SCALE). trend: company-wide CX change per month (SD units), added to every
    unit; churn_follows_trend: the trend lowers churn too (through the unit level's
    coupling and the link), or churn ignores it. execution_coupling: log hazard ratio per SD
    of the unit's planted level (0: churn does not depend on execution). contact_rate:
    scales tickets, NPS invitations and CES prompts (below 1: sparser measurement, more
    missing metrics). window, notice_lag: the CX window's months and how far before the
    row's month it ends. with_truth: add TRUTH_COLUMNS.
    """
    if hazard_on not in ("latent", "measured"):
        raise ValueError("hazard_on: 'latent' or 'measured'")
    if measured_metric not in MEASURED_SCALE:
        raise ValueError(f"measured_metric: one of {', '.join(MEASURED_SCALE)}")
    if months < 2 or window < 1 or notice_lag < 1:
        raise ValueError("months >= 2, window >= 1 and notice_lag >= 1")
    settings = dict(
        months=months, hazard_on=hazard_on, measured_metric=measured_metric, trend=trend,
        churn_follows_trend=churn_follows_trend, base_hazard=base_hazard,
        execution_coupling=execution_coupling, involuntary_hazard=involuntary_hazard,
        nonresponse_slope=nonresponse_slope, contact_rate=contact_rate, window=window,
        notice_lag=notice_lag, persistence=persistence, lasting_share=lasting_share,
        initial_share=initial_share,
    )  # fmt: skip
    start = first_month.year * 12 + first_month.month - 1
    dates = np.array(
        [f"{(start + k) // 12:04d}-{(start + k) % 12 + 1:02d}-01" for k in range(months)],
        dtype="datetime64[D]",
    )
    frames = [_unit_panel(u, unit_stream(seed, u.name), dates, **settings) for u in units]
    return pl.concat(frames).select(COLUMNS + (TRUTH_COLUMNS if with_truth else ()))


def unit_stream(seed: int, unit: str) -> np.random.Generator:
    """The unit's own random stream, fixed by the seed and its name."""
    return np.random.default_rng([seed, zlib.crc32(unit.encode())])


def window_sum(monthly: np.ndarray, window: int, lag: int = 1) -> np.ndarray:
    """(n x T): at column t, the sum of months t-lag-window+1 .. t-lag (those >= 0)."""
    c = np.zeros((monthly.shape[0], monthly.shape[1] + 1))
    np.cumsum(monthly, axis=1, out=c[:, 1:])
    t = np.arange(monthly.shape[1])
    return c[:, np.maximum(t - lag + 1, 0)] - c[:, np.maximum(t - lag - window + 1, 0)]


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _unit_panel(
    unit: LatentUnit, rng: np.random.Generator, dates: np.ndarray, *, months: int,
    hazard_on: str, measured_metric: str, trend: float, churn_follows_trend: bool,
    base_hazard: float, execution_coupling: float, involuntary_hazard: float,
    nonresponse_slope: float, contact_rate: float, window: int, notice_lag: int,
    persistence: float, lasting_share: float, initial_share: float,
) -> pl.DataFrame:  # fmt: skip
    n = unit.accounts
    # Internal months u = 0..B+T: B months of history before the panel's first month (so
    # the first rows have a full window and a prior MRR change), the T months of rows, and
    # the month after the last row (next-month outcomes). Calendar month m = u - B.
    B, T = window + notice_lag + 3, months
    U = B + T + 1
    m = np.arange(U) - B
    # --- accounts ------------------------------------------------------------------------
    n0 = max(1, int(round(initial_share * n)))
    tenure0 = rng.integers(0, 48, n0)  # customers at the first month: tenure then
    join = np.concatenate([-tenure0, rng.integers(1, T, n - n0)])  # calendar month joined
    seg = rng.choice(3, n, p=SEGMENT_SHARES)
    region = rng.choice(4, n, p=REGION_SHARES)
    plan = np.minimum(seg + rng.integers(0, 2, n), 2)
    size_z = rng.normal(0, 1, n)
    own = math.sqrt(1 - unit.region_cx**2 - unit.cx_size_correlation**2)
    lasting = math.sqrt(lasting_share) * (
        unit.region_cx * REGION_SCORE[region] + unit.cx_size_correlation * size_z
        + own * rng.normal(0, 1, n)
    )  # fmt: skip
    member = m[None, :] >= join[:, None]  # a customer from joining (until it leaves)
    # --- latent quality (n x U) ----------------------------------------------------------
    sd_ar = math.sqrt(1 - lasting_share)
    ar = np.empty((n, U))
    ar[:, 0] = rng.normal(0, sd_ar, n)
    shocks = rng.normal(0, sd_ar * math.sqrt(1 - persistence**2), (n, U - 1))
    for u in range(1, U):
        ar[:, u] = persistence * ar[:, u - 1] + shocks[:, u - 1]
    q = unit.execution + (unit.drift + trend) * m + lasting[:, None] + ar
    del ar, shocks
    # --- measurement, month by month -----------------------------------------------------
    rate = contact_rate * SEGMENT_TICKETS[seg][:, None]
    tickets = np.minimum(rng.poisson(rate, (n, U)), MAX_TICKETS) * member
    # per ticket ln(first response minutes) ~ N(ln 120 - 0.35 q, 0.8^2): the month's sum
    log_frt = tickets * (math.log(120) - 0.35 * q) + np.sqrt(tickets) * 0.8 * rng.normal(
        0, 1, (n, U)
    )
    resolved = rng.binomial(tickets, _expit(0.25 + 0.5 * q))
    answered = rng.random((n, U, MAX_TICKETS)) < CSAT_PER_TICKET
    answered &= np.arange(MAX_TICKETS) < tickets[..., None]
    scores = np.rint(3.95 + 0.6 * q[..., None] + rng.normal(0, 0.7, (n, U, MAX_TICKETS)))
    csat_n = answered.sum(axis=2)
    csat_sum = (np.clip(scores, 1, 5) * answered).sum(axis=2)
    del answered, scores
    ces_prompt = np.where(tickets > 0, 0.25, 0.04 * contact_rate)
    ces_answered = (rng.random((n, U)) < ces_prompt) & member
    ces_score = np.clip(np.rint(4.75 + 0.8 * q + rng.normal(0, 1.1, (n, U))), 1, 7)
    # NPS: invited a third of the months; whether they answer depends on how they feel
    nps_answered = (
        (rng.random((n, U)) < min(1.0, contact_rate / 3))
        & (rng.random((n, U)) < _expit(math.log(0.45 / 0.55) + nonresponse_slope * q))
        & member
    )
    nps_score = np.clip(np.rint(7.3 + 1.6 * q + rng.normal(0, 1.5, (n, U))), 0, 10)
    nps_code = np.where(nps_score >= 9, 2, np.where(nps_score >= 7, 1, 0))  # D / passive / P

    # --- each month's CX window (the `window` months ending notice_lag before it) ---------
    def wsum(monthly):
        return window_sum(monthly, window, notice_lag)

    months_in = wsum(member.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        tk = wsum(tickets)
        frt = np.where(tk > 0, np.exp(wsum(log_frt) / tk), np.nan)
        fcr = np.where(tk > 0, wsum(resolved) / tk, np.nan)
        cs_n = wsum(csat_n)
        csat = np.where(cs_n > 0, wsum(csat_sum) / cs_n, np.nan)
        ce_n = wsum(ces_answered)
        ces = np.where(ce_n > 0, wsum(ces_score * ces_answered) / ce_n, np.nan)
    idx = np.arange(U)
    latest = np.maximum.accumulate(np.where(nps_answered, idx, -1), axis=1)  # by month u
    end = idx - notice_lag  # the window's last month
    latest = np.where(end >= 0, latest[:, np.maximum(end, 0)], -1)
    answered_in = latest >= np.maximum(end - window + 1, 0)
    nps = np.where(answered_in, np.take_along_axis(nps_code, np.maximum(latest, 0), axis=1), 3)
    # --- the hazard's CX variable ---------------------------------------------------------
    reference = unit.execution + (unit.drift + (0.0 if churn_follows_trend else trend)) * m
    deviation = (q - reference) * member
    with np.errstate(invalid="ignore", divide="ignore"):
        z_latent = np.where(months_in > 0, wsum(deviation) / months_in, 0.0)
    z_latent /= window_sd(window, persistence, lasting_share)
    z = (
        z_latent
        if hazard_on == "latent"
        else _measured_z(measured_metric, nps, csat, ces, frt, fcr)
    )
    # --- MRR: upgrades and downgrades from month u to u+1, on month u's window ------------
    up = rng.random((n, U - 1)) < -np.expm1(-0.02 * np.exp(unit.expansion_link * z_latent[:, :-1]))
    down = ~up & (
        rng.random((n, U - 1)) < -np.expm1(-0.015 * np.exp(-unit.downgrade_link * z_latent[:, :-1]))
    )
    step = np.where(up, rng.uniform(0.1, 0.5, (n, U - 1)), 0.0)
    step -= np.where(down, rng.uniform(0.1, 0.4, (n, U - 1)), 0.0)
    log_mrr0 = np.log(SEGMENT_MRR[seg]) + 0.5 * size_z
    path = log_mrr0[:, None] + np.concatenate([np.zeros((n, 1)), np.cumsum(step, axis=1)], axis=1)
    mrr = np.round(np.exp(path), 2)
    log_mrr = np.log(mrr)
    del path, step, up, down
    # MRR at the window's end (NULL before the account joined) and three months earlier
    window_end = np.maximum(idx - notice_lag, 0)
    billed_then = (m - notice_lag)[None, :] >= join[:, None]
    log_mrr_end = np.where(billed_then, log_mrr[:, window_end], np.nan)
    prior_ok = (m - notice_lag - 3)[None, :] >= join[:, None]
    prior = np.where(prior_ok, log_mrr_end - log_mrr[:, np.maximum(window_end - 3, 0)], np.nan)
    # --- churn, on the rows' months ---------------------------------------------------------
    tenure = m[None, :] - join[:, None]
    level = unit.execution + (unit.drift + (trend if churn_follows_trend else 0.0)) * m
    size = (np.where(billed_then, log_mrr_end, log_mrr) - np.log(SEGMENT_MRR[seg])[:, None]) / 0.5
    log_h = (
        math.log(base_hazard)
        - execution_coupling * level[None, :]
        + np.log(SEGMENT_HAZARD[seg])[:, None]
        + np.where(tenure < 6, math.log(EARLY_TENURE_HAZARD), 0.0)
        + unit.link * z
        + unit.region_churn * REGION_SCORE[region][:, None]
        + unit.size_effect * size
    )
    voluntary = rng.random((n, U)) < -np.expm1(-np.exp(log_h))
    involuntary = ~voluntary & (rng.random((n, U)) < involuntary_hazard)
    rows = member & (m >= 0) & (m < T)[None, :]
    leaves = (voluntary | involuntary) & rows
    # each account's last row: the month it decides to leave, or the panel's last month
    last = np.where(leaves.any(axis=1), np.argmax(leaves, axis=1), B + T - 1)
    rows &= idx[None, :] <= last[:, None]
    i, u = np.nonzero(rows)
    # --- next month, for those who stay --------------------------------------------------
    stays = ~(voluntary | involuntary)[i, u]
    next_tickets = tickets[i, u + 1]
    hours = np.where(next_tickets > 0, rng.gamma(np.maximum(2.0 * next_tickets, 1.0), 0.6), 0.0)
    change_next = log_mrr[i, u + 1] - log_mrr[i, u]
    frame = pl.DataFrame(
        {
            "account_id": np.char.add(f"{unit.name}-", i.astype(str)),
            "business_unit": np.full(len(i), unit.name),
            "segment": np.array(SEGMENTS)[seg[i]],
            "region": np.array(REGIONS)[region[i]],
            "plan": np.array(PLANS)[plan[i]],
            "month": dates[u - B],
            "tenure_months": tenure[i, u].astype(np.int64),
            "mrr": mrr[i, u],
            "log_mrr": log_mrr[i, u],
            "log_mrr_window_end": log_mrr_end[i, u],
            "log_mrr_change_prior_3m": prior[i, u],
            "is_at_risk_next_month": np.ones(len(i), bool),
            "churned_next_month": ~stays,
            "churned_next_month_voluntary": voluntary[i, u],
            "churned_next_month_involuntary": involuntary[i, u],
            "nps_category_latest": NPS_CODES[nps[i, u]],
            "csat_mean": csat[i, u],
            "ces_mean": ces[i, u],
            "first_response_minutes_median": np.round(frt[i, u], 1),
            "fcr_rate": fcr[i, u],
            "log_mrr_change_next": np.where(stays, change_next, np.nan),
            "expanded_next_month": np.where(stays, change_next > 0, np.nan),
            "log_handle_hours_next": np.where(stays, np.log1p(hours), np.nan),
            "latent_quality": q[i, u],
            "hazard_cx": z[i, u],
        }
    )
    nullable = (
        "log_mrr_window_end", "log_mrr_change_prior_3m", "csat_mean", "ces_mean",
        "first_response_minutes_median", "fcr_rate", "log_mrr_change_next",
        "expanded_next_month", "log_handle_hours_next",
    )  # fmt: skip
    return frame.with_columns(pl.col(c).fill_nan(None) for c in nullable).with_columns(
        pl.col("expanded_next_month").cast(pl.Boolean)
    )


def _measured_z(metric: str, nps, csat, ces, frt, fcr) -> np.ndarray:
    """The measured metric as the alignment model codes it, on MEASURED_SCALE, 0 where it is
    missing (the model's missing flag absorbs the constant). The composite: the mean of the
    available metrics' z-scores, re-standardised."""
    with np.errstate(invalid="ignore", divide="ignore"):
        coded = {
            "nps": np.where(nps == 3, np.nan, nps - 1.0),
            "csat": csat,
            "ces": ces,
            "first_response": -np.log(np.maximum(frt, 1.0)),
            "fcr": fcr,
        }
        zs = {k: (v - MEASURED_SCALE[k][0]) / MEASURED_SCALE[k][1] for k, v in coded.items()}
        if metric == "composite":
            stack = np.stack(list(zs.values()))
            present = ~np.isnan(stack)
            raw = np.where(present, stack, 0.0).sum(axis=0) / present.sum(axis=0)
            z = (raw - MEASURED_SCALE["composite"][0]) / MEASURED_SCALE["composite"][1]
        else:
            z = zs[metric]
    return np.nan_to_num(z, nan=0.0)


# The metrics coded as models.alignment's METRIC_SQL codes them, over a panel's rows.
CODED_METRICS = {
    "nps": pl.col("nps_category_latest").replace_strict(
        {"promoter": 1.0, "passive": 0.0, "detractor": -1.0}, default=None, return_dtype=pl.Float64
    ),
    "csat": pl.col("csat_mean"),
    "ces": pl.col("ces_mean"),
    "first_response": -pl.col("first_response_minutes_median").clip(lower_bound=1.0).log(),
    "fcr": pl.col("fcr_rate"),
}


def measured_estimand(panel: pl.DataFrame, link: float, metric: str = "csat") -> float:
    """The log hazard ratio per SD of the company's scale that a unit planted with `link`
    under hazard_on="measured" carries. `panel`: the whole company's panel; the model
    standardises the metric over its at-risk rows (SD with ddof=1, as
    models.alignment.company_scale), the generator on MEASURED_SCALE. Exact for a single
    metric; for "composite" only approximately `link` (the model re-weights the metrics by
    the company's own SDs)."""
    if metric == "composite":
        return link
    sd = panel.filter(pl.col("is_at_risk_next_month")).select(CODED_METRICS[metric].std()).item()
    return link * sd / MEASURED_SCALE[metric][1]
