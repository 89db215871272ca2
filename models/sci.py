"""Support Contribution Index, version sci-v1.

No public formula exists, so this one is ours: transparent (every component, target and
weight is in the config and on every row) and reproducible (the version string is on every
row; change the formula, change the version).

    component score  0-100 against [floor, target]; durations on a log scale
    pillar           weighted mean of its components' scores
    index            weighted mean of the pillars (outcome weighted most by default)

Pillars: efficiency (first response median and p90, resolution median, first-contact
resolution, reopen rate), quality (CSAT mean and top-2-box, CES mean) and outcome
contribution (next-month retention of supported accounts whose tickets were resolved well,
against those resolved poorly, adjusted for segment, size, tenure and month). Effort
(volume, handle hours, cost) is context and is not scored. Where a component cannot be
measured in a month its weight is shared among its pillar's others; a pillar with no
component is left out likewise, and the row says so.

Pure numpy/polars; the pipeline wires it (pipelines/defs/models/sci.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models.cluster import cluster_codes, ols_cluster
from models.design import GRAM_BLOCK, level_codes, tenure_band_codes, with_categories
from models.parallel import map_units, poisson_blocks, unit_rng

SCI_VERSION = "sci-v1"


class SCIConfigError(ValueError):
    """The SCI configuration breaks a rule; the message names the setting."""


@dataclass(frozen=True)
class ComponentDef:
    pillar: str
    direction: str  # higher | lower (is better)
    scale: str  # linear | log
    label: str
    unit: str


# The components sci-v1 knows. Their direction and scale are part of the formula (and
# of its version); weights and targets are configuration.
CATALOG: dict[str, ComponentDef] = {
    "first_response_median": ComponentDef("efficiency", "lower", "log", "Median first response", "minutes"),
    "first_response_p90": ComponentDef("efficiency", "lower", "log", "90th percentile first response", "minutes"),
    "resolution_median": ComponentDef("efficiency", "lower", "log", "Median resolution time", "minutes"),
    "fcr_rate": ComponentDef("efficiency", "higher", "linear", "First-contact resolution", "share"),
    "reopen_rate": ComponentDef("efficiency", "lower", "linear", "Reopen rate", "share"),
    "csat_mean": ComponentDef("quality", "higher", "linear", "Mean CSAT (1-5)", "score"),
    "csat_top2": ComponentDef("quality", "higher", "linear", "CSAT top-2-box", "share"),
    "ces_mean": ComponentDef("quality", "higher", "linear", "Mean CES (1-7)", "score"),
    "retention_lift": ComponentDef(
        "outcome", "higher", "linear",
        "Next-month retention, well- vs poorly-resolved supported accounts (adjusted)",
        "percentage points",
    ),
}  # fmt: skip
PILLARS = ("efficiency", "quality", "outcome")

DEFAULTS: dict = {
    "pillars": {
        "efficiency": {
            "weight": 0.3,
            "components": {
                "first_response_median": {"weight": 0.25, "floor": 1440, "target": 30},
                "first_response_p90": {"weight": 0.15, "floor": 4320, "target": 240},
                "resolution_median": {"weight": 0.25, "floor": 4320, "target": 240},
                "fcr_rate": {"weight": 0.25, "floor": 0.3, "target": 0.8},
                "reopen_rate": {"weight": 0.10, "floor": 0.25, "target": 0.03},
            },
        },
        "quality": {
            "weight": 0.3,
            "components": {
                "csat_mean": {"weight": 0.4, "floor": 3.0, "target": 4.6},
                "csat_top2": {"weight": 0.3, "floor": 0.5, "target": 0.9},
                "ces_mean": {"weight": 0.3, "floor": 3.5, "target": 6.0},
            },
        },
        "outcome": {
            "weight": 0.4,
            "components": {"retention_lift": {"weight": 1.0, "floor": 0.0, "target": 2.0}},
        },
    },
    # An account-month counts as "resolved well" when all of these hold over its window.
    "resolved_well": {"min_fcr_rate": 0.5, "min_csat_mean": 3.5, "max_first_response_minutes": 240},
    "outcome_window_months": 12,
    "min_outcome_accounts": 200,
    "bootstrap_replicates": 200,
    "seed": 20261122,
}


@dataclass(frozen=True)
class ComponentSpec:
    name: str
    weight: float
    floor: float
    target: float

    @property
    def definition(self) -> ComponentDef:
        return CATALOG[self.name]


@dataclass(frozen=True)
class SCIConfig:
    pillar_weights: dict[str, float]
    components: dict[str, ComponentSpec]
    min_fcr_rate: float
    min_csat_mean: float
    max_first_response_minutes: float
    outcome_window_months: int
    min_outcome_accounts: int
    bootstrap_replicates: int
    seed: int
    version: str = SCI_VERSION
    _raw: dict = field(default_factory=dict, compare=False, repr=False)

    def pillar_components(self, pillar: str) -> list[ComponentSpec]:
        return [c for c in self.components.values() if c.definition.pillar == pillar]


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def parse_config(raw: dict | None = None) -> SCIConfig:
    """Defaults merged with the config file's `sci:` section, checked."""
    raw = raw or {}
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise SCIConfigError(f"sci.{sorted(unknown)[0]}: unknown setting")
    for pillar, body in (raw.get("pillars") or {}).items():
        if pillar not in PILLARS:
            raise SCIConfigError(
                f"sci.pillars.{pillar}: unknown pillar (one of {', '.join(PILLARS)})"
            )
        for name in (body or {}).get("components") or {}:
            if name not in CATALOG:
                raise SCIConfigError(
                    f"sci.pillars.{pillar}.components.{name}: unknown component "
                    f"(sci-v1 has {', '.join(CATALOG)})"
                )
            if CATALOG[name].pillar != pillar:
                raise SCIConfigError(
                    f"sci.pillars.{pillar}.components.{name}: belongs to pillar {CATALOG[name].pillar}"
                )
    cfg = _merge(DEFAULTS, raw)
    pillar_weights = {p: float(cfg["pillars"][p]["weight"]) for p in PILLARS}
    _check_weights("sci.pillars.*.weight", pillar_weights)
    components: dict[str, ComponentSpec] = {}
    for pillar in PILLARS:
        comps = cfg["pillars"][pillar]["components"]
        weights = {n: float(c.get("weight", 0)) for n, c in comps.items()}
        _check_weights(f"sci.pillars.{pillar}.components.*.weight", weights)
        for name, c in comps.items():
            spec = ComponentSpec(name, weights[name], float(c["floor"]), float(c["target"]))
            _check_range(pillar, spec)
            components[name] = spec
    rw = cfg["resolved_well"]
    if cfg["bootstrap_replicates"] < 20:
        raise SCIConfigError("sci.bootstrap_replicates: at least 20")
    return SCIConfig(
        pillar_weights=pillar_weights,
        components=components,
        min_fcr_rate=float(rw["min_fcr_rate"]),
        min_csat_mean=float(rw["min_csat_mean"]),
        max_first_response_minutes=float(rw["max_first_response_minutes"]),
        outcome_window_months=int(cfg["outcome_window_months"]),
        min_outcome_accounts=int(cfg["min_outcome_accounts"]),
        bootstrap_replicates=int(cfg["bootstrap_replicates"]),
        seed=int(cfg["seed"]),
        _raw=cfg,
    )


