"""Warehouse: one asset per SQL file in sql/ (staging views, intermediate and mart tables).

Dependencies come from the tables each file names. Every table in `analytics`
gets its COMMENT ONs from its contract and a blocking `contract` check (columns,
types, NULLs, key); the revenue bridge and the panel carry the blocking
reconciliations. The SQL and the checks live in `sql/` and `pipelines/marts.py`.
"""

import time

import dagster as dg

from pipelines.defs.contract_check import contract_check
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.marts import RECONCILIATIONS, analyst_contracts
from pipelines.progress import report
from pipelines.sqlrunner import SqlModel, WarehouseParams, build_if_changed, build_order

# Reconciliations, by the table that carries them as blocking checks.
RECONCILED_ON = {
    "analytics.unit_month_revenue": (
        "units_sum_to_company",
        "ending_equals_next_starting",
        "movements_add_up",
    ),
    "analytics.account_month": ("account_months_have_a_known_unit",),
}
# Dependencies a check needs that the SQL itself does not name.
EXTRA_DEPS = {"analytics.account_month": ("analytics.dim_business_unit",)}


def _key(relation: str) -> dg.AssetKey:
    return dg.AssetKey(relation.split("."))


def _header(model: SqlModel) -> str:
    return " ".join(ln for ln in model.header if ln and not ln.startswith("materialized:"))


def warehouse_params(context, cxalign: CxalignResource) -> WarehouseParams:
    w = cxalign.settings.warehouse
    return WarehouseParams(
        as_of=run_as_of(context),
        cx_window_months=w.cx_window_months,
        notice_lag_months=w.notice_lag_months,
    )


def _sql_asset(model: SqlModel) -> dg.AssetsDefinition:
    key = _key(model.relation)
    contract = analyst_contracts().get(model.name) if model.schema == "analytics" else None
    checks = []
    if contract is not None:
        checks.append(
            dg.AssetCheckSpec(
                "contract",
                asset=key,
                blocking=True,
                description=f"columns, types, NULLs and key as data_contracts/{model.name}.yml says",
            )
        )
    for name in RECONCILED_ON.get(model.relation, ()):
        checks.append(dg.AssetCheckSpec(name, asset=key, blocking=True))
    deps = sorted(model.refs | set(EXTRA_DEPS.get(model.relation, ())))

    @dg.asset(
        key=key,
        deps=[_key(d) for d in deps],
        group_name=f"warehouse_{model.layer}",
        kinds={"duckdb", "sql"},
        pool=WAREHOUSE_POOL,
        description=_header(model),
        check_specs=checks,
        metadata={
            "sql": f"sql/{model.layer}/{model.path.name}",
            "materialized": model.materialization,
        },
    )
    def _asset(context: dg.AssetExecutionContext, cxalign: CxalignResource) -> dg.MaterializeResult:
        params = warehouse_params(context, cxalign)
        started = time.perf_counter()
        results = []
        with cxalign.connect() as con:
            rows, kept = build_if_changed(con, model, params, context.run.run_id)
            if contract is not None:
                results.append(contract_check(con, model.name))
            for name in RECONCILED_ON.get(model.relation, ()):
                breaking = con.execute(RECONCILIATIONS[name]).fetchmany(5)
                results.append(
                    dg.AssetCheckResult(
                        check_name=name,
                        passed=not breaking,
                        description=(
                            f"{model.relation}: {name.replace('_', ' ')} fails, e.g. {breaking}"
                            if breaking
                            else None
                        ),
                    )
                )
        seconds = time.perf_counter() - started
        if rows is not None:
            note = "  (inputs unchanged: kept)" if kept else ""
            report(
                context,
                f"warehouse {model.relation:<36} {rows:>12,} rows  {seconds:5.1f}s{note}",
            )
        metadata = {"seconds": round(seconds, 2), "kept": kept}
        if rows is not None:
            metadata["dagster/row_count"] = rows
        return dg.MaterializeResult(metadata=metadata, check_results=results)

    return _asset


warehouse_assets = [_sql_asset(m) for m in build_order()]


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=warehouse_assets)
