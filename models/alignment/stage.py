"""The alignment stage: each unit's fits (fit_unit), then across units, one outcome at a
time, the q-values, the pooled display estimates, the verdicts and the tables
(summarise_units). align_units runs both on a whole panel in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import polars as pl

from models.alignment.config import (
    ACTIONS,
    COMPOSITE,
    METHOD_VERSION,
    METRICS,
    OUTCOMES,
    AlignmentConfig,
    UnitStrategy,
)
from models.alignment.execution import execution_levels, execution_sums
from models.alignment.falsification import NegativeControl, negative_control, permutation_p
from models.alignment.features import (
    DESIGN_COLUMNS,
    FIT_COLUMNS,
    company_scale,
    outcome_rows,
    prepare,
    prepared,
    subset,
)
from models.alignment.link import (
    Z95,
    DesignBuffer,
    LinkFit,
    controls_note,
    fit_hazard,
    fit_link,
    fit_ols,
    one_sided_bound,
)
from models.alignment.pooling import benjamini_hochberg, random_effects
from models.alignment.result import MetricLink, UnitFit
from models.alignment.verdict import (
    confidence,
    link_probability,
    link_verdict,
    quadrant,
    type_probability,
)
from models.parallel import map_units, unit_rng, units_of


def recent_start(last_month, config: AlignmentConfig):
    """The first month of the execution window that ends at the company's last month."""
    return pl.select(pl.lit(last_month).dt.offset_by(f"-{config.execution_months - 1}mo")).item()


def fit_unit(unit: str, rows: pl.DataFrame, config: AlignmentConfig,
             strategy: UnitStrategy | None = None, recent_from=None) -> UnitFit:  # fmt: skip
    """One unit's link fit, falsification checks, revenue model, execution sums and
    exploratory per-metric fits. rows: the unit's prepared rows by account and month;
    recent_from: the first month of the execution window (the company's: every unit is
    measured over the same months).

    Each subset of rows a fit needs is made (with only the columns the fits read), used and
    released before the next: at a million accounts a unit has millions of rows."""
    measure = config.measure
    if recent_from is None:
        recent_from = recent_start(rows["month"].max(), config)
    extra = config.extra_features
    wanted = dict.fromkeys((*FIT_COLUMNS, *extra))
    rows = rows.select(c for c in wanted if c in rows.columns)  # no copy: columns are shared
    strategy = strategy or UnitStrategy()
    outcome = OUTCOMES[strategy.primary_outcome]
    base = (*DESIGN_COLUMNS, *extra)
    z_columns = tuple(f"z_{m}" for m in METRICS) if config.secondary_metrics else ()
    retention = OUTCOMES["retention"]
    controls = controls_note(rows)
    at_risk = outcome_rows(rows, outcome, (*base, measure, outcome.column))
    buffer = DesignBuffer()  # one block for all of this unit's design matrices
    link = fit_link(at_risk, outcome, measure, extra, buffer)
    perm = permutation_p(at_risk, outcome, measure, config.permutations,
                         unit_rng(config.seed, unit, "permutation"), buffer, extra)  # fmt: skip
    n_accounts = at_risk["account_code"].n_unique()
    n_rows = at_risk.height
    n_events = int(at_risk[outcome.column].sum()) if outcome.kind == "event" else 0
    # Each fit's rows are copied (only the columns it reads) just before it and released
    # after: at a million accounts a copy is half a gigabyte, and keeping the link's rows
    # for the per-metric fits held one beside the negative control's and the revenue
    # model's (the unit's peak, 3.6 GB at L, at the revenue fit).
    del at_risk
    nc = (
        negative_control(
            rows, measure, link, config.min_negative_control_events, config.falsification_alpha,
            extra, buffer,
            (*base, measure, "churned_next_month_voluntary", "churned_next_month_involuntary"),
        )  # fmt: skip
        if outcome.name == "retention"
        else NegativeControl(None, 0, False)
    )
    revenue = (
        fit_ols(
            subset(rows, ~pl.col("churned_next_month"), (*base, measure, "log_mrr_change_next")),
            "log_mrr_change_next", measure, buffer=buffer,
        )  # fmt: skip
        if config.revenue_model and "log_mrr_change_next" in rows.columns
        else None
    )
    targets = strategy.targets or config.execution_targets or {}
    recent = subset(rows, pl.col("month") >= recent_from,
                    ("account_code", "month", COMPOSITE, *targets))  # fmt: skip
    recent = recent.with_columns(
        ((pl.col("month").dt.year() - recent_from.year) * 12
         + pl.col("month").dt.month() - recent_from.month).alias("window_month")
    )  # fmt: skip
    execution = execution_sums(
        recent, config.bootstrap_replicates, unit_rng(config.seed, unit, "execution"), targets,
        config.execution_months,
    )  # fmt: skip
    del recent
    metrics: list[MetricLink] = []
    if config.secondary_metrics:
        voluntary = outcome_rows(rows, retention, (*base, *z_columns, retention.column))
        for metric in METRICS:
            z = f"z_{metric}"
            m_fit = fit_hazard(voluntary, "churned_next_month_voluntary", z, buffer=buffer)
            metrics.append(MetricLink(
                unit, metric, METRICS[metric], m_fit,
                m_fit.n_rows if isinstance(m_fit, LinkFit) else voluntary.height,
                rows.select(pl.col("account_code").filter(pl.col(z).is_not_null()).n_unique()).item(),
            ))  # fmt: skip
    return UnitFit(
        business_unit=unit, outcome=outcome, link=link, permutation_p=perm,
        negative_control=nc, revenue=revenue, execution=execution, uses_targets=bool(targets),
        n_accounts=n_accounts, n_rows=n_rows, n_events=n_events, controls=controls,
        metrics=tuple(metrics),
    )  # fmt: skip