def _check_weights(where: str, weights: dict[str, float]) -> None:
    if any(w < 0 for w in weights.values()):
        raise SCIConfigError(f"{where}: weights must not be negative")
    total = sum(weights.values())
    if not math.isclose(total, 1.0, abs_tol=1e-9):
        shown = ", ".join(f"{k} {v:g}" for k, v in weights.items())
        raise SCIConfigError(f"{where}: weights must sum to 1, they sum to {total:g} ({shown})")


def _check_range(pillar: str, spec: ComponentSpec) -> None:
    d = spec.definition
    where = f"sci.pillars.{pillar}.components.{spec.name}"
    if d.direction == "higher" and not spec.target > spec.floor:
        raise SCIConfigError(
            f"{where}: target {spec.target:g} must be above floor {spec.floor:g} "
            "(higher is better): the range is the wrong way round"
        )
    if d.direction == "lower" and not spec.target < spec.floor:
        raise SCIConfigError(
            f"{where}: target {spec.target:g} must be below floor {spec.floor:g} "
            "(lower is better): the range is the wrong way round"
        )
    if d.scale == "log" and min(spec.floor, spec.target) <= 0:
        raise SCIConfigError(f"{where}: a log-scale range needs positive floor and target")


def score(value, spec: ComponentSpec) -> np.ndarray:
    """0 at the floor (or worse), 100 at the target (or better), in between linearly on the
    component's scale (log for durations, so halving a wait scores the same anywhere)."""
    v = np.asarray(value, dtype=float)
    lo, hi = spec.floor, spec.target
    if spec.definition.scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            v, lo, hi = np.log(np.maximum(v, 1e-9)), math.log(lo), math.log(hi)
    frac = (v - lo) / (hi - lo)  # the sign of (hi - lo) makes "lower is better" work
    return np.where(np.isnan(v), np.nan, 100 * np.clip(frac, 0, 1))


