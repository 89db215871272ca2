"""Models: the alignment test per business unit (analytics.unit_alignment), the company
summary (analytics.company_alignment) and each CX metric's exploratory link
(analytics.unit_alignment_metrics). The statistics are `models/alignment.py`.
"""

import json
import time
from pathlib import Path

import dagster as dg
import polars as pl

from models.alignment import (
    AT_RISK_SQL,
    PANEL_COLUMNS,
    AlignmentConfig,
    company_scale,
    fit_unit,
    prepared,
    recent_start,
    summarise_units,
)
from models.drivers import unit_drivers
from models.parallel import map_units
from models.predictive import combine_checks, unit_check
from pipelines.defs.contract_check import write_or_keep
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.model_cache import code_files, fingerprint
from pipelines.progress import report
from pipelines.sqlparams import for_units
from pipelines.strategy import StrategyError, load_strategy

UNIT_ALIGNMENT = dg.AssetKey(["analytics", "unit_alignment"])
COMPANY_ALIGNMENT = dg.AssetKey(["analytics", "company_alignment"])
ALIGNMENT_METRICS = dg.AssetKey(["analytics", "unit_alignment_metrics"])
UNIT_DRIVERS = dg.AssetKey(["analytics", "unit_drivers"])
PREDICTIVE_CHECK = dg.AssetKey(["analytics", "unit_predictive_check"])
ACCOUNT_RISK = dg.AssetKey(["analytics", "account_risk"])
TABLES = {
    "unit_alignment": UNIT_ALIGNMENT,
    "company_alignment": COMPANY_ALIGNMENT,
    "unit_alignment_metrics": ALIGNMENT_METRICS,
    "unit_drivers": UNIT_DRIVERS,
    "unit_predictive_check": PREDICTIVE_CHECK,
    "account_risk": ACCOUNT_RISK,
}
KEYS = tuple(TABLES.values())

# One unit's account-months (the columns the models read), with next month's outcomes for
# accounts still billed then: the MRR change, whether MRR grew (expansion) and the support
# hours they needed (cost to serve). {columns} and {units} are filled in by panel_sql(); an
# account belongs to one unit, so its next month is among the unit's rows.
PANEL_SQL = """
with unit_months as (
    select {columns} from analytics.account_month where {units}
),
hours as (
    select account_id, created_month as month, sum(handle_minutes)::double / 60 as hours
    from staging.stg_support_tickets
    where account_id in (select account_id from unit_months)
    group by all
)
select am.*,
       case when nx.mrr > 0 and am.log_mrr is not null then ln(nx.mrr) - am.log_mrr end
           as log_mrr_change_next,
       case when nx.mrr is not null then nx.mrr > am.mrr end as expanded_next_month,
       case when nx.mrr is not null then ln(1 + coalesce(h.hours, 0)) end as log_handle_hours_next
from unit_months as am
left join unit_months as nx
  on nx.account_id = am.account_id and nx.month = am.month + interval 1 month
left join hours as h
  on h.account_id = am.account_id and h.month = am.month + interval 1 month
"""
# What the panel query reads, for the fingerprint: the panel table itself (its recorded
# content: nothing to read) and the support hours of the months the panel holds (PANEL_SQL
# joins an account's hours only to a next month that has a panel row). The hours of the
# month in progress are left out, so a new day of tickets keeps the results.
HOURS_INPUT_SQL = """
select account_id, created_month as month, sum(handle_minutes) as minutes
from staging.stg_support_tickets
where created_month <= (select max(month) from analytics.account_month)
group by all
"""
UNITS_SQL = f"""
select business_unit, min(account_id) as first_account, max(month) as last_month,
       count(distinct account_id) as accounts, count(*) as account_months
from analytics.account_month
where {AT_RISK_SQL}
group by business_unit
order by first_account  -- the order units_of() gives a whole panel: results repeat exactly
"""


# Memory one unit's work holds at its peak, per account-month it fits (the prepared rows, the
# narrow copy a fit filters from them, the compact design; bench/profile_unit.py measures it
# phase by phase). At L the largest unit (5.1 M account-months) peaked 2.86 GB above the
# memory held before it: 559 bytes each, rounded up (docs/BENCHMARKS.md). Used with
# models.memory_budget.
UNIT_BYTES_PER_ACCOUNT_MONTH = 600


def panel_sql(config: AlignmentConfig) -> str:
    """The panel query for one unit's rows ($unit)."""
    columns = ", ".join(dict.fromkeys((*PANEL_COLUMNS, *config.extra_features)))
    return for_units(PANEL_SQL.replace("{columns}", columns), one_unit=True)


