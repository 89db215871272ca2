"""The nightly job (every asset) and its schedule."""

from datetime import datetime

import dagster as dg

from pipelines.defs.resources import AS_OF_TAG, resource_from_env
from pipelines.sqlrunner import last_complete_day

NIGHTLY_JOB = "cxalign_nightly"

# One process, one step at a time: DuckDB has a single writer, and DuckDB
# itself uses every core inside each step.
cxalign_nightly = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Landing zone -> validated staging -> warehouse -> models -> scorecards.",
)


def _schedule() -> dg.ScheduleDefinition:
    sched = resource_from_env().settings.schedule

    @dg.schedule(
        name="cxalign_nightly_schedule",
        job=cxalign_nightly,
        cron_schedule=sched.cron,
        execution_timezone=sched.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="The nightly run; its as-of date is the last UTC day over at the tick.",
    )
    def nightly(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # A tick at 02:00 on the 31st runs as of the 30th: the 31st is not over, and a
        # cancellation later that day would be missing from a night as of the 31st.
        when: datetime = context.scheduled_execution_time
        as_of = last_complete_day(when).isoformat()
        return dg.RunRequest(run_key=f"nightly-{as_of}", tags={AS_OF_TAG: as_of})

    return nightly


cxalign_nightly_schedule = _schedule()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[cxalign_nightly], schedules=[cxalign_nightly_schedule])