def align_units(
    panel: pl.DataFrame,
    config: AlignmentConfig,
    strategies: dict[str, UnitStrategy] | None = None,
    data: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The alignment verdict per business unit, for a whole panel in memory.

    panel: analytics.account_month columns, plus for the other outcomes and the revenue model
    log_mrr_change_next, expanded_next_month and log_handle_hours_next (next month, for
    accounts still billed). strategies: each unit's declared outcome and targets (default:
    retention against the company benchmark). `data`: the panel already through prepare(),
    when the caller has it. Returns (units, company, metrics).
    """
    data = prepare(panel) if data is None else data
    strategies = strategies or {}
    recent_from = recent_start(data["month"].max(), config)
    fitted = map_units(
        lambda item: fit_unit(item[0], item[1], config, strategies.get(item[0]), recent_from),
        units_of(data),
        quiet=True,
    )
    return summarise_units(fitted, config, int(data["account_code"].n_unique()))


@dataclass(frozen=True)
class _Across:
    """One unit's across-unit figures (its outcome's q-value and pooled display estimate)."""

    q: float | None = None
    shrunk: float | None = None
    shrunk_se: float | None = None


def summarise_units(fitted: list[UnitFit], config: AlignmentConfig,
                    n_accounts: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:  # fmt: skip
    """Across units (in a fixed order), one outcome at a time: Benjamini-Hochberg over the
    units testing it and random-effects pooling for display; then each unit's verdict, CX
    type, probability and confidence. Returns (units, company per outcome, metrics)."""
    across: dict[str, _Across] = {}
    pooled_by_outcome = {}
    for name in OUTCOMES:
        testing = [u for u in fitted if u.outcome.name == name and isinstance(u.link, LinkFit)]
        if not testing:
            continue
        q = benjamini_hochberg(np.array([u.link.p_expected_direction for u in testing]))
        pooled = random_effects(np.array([u.link.effect for u in testing]),
                                np.array([u.link.se for u in testing]))  # fmt: skip
        pooled_by_outcome[name] = pooled
        for i, u in enumerate(testing):
            across[u.business_unit] = _Across(float(q[i]), float(pooled.shrunk[i]),
                                              float(pooled.shrunk_se[i]))  # fmt: skip
    executions = execution_levels([u.execution for u in fitted],
                                  [u.uses_targets for u in fitted])  # fmt: skip
    m = config.materiality_log
    rows_out = []
    for u, ex in zip(fitted, executions, strict=True):
        a = across.get(u.business_unit, _Across())
        sign = u.outcome.expected_sign
        failed = u.falsification_failed(config.falsification_alpha)
        lv = link_verdict(u.link, a.q, failed, config, sign, u.n_accounts)
        kind = quadrant(ex, lv.verdict)
        probability = (
            type_probability(ex, u.link, sign, m, lv.verdict) if kind != "Inconclusive" else None
        )
        fit = u.link if isinstance(u.link, LinkFit) else None
        nc, rev = u.negative_control, u.revenue if isinstance(u.revenue, LinkFit) else None
        rows_out.append({
            "business_unit": u.business_unit,
            "outcome_tested": u.outcome.name,
            "outcome_description": u.outcome.label,
            "execution_benchmark": ex.benchmark,
            "main_measure": config.main_measure,
            "controls": u.controls,
            "n_accounts": u.n_accounts,
            "n_account_months": u.n_rows,
            "n_events": u.n_events,
            "execution_score": _finite(ex.score),
            "execution_ci_low": _finite(ex.ci_low),
            "execution_ci_high": _finite(ex.ci_high),
            "execution_level": ex.level,
            "execution_side_probability": ex.p_side,
            "link_effect": fit.effect if fit else None,
            "link_se": fit.se if fit else None,
            "link_ci_low": fit.ci[0] if fit else None,
            "link_ci_high": fit.ci[1] if fit else None,
            "link_bound": sign * one_sided_bound(fit, sign) if fit else None,
            "link_hazard_ratio": math.exp(fit.effect) if fit and u.outcome.kind == "event" else None,
            "link_converged": fit.converged if fit else None,
            "link_effect_shrunk": a.shrunk,
            "link_shrunk_ci_low": a.shrunk - Z95 * a.shrunk_se if a.shrunk is not None else None,
            "link_shrunk_ci_high": a.shrunk + Z95 * a.shrunk_se if a.shrunk is not None else None,
            "p_value": fit.p_expected_direction if fit else None,
            "q_value": a.q,
            "mde": fit.mde if fit else None,
            "materiality_threshold": sign * m,
            "link_verdict": lv.verdict,
            "link_reason": lv.reason,
            "link_side_probability": (
                link_probability(fit, sign, m, lv.verdict)
                if fit and lv.verdict != "inconclusive" else None
            ),
            "nps_nonresponse_effect": fit.nonresponse_effect if fit else None,
            "nps_nonresponse_se": fit.nonresponse_se if fit else None,
            "permutation_p": u.permutation_p,
            "negative_control_effect": nc.effect,
            "negative_control_p": nc.p_value,
            "negative_control_events": nc.events,
            "falsification_passed": not failed if fit else None,
            "revenue_effect": rev.effect if rev else None,
            "revenue_ci_low": rev.ci[0] if rev else None,
            "revenue_ci_high": rev.ci[1] if rev else None,
            "quadrant": kind,
            "quadrant_probability": probability,
            "confidence": confidence(probability, ex, config.established_probability),
            "recommended_action": ACTIONS[kind],
            "accounts_needed": lv.accounts_needed,
            "method_version": METHOD_VERSION,
        })  # fmt: skip
    units_frame = pl.DataFrame(rows_out, schema=UNIT_SCHEMA)
    company = _company(units_frame, fitted, pooled_by_outcome, config, n_accounts)
    metric_rows = [
        {
            "business_unit": ml.business_unit, "metric": ml.metric, "description": ml.description,
            "effect": ml.fit.effect if isinstance(ml.fit, LinkFit) else None,
            "se": ml.fit.se if isinstance(ml.fit, LinkFit) else None,
            "p_value": ml.fit.p_two_sided if isinstance(ml.fit, LinkFit) else None,
            "n_rows": ml.n_rows, "accounts_measured": ml.accounts_measured,
        }
        for u in fitted for ml in u.metrics
    ]  # fmt: skip
    return units_frame, company, pl.DataFrame(metric_rows, schema=METRIC_SCHEMA)


def _finite(x: float) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _company(units: pl.DataFrame, fitted: list[UnitFit], pooled_by_outcome: dict,
             config: AlignmentConfig, n_accounts: int) -> pl.DataFrame:  # fmt: skip
    """One row per outcome tested: the pooled effect across the units testing it (random
    effects, for display) and their counts by verdict and type."""
    rows = []
    for name, outcome in OUTCOMES.items():
        of = units.filter(pl.col("outcome_tested") == name)
        if of.is_empty():
            continue
        p = pooled_by_outcome.get(name)
        event = outcome.kind == "event"
        rows.append({
            "outcome": name,
            "units": of.height,
            "units_fitted": int(of["link_effect"].is_not_null().sum()),
            "pooled_effect": p.mean if p else None,
            "pooled_ci_low": p.mean - Z95 * p.se if p else None,
            "pooled_ci_high": p.mean + Z95 * p.se if p else None,
            "pooled_hazard_ratio": math.exp(p.mean) if p and event else None,
            "between_unit_sd": math.sqrt(p.tau2) if p else None,
            "units_strong": int((of["link_verdict"] == "strong").sum()),
            "units_weak": int((of["link_verdict"] == "weak").sum()),
            "units_inconclusive": int((of["link_verdict"] == "inconclusive").sum()),
            **{f"units_{k.lower()}" + ("_type" if k == "Inconclusive" else ""):
               int((of["quadrant"] == k).sum()) for k in ACTIONS},
            "n_accounts": int(of["n_accounts"].sum()),
            "company_accounts": n_accounts,
            "n_events": int(of["n_events"].sum()),
            "main_measure": config.main_measure,
            "method_version": METHOD_VERSION,
        })  # fmt: skip
    return pl.DataFrame(rows, schema=COMPANY_SCHEMA)


_F, _I, _S, _B = pl.Float64, pl.Int64, pl.Utf8, pl.Boolean
UNIT_SCHEMA = {
    "business_unit": _S, "outcome_tested": _S, "outcome_description": _S,
    "execution_benchmark": _S, "main_measure": _S, "controls": _S, "n_accounts": _I,
    "n_account_months": _I, "n_events": _I, "execution_score": _F, "execution_ci_low": _F,
    "execution_ci_high": _F, "execution_level": _S, "execution_side_probability": _F,
    "link_effect": _F, "link_se": _F, "link_ci_low": _F, "link_ci_high": _F, "link_bound": _F,
    "link_hazard_ratio": _F, "link_converged": _B, "link_effect_shrunk": _F,
    "link_shrunk_ci_low": _F, "link_shrunk_ci_high": _F, "p_value": _F, "q_value": _F,
    "mde": _F, "materiality_threshold": _F, "link_verdict": _S, "link_reason": _S,
    "link_side_probability": _F, "nps_nonresponse_effect": _F, "nps_nonresponse_se": _F,
    "permutation_p": _F, "negative_control_effect": _F, "negative_control_p": _F,
    "negative_control_events": _I, "falsification_passed": _B, "revenue_effect": _F,
    "revenue_ci_low": _F, "revenue_ci_high": _F, "quadrant": _S, "quadrant_probability": _F,
    "confidence": _S, "recommended_action": _S, "accounts_needed": _I, "method_version": _S,
}  # fmt: skip
COMPANY_SCHEMA = {
    "outcome": _S, "units": _I, "units_fitted": _I, "pooled_effect": _F, "pooled_ci_low": _F,
    "pooled_ci_high": _F, "pooled_hazard_ratio": _F, "between_unit_sd": _F, "units_strong": _I,
    "units_weak": _I, "units_inconclusive": _I,
    **{f"units_{k.lower()}" + ("_type" if k == "Inconclusive" else ""): _I for k in ACTIONS},
    "n_accounts": _I, "company_accounts": _I, "n_events": _I, "main_measure": _S,
    "method_version": _S,
}  # fmt: skip
METRIC_SCHEMA = {
    "business_unit": _S, "metric": _S, "description": _S, "effect": _F, "se": _F,
    "p_value": _F, "n_rows": _I, "accounts_measured": _I,
}  # fmt: skip


# Memory one unit's work holds at its peak, per account-month it fits (the prepared rows, the
# narrow copy a fit filters from them, the compact design; bench/profile_unit.py measures it
# phase by phase). At L the largest unit (5.1 M account-months) peaked 2.86 GB above the
# memory held before it: 559 bytes each, rounded up (docs/BENCHMARKS.md). Used with
# models.memory_budget.
UNIT_BYTES_PER_ACCOUNT_MONTH = 600


def warehouse_stage(
    con: duckdb.DuckDBPyConnection, config: AlignmentConfig, panel_query: str,
    listing: pl.DataFrame, strategies: dict[str, UnitStrategy] | None = None,
    budget: float | None = None, on_unit: Callable[[str], None] | None = None,
) -> dict[str, pl.DataFrame]:  # fmt: skip
    """The alignment stage over a warehouse: every unit read on its own ($unit bound in
    panel_query) when its worker starts on it, standardised on the company's scale, fitted
    and released; then the across-unit summary. listing: the units (business_unit,
    last_month, accounts, account_months) in a fixed order. Returns the tables
    unit_alignment, company_alignment, unit_alignment_metrics, unit_drivers,
    unit_predictive_check, account_risk and risk_backtest (the drivers and the predictive
    check read the same rows; account_risk also the last complete month's accounts).
    on_unit: told of each unit's name when its work is done (progress)."""
    from models.drivers import unit_drivers
    from models.predictive import combine_backtests, combine_checks, scored_sql, unit_check

    strategies = strategies or {}
    scale = company_scale(con, "analytics.account_month")
    recent_from = recent_start(listing["last_month"].max(), config)

    def unit_work(unit: str):
        with con.cursor() as cursor:  # a connection of its own per worker
            rows = prepared(cursor, f"({panel_query})", scale, {"unit": unit},
                            keep=config.extra_features)  # fmt: skip
            # the accounts account_risk scores: next month not over, so not among the rows
            scored = prepared(cursor, f"({scored_sql()})", scale, {"unit": unit})
        outcome = strategies[unit].primary_outcome if unit in strategies else "retention"
        return (
            fit_unit(unit, rows, config, strategies.get(unit), recent_from),
            unit_drivers(unit, rows, outcome, seed=config.seed),
            unit_check(unit, rows, outcome, seed=config.seed, scored=scored),
        )

    done = map_units(
        unit_work, listing["business_unit"].to_list(), quiet=True,
        sizes=(listing["account_months"] * UNIT_BYTES_PER_ACCOUNT_MONTH).to_list(), budget=budget,
        on_done=on_unit,
    )  # fmt: skip
    units, company, metrics = summarise_units([d[0] for d in done], config,
                                              int(listing["accounts"].sum()))  # fmt: skip
    drivers = pl.DataFrame([r for d in done for r in d[1]], infer_schema_length=None)
    checks, risk = combine_checks([d[2] for d in done])
    backtest = combine_backtests([d[2] for d in done])
    # The second line of evidence beside the first: the logistic model's AUC gain.
    if checks.height:
        gain = checks.filter(pl.col("model") == "logistic_l2").select(
            "business_unit",
            pl.col("auc_gain").alias("predictive_auc_gain"),
            pl.col("auc_gain_ci_low").alias("predictive_auc_gain_ci_low"),
            pl.col("auc_gain_ci_high").alias("predictive_auc_gain_ci_high"),
        )
        units = units.join(gain, on="business_unit", how="left")
    return {
        "unit_alignment": units,
        "company_alignment": company,
        "unit_alignment_metrics": metrics,
        "unit_drivers": drivers,
        "unit_predictive_check": checks,
        "account_risk": risk,
        "risk_backtest": backtest,
    }
