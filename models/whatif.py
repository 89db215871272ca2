"""What is it worth: per-unit what-if scenarios that turn a change in a CX lever into
voluntary churn avoided, MRR retained and residual CLV retained, with intervals.

For a business unit:

1. Two discrete-time hazard models (cloglog) of voluntary churn next month on the six CX
   levers together (first response, first-contact resolution, reopen rate, CSAT, CES,
   detractor), each with its missing flag, and the alignment-v2 controls (size at the CX
   window's end, prior MRR change, segment, tenure band, calendar quarter, region, plan):
   * **association**: each lever's level (what separates accounts from one another);
   * **within-account**: each lever split into the account's own mean over its months and
     its deviation from that mean (Mundlak's device: the deviation's coefficient is
     estimated from the same accounts' churn moving with their own lever, as an account
     fixed-effects model would, so nothing that is fixed about an account can drive it).
2. g-computation over the unit's real active accounts: each is carried forward month by
   month for `months` months (tenure and season advancing, its levers held), with and
   without the change; survival multiplies each month's chance of neither leaving
   voluntarily (the model) nor involuntarily (the unit's rate). The difference gives the
   churned accounts avoided, the MRR kept over the months, and the residual CLV kept (the
   margin of that MRR, discounted, plus the accounts still there at the end valued by the
   unit's sBG / DERL).
3. 95% intervals from an account-cluster (Poisson) bootstrap of the whole chain: both
   models are refitted in every replicate; the sBG's parameters are drawn from their
   estimate's normal approximation in every replicate.

Every figure carries an evidence grade, in words: association by default; within-account
when the within-account model's own interval supports it. Neither grade is a causal claim.

Frames in, frames out (polars); the rows are read from the warehouse by SQL
(sql/models/whatif_rows.sql); no Dagster.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field
from scipy import sparse
from scipy.special import hyp2f1

from models.alignment.execution import poisson_weighted_sums
from models.alignment.link import (
    SEPARATION_LOG_HR,
    TENURE_BANDS,
    _cloglog_mean,
    categories,
    fit_cloglog,
)
from models.clv.sbg import geometric_derl
from models.design import Design, map_blocks, tenure_band_codes, with_categories
from models.parallel import map_units, unit_rng

METHOD_VERSION = "whatif-v2"


class WhatifConfig(BaseModel):
    """The what-if stage's settings (the `whatif:` section of the configuration file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Account-cluster bootstrap replicates (each refits both hazard models).
    replicates: int = Field(200, ge=20)
    # Months the active accounts are carried forward.
    months: int = Field(12, ge=1, le=60)
    # Held-out months of the zero-change backtest.
    backtest_months: int = Field(6, ge=1, le=24)
    # A unit's models are fitted on at most this many of its accounts (a sample fixed by a
    # hash of the account id, the same every night); the projection always covers every
    # active account. Each bootstrap replicate refits both models on them: at 5,000 accounts
    # of 36 months a unit's 400 refits take about a minute on one core; a larger unit's
    # intervals are those of its sample (wider than its whole history would give, never
    # narrower).
    max_fit_accounts: int = Field(5_000, ge=100)
    # 0: each replicate is a one-step score draw from the estimate (fit_draws); k > 0: each
    # replicate refits both models by k IRLS steps (k times a pass over the rows per replicate).
    replicate_refit_steps: int = Field(0, ge=0, le=100)
    seed: int = 20261202


@dataclass(frozen=True)
class Lever:
    name: str
    label: str  # plain words
    higher_is_better: bool
    scale: str  # log_minutes | share | score | binary
    low: float
    high: float


LEVERS = {
    "first_response": Lever("first_response", "first response time", False, "log_minutes", 0.0, math.inf),
    "fcr": Lever("fcr", "first-contact resolution", True, "share", 0.0, 1.0),
    "reopen": Lever("reopen", "reopen rate", False, "share", 0.0, 1.0),
    "csat": Lever("csat", "CSAT", True, "score", 1.0, 5.0),
    "ces": Lever("ces", "CES (higher = easier)", True, "score", 1.0, 7.0),
    "detractor": Lever("detractor", "detractor share", False, "binary", 0.0, 1.0),
}  # fmt: skip
ALIASES = {
    "frt": "first_response", "first_response_time": "first_response",
    "first_contact_resolution": "fcr", "reopen_rate": "reopen", "reopens": "reopen",
    "detractors": "detractor", "detractor_share": "detractor",
}  # fmt: skip
ALL = "all"  # the scenario that moves every lever together


class ChangeError(ValueError):
    """A --change the engine cannot read, with what it accepts."""


@dataclass(frozen=True)
class Change:
    lever: str
    kind: str  # relative (a fraction, first response only) | points (lever units) | best_quartile
    amount: float = 0.0

    def words(self) -> str:
        lever = LEVERS[self.lever]
        if self.kind == "best_quartile":
            return f"{lever.label} to the company's best-quartile unit level"
        if self.kind == "relative":
            return f"{lever.label} {self.amount:+.0%}"
        if lever.scale in ("share", "binary"):
            return f"{lever.label} {100 * self.amount:+.1f} points"
        return f"{lever.label} {self.amount:+.2f}"


_CHANGE = re.compile(r"^([a-z_]+)=(?:(best)|([+-]?\d+(?:\.\d+)?)(%|pts)?)$")
_CHANGE_HELP = (
    "write LEVER=CHANGE: first_response=-20% (relative), fcr=+10pts, reopen=-5pts, "
    "detractor=-5pts (percentage points), csat=+0.3, ces=+0.5 (points of the scale), or "
    "LEVER=best (the company's best-quartile unit level); levers: " + ", ".join(LEVERS)
)


def parse_change(text: str) -> Change:
    """A change as written on the command line (see _CHANGE_HELP); ChangeError otherwise."""
    m = _CHANGE.match(text.strip().lower().replace(" ", ""))
    if not m:
        raise ChangeError(f"cannot read the change {text!r}: {_CHANGE_HELP}")
    name, best, number, unit = m.groups()
    name = ALIASES.get(name, name)
    if name not in LEVERS:
        raise ChangeError(f"unknown lever {m.group(1)!r} in {text!r}: {_CHANGE_HELP}")
    lever = LEVERS[name]
    if best:
        return Change(name, "best_quartile")
    value = float(number)
    if lever.scale == "log_minutes":
        if unit != "%":
            raise ChangeError(f"{text!r}: first response changes are relative, e.g. first_response=-20%")
        if value <= -100:
            raise ChangeError(f"{text!r}: a first response cannot fall by 100% or more")
        return Change(name, "relative", value / 100)
    if lever.scale in ("share", "binary"):
        if unit != "pts":
            raise ChangeError(f"{text!r}: {lever.label} changes in percentage points, e.g. {name}=+10pts")
        if abs(value) > 100:
            raise ChangeError(f"{text!r}: a share moves by at most 100 points")
        return Change(name, "points", value / 100)
    if unit is not None:
        raise ChangeError(f"{text!r}: {lever.label} changes in points of its scale, e.g. {name}=+0.3")
    return Change(name, "points", value)  # fmt: skip


# ---------------------------------------------------------------------------------------
# The rows

ROWS_SQL_FILE = "whatif_rows.sql"
MIN_LEVEL_ACCOUNTS = 20  # a segment, region or plan with fewer accounts joins "other"
RARE = "other"
# The calendar is controlled by month (a company-wide month, an outage's, moves every
# account's lever and churn together: with quarters only, its months inside the quarter
# were left for the levers to explain; whatif-v1 used quarters). "quarter_" is still read
# from a model published by whatif-v1.
CALENDAR = "month"
TIME_PREFIXES = ("tenure_band_", "month_", "quarter_")


