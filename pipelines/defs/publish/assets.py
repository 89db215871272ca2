"""Publish: the finished night becomes the analysts' warehouse, atomically.

Runs last; Dagster runs it only when every upstream asset materialised and every
blocking check passed, so a failed night leaves the previous warehouse in place.
"""

import dagster as dg

from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource
from pipelines.progress import report
from pipelines.warehouse import publish


def published_deps() -> list[dg.AssetKey]:
    from pipelines.contracts import source_contracts

    return [dg.AssetKey(["staging", s]) for s in source_contracts()]


@dg.asset(
    key=["warehouse", "published"],
    deps=published_deps(),
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description="The analysts' DuckDB file, replaced in one atomic rename after a complete night.",
)
def published_warehouse(
    context: dg.AssetExecutionContext, cxalign: CxalignResource
) -> dg.MaterializeResult:
    path = publish(cxalign.work_db, cxalign.warehouse_path)
    size_mb = path.stat().st_size / 1e6
    report(context, f"publish  {path} ({size_mb:,.1f} MB)")
    return dg.MaterializeResult(metadata={"path": str(path), "size_mb": round(size_mb, 1)})
