"""Automation beside the nightly schedule (pipelines/defs/jobs.py):

* `cxalign_landing_sensor`  a run when new or changed files have settled in the landing zone
                            (pipelines/landing_watch.py): one run per settled batch, none while a
                            file is still growing, none for a batch already run (by this sensor or
                            by the schedule: both tag their run with the batch's fingerprint)
* `cxalign_failure_alerts`  a failed night -> its alerts to the configured channels
* `cxalign_night_alerts`    a published night -> its alerts (type changes, jumps in the
                            quarantine, stale sources; pipelines/alerts.py)

Locations and settings come from the environment, as the schedule's do (resource_from_env):
not through the resource, whose set-up takes the warehouse's run lock for a whole run, which a
sensor must never hold so long. The alert sensors take it only for the instant they record what
they sent (ops.alerts_sent, in the working database), never waiting for it; an alert already
delivered for the same night (a rerun) is held, not sent again. They leave alone the runs of
`cxalign run` (tag cxalign/alerts=cli), which sends and records its alerts itself. A channel that
fails is logged; the sensor does not fail.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb

from pipelines.alerts import (
    Alert,
    delivered_before,
    failed_night_alerts,
    failure_reasons,
    night_alerts,
    notify,
    record_sent,
)
from pipelines.defs.jobs import (
    LANDING_FINGERPRINT_TAG,
    SCHEDULED_NIGHT_TAG,
    batch_already_run,
    cxalign_nightly,
    next_scheduled_night,
)
from pipelines.defs.resources import ALERTS_TAG, AS_OF_TAG, resource_from_env
from pipelines.landing_watch import digest, fingerprint, look, paths, snapshot
from pipelines.runlock import RunLocked, run_lock
from pipelines.sqlrunner import last_complete_day
from pipelines.warehouse import session, work_path


@dg.sensor(
    name="cxalign_landing_sensor",
    job=cxalign_nightly,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Runs the night when new or changed landing files have settled (the same on "
    "two ticks in a row, no upload in progress younger than ingest.abandoned_upload_hours): "
    "one run per batch, never one the schedule already ran.",
)
def cxalign_landing_sensor(context: dg.SensorEvaluationContext):
    cxalign = resource_from_env()
    settings = cxalign.settings
    cursor = json.loads(context.cursor) if context.cursor else {}
    snap = snapshot(Path(cxalign.landing_dir))
    hours = settings.ingest.abandoned_upload_hours
    now = look(snap, cursor, time.time_ns(), int(hours * 3600 * 1e9))
    abandoned = _announce_abandoned(context, now.abandoned, snap, cursor, hours, settings)

    def keep(mark: int, known_paths: list = now.known_paths) -> None:
        context.update_cursor(json.dumps(
            {"seen": digest(snap), "requested_ctime": mark, "paths": known_paths,
             "abandoned": abandoned, "future_uploads": now.future_uploads}
        ))  # fmt: skip

    left = (
        f"; {len(now.abandoned)} upload(s) in progress for more than {hours:g} h taken as "
        f"abandoned (e.g. {now.abandoned[0]}): they no longer hold the batch back"
        if now.abandoned
        else ""
    )
    if now.writing:
        keep(now.mark)
        return dg.SkipReason(
            f"{len(now.writing)} upload(s) in progress (e.g. {now.writing[0]}): waiting for "
            f"them to finish{left}"
        )
    if now.changed:
        keep(now.mark)
        return dg.SkipReason(
            "files new or still changing since the last look: waiting for them to settle" + left
        )
    if not now.arrived and not now.new_paths:
        keep(now.mark)
        return dg.SkipReason("no new or changed file in the landing zone since the last run" + left)
    fp = fingerprint(snap)
    # from here on this batch is handled: requested, or already run by the schedule
    keep(now.latest_ctime, paths(snap))
    if batch_already_run(context.instance, fp):
        return dg.SkipReason(f"batch {fp[:12]} already run (by the schedule or an earlier tick)")
    if left:
        context.log.warning(left.lstrip("; "))
    at = datetime.now(UTC)
    return dg.RunRequest(
        run_key=f"landing-{fp[:24]}",
        # the next scheduled tick's night is this batch's too: that tick skips it
        tags={AS_OF_TAG: last_complete_day(at).isoformat(), LANDING_FINGERPRINT_TAG: fp,
              SCHEDULED_NIGHT_TAG: next_scheduled_night(at)},
    )  # fmt: skip


ABANDONED_LISTED = 20  # files named in one upload_abandoned alert (the rest are counted)


def _announce_abandoned(context, files: list[str], snap, cursor: dict, hours: float, settings):
    """One `upload_abandoned` alert a tick for the uploads newly taken as abandoned (known by
    their path and mtime), listing at most ABANDONED_LISTED of them: one message per channel
    whatever their number, so the tick stays within Dagster's 60 s however many there are
    (80 alerts to a webhook answering in 1 s took 80 s: the tick failed, its cursor was lost
    and the next tick sent them all again). They are taken as told once a channel delivered
    it (or none is configured); when none did, the next tick tries again. Returns what the
    cursor keeps of them (those still there)."""
    keys = {rel: hashlib.sha256(f"{rel}:{snap[rel][1]}".encode()).hexdigest()[:16] for rel in files}
    told = set(cursor.get("abandoned", [])) & set(keys.values())
    new = [rel for rel in files if keys[rel] not in told]
    if not new:
        return sorted(told)
    listed = ", ".join(new[:ABANDONED_LISTED]) + (
        f" and {len(new) - ABANDONED_LISTED} more" if len(new) > ABANDONED_LISTED else ""
    )
    alert = Alert(
        "upload_abandoned",
        f"{len(new)} upload(s) left unfinished for more than {hours:g} h: {listed}; the landing "
        "sensor no longer waits for them (the night skips them: finish or remove them)",
        {"source": new[0].split("/")[0] if len(new) == 1 else "landing",
         "file": new[0], "files": new[:ABANDONED_LISTED], "count": len(new),
         "abandoned_after_hours": hours},
    )  # fmt: skip
    deliveries = notify([alert], settings.alerts, context.log.warning)
    if not deliveries or any(d.ok for d in deliveries):
        told |= {keys[rel] for rel in new}
    else:  # (not when one channel of several failed: the others would get it every minute)
        context.log.warning("upload_abandoned delivered to no channel: tried again next tick")
    return sorted(told)


def _as_of(run: dg.DagsterRun) -> str | None:
    return run.tags.get(AS_OF_TAG)


def _record_sent(cxalign, as_of: str | None, run_id: str, alerts, deliveries, log) -> None:
    """What was sent, into the working database's ops.alerts_sent (the next published night
    carries it), under the warehouse's run lock taken for the moment of the write, never
    waited for: when a run holds it, the outcome is logged and not recorded (a rerun of this
    night may then send these alerts again)."""
    if not deliveries or as_of is None:
        return
    try:
        with run_lock(cxalign.warehouse_path, run_id=run_id,
                      command="cxalign alert sensor: recording the alerts sent"):  # fmt: skip
            with session(work_path(cxalign.warehouse_path)) as con:
                record_sent(con, as_of, run_id, alerts, deliveries, datetime.now(UTC))
    except (RunLocked, duckdb.Error) as exc:
        log(f"alerts sent not recorded in ops.alerts_sent ({type(exc).__name__}: the working "
            "database is in use); a rerun of this night may send them again")  # fmt: skip


@dg.run_failure_sensor(
    name="cxalign_failure_alerts",
    monitored_jobs=[cxalign_nightly],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed night: sends its alerts (failed checks, the reasons) to alerts.channels.",
)
def cxalign_failure_alerts(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    cxalign = resource_from_env()
    if run.tags.get(ALERTS_TAG) == "cli":
        return dg.SkipReason("cxalign run sends its own alerts")
    events = [e.dagster_event for e in context.instance.all_logs(run.run_id) if e.dagster_event]
    checks, reasons = failure_reasons(events)
    alerts = failed_night_alerts(run.run_id, _as_of(run), checks, reasons)
    deliveries = notify(alerts, cxalign.settings.alerts, context.log.info)
    _record_sent(cxalign, _as_of(run), run.run_id, alerts, deliveries, context.log.warning)


@dg.run_status_sensor(
    name="cxalign_night_alerts",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[cxalign_nightly],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A published night: sends its alerts (type changes, quarantine jumps, stale "
    "sources) to alerts.channels.",
)
def cxalign_night_alerts(context: dg.RunStatusSensorContext):
    run = context.dagster_run
    cxalign = resource_from_env()
    if run.tags.get(ALERTS_TAG) == "cli":
        return dg.SkipReason("cxalign run sends its own alerts")
    as_of = _as_of(run)
    if as_of is None:
        return dg.SkipReason("run without an as-of tag")
    try:
        con = duckdb.connect(cxalign.warehouse_path, read_only=True)
        try:
            alerts = night_alerts(con, date.fromisoformat(as_of), cxalign.settings.alerts)
            # what was sent for this night before (a rerun): the published copy carries it
            delivered = delivered_before(con, as_of)
        finally:
            con.close()
    except duckdb.Error as exc:  # e.g. an analyst holds the file open read-write
        return dg.SkipReason(f"the published warehouse could not be read for alerts: {exc}")
    deliveries = notify(alerts, cxalign.settings.alerts, context.log.info, delivered)
    _record_sent(cxalign, as_of, run.run_id, alerts, deliveries, context.log.warning)


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(
        sensors=[cxalign_landing_sensor, cxalign_failure_alerts, cxalign_night_alerts]
    )