def rows_sql() -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "sql" / "models" / ROWS_SQL_FILE).read_text()


def read_rows_units(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The business units of the panel, in order of name."""
    return [r[0] for r in con.execute(
        "select distinct business_unit from analytics.account_month order by 1").fetchall()]  # fmt: skip


# Each lever as a number on its own scale, from analytics.account_month (NULL where not
# measured in the CX window): one definition, for the unit rows and the company's levels.
LEVER_SQL = {
    # log minutes (a median under a minute counts as one)
    "first_response": "ln(case when first_response_minutes_median < 1 then 1.0 "
                      "else first_response_minutes_median end)",
    "fcr": "fcr_rate::double",
    "reopen": "reopen_rate::double",
    "csat": "csat_mean::double",
    "ces": "ces_mean::double",
    # the latest NPS answer was a detractor's (NULL: no answer in the window)
    "detractor": "case nps_category_latest when 'detractor' then 1.0 when 'passive' then 0.0 "
                 "when 'promoter' then 0.0 end",
}  # fmt: skip
# A value that is not a finite number (NaN, infinity: the account_month contract does not
# forbid them) is read as not measured, so one such row cannot stop every unit's stage.
LEVER_SQL = {name: f"(case when isfinite(({e})::double) then ({e})::double end)"
             for name, e in LEVER_SQL.items()}  # fmt: skip
ACTIVE_SQL = "log_mrr is not null and not churned_this_month and churned_next_month is null"


def read_rows(con: duckdb.DuckDBPyConnection, unit: str, max_accounts: int = 5_000,
              seed: int = 20261202) -> pl.DataFrame:  # fmt: skip
    """One unit's rows (sql/models/whatif_rows.sql: its at-risk rows, of at most
    `max_accounts` accounts, a sample fixed by `seed`, and its active accounts), rare levels
    merged (_merge_rare)."""
    levers = ", ".join(f"{e} as lever_{name}" for name, e in LEVER_SQL.items())
    params = {"unit": unit, "max_accounts": max_accounts, "seed": seed}
    return _merge_rare(con.execute(rows_sql().replace("{levers}", levers), params).pl())


def _merge_rare(rows: pl.DataFrame) -> pl.DataFrame:
    """Segments, regions and plans with fewer than MIN_LEVEL_ACCOUNTS accounts become
    "other": an account bootstrap that draws none of a level's few accounts would leave its
    indicator without data."""
    out = []
    for column in ("segment", "region", "plan"):
        if column not in rows.columns:
            continue
        counts = rows.group_by(column).agg(pl.col("account_id").n_unique().alias("n"))
        rare = counts.filter(pl.col("n") < MIN_LEVEL_ACCOUNTS)[column].to_list()
        if rare:
            out.append(
                pl.when(pl.col(column).is_in([r for r in rare if r is not None])
                        | (pl.col(column).is_null() if None in rare else pl.lit(False)))
                .then(pl.lit(RARE)).otherwise(pl.col(column).cast(pl.Utf8)).alias(column)
            )  # fmt: skip
    return rows.with_columns(out) if out else rows


def _dense(rows: pl.DataFrame, model: str) -> list[tuple[str, np.ndarray]]:
    """The model's columns other than the categorical indicators, by name: the same
    function builds the fitted design and the projected accounts' predictors."""
    parts = [("const", np.ones(rows.height))]
    for lever in LEVERS:
        v = rows[f"lever_{lever}"].cast(pl.Float64).to_numpy()
        missing = np.isnan(v)
        if model == "association":
            parts.append((lever, np.nan_to_num(v)))
        else:
            mean = rows[f"mean_{lever}"].cast(pl.Float64).to_numpy()
            deviation = np.where(missing, 0.0, v - np.nan_to_num(mean))
            # the mean is summed as exact decimals, the value is a double: a lever constant
            # at 0.7 differs from its own mean by 1e-16, which is rounding, not a deviation
            deviation[np.abs(deviation) <= 1e-9 * (1 + np.abs(np.nan_to_num(v)))] = 0.0
            parts.append((f"{lever}_within", deviation))
            parts.append((f"{lever}_between", np.nan_to_num(mean)))
            parts.append((f"{lever}_never_measured", np.isnan(mean).astype(float)))
        parts.append((f"{lever}_missing", missing.astype(float)))
    parts.append(("log_mrr_control", rows["log_mrr_control"].cast(pl.Float64).to_numpy()))
    parts.append(("new_since_window", rows["new_since_window"].cast(pl.Float64).to_numpy()))
    prior = rows["log_mrr_change_prior_3m"].cast(pl.Float64).to_numpy()
    parts.append(("log_mrr_change_prior_3m", np.nan_to_num(prior)))
    parts.append(("prior_change_missing", np.isnan(prior).astype(float)))
    return parts


def lever_term(lever: str, model: str) -> str:
    """The coefficient a change in the lever moves in each model."""
    return lever if model == "association" else f"{lever}_within"


# ---------------------------------------------------------------------------------------
# The hazard models and their bootstrap


@dataclass(frozen=True)
class HazardDraws:
    """A fitted hazard model: its terms, the estimate and the bootstrap replicates' refits
    (each row of `draws` one replicate). Terms fixed at 0 (a reference level, a column
    collinear with others) are listed with coefficient 0 so that a projection knows which
    levels were fitted."""

    model: str
    terms: list[str]
    estimate: np.ndarray
    draws: np.ndarray
    failed: int = 0

    @property
    def all(self) -> np.ndarray:
        """(1 + replicates) x terms: the estimate first."""
        return np.vstack([self.estimate[None, :], self.draws])

    def coefficient(self, term: str) -> np.ndarray:
        """The term's coefficient in the estimate and every replicate (0 if not a term)."""
        if term not in self.terms:
            return np.zeros(1 + len(self.draws))
        return self.all[:, self.terms.index(term)]


class NoModel(Exception):
    """The unit's hazard model cannot be fitted (the reason in words)."""


def _independent(H: np.ndarray) -> list[int]:
    """Columns of a Gram matrix kept in order, each only if it is not (to rounding) a
    combination of those kept before it: a missing flag that repeats another (tickets solved
    carry both FCR and reopen rate), a lever never measured."""
    kept: list[int] = []
    for j in range(H.shape[0]):
        if H[j, j] <= 0:
            continue
        if kept:
            A = H[np.ix_(kept, kept)]
            b = np.linalg.lstsq(A, H[kept, j], rcond=None)[0]
            residual = H[j, j] - H[kept, j] @ b
        else:
            residual = H[j, j]
        if residual > 1e-9 * H[j, j]:
            kept.append(j)
    return kept


# The bootstrap's replicates are one-step estimating-function draws by default: each
# replicate's coefficients are the estimate plus one Newton step on that replicate's
# Poisson(1)-weighted score, with the whole sample's information matrix,
#     beta_b = beta + I^-1 sum_accounts w_ab s_a,
# s_a an account's score (its rows' summed) at the estimate (Hu & Kalbfleisch 2000; Kline &
# Santos 2012, the score bootstrap). It is first-order the same as refitting each replicate
# (Davidson & MacKinnon 1999, the k-step bootstrap) and costs one pass over the rows for all
# replicates instead of a pass per replicate and step: a unit of 5,000 accounts over 36
# months took 220 s to refit 400 times, and takes a second this way. The projection still
# turns every replicate's coefficients into churn through the nonlinear model, so the
# intervals of the money keep its skew. `replicate_refit_steps` > 0 refits each replicate by
# that many IRLS steps from the estimate instead (bench/whatif_coverage.py compares them).