def combine(scores: dict[str, np.ndarray], config: SCIConfig) -> dict[str, np.ndarray]:
    """Pillar scores and the index from component scores (NaN = not measured)."""
    out: dict[str, np.ndarray] = {}
    pillar_values = {}
    for pillar in PILLARS:
        specs = config.pillar_components(pillar)
        vals = np.array([scores[s.name] for s in specs], dtype=float)
        w = np.array([s.weight for s in specs])[:, None] * ~np.isnan(vals)
        with np.errstate(invalid="ignore", divide="ignore"):
            pillar_values[pillar] = np.where(
                w.sum(axis=0) > 0, np.nansum(vals * w, axis=0) / w.sum(axis=0), np.nan
            )
        out[f"{pillar}_score"] = pillar_values[pillar]
    vals = np.array([pillar_values[p] for p in PILLARS])
    w = np.array([config.pillar_weights[p] for p in PILLARS])[:, None] * ~np.isnan(vals)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sci"] = np.where(
            w.sum(axis=0) > 0, np.nansum(vals * w, axis=0) / w.sum(axis=0), np.nan
        )
    out["pillars_measured"] = (~np.isnan(vals)).sum(axis=0)
    return out


# --- outcome contribution ----------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeEstimate:
    lift_pp: float  # percentage points of next-month retention, well vs poorly resolved
    se_pp: float
    n_account_months: int
    n_accounts: int
    well_share: float
    mrr_well: float  # monthly MRR of the well-resolved supported account-months (mean per month)

    @property
    def retained_mrr(self) -> float:
        """Monthly MRR retained in association with good resolution: lift x MRR resolved well."""
        return self.lift_pp / 100 * self.mrr_well

    @property
    def retained_mrr_se(self) -> float:
        return self.se_pp / 100 * self.mrr_well


def resolved_well(frame: pl.DataFrame, config: SCIConfig) -> pl.Expr:
    return (
        (pl.col("fcr_rate") >= config.min_fcr_rate)
        & (pl.col("csat_mean").is_null() | (pl.col("csat_mean") >= config.min_csat_mean))
        & (
            pl.col("first_response_minutes_median").is_null()
            | (pl.col("first_response_minutes_median") <= config.max_first_response_minutes)
        )
    )


TENURE_BANDS = ("0-5", "6-11", "12-23", "24+")  # under 6, 12 and 24 months, and older


