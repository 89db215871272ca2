"""Publish: the finished night becomes the analysts' warehouse and the leaders' scorecards,
together and atomically (pipelines/warehouse.py, "Publication").

Runs last; Dagster runs it only when every upstream asset materialised and every
blocking check passed, so a failed night leaves the previous warehouse in place.
"""

import dagster as dg

from pipelines.contracts import source_contracts
from pipelines.defs.contract_check import contract_check
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.progress import report
from pipelines.sqlrunner import build_order
from pipelines.warehouse import building_dir, publish_night, record_version

# The ingestion log tables are written by every staged asset; their contracts
# are checked here, once all sources are staged.
LOG_TABLES = ("quarantine", "not_yet_known", "ingest_runs")


def _upstream() -> list[dg.AssetKey]:
    """Everything that writes an analytics table: the SQL marts and the models."""
    from pipelines.defs.models.alignment import KEYS as ALIGNMENT_KEYS
    from pipelines.defs.models.clv import ACCOUNT_CLV, UNIT_CLV
    from pipelines.defs.models.sci import SCI_BENEFITS, UNIT_MONTH_SCI

    marts = [dg.AssetKey(m.relation.split(".")) for m in build_order() if m.schema == "analytics"]
    staged = [dg.AssetKey(["staging", s]) for s in source_contracts()]
    from pipelines.defs.scorecards.assets import SCORECARDS

    models = [ACCOUNT_CLV, UNIT_CLV, UNIT_MONTH_SCI, SCI_BENEFITS, *ALIGNMENT_KEYS]
    return staged + marts + models + [SCORECARDS]


@dg.asset(
    key=["warehouse", "published"],
    deps=_upstream(),
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description=(
        "The analysts' DuckDB file and the leaders' scorecards: the working database, "
        "its live contents copied beside tonight's scorecards into a new version, which one "
        "rename publishes once every check has passed."
    ),
)
def published_warehouse(
    context: dg.AssetExecutionContext, cxalign: CxalignResource
) -> dg.MaterializeResult:
    with cxalign.connect() as con:
        record_version(con, context.run.run_id, run_as_of(context))
        checks = [contract_check(con, name) for name in (*LOG_TABLES, "warehouse_version")]
        problems = [c.description for c in checks if not c.passed]
        versions = con.execute(
            "select table_name, row_count from analytics.warehouse_version order by 1"
        ).fetchall()
    if problems:
        raise dg.Failure(description="not published: " + "; ".join(problems[:5]))
    path = publish_night(
        cxalign.work_db,
        building_dir(cxalign.out_dir),
        cxalign.warehouse_path,
        cxalign.out_dir,
        run_id=context.run.run_id,
        as_of=run_as_of(context),
        log=lambda line: report(context, line),
        duck=cxalign.settings.duckdb,
    )
    size_mb = path.stat().st_size / 1e6
    report(
        context,
        f"publish  {cxalign.warehouse_path} and {cxalign.out_dir}, version "
        f"{path.parent.name} ({size_mb:,.1f} MB)",
    )
    return dg.MaterializeResult(
        metadata={
            "path": str(cxalign.warehouse_path),
            "version": path.parent.name,
            "size_mb": round(size_mb, 1),
            "tables": dg.MetadataValue.md(
                "| table | rows |\n|---|---|\n"
                + "\n".join(f"| analytics.{t} | {n:,} |" for t, n in versions)
            ),
        }
    )