def fit_draws(
    rows: pl.DataFrame, model: str, replicates: int, rng: np.random.Generator,
    refit_steps: int = 0,
) -> HazardDraws:  # fmt: skip
    """The model on the fitted rows (voluntary churn next month, involuntary exits
    censored), and its draw in each account-bootstrap replicate (Poisson(1) weights per
    account, drawn from `rng`): a one-step score draw (refit_steps 0), or a refit by that
    many IRLS steps from the estimate; a replicate whose draw is not finite is dropped and
    counted."""
    y = rows["churned_next_month_voluntary"].cast(pl.Float64).to_numpy()
    if y.sum() < 10:
        raise NoModel("fewer than 10 voluntary churns to fit the model")
    parts = [(n, v) for n, v in _dense(rows, model) if n == "const" or v.max() > v.min()]
    cats = categories(rows, CALENDAR)
    dense = np.empty((rows.height, len(parts)), order="F")
    for j, (_, v) in enumerate(parts):
        dense[:, j] = v
    X, dummy_names = with_categories(dense, cats)
    names = [n for n, _ in parts] + dummy_names
    H, _ = X.gram_total([X.gram_part(0, X.shape[0], np.ones(X.shape[0]), None)])
    keep = _independent(H)
    d = dense.shape[1]
    keep_dense = [j for j in keep if j < d]
    keep_levels = [j - d for j in keep if j >= d]
    levels = X.levels
    for _ in range(4):
        X = Design(np.asfortranarray(dense[:, keep_dense]), X.cells,
                   levels[:, keep_levels] if levels is not None else None)  # fmt: skip
        names_kept = [names[j] for j in keep_dense] + [names[d + j] for j in keep_levels]
        fit = fit_cloglog(y, X)
        if fit.singular or not fit.converged or not np.all(np.isfinite(fit.beta)):
            raise NoModel("the hazard model's fit did not converge")
        # An indicator running off towards infinity (no events among its rows: separation)
        # is no finding and leaves replicates without a finite fit: it is left out.
        runaway = {names_kept[j] for j in range(1, len(names_kept))
                   if abs(fit.beta[j]) > SEPARATION_LOG_HR}  # fmt: skip
        if not runaway:
            break
        keep_dense = [j for j in keep_dense if names[j] not in runaway]
        keep_levels = [j for j in keep_levels if names[d + j] not in runaway]
    else:
        raise NoModel("the hazard model's fit runs off (separation)")
    names = names_kept
    codes = rows["account_id"].rank("dense").cast(pl.Int64).to_numpy() - 1
    n_accounts = int(codes.max()) + 1
    if refit_steps == 0:
        candidates = list(_score_draws(y, X, fit.beta, codes, n_accounts, replicates, rng))
    else:
        candidates = []
        for _ in range(replicates):
            w = rng.poisson(1.0, n_accounts).astype(float)[codes]
            refit = fit_cloglog(y, X, weights=w, start=fit.beta, maxiter=refit_steps)
            candidates.append(np.full(len(fit.beta), np.nan) if refit.singular else refit.beta)
    draws = [b for b in candidates if np.all(np.isfinite(b)) and np.all(np.abs(b) < 50)]
    failed = len(candidates) - len(draws)
    # Every fitted level of every categorical is listed (0 where it has no coefficient).
    zeros = []
    for codes_c, level_names, prefix in cats:
        for c in np.unique(codes_c):
            term = f"{prefix}_{level_names[c]}"
            if term not in names:
                zeros.append(term)
    terms = names + zeros
    pad = np.zeros(len(zeros))
    estimate = np.concatenate([fit.beta, pad])
    draws_arr = (
        np.vstack([np.concatenate([b, pad]) for b in draws]) if draws else np.empty((0, len(terms)))
    )
    return HazardDraws(model, terms, estimate, draws_arr, failed)