@dataclass(frozen=True)
class OutcomePanel:
    """One unit's supported account-months at risk (see outcome_estimate) as arrays in month
    order, built once per unit, so that each month's trailing window is a slice of rows.

    A window's estimate is then one pass over its rows: its design is made from integer codes
    and its clusters are integer account codes, instead of a filtered copy of the frame,
    string dummies and a string rank for each of the unit's months."""

    month: np.ndarray  # datetime64[D], non-decreasing
    account: np.ndarray  # an integer code per account
    well: np.ndarray  # bool: resolved well (see resolved_well)
    retained: np.ndarray  # 1.0 if the account stayed the next month
    log_mrr: np.ndarray
    mrr: np.ndarray
    segment: np.ndarray  # index into segments
    segments: list[str]
    tenure: np.ndarray  # index into TENURE_BANDS
    month_code: np.ndarray  # index into months
    months: list[str]

    @classmethod
    def of(cls, panel: pl.DataFrame, config: SCIConfig) -> OutcomePanel:
        """panel: as outcome_estimate takes it; rows with no log MRR are left out. A stable
        sort by month keeps the given order within a month (the nightly read gives it)."""
        df = panel.filter(pl.col("log_mrr").is_not_null()).sort("month", maintain_order=True)
        segment, segments = level_codes(df["segment"])
        month = df["month"].to_numpy().astype("datetime64[D]")
        months, month_code = np.unique(month, return_inverse=True)
        return cls(
            month=month,
            account=df["account_id"].rank("dense").to_numpy(),  # integers: no string sort later
            well=df.select(resolved_well(df, config).fill_null(False)).to_series().to_numpy(),
            retained=1.0 - df["churned_next_month"].cast(pl.Float64).to_numpy(),
            log_mrr=df["log_mrr"].cast(pl.Float64).to_numpy(),
            mrr=df["mrr"].cast(pl.Float64).to_numpy(),
            segment=segment,
            segments=segments,
            tenure=tenure_band_codes(df["tenure_months"]),
            month_code=month_code.reshape(-1).astype(np.int16),
            months=[str(m) for m in months],
        )  # fmt: skip

    def window(self, start, stop) -> tuple[int, int]:
        """The rows with start <= month < stop (dates; None: unbounded)."""
        lo = 0 if start is None else int(np.searchsorted(self.month, np.datetime64(start, "D")))
        hi = (
            len(self.month)
            if stop is None
            else int(np.searchsorted(self.month, np.datetime64(stop, "D")))
        )
        return lo, hi

    def estimate(self, lo: int, hi: int, config: SCIConfig) -> OutcomeEstimate | None:
        """The outcome estimate from rows lo..hi (see outcome_estimate)."""
        accounts, n_accounts = cluster_codes(self.account[lo:hi])
        if n_accounts < config.min_outcome_accounts:
            return None
        well = self.well[lo:hi]
        if well.all() or not well.any():
            return None  # everyone resolved well (or poorly): no contrast
        n = hi - lo
        dense = np.empty((n, 3), order="F")
        dense[:, 0] = 1.0
        dense[:, 1] = well
        dense[:, 2] = self.log_mrr[lo:hi]
        X, _ = with_categories(
            dense,
            [
                (self.segment[lo:hi], self.segments, "segment"),
                (self.tenure[lo:hi], list(TENURE_BANDS), "tenure_band"),
                (self.month_code[lo:hi], self.months, "month"),
            ],
        )
        beta, se = ols_cluster(self.retained[lo:hi], X, accounts)
        months = len(np.unique(self.month_code[lo:hi]))
        return OutcomeEstimate(
            lift_pp=float(beta[1] * 100), se_pp=float(se[1] * 100), n_account_months=n,
            n_accounts=n_accounts, well_share=float(well.mean()),
            mrr_well=float(self.mrr[lo:hi][well].sum()) / months,
        )  # fmt: skip


def outcome_estimate(panel: pl.DataFrame, config: SCIConfig) -> OutcomeEstimate | None:
    """Adjusted difference in next-month retention, well- vs poorly-resolved supported accounts.

    panel: one unit's account-months at risk with tickets solved in their window (fcr_rate not
    NULL): account_id, month, segment, log_mrr, tenure_months, mrr, fcr_rate, csat_mean,
    first_response_minutes_median, churned_next_month. A linear probability model of
    retention on the resolved-well flag, segment, log MRR, tenure band and month, with
    standard errors clustered by account. Association, not cause. None with fewer accounts
    than sci.min_outcome_accounts, or when every row (or none) was resolved well.
    (The nightly run estimates each month's window of one OutcomePanel per unit.)
    """
    rows = OutcomePanel.of(panel, config)
    return rows.estimate(0, len(rows.month), config)


# --- bootstrap over accounts -------------------------------------------------------------


QUANTILE_BLOCK = 256  # sorted observations per block of weighted_quantile's running sums


