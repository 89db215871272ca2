"""The nightly job (every asset) and its schedule."""

from datetime import datetime
from pathlib import Path

import dagster as dg

from pipelines.defs.resources import AS_OF_TAG, resource_from_env
from pipelines.landing_watch import fingerprint, snapshot
from pipelines.sqlrunner import last_complete_day

NIGHTLY_JOB = "cxalign_nightly"
# The landing zone's files a run was started on (pipelines/landing_watch.py), tagged by the
# schedule and the landing sensor so that neither runs a batch the other already ran.
LANDING_FINGERPRINT_TAG = "cxalign/landing_fingerprint"
# On a landing sensor's run: the as-of date of the first scheduled tick after it. That tick
# skips these files (they are its night's batch, already run), so that a batch settling at
# 23:59 is not run again at 02:00 under the next as-of date.
SCHEDULED_NIGHT_TAG = "cxalign/scheduled_night"
ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.SUCCESS,
]


def batch_already_run(
    instance: dg.DagsterInstance, fp: str, as_of: str | None = None, tag: str = AS_OF_TAG
) -> bool:
    """A run of this landing batch (with `tag` = as_of, if given) is queued, running or
    succeeded."""
    tags = {LANDING_FINGERPRINT_TAG: fp, **({tag: as_of} if as_of else {})}
    return bool(instance.get_run_records(dg.RunsFilter(tags=tags, statuses=ACTIVE), limit=1))


def next_scheduled_night(at: datetime) -> str:
    """The as-of date of the nightly schedule's first tick after `at`."""
    # dagster's own cron arithmetic (time zones, DST), as the schedule's ticks use it
    from dagster._utils.schedules import get_next_cron_tick

    sched = resource_from_env().settings.schedule
    return last_complete_day(get_next_cron_tick(sched.cron, at, sched.timezone)).isoformat()


# One process, one step at a time: DuckDB has a single writer, and DuckDB
# itself uses every core inside each step.
cxalign_nightly = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.all(),
    executor_def=dg.in_process_executor,
    description="Landing zone -> validated staging -> warehouse -> models -> scorecards.",
)


def _schedule() -> dg.ScheduleDefinition:
    env = resource_from_env()
    sched = env.settings.schedule

    @dg.schedule(
        name="cxalign_nightly_schedule",
        job=cxalign_nightly,
        cron_schedule=sched.cron,
        execution_timezone=sched.timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="The nightly run; its as-of date is the last UTC day over at the tick.",
    )
    def nightly(context: dg.ScheduleEvaluationContext):
        # A tick at 02:00 on the 31st runs as of the 30th: the 31st is not over, and a
        # cancellation later that day would be missing from a night as of the 31st.
        when: datetime = context.scheduled_execution_time
        as_of = last_complete_day(when).isoformat()
        fp = fingerprint(snapshot(Path(env.landing_dir)))
        if batch_already_run(context.instance, fp, as_of):
            # the landing sensor already ran these very files as of this date
            return dg.SkipReason(f"the night as of {as_of} already ran on these files ({fp[:12]})")
        if batch_already_run(context.instance, fp, as_of, tag=SCHEDULED_NIGHT_TAG):
            # they settled since the last tick and the landing sensor ran them (as of the day
            # before): one as-of date per batch
            return dg.SkipReason(
                f"these files ({fp[:12]}) were run by the landing sensor since the last tick, "
                f"as of the day before {as_of}: a batch runs under one as-of date"
            )
        return dg.RunRequest(
            run_key=f"nightly-{as_of}", tags={AS_OF_TAG: as_of, LANDING_FINGERPRINT_TAG: fp}
        )

    return nightly


cxalign_nightly_schedule = _schedule()


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(jobs=[cxalign_nightly], schedules=[cxalign_nightly_schedule])