def _score_draws(y: np.ndarray, X: Design, beta: np.ndarray, codes: np.ndarray,
                 n_accounts: int, replicates: int, rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(replicates x terms): beta + I^-1 (the replicate's Poisson-weighted sum of the
    accounts' scores), I the expected information at beta (as IRLS uses it). One pass over
    the rows: each block's share of I, and its rows' scores summed per account."""
    scores = np.zeros((n_accounts, X.shape[1]))

    def block(start: int, stop: int):
        eta = np.clip(X.dot(start, stop, beta), -30, 3)
        _, mu, dmu = _cloglog_mean(eta)
        var = mu * (1 - mu)
        r = (y[start:stop] - mu) * dmu / var  # d loglik / d eta
        per_account = sparse.csr_matrix(
            (r, (codes[start:stop], np.arange(stop - start))), shape=(n_accounts, stop - start)
        )
        scores[...] += per_account @ X.rows(start, stop)
        return X.gram_part(start, stop, dmu**2 / var, None)

    information, _ = X.gram_total(map_blocks(block, X.shape[0]))
    G = poisson_weighted_sums(rng, replicates, scores)  # replicates x terms
    return beta[None, :] + np.linalg.solve(information, G.T).T


# ---------------------------------------------------------------------------------------
# The projection (g-computation)


@dataclass(frozen=True)
class Projection:
    """Per account (rows) and per coefficient set (columns: the estimate, then each
    replicate): the expected voluntary churn over the months, the expected months billed
    (sum of S_t, t = 1..months), the same discounted (month t by (1 + d)^(t - 1)), and the
    chance of still being there after the last month (S_months)."""

    churn: np.ndarray
    months_billed: np.ndarray
    months_billed_discounted: np.ndarray
    survival_end: np.ndarray


def project(eta_static: np.ndarray, tenure_effect: np.ndarray, tenure_bands: np.ndarray,
            season_effect: np.ndarray, shift: np.ndarray | float, involuntary: float,
            discount: float) -> Projection:  # fmt: skip
    """Carry accounts forward month by month.

    eta_static: accounts x draws, each account's linear predictor without its tenure band
    and season; tenure_effect: bands x draws; tenure_bands: accounts x months, each account's
    tenure band in month t (0-based step); season_effect: months x draws; shift: what the
    change adds to each account's linear predictor (accounts x draws, or 0). In step t
    (t = 1..months) the voluntary hazard is h = 1 - exp(-exp(min(eta, 5))) and the
    involuntary chance `involuntary`: the step's expected voluntary churn is S_(t-1) h, and
    S_t = S_(t-1) (1 - h)(1 - involuntary) is the chance of being billed in month t.

    Worked in place on accounts x draws arrays, exp(eta) as a product of its parts: the
    static part's exp once, each step's tenure factor only where an account's band changes
    (at most three times in its life), the season's per step. The expected voluntary churn
    is not summed step by step: with q the involuntary chance, S_(t-1) h_t =
    S_(t-1) - S_t / (1 - q), so over the months it is
    1 - S_m / (1 - q) - q / (1 - q) (sum_(t<m) S_t)."""
    months = season_effect.shape[0]
    cap = math.exp(5.0)
    base = np.exp(np.minimum(eta_static + shift, 50.0))
    exp_tenure = np.exp(np.minimum(tenure_effect, 50.0))  # bands x draws
    exp_season = np.exp(np.minimum(season_effect, 50.0))  # months x draws
    rate = base * exp_tenure[tenure_bands[:, 0]]  # exp(eta) without the season
    survival = np.ones_like(base)
    billed = np.zeros_like(base)
    billed_d = np.zeros_like(base)
    step = np.empty_like(base)
    stay = 1.0 - involuntary
    for t in range(months):
        if t:
            moved = np.flatnonzero(tenure_bands[:, t] != tenure_bands[:, t - 1])
            if len(moved):
                rate[moved] = base[moved] * exp_tenure[tenure_bands[moved, t]]
        np.multiply(rate, exp_season[t][None, :], out=step)
        np.minimum(step, cap, out=step)
        np.negative(step, out=step)
        np.exp(step, out=step)  # 1 - h
        step *= stay
        survival *= step
        billed += survival
        np.multiply(survival, 1.0 / (1 + discount) ** t, out=step)
        billed_d += step
    churn = 1.0 - survival / stay - (involuntary / stay) * (billed - survival)
    return Projection(churn, billed, billed_d, survival)


def _season(terms: list[str], coef: np.ndarray, month_dates: list) -> np.ndarray:
    """Each projected month's calendar effect (months x draws): its own month's where that
    month was fitted, else the latest fitted month of the same month of the year (last
    year's March for next March), else the latest fitted month. (A whatif-v1 model's
    quarters, the same way by quarter.)"""
    out = np.zeros((len(month_dates), coef.shape[0]))
    for prefix in ("month_", "quarter_"):
        fitted = sorted(t.removeprefix(prefix) for t in terms if t.startswith(prefix))
        if fitted:
            break
    else:
        return out
    for i, m in enumerate(month_dates):
        if prefix == "month_":
            name, of_year = f"{m.year}-{m.month:02d}", f"-{m.month:02d}"
        else:
            name, of_year = f"{m.year}Q{(m.month - 1) // 3 + 1}", f"Q{(m.month - 1) // 3 + 1}"
        if name not in fitted:
            same = [q for q in fitted if q.endswith(of_year)]
            name = same[-1] if same else fitted[-1]
        out[i] = coef[:, terms.index(f"{prefix}{name}")]
    return out


def _add_months(month, k: int):
    y, m = divmod(month.month - 1 + k, 12)
    return month.replace(year=month.year + y, month=m + 1, day=1)


@dataclass
class Book:
    """The accounts a scenario projects (the unit's active accounts, or a backtest's
    cohort), with what the projection needs of them."""

    rows: pl.DataFrame
    mrr: np.ndarray
    tenure: np.ndarray
    start_month: object  # the month of the rows: the first step predicts the month after

    @property
    def n(self) -> int:
        return self.rows.height


def unseen_levels(book: Book, draws: HazardDraws) -> dict[str, int]:
    """Active accounts at a segment, region or plan level the model was not fitted on (a
    level new since the fit, or renamed): per categorical, how many. They take the
    reference level's effect, which may be wrong; callers say so."""
    out = {}
    for prefix in ("segment", "region", "plan"):
        fitted = {t.removeprefix(f"{prefix}_") for t in draws.terms if t.startswith(f"{prefix}_")}
        if prefix not in book.rows.columns or not fitted:
            continue
        values = book.rows[prefix].cast(pl.Utf8).fill_null("null")
        n = int((~values.is_in(sorted(fitted))).sum())
        if n:
            out[prefix] = n
    return out


def _eta_parts(book: Book, draws: HazardDraws, months: int):
    """The projection's pieces for one model: the accounts' static linear predictors,
    the tenure band effects and each account's band by step, the season by step."""
    coef = draws.all  # draws x terms
    static = {n: v for n, v in _dense(book.rows, draws.model)}
    cat_values = {
        prefix: book.rows[prefix].cast(pl.Utf8).fill_null("null").to_numpy()
        for prefix in ("segment", "region", "plan") if prefix in book.rows.columns
    }  # fmt: skip
    columns, used = [], []
    for j, term in enumerate(draws.terms):
        if term.startswith(TIME_PREFIXES):
            continue
        if term in static:
            columns.append(static[term])
            used.append(j)
            continue
        prefix, _, level = term.partition("_")
        if prefix in cat_values:
            columns.append((cat_values[prefix] == level).astype(float))
            used.append(j)
    # the accounts' predictors (accounts x terms) times every draw's coefficients
    eta = (np.column_stack(columns) @ coef[:, used].T if used
           else np.zeros((book.n, coef.shape[0])))  # fmt: skip
    tenure_effect = np.vstack([
        coef[:, draws.terms.index(f"tenure_band_{b}")] if f"tenure_band_{b}" in draws.terms
        else np.zeros(coef.shape[0]) for b in TENURE_BANDS
    ])  # fmt: skip
    steps = book.tenure[:, None] + np.arange(months)[None, :]
    bands = tenure_band_codes(pl.Series(steps.ravel())).reshape(steps.shape).astype(np.int64)
    season = _season(draws.terms, coef, [_add_months(book.start_month, t) for t in range(months)])
    return eta, tenure_effect, bands, season


# ---------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Context:
    """What turns churn into money: the unit's monthly involuntary exit rate, and its CLV
    model (sBG alpha and beta per draw, or a constant churn rate), margin and discount."""

    involuntary: float
    margin: float | None = None
    monthly_discount: float = (1.1 ** (1 / 12)) - 1
    sbg_alpha: np.ndarray | None = None  # per draw (estimate first)
    sbg_beta: np.ndarray | None = None
    geometric_churn: float | None = None

    @property
    def values_clv(self) -> bool:
        return self.margin is not None and (self.sbg_alpha is not None or self.geometric_churn is not None)

    def derl(self, renewals: np.ndarray, draws: int) -> np.ndarray:
        """DERL (payments, the next undiscounted) per account and draw."""
        d = self.monthly_discount
        if self.sbg_alpha is None:
            return np.full((len(renewals), draws), float(geometric_derl(self.geometric_churn, d)))
        unique, inverse = np.unique(renewals, return_inverse=True)
        a = self.sbg_alpha[None, :draws]
        b = self.sbg_beta[None, :draws]
        n = unique[:, None].astype(float) + 1
        table = (b + n - 1) / (a + b + n - 1) * hyp2f1(1.0, b + n, a + b + n, 1 / (1 + d))
        return table[inverse.reshape(-1)]


def levels(rows: pl.DataFrame) -> dict[str, float | None]:
    """Each lever's level over the rows (the mean of the measured values on the lever's
    scale: mean log minutes, a share, a mean score), or None where none is measured."""
    out = {}
    for lever in LEVERS:
        v = rows[f"lever_{lever}"].drop_nulls()
        out[lever] = float(v.mean()) if len(v) else None
    return out


def shown_level(lever: str, level: float | None) -> float | None:
    """A level as leaders read it: first response in minutes (the geometric mean), shares
    as shares, scores as scores."""
    if level is None:
        return None
    return math.exp(level) if LEVERS[lever].scale == "log_minutes" else level


def best_quartile(unit_levels: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """Per lever, the level of the company's best-quartile unit: the 75th percentile of the
    units' levels in the better direction (the 25th where lower is better)."""
    out = {}
    for lever, spec in LEVERS.items():
        values = [lv[lever] for lv in unit_levels.values() if lv.get(lever) is not None]
        if not values:
            out[lever] = None
            continue
        out[lever] = float(np.quantile(values, 0.75 if spec.higher_is_better else 0.25))
    return out


@dataclass(frozen=True)
class Applied:
    """A change applied to the accounts: per lever, each account's shift on the lever's
    scale (continuous levers) or its probability of being a detractor afterwards."""

    shifts: dict[str, np.ndarray]
    detractor_after: np.ndarray | None
    baseline: dict[str, float | None]
    after: dict[str, float | None]


def apply_changes(book: Book, changes: list[Change], baseline: dict[str, float | None],
                  targets: dict[str, float | None] | None) -> Applied:  # fmt: skip
    """Each change on the accounts' measured values (a value not measured stays so): a
    continuous lever moves by the change, held within its scale's bounds; to the best
    quartile, by the distance between the unit's level and that quartile's (nothing if the
    unit is there already); the detractor share falls (or rises) by converting detractors to
    non-detractors (or back) at the rate that moves the share by the change."""
    shifts: dict[str, np.ndarray] = {}
    detractor_after = None
    after = dict(baseline)
    for change in changes:
        lever = LEVERS[change.lever]
        base = baseline[change.lever]
        v = book.rows[f"lever_{change.lever}"].cast(pl.Float64).to_numpy()
        measured = ~np.isnan(v)
        if base is None or not measured.any():
            continue
        if change.kind == "best_quartile":
            target = (targets or {}).get(change.lever)
            delta = 0.0 if target is None else target - base
            # already at or beyond the best quartile (or at it but for rounding: the unit's
            # level and the company's list of levels are summed in different places)
            if (delta > 0) != lever.higher_is_better or abs(delta) < 1e-9 * (1 + abs(base)):
                delta = 0.0
        elif change.kind == "relative":
            delta = math.log1p(change.amount)
        else:
            delta = change.amount
        if lever.scale == "binary":
            if delta < 0:
                keep = 1 + delta / base if base > 0 else 1.0
                p = np.where(v == 1, max(keep, 0.0), 0.0)
            else:
                gain = delta / (1 - base) if base < 1 else 0.0
                p = np.where(v == 1, 1.0, min(gain, 1.0))
            detractor_after = np.where(measured, p, np.nan)
            after[change.lever] = float(np.mean(p[measured]))
            continue
        new = np.clip(v + delta, lever.low, lever.high)
        shifts[change.lever] = np.where(measured, new - v, 0.0)
        after[change.lever] = float(np.mean(new[measured]))
    return Applied(shifts, detractor_after, baseline, after)


@dataclass(frozen=True)
class Figures:
    """A scenario's figures under one model, per draw (the estimate first)."""

    churn_avoided: np.ndarray
    mrr_retained: np.ndarray
    clv_retained: np.ndarray | None
    expected_churn_baseline: float

    def interval(self, values: np.ndarray) -> tuple[float, float] | tuple[None, None]:
        if len(values) < 21:  # too few replicates for a 95% interval
            return None, None
        return float(np.percentile(values[1:], 2.5)), float(np.percentile(values[1:], 97.5))


# Accounts projected at a time: a block's (accounts x draws) arrays stay a few tens of MB
# (a unit of 200,000 active accounts and 201 draws would hold 320 MB per array at once).
PROJECTION_BLOCK = 5_000


def scenario_figures(book: Book, draws: HazardDraws, applied: Applied, context: Context,
                     months: int, baseline: dict | None = None) -> Figures:  # fmt: skip
    """The g-computation: the accounts carried forward without and with the change under
    the model's estimate and every replicate (PROJECTION_BLOCK accounts at a time; the
    figures are sums over accounts). baseline: where the sums of the projection without a
    change are kept between the scenarios of one book and model (they are the same for
    every scenario), or None to compute them."""
    key = (draws.model, months)
    base = None if baseline is None else baseline.get(key)
    changed, base_parts = [], []
    for start in range(0, book.n, PROJECTION_BLOCK):
        stop = min(start + PROJECTION_BLOCK, book.n)
        block = Book(book.rows[start:stop], book.mrr[start:stop], book.tenure[start:stop],
                     book.start_month)  # fmt: skip
        block_applied = Applied(
            {k: v[start:stop] for k, v in applied.shifts.items()},
            None if applied.detractor_after is None else applied.detractor_after[start:stop],
            applied.baseline, applied.after,
        )  # fmt: skip
        c, b = _block_sums(block, draws, block_applied, context, months, base is None)
        changed.append(c)
        base_parts.append(b)
    if base is None:
        base = _Sums(*(sum(getattr(p, f) for p in base_parts) for f in _Sums.__dataclass_fields__))
        if baseline is not None:
            baseline[key] = base
    after = _Sums(*(sum(getattr(p, f) for p in changed) for f in _Sums.__dataclass_fields__))
    clv = None
    if context.values_clv:
        clv = context.margin * (after.mrr_billed_discounted - base.mrr_billed_discounted
                                + after.mrr_tail_surviving - base.mrr_tail_surviving)  # fmt: skip
    return Figures(base.churn - after.churn, after.mrr_billed - base.mrr_billed, clv,
                   float(base.churn[0]))  # fmt: skip


@dataclass(frozen=True)
class _Sums:
    """A projection's sums over accounts, per draw: expected voluntary churn, MRR billed,
    MRR billed discounted, and the residual value of those still there at the end (MRR x
    the discounted DERL of the months after, x the chance of being there)."""

    churn: np.ndarray
    mrr_billed: np.ndarray
    mrr_billed_discounted: np.ndarray
    mrr_tail_surviving: np.ndarray


def _block_sums(book: Book, draws: HazardDraws, applied: Applied, context: Context,
                months: int, with_base: bool) -> tuple[_Sums, _Sums | None]:  # fmt: skip
    """A block's sums with the change applied, and without it (if with_base)."""
    eta, tenure_effect, bands, season = _eta_parts(book, draws, months)
    D = eta.shape[1]
    mrr = book.mrr[:, None]
    tail = None
    if context.values_clv:
        tail = context.derl(book.tenure + months, D) / (1 + context.monthly_discount) ** months

    def sums(p: Projection) -> _Sums:
        return _Sums(p.churn.sum(axis=0), (mrr * p.months_billed).sum(axis=0),
                     (mrr * p.months_billed_discounted).sum(axis=0),
                     (mrr * tail * p.survival_end).sum(axis=0) if tail is not None
                     else np.zeros(D))  # fmt: skip

    def run(shift) -> Projection:
        return project(eta, tenure_effect, bands, season, shift, context.involuntary,
                       context.monthly_discount)  # fmt: skip

    shift = np.zeros_like(eta)
    for lever, s in applied.shifts.items():
        shift += np.outer(s, draws.coefficient(lever_term(lever, draws.model)))
    base = sums(run(0.0)) if with_base else None
    if applied.detractor_after is None:
        return sums(run(shift)), base
    v = book.rows["lever_detractor"].cast(pl.Float64).to_numpy()
    measured = ~np.isnan(v)
    beta = draws.coefficient(lever_term("detractor", draws.model))
    p = np.where(measured, applied.detractor_after, 0.0)[:, None]
    as_detractor = run(shift + np.outer(np.where(measured, 1 - v, 0.0), beta))
    as_other = run(shift + np.outer(np.where(measured, -v, 0.0), beta))
    changed = Projection(*(
        p * getattr(as_detractor, f) + (1 - p) * getattr(as_other, f)
        for f in ("churn", "months_billed", "months_billed_discounted", "survival_end")
    ))  # fmt: skip
    return sums(changed), base


# ---------------------------------------------------------------------------------------
# Evidence grade

GRADE_WORDS = {
    "association": "association: accounts with better {lever} churn less; if they churn less "
    "because of it, this is what the change is worth",
    "within-account": "within-account: the same accounts churned less in months when their own "
    "{lever} was better, which rules out anything fixed about an account as the explanation",
}


@dataclass(frozen=True)
class Grade:
    grade: str  # association | within-account
    # agree | not confirmed within accounts | disagree | opposite (an interval lies below
    # zero: the change comes with more churn) | within-account not estimable
    agreement: str
    note: str


def evidence(assoc: tuple, within: tuple | None, lever_words: str) -> Grade:
    """The grade of a scenario's churn avoided from the two models' estimates and 95%
    intervals ((estimate, low, high) each; within None when not estimable).

    within-account when its interval lies above zero and overlaps the association's; the two
    disagree when their intervals do not overlap; the within-account model does not confirm
    the association when the association's interval lies above zero and its own does not."""
    a, a_lo, a_hi = assoc
    if within is None or within[1] is None or a_lo is None:
        return Grade("association", "within-account not estimable",
                     "Evidence: " + GRADE_WORDS["association"].format(lever=lever_words)
                     + ". Whether the same accounts churn less when their own "
                     f"{lever_words} improves could not be estimated.")  # fmt: skip
    w, w_lo, w_hi = within
    overlap = w_lo <= a_hi and a_lo <= w_hi
    if not overlap:
        return Grade("association", "disagree",
                     "Evidence: " + GRADE_WORDS["association"].format(lever=lever_words)
                     + f". The two estimates disagree: within the same accounts the change is "
                     f"worth {w:,.1f} churned accounts avoided ({w_lo:,.1f} to {w_hi:,.1f}), "
                     "so part of the difference between accounts is something else about them.")  # fmt: skip
    if w_lo > 0:
        return Grade("within-account", "agree",
                     "Evidence: " + GRADE_WORDS["within-account"].format(lever=lever_words)
                     + "; it agrees with the comparison across accounts. Something that "
                     "changes over time alongside the lever could still explain both.")  # fmt: skip
    if a_lo > 0:
        return Grade("association", "not confirmed within accounts",
                     "Evidence: " + GRADE_WORDS["association"].format(lever=lever_words)
                     + ". Within the same accounts no such change in churn is shown (interval "
                     f"{w_lo:,.1f} to {w_hi:,.1f} accounts): the difference between accounts may "
                     "come from something else about them, not from the lever.")  # fmt: skip
    if a_hi < 0 or w_hi < 0:
        within_words = (" Within the same accounts too, churn was higher in months when their "
                        f"own {lever_words} was better." if w_hi < 0 else "")  # fmt: skip
        return Grade("association", "opposite",
                     f"Evidence: here accounts with better {lever_words} churned more, not less "
                     f"(interval {a_lo:,.1f} to {a_hi:,.1f} accounts avoided)." + within_words
                     + " The figures do not support the change as a way to keep accounts; "
                     "check how the lever is measured before acting on it.")  # fmt: skip
    return Grade("association", "agree",
                 "Evidence: " + GRADE_WORDS["association"].format(lever=lever_words)
                 + "; neither comparison rules out that the change is worth nothing.")  # fmt: skip


# ---------------------------------------------------------------------------------------
# One unit


@dataclass
class UnitModels:
    """A unit's fitted what-if machinery: both models with their replicates, the context,
    the rows, and why anything could not be fitted."""

    unit: str
    association: HazardDraws | None
    within: HazardDraws | None
    context: Context
    book: Book | None
    fit_share: float
    reason: str | None = None
    within_reason: str | None = None
    baseline: dict[str, float | None] = field(default_factory=dict)
    # the rows' account sample (whatif_rows.sql $max_accounts, $seed): `cxalign whatif`
    # reads the same rows
    sample: tuple[int, int] = (5_000, 20261202)
    # the sums of the book's projection without a change, per (model, months): the same for
    # every scenario of the unit (scenario_figures)
    projection_cache: dict = field(default_factory=dict, repr=False)


def split_rows(rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the at-risk rows, the active accounts' rows)."""
    return rows.filter(~pl.col("scored")), rows.filter(pl.col("scored"))


def book_of(rows: pl.DataFrame) -> Book | None:
    """The accounts a projection starts from (one month's rows), or None without any."""
    if rows.is_empty():
        return None
    return Book(rows, rows["mrr"].cast(pl.Float64).fill_null(0.0).to_numpy(),
                rows["tenure_months"].cast(pl.Int64).to_numpy(), rows["month"].max())  # fmt: skip


def _fit_share(rows: pl.DataFrame) -> float:
    """The share of the unit's accounts its models are fitted on (whatif_rows.sql samples)."""
    if "fit_account_share" in rows.columns and rows.height:
        share = rows["fit_account_share"][0]
        return 1.0 if share is None else float(share)
    return 1.0


def fit_unit_models(unit: str, rows: pl.DataFrame, config: WhatifConfig,
                    clv: dict | None) -> UnitModels:  # fmt: skip
    """Both hazard models of a unit, refitted in each bootstrap replicate, and the context
    of its projection. clv: the unit's analytics.unit_clv row (All segments), or None."""
    at_risk, active = split_rows(rows)
    involuntary = float(at_risk["churned_next_month_involuntary"].cast(pl.Float64).mean() or 0.0)
    fit_rows = at_risk.filter(~pl.col("churned_next_month_involuntary"))
    share = _fit_share(rows)
    context = clv_context(clv, involuntary, config.replicates, unit_rng(config.seed, unit, "whatif-clv"))
    models = UnitModels(unit, None, None, context, book_of(active), share,
                        baseline=levels(active), sample=(config.max_fit_accounts, config.seed))  # fmt: skip
    if models.book is None:
        models.reason = "no active account in the last complete month"
        return models
    try:
        models.association = fit_draws(fit_rows, "association", config.replicates,
                                       unit_rng(config.seed, unit, "whatif-bootstrap"),
                                       config.replicate_refit_steps)  # fmt: skip
    except NoModel as exc:
        models.reason = str(exc)
        return models
    try:
        # the same replicates' accounts: the same stream, drawn again
        models.within = fit_draws(fit_rows, "within_account", config.replicates,
                                  unit_rng(config.seed, unit, "whatif-bootstrap"),
                                  config.replicate_refit_steps)  # fmt: skip
    except NoModel as exc:
        models.within_reason = str(exc)
    return models


def clv_context(clv: dict | None, involuntary: float, replicates: int, rng) -> Context:
    """The projection's context from the unit's CLV row: sBG alpha and beta drawn per
    replicate from the normal approximation of their estimate (independently: the table
    publishes no covariance; held above 1e-3), or a geometric model's constant churn."""
    if not clv or clv.get("model") not in ("sbg", "geometric"):
        return Context(involuntary)
    d = float(clv["discount_rate_per_period"])
    margin = float(clv["margin"])
    if clv["model"] == "geometric":
        return Context(involuntary, margin, d, geometric_churn=float(clv["monthly_churn_rate"]))
    a, b = float(clv["sbg_alpha"]), float(clv["sbg_beta"])
    a_se, b_se = float(clv.get("sbg_alpha_se") or 0.0), float(clv.get("sbg_beta_se") or 0.0)
    alphas = np.concatenate([[a], np.maximum(rng.normal(a, a_se, replicates), 1e-3)])
    betas = np.concatenate([[b], np.maximum(rng.normal(b, b_se, replicates), 1e-3)])
    return Context(involuntary, margin, d, alphas, betas)


def context_draws(context: Context, draws: int) -> Context:
    """The context with as many sBG draws as the models have (replicates that failed to
    fit are dropped from the end)."""
    if context.sbg_alpha is None:
        return context
    return Context(context.involuntary, context.margin, context.monthly_discount,
                   context.sbg_alpha[:draws], context.sbg_beta[:draws])  # fmt: skip


@dataclass(frozen=True)
class ScenarioResult:
    unit: str
    scenario: str
    lever: str
    changes: list[Change]
    applied: Applied
    association: Figures
    within: Figures | None
    grade: Grade
    months: int
    active_accounts: int
    left_out: tuple[str, ...] = ()

    def row(self) -> dict:
        """The figures as analytics.unit_whatif holds them."""
        a, w = self.association, self.within
        single = self.lever != ALL
        out = {
            "business_unit": self.unit, "scenario": self.scenario, "lever": self.lever,
            "change_description": "; ".join(c.words() for c in self.changes),
            "baseline_level": shown_level(self.lever, self.applied.baseline.get(self.lever)) if single else None,
            "scenario_level": shown_level(self.lever, self.applied.after.get(self.lever)) if single else None,
            "active_accounts": self.active_accounts, "months": self.months,
            "expected_churn_baseline": a.expected_churn_baseline,
            "replicates": len(a.churn_avoided) - 1,
        }  # fmt: skip
        for fig, suffix in ((a, ""), (w, "_within")):
            for measure in ("churn_avoided", "mrr_retained", "clv_retained"):
                values = getattr(fig, measure) if fig is not None else None
                column = ("mrr_retained_per_year" if measure == "mrr_retained" else measure) + suffix
                if values is None:
                    out[column] = out[f"{column}_ci_low"] = out[f"{column}_ci_high"] = None
                    continue
                low, high = fig.interval(values)
                out[column] = float(values[0])
                out[f"{column}_ci_low"] = low
                out[f"{column}_ci_high"] = high
        out.update(evidence_grade=self.grade.grade, evidence_agreement=self.grade.agreement,
                   evidence_note=self.grade.note)  # fmt: skip
        return out


class NotEstimable(Exception):
    """None of a scenario's levers has an estimated effect in the unit (the reason in words)."""


def unestimable(models: UnitModels, lever: str) -> str | None:
    """Why a lever's change cannot be valued in the unit, or None."""
    label = LEVERS[lever].label
    if models.baseline.get(lever) is None:
        return f"{label} is not measured for the unit's active accounts"
    if lever_term(lever, "association") not in models.association.terms:
        return (f"the unit's model has no estimate for {label} (too little variation, or its "
                "few churns all on one side of it)")  # fmt: skip
    return None


def run_scenario(models: UnitModels, changes: list[Change], targets: dict | None, months: int,
                 scenario: str = "", lever: str = ALL) -> ScenarioResult:  # fmt: skip
    """A scenario under both models, with its grade. A change to a lever the unit's model
    cannot value is left out (ScenarioResult.left_out says why); NotEstimable when none is
    left."""
    if models.association is None or models.book is None:
        raise NoModel(models.reason or "no model")
    left_out = tuple(why for c in changes if (why := unestimable(models, c.lever)))
    changes = [c for c in changes if unestimable(models, c.lever) is None]
    if not changes:
        raise NotEstimable("; ".join(left_out))
    applied = apply_changes(models.book, changes, models.baseline, targets)
    ctx = context_draws(models.context, len(models.association.draws) + 1)
    a = scenario_figures(models.book, models.association, applied, ctx, months,
                         models.projection_cache)  # fmt: skip
    w = None
    within_terms = models.within.terms if models.within is not None else []
    if all(lever_term(c.lever, "within_account") in within_terms for c in changes):
        w = scenario_figures(models.book, models.within, applied,
                             context_draws(models.context, len(models.within.draws) + 1), months,
                             models.projection_cache)  # fmt: skip
    words = " and ".join(LEVERS[c.lever].label for c in changes)
    triple = (float(a.churn_avoided[0]), *a.interval(a.churn_avoided))
    within = (float(w.churn_avoided[0]), *w.interval(w.churn_avoided)) if w is not None else None
    grade = evidence(triple, within, words)
    return ScenarioResult(models.unit, scenario or "; ".join(c.words() for c in changes), lever,
                          changes, applied, a, w, grade, months, models.book.n, left_out)  # fmt: skip


def standard_rows(models: UnitModels, targets: dict, months: int) -> list[dict]:
    """Each lever moved to the company's best-quartile unit level, one at a time, and all
    of them together, as analytics.unit_whatif rows (a lever the unit's model cannot value
    has its row with the reason and no figures)."""
    plans = [(f"{lever} to best quartile", lever, [Change(lever, "best_quartile")]) for lever in LEVERS]
    plans.append(("all levers to best quartile", ALL, [Change(lv, "best_quartile") for lv in LEVERS]))
    out = []
    for scenario, lever, changes in plans:
        try:
            result = run_scenario(models, changes, targets, months, scenario, lever)
        except NotEstimable as exc:
            out.append({"business_unit": models.unit, "scenario": scenario, "lever": lever,
                        "change_description": "; ".join(c.words() for c in changes),
                        "baseline_level": shown_level(lever, models.baseline.get(lever)) if lever != ALL else None,
                        "active_accounts": models.book.n, "months": months,
                        "not_estimated_reason": str(exc)})  # fmt: skip
            continue
        row = result.row()
        reasons = list(result.left_out)
        if result.within is None:
            reasons.append("within-account model: " + (models.within_reason or "no estimate for this lever"))
        row["not_estimated_reason"] = "; ".join(reasons) or None
        out.append(row)
    return out


# ---------------------------------------------------------------------------------------
# Backtest


@dataclass(frozen=True)
class Backtest:
    from_month: object
    months: int
    accounts: int
    expected: float
    observed: int
    sd: float


def backtest(rows: pl.DataFrame, months: int, config: WhatifConfig, unit: str) -> Backtest | None:
    """The scenario machinery with no change, on held-out months: the association model
    fitted on the months before the last `months` months with a known outcome, the accounts
    at risk in the first of them carried forward `months` months, their expected voluntary
    churners against those who did leave voluntarily in those months."""
    at_risk, _ = split_rows(rows)
    observed_months = sorted(at_risk["month"].unique().to_list())
    if len(observed_months) <= months + 6:
        return None
    start = observed_months[-months]
    before = at_risk.filter(pl.col("month") < start)
    fit_rows = before.filter(~pl.col("churned_next_month_involuntary"))
    try:
        model = fit_draws(fit_rows, "association", 0, unit_rng(config.seed, unit, "whatif-backtest"))
    except NoModel:
        return None
    cohort = at_risk.filter(pl.col("month") == start)
    book = book_of(cohort)
    if book is None:
        return None
    involuntary = float(before["churned_next_month_involuntary"].cast(pl.Float64).mean() or 0.0)
    eta, tenure_effect, bands, season = _eta_parts(book, model, months)
    p = project(eta, tenure_effect, bands, season, 0.0, involuntary, 0.0).churn[:, 0]
    window = at_risk.filter(
        pl.col("month").is_between(start, observed_months[-1])
        & pl.col("account_id").is_in(cohort["account_id"].implode())
    )
    observed = window.filter(pl.col("churned_next_month_voluntary"))["account_id"].n_unique()
    return Backtest(start, months, book.n, float(p.sum()), int(observed),
                    float(np.sqrt(np.sum(p * (1 - p)))))  # fmt: skip


# ---------------------------------------------------------------------------------------
# The stage and what it publishes

PARTS = ("association", "within_account", "projection")


def model_frame(models: UnitModels) -> pl.DataFrame:
    """A unit's fitted machinery as analytics.unit_whatif_model rows: every coefficient of
    both models in the estimate (replicate 0) and each replicate, and the projection's
    context (involuntary rate, margin, discount, sBG draws)."""
    frames = []
    for draws in (models.association, models.within):
        if draws is None:
            continue
        coef = draws.all
        frames.append(pl.DataFrame({
            "business_unit": models.unit, "model": draws.model,
            "replicate": np.repeat(np.arange(coef.shape[0]), coef.shape[1]),
            "term": np.tile(np.array(draws.terms, dtype=object), coef.shape[0]).tolist(),
            "coefficient": coef.ravel(),
        }))  # fmt: skip
    ctx = models.context
    # as many as the replicates drawn (either model may have kept more of them)
    n = max([len(d.draws) + 1 for d in (models.association, models.within) if d is not None] or [1])
    if ctx.sbg_alpha is not None:
        n = len(ctx.sbg_alpha)
    context_terms: dict[str, np.ndarray] = {"involuntary_monthly_rate": np.full(n, ctx.involuntary),
                                            "fit_account_share": np.full(n, models.fit_share),
                                            "max_fit_accounts": np.full(n, models.sample[0]),
                                            "sample_seed": np.full(n, models.sample[1])}  # fmt: skip
    if ctx.margin is not None:
        context_terms["margin"] = np.full(n, ctx.margin)
        context_terms["monthly_discount"] = np.full(n, ctx.monthly_discount)
    if ctx.sbg_alpha is not None:
        context_terms["sbg_alpha"] = ctx.sbg_alpha[:n]
        context_terms["sbg_beta"] = ctx.sbg_beta[:n]
    if ctx.geometric_churn is not None:
        context_terms["geometric_churn_rate"] = np.full(n, ctx.geometric_churn)
    for term, values in context_terms.items():
        frames.append(pl.DataFrame({
            "business_unit": models.unit, "model": "projection", "replicate": np.arange(len(values)),
            "term": term, "coefficient": values.astype(float),
        }))  # fmt: skip
    return pl.concat(frames, how="vertical_relaxed").with_columns(pl.col("replicate").cast(pl.Int64))


def models_from_frame(unit: str, frame: pl.DataFrame, rows: pl.DataFrame) -> UnitModels:
    """A unit's machinery back from analytics.unit_whatif_model (as model_frame wrote it)
    and its rows (read_rows): what `cxalign whatif` projects with, without refitting."""
    draws = {}
    for model in ("association", "within_account"):
        part = frame.filter(pl.col("model") == model)
        if part.is_empty():
            continue
        wide = part.pivot(on="term", index="replicate", values="coefficient").sort("replicate")
        terms = [c for c in wide.columns if c != "replicate"]
        coef = wide.select(terms).to_numpy()
        draws[model] = HazardDraws(model, terms, coef[0], coef[1:])
    proj = {
        t: frame.filter((pl.col("model") == "projection") & (pl.col("term") == t))
        .sort("replicate")["coefficient"].to_numpy()
        for t in frame.filter(pl.col("model") == "projection")["term"].unique().to_list()
    }  # fmt: skip
    context = Context(
        float(proj["involuntary_monthly_rate"][0]),
        float(proj["margin"][0]) if "margin" in proj else None,
        float(proj["monthly_discount"][0]) if "monthly_discount" in proj else Context(0).monthly_discount,
        proj.get("sbg_alpha"), proj.get("sbg_beta"),
        float(proj["geometric_churn_rate"][0]) if "geometric_churn_rate" in proj else None,
    )  # fmt: skip
    _, active = split_rows(rows)
    return UnitModels(unit, draws.get("association"), draws.get("within_account"), context,
                      book_of(active), float(proj["fit_account_share"][0]),
                      baseline=levels(active), sample=sample_of(frame))  # fmt: skip


def sample_of(frame: pl.DataFrame) -> tuple[int, int]:
    """The account sample (max accounts, seed) a unit's published machinery was fitted on."""
    proj = frame.filter((pl.col("model") == "projection") & (pl.col("replicate") == 0))
    value = dict(zip(proj["term"], proj["coefficient"], strict=True))
    return int(value.get("max_fit_accounts", 5_000)), int(value.get("sample_seed", 20261202))


def company_levels(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, float | None]]:
    """Every unit's lever levels over its active accounts (as levels() computes them), in
    one query over analytics.account_month, summed as exact decimals (the same figures
    whatever order DuckDB's threads add the rows in)."""
    columns = ", ".join(
        f"(sum(round({e}, 12)::decimal(38, 12)))::double / nullif(count({e}), 0) as {lv}"
        for lv, e in LEVER_SQL.items()
    )
    frame = con.execute(
        f"select business_unit, {columns} from analytics.account_month where {ACTIVE_SQL} "
        "group by business_unit order by business_unit"
    ).pl()
    return {r["business_unit"]: {lv: r[lv] for lv in LEVERS} for r in frame.iter_rows(named=True)}


def unit_whatif(con: duckdb.DuckDBPyConnection, unit: str, config: WhatifConfig,
                clv: dict | None, targets: dict) -> tuple[list[dict], pl.DataFrame | None]:  # fmt: skip
    """One unit's standard scenarios (rows of analytics.unit_whatif) and its fitted
    machinery (analytics.unit_whatif_model rows)."""
    with con.cursor() as cursor:
        rows = read_rows(cursor, unit, config.max_fit_accounts, config.seed)
    models = fit_unit_models(unit, rows, config, clv)
    test = backtest(rows, config.backtest_months, config, unit)
    bt = {
        "backtest_from_month": test.from_month if test else None,
        "backtest_months": test.months if test else None,
        "backtest_accounts": test.accounts if test else None,
        "backtest_expected_churners": test.expected if test else None,
        "backtest_observed_churners": test.observed if test else None,
        "backtest_expected_sd": test.sd if test else None,
    }
    common = {"fit_account_share": models.fit_share, "method_version": METHOD_VERSION}
    if models.association is None:
        return [{"business_unit": unit, "scenario": "not estimated", "lever": ALL,
                 "not_estimated_reason": models.reason, **bt, **common}], None  # fmt: skip
    out = [{**row, **bt, **common} for row in standard_rows(models, targets, config.months)]
    return out, model_frame(models)


def warehouse_stage(con: duckdb.DuckDBPyConnection, config: WhatifConfig, units: list[str],
                    clv: dict[str, dict], on_unit=None) -> dict[str, pl.DataFrame]:  # fmt: skip
    """analytics.unit_whatif and analytics.unit_whatif_model for every unit (a unit per
    worker), the best-quartile targets from every unit's levels."""
    targets = best_quartile(company_levels(con))
    units = sorted({u for u in units if u is not None})
    done = map_units(lambda unit: unit_whatif(con, unit, config, clv.get(unit), targets), units,
                     quiet=True, on_done=on_unit)  # fmt: skip
    rows = [r for d in done for r in d[0]]
    frames = [d[1] for d in done if d[1] is not None]
    return {
        "unit_whatif": pl.DataFrame(rows, schema=WHATIF_SCHEMA),
        "unit_whatif_model": pl.concat(frames) if frames else pl.DataFrame(schema=MODEL_SCHEMA),
    }


_F, _I, _S = pl.Float64, pl.Int64, pl.Utf8
_MEASURES = {
    f"{m}{s}{e}": _F
    for s in ("", "_within")
    for m in ("churn_avoided", "mrr_retained_per_year", "clv_retained")
    for e in ("", "_ci_low", "_ci_high")
}
WHATIF_SCHEMA = {
    "business_unit": _S, "scenario": _S, "lever": _S, "change_description": _S,
    "baseline_level": _F, "scenario_level": _F, "active_accounts": _I, "months": _I,
    "expected_churn_baseline": _F, **_MEASURES,
    "evidence_grade": _S, "evidence_agreement": _S, "evidence_note": _S, "replicates": _I,
    "fit_account_share": _F, "backtest_from_month": pl.Date, "backtest_months": _I,
    "backtest_accounts": _I, "backtest_expected_churners": _F, "backtest_observed_churners": _I,
    "backtest_expected_sd": _F, "not_estimated_reason": _S, "method_version": _S,
}  # fmt: skip
MODEL_SCHEMA = {"business_unit": _S, "model": _S, "replicate": _I, "term": _S, "coefficient": _F}