def weighted_quantile(
    values: np.ndarray, weights: np.ndarray, q: float | tuple[float, ...]
) -> np.ndarray:
    """Quantile(s) of `values` under each replicate's weights: the smallest value whose
    running weight, in sorted order, reaches q x the replicate's total.

    weights: observations x replicates (one row per value, so gathering runs over contiguous
    rows; the bootstrap's counts are one byte each, and integer weights are summed exactly).
    With a tuple of qs the result has one column per q, else one value per replicate.

    No running sum over every observation and replicate is made (at a million accounts a
    unit-month has 120,000 tickets x 200 replicates, and that cumulative sum, strided, was
    most of the SCI stage): the sorted rows are summed in blocks, the block where each
    replicate's running weight reaches its target is found from the blocks' running sums,
    and only that block's rows of that replicate are summed one by one."""
    qs = np.atleast_1d(np.asarray(q, dtype=float))
    n, replicates = weights.shape
    if n == 0:
        out = np.full((replicates, len(qs)), np.nan)
        return out[:, 0] if np.ndim(q) == 0 else out
    order = np.argsort(values, kind="stable")
    v = values[order]
    blocks = -(-n // QUANTILE_BLOCK)
    w = np.zeros((blocks * QUANTILE_BLOCK, replicates), dtype=weights.dtype)
    w[:n] = weights[order]
    w = w.reshape(blocks, QUANTILE_BLOCK, replicates)
    sum_dtype = np.int64 if weights.dtype.kind in "biu" else float
    through = np.cumsum(w.sum(axis=1, dtype=sum_dtype), axis=0)  # running sum at each block's end
    total = through[-1]
    before = np.vstack([np.zeros((1, replicates), dtype=sum_dtype), through[:-1]])
    cols = np.arange(replicates)
    idx = np.empty((replicates, len(qs)), dtype=np.int64)
    for k, qk in enumerate(qs):
        target = qk * total
        # the first block whose end reaches the target (the running sums do not decrease)
        b = np.minimum((through < target).sum(axis=0), blocks - 1)
        inside = np.cumsum(w[b, :, cols], axis=1, dtype=sum_dtype) + before[b, cols][:, None]
        idx[:, k] = b * QUANTILE_BLOCK + (inside < target[:, None]).sum(axis=1)
    out = np.where(total[:, None] > 0, v[np.minimum(idx, n - 1)], np.nan)
    return out[:, 0] if np.ndim(q) == 0 else out


# --- the index per unit and month --------------------------------------------------------

# Component values as the warehouse's unit marts have them (the point estimates).
MART_COLUMNS = {
    "first_response_median": "first_response_minutes_median",
    "first_response_p90": "first_response_minutes_p90",
    "resolution_median": "resolution_minutes_median",
    "fcr_rate": "fcr_rate",
    "reopen_rate": "reopen_rate",
    "csat_mean": "csat_mean",
    "csat_top2": "csat_top2_share",
    "ces_mean": "ces_mean",
}


def _unit_weights(
    tickets: pl.DataFrame, responses: pl.DataFrame, rng: np.random.Generator, replicates: int
) -> tuple[np.ndarray, pl.DataFrame, pl.DataFrame]:
    """Poisson(1) resampling weights for each of a unit's accounts (the account bootstrap),
    accounts x replicates, one byte each.

    One matrix per unit serves all its months: each month's interval needs only that month's
    resampling distribution, and drawing per unit rather than per unit-month cut the stage's
    random draws thirtyfold. The draws are those of one (replicates x accounts) draw, taken
    a block of replicates at a time (at a million accounts the whole draw as integers, then
    as floats, was 1.2 GB for the largest unit). Returns the weights and the inputs with
    `code`, the row of their account."""
    accounts = (
        pl.concat([tickets.select("account_id"), responses.select("account_id")])
        .unique()
        .sort("account_id")
        .with_row_index("code")
    )
    # accounts x replicates: a ticket's weights are one contiguous row.
    weights = np.empty((accounts.height, replicates), dtype=np.uint8)
    for start, stop, counts in poisson_blocks(rng, replicates, accounts.height):
        if counts.size and counts.max() > np.iinfo(np.uint8).max:  # P < 1e-400 for Poisson(1)
            raise OverflowError("a bootstrap count above 255")
        weights[:, start:stop] = counts.T

    def coded(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.join(accounts, on="account_id", how="left", maintain_order="left")

    return weights, coded(tickets), coded(responses)


def _weighted_totals(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """weights.T @ columns (replicates x k) over the accounts with a non-zero row in
    columns, a block of accounts at a time: no float copy of the whole weight matrix."""
    active = np.flatnonzero(np.any(columns != 0, axis=1))
    totals = np.zeros((weights.shape[1], columns.shape[1]))
    for start in range(0, len(active), GRAM_BLOCK):
        rows = active[start : start + GRAM_BLOCK]
        totals += weights[rows].T.astype(float) @ columns[rows]
    return totals


def _replicate_components(
    tickets: pl.DataFrame, responses: pl.DataFrame, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """Each component of one unit-month under every replicate's weights (see _unit_weights)."""
    n_accounts, replicates = weights.shape
    t_code = tickets["code"].to_numpy()
    r_code = responses["code"].to_numpy()

    out: dict[str, np.ndarray] = {}
    for col, named in (
        ("first_response_minutes", {"first_response_median": 0.5, "first_response_p90": 0.9}),
        ("resolution_minutes", {"resolution_median": 0.5}),
    ):
        values = tickets[col].to_numpy().astype(float)
        have = ~np.isnan(values)
        got = (
            weighted_quantile(values[have], weights[t_code[have]], tuple(named.values()))
            if have.any()
            else np.full((replicates, len(named)), np.nan)
        )
        for j, name in enumerate(named):
            out[name] = got[:, j]
    survey = responses["survey_type"].to_numpy() if responses.height else np.array([])
    # A weighted mean needs only each account's sum and count: one matrix of per-account sums
    # and counts for every mean component, one product with the weights.
    names, columns = [], []
    for name, col, frame, codes, kind in (
        ("fcr_rate", "fcr", tickets, t_code, None),
        ("reopen_rate", "reopened", tickets, t_code, None),
        ("csat_mean", "score", responses, r_code, "csat"),
        ("csat_top2", "top2", responses, r_code, "csat"),
        ("ces_mean", "score", responses, r_code, "ces"),
    ):
        values = frame[col].cast(pl.Float64).to_numpy() if frame.height else np.array([])
        have = ~np.isnan(values) if len(values) else np.array([], bool)
        if kind is not None and len(values):
            have &= survey == kind
        if have.any():
            names.append(name)
            columns.append(np.bincount(codes[have], weights=values[have], minlength=n_accounts))
            columns.append(np.bincount(codes[have], minlength=n_accounts).astype(float))
        else:
            out[name] = np.full(replicates, np.nan)
    if names:
        totals = _weighted_totals(weights, np.column_stack(columns))
        with np.errstate(invalid="ignore", divide="ignore"):
            for j, name in enumerate(names):
                out[name] = totals[:, 2 * j] / totals[:, 2 * j + 1]
    return out


def unit_month_sci(
    marts: pl.DataFrame,
    tickets: pl.DataFrame,
    responses: pl.DataFrame,
    panel: pl.DataFrame,
    config: SCIConfig,
) -> pl.DataFrame:
    """The index for every business unit and month in `marts`.

    marts: business_unit, month and the MART_COLUMNS values plus effort context
      (tickets_per_100_accounts, handle_hours, cost_per_ticket), from the unit marts.
    tickets: business_unit, month (created), account_id, first_response_minutes,
      resolution_minutes, fcr, reopened. responses: business_unit, month, account_id,
      survey_type, score, top2. panel: supported account-months at risk (see outcome_estimate)
      with business_unit.
    """
    # Split each input once (by unit), not once per unit-month.
    panel_by_unit = panel.partition_by("business_unit", as_dict=True)
    tickets_by_unit = tickets.partition_by("business_unit", as_dict=True)
    responses_by_unit = responses.partition_by("business_unit", as_dict=True)
    marts_by_unit = marts.sort("business_unit", "month").partition_by(
        "business_unit", as_dict=True, maintain_order=True
    )

    def one(unit: str) -> list[dict]:
        key = (unit,)
        return unit_sci(
            unit, marts_by_unit[key], tickets_by_unit.get(key, tickets.head(0)),
            responses_by_unit.get(key, responses.head(0)), panel_by_unit.get(key, panel.head(0)),
            config,
        )  # fmt: skip

    units = [unit for (unit,) in marts_by_unit]
    return pl.DataFrame([row for done in map_units(one, units) for row in done],
                        infer_schema_length=None)  # fmt: skip


def unit_sci(
    unit: str, marts: pl.DataFrame, tickets: pl.DataFrame, responses: pl.DataFrame,
    panel: pl.DataFrame, config: SCIConfig,
) -> list[dict]:  # fmt: skip
    """One unit's rows: its months in `marts` (by month), from its tickets, answers and
    panel (the inputs of unit_month_sci, this unit's rows only)."""
    # Each unit draws from its own generator: its figures do not depend on the others.
    rng = unit_rng(config.seed, unit, "sci")
    weights, unit_tickets, unit_responses = _unit_weights(
        tickets, responses, rng, config.bootstrap_replicates
    )
    tickets_by = unit_tickets.partition_by("month", as_dict=True)
    responses_by = unit_responses.partition_by("month", as_dict=True)
    outcome_rows = OutcomePanel.of(panel, config)
    return [
        _unit_month(row, outcome_rows, tickets_by, responses_by, unit_tickets, unit_responses,
                    weights, rng, config)
        for row in marts.iter_rows(named=True)
    ]  # fmt: skip


def _unit_month(
    row: dict, outcome_rows: OutcomePanel, tickets_by: dict, responses_by: dict,
    unit_tickets: pl.DataFrame, unit_responses: pl.DataFrame, weights: np.ndarray,
    rng: np.random.Generator, config: SCIConfig,
) -> dict:  # fmt: skip
    """One unit-month's index, pillars, components and outcome estimate."""
    B = config.bootstrap_replicates
    unit, month = row["business_unit"], row["month"]
    # Outcome: the unit's supported account-months in the window before this month.
    first = pl.select(pl.lit(month).dt.offset_by(f"-{config.outcome_window_months}mo")).item()
    est = outcome_rows.estimate(*outcome_rows.window(first, month), config)
    values = {name: row[col] for name, col in MART_COLUMNS.items()}
    values["retention_lift"] = est.lift_pp if est else None
    point_scores = {
        n: score(np.nan if values[n] is None else values[n], s)
        for n, s in config.components.items()
    }
    point = combine({n: np.atleast_1d(v) for n, v in point_scores.items()}, config)

    reps = _replicate_components(
        tickets_by.get((month,), unit_tickets.head(0)),
        responses_by.get((month,), unit_responses.head(0)),
        weights,
    )
    reps["retention_lift"] = rng.normal(est.lift_pp, est.se_pp, B) if est else np.full(B, np.nan)
    rep_index = combine({n: score(reps[n], s) for n, s in config.components.items()}, config)["sci"]
    rep_index = rep_index[~np.isnan(rep_index)]
    sci = float(point["sci"][0])
    out = {
        "business_unit": unit,
        "month": month,
        "sci_version": config.version,
        "sci": sci if not np.isnan(sci) else None,
        "sci_ci_low": float(np.percentile(rep_index, 2.5)) if len(rep_index) else None,
        "sci_ci_high": float(np.percentile(rep_index, 97.5)) if len(rep_index) else None,
        "pillars_measured": int(point["pillars_measured"][0]),
    }
    for pillar in PILLARS:
        v = float(point[f"{pillar}_score"][0])
        out[f"{pillar}_score"] = None if np.isnan(v) else v
    for name in config.components:
        out[f"{name}_value"] = values[name]
        s = float(point_scores[name])
        out[f"{name}_score"] = None if np.isnan(s) else s
    out.update(
        retention_lift_se=est.se_pp if est else None,
        retained_mrr=est.retained_mrr if est else None,
        retained_mrr_ci_low=est.retained_mrr - 1.959964 * est.retained_mrr_se if est else None,
        retained_mrr_ci_high=est.retained_mrr + 1.959964 * est.retained_mrr_se if est else None,
        outcome_accounts=est.n_accounts if est else None,
        outcome_account_months=est.n_account_months if est else None,
        resolved_well_share=est.well_share if est else None,
        tickets_per_100_accounts=row["tickets_per_100_accounts"],
        handle_hours=row["handle_hours"],
        cost_per_ticket=row["cost_per_ticket"],
    )
    return out
