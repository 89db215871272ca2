"""Models: what a CX lever is worth per business unit (analytics.unit_whatif: each lever
moved to the company's best-quartile unit level, one at a time and all together) and the
fitted machinery `cxalign whatif` projects any other change with (analytics.unit_whatif_model).
This asset only wires: the statistics are models/whatif.py, the rows it reads
sql/models/whatif_rows.sql.
"""

import json
import time

import dagster as dg

from models.whatif import read_rows_units, warehouse_stage
from pipelines.defs.contract_check import write_or_keep
from pipelines.defs.models.alignment import UNIT_ALIGNMENT
from pipelines.defs.models.clv import UNIT_CLV
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.model_cache import code_files, fingerprint
from pipelines.progress import report
from pipelines.scorecard.names import display

UNIT_WHATIF = dg.AssetKey(["analytics", "unit_whatif"])
UNIT_WHATIF_MODEL = dg.AssetKey(["analytics", "unit_whatif_model"])
TABLES = {"unit_whatif": UNIT_WHATIF, "unit_whatif_model": UNIT_WHATIF_MODEL}
# The units' CLV fits, without the night's as-of date: with it, every new night's date
# made the what-if stage's inputs look new, and a quiet night refitted it (40.7 s of a
# 66.9 s quiet night at M).
CLV_SQL = ("select * exclude (as_of) from analytics.unit_clv where segment = 'All segments' "
           "order by business_unit")  # fmt: skip


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            UNIT_WHATIF,
            # after the alignment models: the scorecard reads both, and the what-if stage
            # would otherwise compete with them for the cores
            deps=[["analytics", "account_month"], UNIT_CLV, UNIT_ALIGNMENT],
            group_name="models",
            kinds={"duckdb", "numpy"},
            description="Per business unit: what each CX lever moved to the company's "
            "best-quartile unit level (and all together) is worth over 12 months in churned "
            "accounts avoided, MRR and CLV retained, with 95% account-bootstrap intervals and "
            "the grade of the evidence (association or within-account); a no-change backtest.",
        ),
        dg.AssetSpec(
            UNIT_WHATIF_MODEL,
            deps=[UNIT_WHATIF],
            group_name="models",
            kinds={"duckdb", "numpy"},
            description="The what-if hazard models' coefficients (estimate and every "
            "bootstrap replicate) and projection context per unit: what `cxalign whatif` "
            "projects any change with, without refitting.",
        ),
    ],
    check_specs=[dg.AssetCheckSpec("contract", asset=k, blocking=True) for k in TABLES.values()],
    pool=WAREHOUSE_POOL,
)
def whatif(context: dg.AssetExecutionContext, cxalign: CxalignResource):
    config = cxalign.settings.whatif
    clv_settings = cxalign.settings.clv
    as_of = run_as_of(context)
    started = time.perf_counter()
    with cxalign.connect_for_models() as con:
        digest = fingerprint(
            con, ["analytics.account_month", CLV_SQL],
            json.dumps({"whatif": config.model_dump(), "clv": clv_settings.model_dump()},
                       sort_keys=True, default=str),
            code_files("models/whatif.py", "sql/models/whatif_rows.sql",
                       "pipelines/defs/models/whatif.py"),
        )  # fmt: skip

        def compute():
            clv = {r["business_unit"]: r for r in con.sql(CLV_SQL).pl().iter_rows(named=True)}
            frames = warehouse_stage(con, config, read_rows_units(con), clv)
            return {name: frame.with_columns(as_of=as_of) for name, frame in frames.items()}

        out = write_or_keep(con, "whatif", digest, TABLES, as_of, context.run.run_id, compute)
        best = con.sql(
            "select business_unit, arg_max(lever, mrr_retained_per_year) "
            "from analytics.unit_whatif where lever <> 'all' "
            "and mrr_retained_per_year_ci_low > 0 group by 1 order by 1"
        ).fetchall()
    seconds = time.perf_counter() - started
    summary = ", ".join(f"{display(unit)}: {lever}" for unit, lever in best) or "no lever shown"
    report(context, f"models   what-if: {summary}{out.note}  {seconds:5.1f}s")
    yield from out.events(TABLES, seconds)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[whatif])
