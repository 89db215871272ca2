"""Models: the Support Contribution Index per business unit and month, and its five benefits.

The index is `models/sci.py` (sci-v1); this asset reads the unit marts, tickets, survey
answers and the account-month panel from the warehouse and writes
analytics.unit_month_sci and analytics.sci_benefits.
"""

import json
import time

import dagster as dg
import polars as pl

from models.parallel import map_units
from models.sci import parse_config, unit_sci
from pipelines.defs.contract_check import write_or_keep
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.model_cache import fingerprint, model_code
from pipelines.progress import UnitsProgress, report
from pipelines.sqlparams import for_units, used_params

UNIT_MONTH_SCI = dg.AssetKey(["analytics", "unit_month_sci"])
SCI_BENEFITS = dg.AssetKey(["analytics", "sci_benefits"])

MARTS_SQL = """
select s.business_unit, s.month,
       s.first_response_minutes_median, s.first_response_minutes_p90,
       s.resolution_minutes_median, s.fcr_rate, s.reopen_rate,
       c.csat_mean, c.csat_top2_share, c.ces_mean,
       s.tickets_per_100_accounts, s.handle_hours, s.cost_per_ticket
from analytics.unit_month_support as s
join analytics.unit_month_cx as c using (level, business_unit, month)
where s.level = 'unit'
  and s.month < date_trunc('month', $as_of::date + 1)  -- complete months: ended by as-of
order by s.business_unit, s.month
"""
TICKETS_SQL = """
select a.business_unit, t.created_month as month, t.account_id,
       t.first_response_minutes, t.resolution_minutes,
       t.first_contact_resolution::int as fcr, t.is_reopened::int as reopened
from staging.stg_support_tickets as t join staging.stg_accounts as a using (account_id)
where t.created_month < date_trunc('month', $as_of::date + 1) and {units}
order by t.ticket_id  -- a fixed order: resamples repeat exactly on a rerun
"""
RESPONSES_SQL = """
select a.business_unit, r.response_month as month, r.account_id, r.survey_type, r.score,
       r.is_csat_top2::int as top2
from staging.stg_survey_responses as r join staging.stg_accounts as a using (account_id)
where r.survey_type in ('csat', 'ces')
  and r.response_month < date_trunc('month', $as_of::date + 1) and {units}
order by r.response_id
"""
# The per-account inputs are read one unit at a time ({units}: `business_unit = $unit`),
# each by the worker that scores the unit; the fingerprint reads tickets and answers for
# every unit (complete months only) and takes the panel table's recorded content.
PANEL_SQL = """
select account_id, business_unit, month, segment, log_mrr, tenure_months, mrr,
       fcr_rate, csat_mean, first_response_minutes_median, churned_next_month
from analytics.account_month
where is_at_risk_next_month and fcr_rate is not null and {units}
order by month, account_id  -- each month's window is a run of rows (models.sci.OutcomePanel)
"""


UNIT_INPUTS = (TICKETS_SQL, RESPONSES_SQL, PANEL_SQL)
# Memory one unit's scoring holds, per account-month of the unit (its tickets, answers and
# panel rows, the bootstrap's weights): at L the stage peaked at 9.1 GB with two units in
# flight and 6.7 GB with one, about 2.4 GB for one of the largest units (5.4 M
# account-months): 450 bytes each, rounded up. Used with models.memory_budget.
UNIT_BYTES_PER_ACCOUNT_MONTH = 500
UNIT_SIZES_SQL = "select business_unit, count(*) from analytics.account_month group by all"


