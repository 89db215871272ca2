"""The panel and its features: which account-months a model reads, the CX metrics as
numbers where higher is better, their z-scores on the company's one scale, the composite,
and the indicators of what was not measured.

Standardising runs in DuckDB, over the warehouse (one unit at a time) or over an in-memory
frame alike; the company's means and SDs are computed once (company_scale) so that a unit's
numbers do not depend on which other unit is in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, localcontext

import duckdb
import polars as pl

from models.alignment.config import COMPOSITE, METRICS, Outcome

# The five CX metrics as numbers where higher is better (NULL where not measured), in SQL.
METRIC_SQL = {
    "nps": "case nps_category_latest when 'promoter' then 1.0 when 'passive' then 0.0 "
           "when 'detractor' then -1.0 end",
    "csat": "csat_mean::double",
    "ces": "ces_mean::double",
    # (not greatest(): it skips a NULL, and a missing median must stay missing)
    "first_response": "-ln(case when first_response_minutes_median < 1 then 1 "
                      "else first_response_minutes_median end)",
    "fcr": "fcr_rate::double",
}  # fmt: skip
# The account-months a next-month model can use: the next month is observed, and the
# account is billed this month.
AT_RISK_SQL = "is_at_risk_next_month and log_mrr is not null"
# Columns of analytics.account_month the models read (besides config.extra_features).
# region and plan are optional: a panel without them (or with one level) fits without them.
PANEL_COLUMNS = (
    "account_id", "business_unit", "month", "segment", "region", "plan", "tenure_months",
    "mrr", "log_mrr", "log_mrr_window_end", "log_mrr_change_prior_3m", "churned_next_month",
    "churned_next_month_voluntary", "churned_next_month_involuntary", "is_at_risk_next_month",
    "nps_category_latest", "csat_mean", "ces_mean", "first_response_minutes_median", "fcr_rate",
)  # fmt: skip
OPTIONAL_COLUMNS = ("region", "plan")
# The size control: log MRR at the end of the CX window (a downgrade in the notice month is
# an outcome, not a control); an account not yet billed then (new since) takes its first
# month's MRR and a flag.
SIZE_SQL = (
    "coalesce(log_mrr_window_end, log_mrr) as log_mrr_control, "
    "log_mrr_window_end is null as new_since_window"
)
# What was not measured, as terms of its own: NPS non-response (informative: never imputed
# away) and how many of the five metrics the composite averages.
MEASURED_SQL = (
    "coalesce(nps_category_latest, 'no_response') = 'no_response' as nps_no_response, ("
    + " + ".join(f"(({e}) is not null)::int" for e in METRIC_SQL.values())
    + ") as cx_metrics_observed"
)


@dataclass(frozen=True)
class Scale:
    """The company's scale: each metric's mean and SD, and the composite's, over the
    company's at-risk account-months. Every unit is measured on this one scale."""

    metrics: dict[str, tuple[float, float]]  # metrics with spread only
    composite: tuple[float, float] | None


def _z(metric: str, mean: float, sd: float) -> str:
    """SQL: the metric's z-score (repr keeps every bit of the float; ::double keeps DuckDB
    from reading the literal as a DECIMAL)."""
    return f"(({metric} - {mean!r}::double) / {sd!r}::double)"


def _raw_composite(metrics: dict[str, tuple[float, float]],
                   expressions: dict[str, str] | None = None) -> str:  # fmt: skip
    """SQL: the mean of the available z-scores (NULL when none is). expressions: each
    metric's SQL (default: a column of its name)."""
    z = [_z(f"({expressions[m]})" if expressions else m, mu, sd) for m, (mu, sd) in metrics.items()]
    total = " + ".join(f"coalesce({e}, 0)" for e in z)
    count = " + ".join(f"({e} is not null)::int" for e in z)
    return f"({total}) / nullif({count}, 0)"


# Each value is rounded to this many decimals and summed as an exact DECIMAL(38, 12): the
# sum is then the same whatever order DuckDB's threads add the rows in (a DOUBLE sum may
# differ in its last bit from one run to the next, which every fit would carry downstream).
# The rounding moves a mean by at most 5e-13.
_EXACT = "decimal(38, 12)"


def _moments(con: duckdb.DuckDBPyConnection, source: str,
             expressions: dict[str, str]) -> dict[str, tuple[int, Decimal, Decimal]]:  # fmt: skip
    """Per expression over the at-risk rows of `source`: the count of non-NULL values, their
    sum and their sum of squares, exact (see _EXACT)."""
    parts = [
        f"count({e}), sum(({e})::{_EXACT}), sum((({e}) * ({e}))::{_EXACT})"
        for e in expressions.values()
    ]
    row = con.execute(f"select {', '.join(parts)} from {source} where {AT_RISK_SQL}").fetchone()
    return {
        name: (int(row[3 * i]), row[3 * i + 1] or Decimal(0), row[3 * i + 2] or Decimal(0))
        for i, name in enumerate(expressions)
    }


def _mean_sd(n: int, total: Decimal, squares: Decimal) -> tuple[float, float] | None:
    """Mean and SD (n - 1) from exact sums, or None with no spread (or fewer than 2 values)."""
    if n < 2:
        return None
    with localcontext() as ctx:
        ctx.prec = 60
        variance = (squares - total * total / n) / (n - 1)
        mean = total / n
    return (float(mean), math.sqrt(float(variance))) if variance > 0 else None


