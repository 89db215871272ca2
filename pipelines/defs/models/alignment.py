"""Models: the alignment test per business unit (analytics.unit_alignment), the company
summary per outcome (analytics.company_alignment), each CX metric's exploratory link
(analytics.unit_alignment_metrics), the key drivers, the predictive check and account risk.
This asset only wires: the statistics are the `models.alignment` package
(models.alignment.stage.warehouse_stage), the SQL it reads is in sql/models/.
"""

import json
import time
from pathlib import Path

import dagster as dg

from models.alignment import AT_RISK_SQL, PANEL_COLUMNS, AlignmentConfig
from models.alignment.stage import warehouse_stage
from pipelines.defs.contract_check import write_or_keep
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.model_cache import fingerprint, model_code
from pipelines.paths import SQL_DIR
from pipelines.progress import UnitsProgress, report
from pipelines.scorecard.names import display
from pipelines.sqlparams import for_units
from pipelines.strategy import StrategyError, load_strategy

UNIT_ALIGNMENT = dg.AssetKey(["analytics", "unit_alignment"])
COMPANY_ALIGNMENT = dg.AssetKey(["analytics", "company_alignment"])
ALIGNMENT_METRICS = dg.AssetKey(["analytics", "unit_alignment_metrics"])
UNIT_DRIVERS = dg.AssetKey(["analytics", "unit_drivers"])
PREDICTIVE_CHECK = dg.AssetKey(["analytics", "unit_predictive_check"])
ACCOUNT_RISK = dg.AssetKey(["analytics", "account_risk"])
RISK_BACKTEST = dg.AssetKey(["analytics", "risk_backtest"])
TABLES = {
    "unit_alignment": UNIT_ALIGNMENT,
    "company_alignment": COMPANY_ALIGNMENT,
    "unit_alignment_metrics": ALIGNMENT_METRICS,
    "unit_drivers": UNIT_DRIVERS,
    "unit_predictive_check": PREDICTIVE_CHECK,
    "account_risk": ACCOUNT_RISK,
    "risk_backtest": RISK_BACKTEST,
}
KEYS = tuple(TABLES.values())


def model_sql(name: str) -> str:
    return (SQL_DIR / "models" / f"{name}.sql").read_text()


def panel_sql(config: AlignmentConfig) -> str:
    """The panel query for one unit's rows ($unit)."""
    columns = ", ".join(dict.fromkeys((*PANEL_COLUMNS, *config.extra_features)))
    return for_units(model_sql("alignment_panel").replace("{columns}", columns), one_unit=True)


UNITS_SQL = model_sql("alignment_units").replace("{at_risk}", AT_RISK_SQL)


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
        dg.AssetSpec(
            RISK_BACKTEST,
            deps=[ACCOUNT_RISK],
            group_name="models",
            kinds={"duckdb", "scikitlearn"},
            description="account_risk's recipe replayed on each of the last six months with a "
            "known outcome, from models that never saw the month: Brier score, calibration "
            "slope and intercept, expected and observed churners, per unit.",
        ),
    ],
    check_specs=[dg.AssetCheckSpec("contract", asset=k, blocking=True) for k in KEYS],
    pool=WAREHOUSE_POOL,
)
def alignment(context: dg.AssetExecutionContext, cxalign: CxalignResource):
    config = cxalign.settings.alignment
    as_of = run_as_of(context)
    started = time.perf_counter()
    with cxalign.connect_for_models() as con:
        strategies = {}
        if cxalign.strategy_path:
            known = {r[0] for r in con.execute(
                "select business_unit from analytics.dim_business_unit").fetchall()}  # fmt: skip
            try:
                strategies = load_strategy(cxalign.strategy_path, known)
            except StrategyError as exc:
                raise dg.Failure(description=str(exc)) from exc
        strategy_text = Path(cxalign.strategy_path).read_text() if cxalign.strategy_path else ""
        digest = fingerprint(
            con, ["analytics.account_month", model_sql("alignment_hours_input")],
            json.dumps({"alignment": config.model_dump(), "strategy": strategy_text},
                       sort_keys=True, default=str),
            model_code("pipelines/defs/models/alignment.py"),
        )  # fmt: skip

        def compute():
            listing = con.sql(UNITS_SQL).pl()
            sizes = dict(zip(listing["business_unit"], listing["account_months"], strict=True))
            with UnitsProgress(context, "alignment", sizes) as progress:
                progress.start()
                frames = warehouse_stage(
                    con, config, panel_sql(config), listing, strategies,
                    cxalign.settings.models.memory_budget_bytes, on_unit=progress.unit_done,
                )  # fmt: skip
            return {name: frame.with_columns(as_of=as_of) for name, frame in frames.items()}

        # A quiet night: the panel the models read is what they read last time.
        out = write_or_keep(con, "alignment", digest, TABLES, as_of, context.run.run_id, compute)
        units = con.sql("select business_unit, quadrant from analytics.unit_alignment "
                        "order by business_unit").fetchall()  # fmt: skip
    seconds = time.perf_counter() - started
    # a name as the scorecards print it: an ESC in it would recolour the terminal
    summary = ", ".join(f"{display(unit)}: {kind}" for unit, kind in units)
    report(context, f"models   alignment: {summary}{out.note}  {seconds:5.1f}s")
    yield from out.events(TABLES, seconds)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[alignment])