def benefits(sci: pl.DataFrame) -> pl.DataFrame:
    """The five benefits of the SCI framing, each with its proxy or 'not measured'."""
    latest = sci.sort("month").group_by("business_unit").last()
    rows = []
    for r in latest.iter_rows(named=True):
        base = {"business_unit": r["business_unit"], "month": r["month"]}
        rows += [
            {**base, "benefit": "obstacles removed", "status": "measured",
             "proxy": "first-contact resolution rate of the month's tickets",
             "value": r["fcr_rate_value"], "ci_low": None, "ci_high": None, "unit": "share"},
            {**base, "benefit": "risk mitigated", "status": "measured" if r["retained_mrr"] is not None else "not estimated",
             "proxy": "monthly MRR retained in association with well-resolved tickets "
                      "(adjusted next-month retention lift x MRR resolved well)",
             "value": r["retained_mrr"], "ci_low": r["retained_mrr_ci_low"],
             "ci_high": r["retained_mrr_ci_high"], "unit": "currency per month"},
            {**base, "benefit": "relationship health improved", "status": "measured",
             "proxy": "CSAT top-2-box share after tickets", "value": r["csat_top2_value"],
             "ci_low": None, "ci_high": None, "unit": "share"},
            {**base, "benefit": "adoption accelerated", "status": "not measured",
             "proxy": "needs product-usage data (feature adoption after support contact), "
                      "which cxalign does not ingest",
             "value": None, "ci_low": None, "ci_high": None, "unit": None},
            {**base, "benefit": "insights applied", "status": "not measured",
             "proxy": "needs a record of product or process changes traced to support "
                      "feedback, which cxalign does not ingest",
             "value": None, "ci_low": None, "ci_high": None, "unit": None},
        ]  # fmt: skip
    return pl.DataFrame(rows, infer_schema_length=None)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            UNIT_MONTH_SCI,
            deps=[
                ["analytics", "unit_month_support"],
                ["analytics", "unit_month_cx"],
                ["analytics", "account_month"],
                ["staging", "stg_support_tickets"],
                ["staging", "stg_survey_responses"],
            ],
            group_name="models",
            kinds={"duckdb", "numpy"},
            description="Support Contribution Index (sci-v1) per business unit and month, with "
            "its bootstrap interval, pillar and component scores.",
        ),  # fmt: skip
        dg.AssetSpec(
            SCI_BENEFITS,
            deps=[UNIT_MONTH_SCI],
            group_name="models",
            kinds={"duckdb"},
            description="The five benefits of support, each with its proxy or 'not measured'.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec("contract", asset=UNIT_MONTH_SCI, blocking=True),
        dg.AssetCheckSpec("contract", asset=SCI_BENEFITS, blocking=True),
    ],
    pool=WAREHOUSE_POOL,
)
def sci(context: dg.AssetExecutionContext, cxalign: CxalignResource):
    config = parse_config(cxalign.settings.sci)
    as_of = run_as_of(context)
    started = time.perf_counter()
    bind = {"as_of": as_of}
    # The panel's rows come from one table: its recorded content stands for reading them.
    inputs = [MARTS_SQL, *(for_units(q, one_unit=False) for q in (TICKETS_SQL, RESPONSES_SQL)),
              "analytics.account_month"]  # fmt: skip
    outputs = {"unit_month_sci": UNIT_MONTH_SCI, "sci_benefits": SCI_BENEFITS}
    with cxalign.connect_for_models() as con:
        # Complete months only: a new day changes none of them, so a quiet night keeps these.
        digest = fingerprint(
            con, inputs, json.dumps(config._raw, sort_keys=True),
            model_code("pipelines/defs/models/sci.py"),
            params=bind,
        )  # fmt: skip

        def compute() -> dict[str, pl.DataFrame]:
            marts = con.execute(MARTS_SQL, used_params(MARTS_SQL, bind)).pl()
            by_unit = marts.partition_by("business_unit", as_dict=True, maintain_order=True)

            def one(unit: str) -> list[dict]:
                with con.cursor() as cursor:  # a connection of its own per worker
                    tickets, responses, panel = (
                        cursor.execute(q, used_params(q, {**bind, "unit": unit})).pl()
                        for q in (for_units(q, one_unit=True) for q in UNIT_INPUTS)
                    )
                return unit_sci(unit, by_unit[(unit,)], tickets, responses, panel, config)

            units = [unit for (unit,) in by_unit]
            account_months = dict(con.execute(UNIT_SIZES_SQL).fetchall())
            sizes = [account_months.get(u, 0) * UNIT_BYTES_PER_ACCOUNT_MONTH for u in units]
            budget = cxalign.settings.models.memory_budget_bytes
            with UnitsProgress(context, "SCI", dict(zip(units, sizes, strict=True))) as progress:
                progress.start()
                done = map_units(one, units, sizes=sizes, budget=budget,
                                 on_done=progress.unit_done)  # fmt: skip
            rows = [row for unit_rows in done for row in unit_rows]
            frame = pl.DataFrame(rows, infer_schema_length=None).with_columns(
                pl.lit(as_of).alias("as_of"),
                pl.lit(json.dumps(config._raw, sort_keys=True)).alias("sci_config"),
            )
            benefit_frame = benefits(frame).with_columns(pl.lit(as_of).alias("as_of"))
            return {"unit_month_sci": frame, "sci_benefits": benefit_frame}

        out = write_or_keep(con, "sci", digest, outputs, as_of, context.run.run_id, compute)
    seconds = time.perf_counter() - started
    report(
        context,
        f"models   SCI: {out.rows['unit_month_sci']} unit-months ({config.version}){out.note}  "
        f"{seconds:5.1f}s",
    )
    yield dg.MaterializeResult(
        asset_key=UNIT_MONTH_SCI,
        metadata={
            "dagster/row_count": out.rows["unit_month_sci"], "seconds": round(seconds, 2),
            "reused": out.reused,
        },
    )  # fmt: skip
    yield dg.MaterializeResult(
        asset_key=SCI_BENEFITS, metadata={"dagster/row_count": out.rows["sci_benefits"]}
    )
    yield from out.results


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[sci])