def alignment_config(cxalign: CxalignResource) -> AlignmentConfig:
    a = cxalign.settings.alignment
    return AlignmentConfig(
        main_measure=a.main_measure,
        materiality_hr=a.materiality_hr,
        fdr_q=a.fdr_q,
        permutations=a.permutations,
        min_negative_control_events=a.min_negative_control_events,
        execution_months=a.execution_months,
        execution_targets=a.execution_targets,
        bootstrap_replicates=a.bootstrap_replicates,
        established_probability=a.established_probability,
        seed=a.seed,
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            UNIT_ALIGNMENT,
            deps=[
                ["analytics", "account_month"],
                ["analytics", "dim_business_unit"],
                ["staging", "stg_support_tickets"],
            ],
            group_name="models",
            kinds={"duckdb", "statsmodels"},
            description="Per business unit: execution, link (cloglog hazard), falsification, "
            "power, verdict, CX type with its probability and confidence, recommended action.",
        ),
        dg.AssetSpec(
            COMPANY_ALIGNMENT,
            deps=[UNIT_ALIGNMENT],
            group_name="models",
            kinds={"duckdb"},
            description="Pooled link across units and counts by type.",
        ),
        dg.AssetSpec(
            ALIGNMENT_METRICS,
            deps=[UNIT_ALIGNMENT],
            group_name="models",
            kinds={"duckdb", "statsmodels"},
            description="Each CX metric's link to churn per unit (exploratory).",
        ),
        dg.AssetSpec(
            UNIT_DRIVERS,
            deps=[UNIT_ALIGNMENT],
            group_name="models",
            kinds={"duckdb"},
            description="Key drivers per unit: LMG relative importance of each CX metric, "
            "with bootstrap intervals (descriptive).",
        ),
        dg.AssetSpec(
            PREDICTIVE_CHECK,
            deps=[UNIT_ALIGNMENT],
            group_name="models",
            kinds={"duckdb", "scikitlearn"},
            description="Out-of-sample check: what CX adds to churn prediction (AUC, Brier) "
            "under a time split, per unit and model.",
        ),
        dg.AssetSpec(
            ACCOUNT_RISK,
            deps=[PREDICTIVE_CHECK],
            group_name="models",
            kinds={"duckdb", "scikitlearn"},
            description="Calibrated churn risk of each active account over the next three "
            "months, with its main CX drivers, for customer success.",
        ),
    ],
    check_specs=[dg.AssetCheckSpec("contract", asset=k, blocking=True) for k in KEYS],
    pool=WAREHOUSE_POOL,
)
def alignment(context: dg.AssetExecutionContext, cxalign: CxalignResource):
    config = alignment_config(cxalign)
    as_of = run_as_of(context)
    started = time.perf_counter()
    with cxalign.connect_for_models() as con:
        strategies = {}
        if cxalign.strategy_path:
            known = {
                r[0]
                for r in con.execute(
                    "select business_unit from analytics.dim_business_unit"
                ).fetchall()
            }
            try:
                strategies = load_strategy(cxalign.strategy_path, known)
            except StrategyError as exc:
                raise dg.Failure(description=str(exc)) from exc
        digest = fingerprint(
            con,
            ["analytics.account_month", HOURS_INPUT_SQL],
            json.dumps({"alignment": cxalign.settings.alignment.model_dump(),
                        "strategy": Path(cxalign.strategy_path).read_text() if cxalign.strategy_path else ""},
                       sort_keys=True, default=str),
            code_files("models/alignment.py", "models/drivers.py", "models/predictive.py",
                       "models/cluster.py", "models/parallel.py",
                       "pipelines/defs/models/alignment.py"),
        )  # fmt: skip

        def compute() -> dict[str, pl.DataFrame]:
            # One unit at a time (a worker per core), each read from the warehouse when its
            # worker starts on it and released when done: memory follows the largest units,
            # not the company. Every unit is standardised on the company's scale.
            scale = company_scale(con, "analytics.account_month")
            listing = con.sql(UNITS_SQL).pl()
            recent_from = recent_start(listing["last_month"].max(), config)
            query = panel_sql(config)

            def unit_work(unit: str):
                with con.cursor() as cursor:  # a connection of its own per worker
                    rows = prepared(
                        cursor, f"({query})", scale, {"unit": unit}, keep=config.extra_features
                    )
                outcome = strategies[unit].primary_outcome if unit in strategies else "retention"
                return (
                    fit_unit(unit, rows, config, strategies.get(unit), recent_from),
                    unit_drivers(unit, rows, outcome, seed=config.seed),
                    unit_check(unit, rows, outcome, seed=config.seed),
                )

            done = map_units(
                unit_work,
                listing["business_unit"].to_list(),
                quiet=True,
                sizes=(listing["account_months"] * UNIT_BYTES_PER_ACCOUNT_MONTH).to_list(),
                budget=cxalign.settings.models.memory_budget_bytes,
            )
            units, company, metrics = summarise_units(
                [d[0] for d in done], config, int(listing["accounts"].sum())
            )
            drivers = pl.DataFrame([r for d in done for r in d[1]], infer_schema_length=None)
            checks, risk = combine_checks([d[2] for d in done])
            # The second line of evidence beside the first: the logistic model's AUC gain.
            if checks.height:
                gain = checks.filter(pl.col("model") == "logistic_l2").select(
                    "business_unit",
                    pl.col("auc_gain").alias("predictive_auc_gain"),
                    pl.col("auc_gain_ci_low").alias("predictive_auc_gain_ci_low"),
                    pl.col("auc_gain_ci_high").alias("predictive_auc_gain_ci_high"),
                )
                units = units.join(gain, on="business_unit", how="left")
            stamp = pl.lit(as_of).alias("as_of")
            return {
                "unit_alignment": units.with_columns(stamp),
                "company_alignment": company.with_columns(stamp),
                "unit_alignment_metrics": metrics.with_columns(stamp),
                "unit_drivers": drivers.with_columns(stamp),
                "unit_predictive_check": checks.with_columns(stamp),
                "account_risk": risk.with_columns(stamp),
            }

        # A quiet night: the panel the models read is what they read last time.
        out = write_or_keep(con, "alignment", digest, TABLES, as_of, context.run.run_id, compute)
        units = (
            out.frames["unit_alignment"]
            if out.frames
            else con.sql("select * from analytics.unit_alignment order by business_unit").pl()
        )
    seconds = time.perf_counter() - started
    summary = ", ".join(
        f"{r['business_unit']}: {r['quadrant']}" for r in units.iter_rows(named=True)
    )
    report(context, f"models   alignment: {summary}{out.note}  {seconds:5.1f}s")
    for name, key in TABLES.items():
        yield dg.MaterializeResult(
            asset_key=key,
            metadata={
                "dagster/row_count": out.rows[name],
                "seconds": round(seconds, 2),
                "reused": out.reused,
            },
        )
    yield from out.results


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[alignment])
