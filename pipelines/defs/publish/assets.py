"""Publish: the finished night becomes the analysts' warehouse and the leaders' scorecards,
together and atomically (pipelines/warehouse.py, "Publication").

Runs last; Dagster runs it only when every upstream asset materialised and every
blocking check passed in the same run, so a failed night leaves the previous warehouse in
place. That holds only for a run of the whole night: a run of a few assets (the UI's
"Materialize selected") would publish whatever the working database holds, a failed night's
rows included, with none of the night's gates in the run. So publishing refuses such a run,
and refuses a working database in which a source's staged rows did not pass every blocking
check (`pipelines.ingest.mark_passed`).
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.contracts import source_contracts
from pipelines.defs.contract_check import contract_check
from pipelines.defs.jobs import NIGHTLY_JOB
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.history import HISTORY_TABLES, record_history
from pipelines.model_cache import table_state
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
    from pipelines.defs.models.whatif import TABLES as WHATIF_TABLES

    marts = [dg.AssetKey(m.relation.split(".")) for m in build_order() if m.schema == "analytics"]
    staged = [dg.AssetKey(["staging", s]) for s in source_contracts()]
    from pipelines.defs.scorecards.assets import SCORECARDS

    models = [ACCOUNT_CLV, UNIT_CLV, UNIT_MONTH_SCI, SCI_BENEFITS, *ALIGNMENT_KEYS,
              *WHATIF_TABLES.values()]  # fmt: skip
    return staged + marts + models + [SCORECARDS]


def _refuse_a_partial_night(context: dg.AssetExecutionContext) -> None:
    """Publish only from a run that selected every asset upstream of it: the night's blocking
    checks run in the same run and stop it before this step when one fails."""
    selected = context.job_def.asset_layer.selected_asset_keys
    needed = {*_upstream(), *(dg.AssetKey(["raw", s]) for s in source_contracts())}
    missing = sorted(key.to_user_string() for key in needed - set(selected))
    if missing:
        raise dg.Failure(
            description=(
                f"not published: this run did not build {len(missing)} asset(s) the warehouse "
                f"is published from ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}),"
                " so their blocking checks did not run in it; a night is published only by a run"
                f" of the whole night (cxalign run, or the {NIGHTLY_JOB} job)"
            )
        )


@dg.asset(
    key=["warehouse", "published"],
    deps=_upstream(),
    group_name="publish",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description=(
        "The analysts' DuckDB file and the leaders' scorecards: the working database, "
        "checkpointed and copied beside tonight's scorecards into a new version (row by row "
        "when rows were deleted from it), which one rename publishes once every check has "
        "passed."
    ),
)
def published_warehouse(
    context: dg.AssetExecutionContext, cxalign: CxalignResource
) -> dg.MaterializeResult:
    _refuse_a_partial_night(context)
    with cxalign.connect() as con:
        unpassed = [
            src
            for src in source_contracts()
            if (state := table_state(con, f"staging.{src}")) is None or state[0] is None
        ]
        if unpassed:
            raise dg.Failure(
                description=(
                    f"not published: the staged rows of {', '.join(unpassed)} did not pass every "
                    "blocking check (conservation, contract agreement, bad-row share) on the "
                    "night that staged them; run the whole night again (cxalign run, or the "
                    f"{NIGHTLY_JOB} job) once the landing zone is fixed"
                )
            )
        # Tonight's verdicts and ingestion join the history (a rerun of the night replaces its
        # rows); a night that fails publishes nothing and adds nothing.
        history_rows = record_history(
            con, context.run.run_id, run_as_of(context), cxalign.settings, datetime.now(UTC),
            published=Path(cxalign.warehouse_path),
        )  # fmt: skip
        record_version(con, context.run.run_id, run_as_of(context))
        checks = [
            contract_check(con, name)
            for name in (*LOG_TABLES, *HISTORY_TABLES, "warehouse_version")
        ]
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
            **{f"{name}_rows_tonight": n for name, n in history_rows.items()},
            "tables": dg.MetadataValue.md(
                "| table | rows |\n|---|---|\n"
                + "\n".join(f"| analytics.{t} | {n:,} |" for t, n in versions)
            ),
        }
    )