def company_scale(con: duckdb.DuckDBPyConnection, source: str) -> Scale:
    """Means and SDs of the metrics and of the composite over the at-risk rows of `source`
    (a table, or a frame registered on `con`). A metric with no spread (or no data) gets no
    z-score: it is NULL, like a missing answer.

    Two aggregate queries in DuckDB (the metrics, then the composite on their scale), with
    exact sums (_EXACT): the same figures on every run, and no row in Python. (Reading the
    company's rows into numpy to sum them in a fixed order held about 200 bytes per
    account-month: 4 GB at a million accounts, the alignment stage's peak.)
    """
    metrics = {}
    for m, moments in _moments(con, source, METRIC_SQL).items():
        scale = _mean_sd(*moments)
        if scale is not None:
            metrics[m] = scale
    if not metrics:
        return Scale(metrics, None)
    raw = {"composite": _raw_composite({m: metrics[m] for m in metrics}, METRIC_SQL)}
    return Scale(metrics, _mean_sd(*_moments(con, source, raw)["composite"]))


# Columns of the source that prepared() reads and does not return: the metrics replace the
# raw CX columns, the size control replaces the window-end MRR, and every row returned is at
# risk. At a million accounts a unit's rows are millions, and these columns were a fifth of
# their memory.
REPLACED_COLUMNS = (
    "nps_category_latest", "csat_mean", "ces_mean", "first_response_minutes_median",
    "fcr_rate", "is_at_risk_next_month", "mrr", "log_mrr_window_end",
)  # fmt: skip


def prepared(con: duckdb.DuckDBPyConnection, source: str, scale: Scale,
             params: dict | None = None, keep: tuple[str, ...] = ()) -> pl.DataFrame:  # fmt: skip
    """The at-risk rows of `source` with the metrics, their z-scores on the company's scale,
    the composite (the mean of the available z's, re-standardised), what was not measured
    (nps_no_response, cx_metrics_observed), the size control (log_mrr_control,
    new_since_window) and an integer code per account, by account and month. The
    REPLACED_COLUMNS are left out, except those in `keep` (a model's extra features)."""
    z = ", ".join(
        (_z(m, *scale.metrics[m]) if m in scale.metrics else "null::double") + f" as z_{m}"
        for m in METRIC_SQL
    )
    composite = (
        _z(f"({_raw_composite(scale.metrics)})", *scale.composite)
        if scale.composite
        else "null::double"
    )
    metrics_sql = ", ".join(f"{e} as {m}" for m, e in METRIC_SQL.items())
    # (limit 0: the columns without running the query; a relation made with parameters,
    # con.sql(..., params=...), runs it: 7 s for an L unit)
    empty = con.execute(f"select * from {source} limit 0", params or {})
    present = [d[0] for d in empty.description]
    if "log_mrr_window_end" not in present:
        raise ValueError(
            f"{source} has no log_mrr_window_end: the size control is log MRR at the end of "
            "the CX window (analytics.account_month has it)"
        )
    dropped = [c for c in REPLACED_COLUMNS if c in present and c not in keep]
    exclude = f"exclude ({', '.join(dropped)})" if dropped else ""
    query = f"""
        select * {exclude}, {composite} as {COMPOSITE}
        from (select *, {z} from (
            select *, {metrics_sql}, {MEASURED_SQL}, {SIZE_SQL}
            from {source} where {AT_RISK_SQL}))
        order by account_id, month
    """
    df = con.execute(query, params or {}).pl()
    return df.with_columns(
        (pl.col("account_id").rank("dense") - 1).cast(pl.UInt32).alias("account_code")
    )


def prepare(panel: pl.DataFrame) -> pl.DataFrame:
    """A whole panel in memory through prepared(), on its own company scale. (The nightly
    asset reads the warehouse one unit at a time instead, on the same scale.)"""
    con = duckdb.connect()
    try:
        con.register("panel", panel)
        return prepared(con, "panel", company_scale(con, "panel"))
    finally:
        con.close()


def outcome_rows(
    rows: pl.DataFrame, outcome: Outcome, columns: tuple[str, ...] | None = None
) -> pl.DataFrame:
    """The account-months at risk for an outcome, with its column not NULL; only `columns`
    (default: all), so the copy holds only what its fit reads."""
    if outcome.column not in rows.columns:
        return rows.head(0)
    at_risk = (
        ~pl.col("churned_next_month_involuntary")  # involuntary churn censors
        if outcome.name == "retention"
        else ~pl.col("churned_next_month")
    )
    return subset(rows, at_risk & pl.col(outcome.column).is_not_null(), columns)


def subset(rows: pl.DataFrame, keep: pl.Expr, columns: tuple[str, ...] | None) -> pl.DataFrame:
    """The rows where `keep` holds, in one copy of only `columns` (default: all)."""
    if columns is None:
        return rows.filter(keep)
    wanted = [c for c in dict.fromkeys(columns) if c in rows.columns]
    return rows.lazy().filter(keep).select(wanted).collect()


# What every design matrix reads (link.design), besides the measure and extra features.
DESIGN_COLUMNS = (
    "account_code", "month", "segment", "region", "plan", "tenure_months", "log_mrr_control",
    "new_since_window", "log_mrr_change_prior_3m", "nps_no_response", "cx_metrics_observed",
)  # fmt: skip
# What the fits read of a unit's prepared rows (besides config.extra_features); the
# metrics' own levels are for execution against targets.
FIT_COLUMNS = (
    *DESIGN_COLUMNS, COMPOSITE, *(f"z_{m}" for m in METRICS), *METRICS, "churned_next_month",
    "churned_next_month_voluntary", "churned_next_month_involuntary", "log_mrr_change_next",
    "expanded_next_month", "log_handle_hours_next",
)  # fmt: skip
