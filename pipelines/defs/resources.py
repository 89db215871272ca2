"""The one resource every asset uses: where things are, and the settings.

Declared once here. `dagster dev` and the schedule read the locations from the
environment (CXALIGN_LANDING, CXALIGN_WAREHOUSE, CXALIGN_OUT, CXALIGN_CONFIG);
`cxalign run` passes them as run configuration of this same resource.
"""

import logging
import os
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path

import dagster as dg

from pipelines.runlock import RunLocked, run_lock
from pipelines.settings import Settings, load_settings
from pipelines.sqlrunner import last_complete_day
from pipelines.warehouse import connect, recover, work_path

AS_OF_TAG = "cxalign/as_of"
# Set by `cxalign run`, which sends the night's alerts itself: the alert sensors skip its runs.
ALERTS_TAG = "cxalign/alerts"
_progress = logging.getLogger("cxalign.progress")
WAREHOUSE_POOL = "duckdb_warehouse"


class CxalignResource(dg.ConfigurableResource):
    """Landing zone, warehouse and output locations, and the config file."""

    landing_dir: str = "data/landing"
    warehouse_path: str = "data/warehouse.duckdb"
    out_dir: str = "data/scorecards"
    config_path: str = ""
    # Optional strategy.yaml: each unit's primary outcome and CX targets.
    strategy_path: str = ""

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext):
        """For the whole run: the warehouse's run lock (one run at a time per warehouse; a
        run launched from the UI or the schedule while `cxalign run` works is refused with
        the running run's pid, start and id), then what a killed publish left is cleaned."""

        def warn(line: str) -> None:
            if context.log is not None:
                context.log.warning(line)
            _progress.warning(line)

        job = context.run.job_name if context.run else "cxalign"
        with ExitStack() as stack:
            try:
                stack.enter_context(
                    run_lock(
                        self.warehouse_path,
                        run_id=context.run.run_id if context.run else "",
                        command=f"Dagster run of {job}",
                        log=warn,
                    )
                )
            except RunLocked as exc:
                raise dg.Failure(description=str(exc)) from None
            recover(self.warehouse_path, self.out_dir, log=warn)
            yield self

    @cached_property
    def settings(self) -> Settings:
        return load_settings(self.config_path or None)

    @property
    def work_db(self) -> Path:
        return work_path(self.warehouse_path)

    def connect(self):
        return connect(self.work_db, self.settings.duckdb)

    def connect_for_models(self):
        """A connection for the model stages: DuckDB held to duckdb.models_memory_limit."""
        return connect(self.work_db, self.settings.duckdb.for_models())


def resource_from_env() -> CxalignResource:
    return CxalignResource(
        landing_dir=os.environ.get("CXALIGN_LANDING", "data/landing"),
        warehouse_path=os.environ.get("CXALIGN_WAREHOUSE", "data/warehouse.duckdb"),
        out_dir=os.environ.get("CXALIGN_OUT", "data/scorecards"),
        config_path=os.environ.get("CXALIGN_CONFIG", ""),
        strategy_path=os.environ.get("CXALIGN_STRATEGY", ""),
    )


def run_as_of(context) -> date:
    """The night's as-of date: the run's tag, else the last UTC day over at its scheduled time,
    else the last UTC day over now (yesterday, UTC); see sqlrunner.last_complete_day."""
    tags = context.run.tags
    if AS_OF_TAG in tags:
        try:
            return date.fromisoformat(tags[AS_OF_TAG])
        except ValueError as exc:
            raise dg.Failure(
                f"run tag {AS_OF_TAG}={tags[AS_OF_TAG]!r} is not a date (YYYY-MM-DD)"
            ) from exc
    scheduled = tags.get("dagster/scheduled_execution_time")
    if scheduled:
        return last_complete_day(datetime.fromisoformat(scheduled))
    return last_complete_day(datetime.now(UTC))


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"cxalign": resource_from_env()})
