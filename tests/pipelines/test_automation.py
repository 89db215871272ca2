"""Sensors and freshness policies: the landing-zone sensor (debounced, one run per settled
batch, never a batch the schedule already ran), the alert sensors, and what the UI's
automation list and asset freshness show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from pipelines.defs.automation import cxalign_failure_alerts, cxalign_landing_sensor
from pipelines.defs.jobs import LANDING_FINGERPRINT_TAG, NIGHTLY_JOB
from pipelines.defs.resources import CxalignResource
from pipelines.paths import PROJECT_ROOT


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


class Landing:
    """The sensor ticking over a landing zone, carrying its cursor from tick to tick."""

    def __init__(self, root, instance, monkeypatch):
        self.root, self.instance, self.cursor = root, instance, None
        root.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv("CXALIGN_LANDING", str(root))  # where the sensor looks

    def tick(self):
        ctx = dg.build_sensor_context(cursor=self.cursor, instance=self.instance)
        result = cxalign_landing_sensor.evaluate_tick(ctx)
        self.cursor = result.cursor
        return result.run_requests or [], result.skip_message or ""


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_new_file_one_request_same_file_none(tmp_path, instance, monkeypatch):
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    assert zone.tick() == ([], "no new or changed file in the landing zone since the last run")
    _write(zone.root / "support_tickets" / "2026-11-20.csv", "ticket_id\nT1\n")
    requests, why = zone.tick()
    assert requests == [] and "waiting for them to settle" in why  # just seen: not settled yet
    (request,), _ = zone.tick()  # same size and mtime as last tick: settled, one run
    assert request.job_name in (None, NIGHTLY_JOB)
    assert request.run_key.startswith("landing-")
    assert len(request.tags[LANDING_FINGERPRINT_TAG]) == 64
    assert request.tags["cxalign/as_of"]
    # the same file again: no run, tick after tick
    assert zone.tick()[0] == [] and zone.tick()[0] == []
    # a changed file is a new batch: one more run once it settles
    _write(zone.root / "support_tickets" / "2026-11-20.csv", "ticket_id\nT1\nT2\n")
    assert zone.tick()[0] == []
    (again,), _ = zone.tick()
    assert again.run_key != request.run_key
    # a file removed (archived after loading) is not an arrival
    (zone.root / "support_tickets" / "2026-11-20.csv").unlink()
    assert zone.tick()[0] == [] and zone.tick()[0] == []


def test_a_file_still_being_written_waits_until_it_settles(tmp_path, instance, monkeypatch):
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    f = zone.root / "survey_responses" / "big.csv"
    _write(f, "response_id\n")
    for k in range(4):  # growing between ticks: no run
        with f.open("a") as out:
            out.write(f"R{k}\n")
        requests, why = zone.tick()
        assert requests == [] and "still changing" in why
    # an upload in progress (.part) holds the batch back however long it sits still
    _write(zone.root / "accounts" / "accounts.csv.part", "account_id\n")
    assert zone.tick()[0] == [] and zone.tick()[0] == []
    (zone.root / "accounts" / "accounts.csv.part").rename(zone.root / "accounts" / "accounts.csv")
    assert zone.tick()[0] == []  # renamed: a new file, seen once
    (request,), _ = zone.tick()
    assert request.run_key.startswith("landing-")


def test_no_double_run_with_the_schedule(tmp_path, instance, monkeypatch):
    landing = tmp_path / "landing"
    _write(landing / "revenue" / "2026-10.csv", "account_id\nA1\n")
    monkeypatch.setenv("CXALIGN_LANDING", str(landing))
    from pipelines.defs.jobs import _schedule

    schedule = _schedule()
    tick = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    ctx = dg.build_schedule_context(scheduled_execution_time=tick, instance=instance)
    (scheduled,) = schedule.evaluate_tick(ctx).run_requests
    fp = scheduled.tags[LANDING_FINGERPRINT_TAG]
    # the schedule's run of this batch is in the instance
    instance.add_run(
        dg.DagsterRun(job_name=NIGHTLY_JOB, run_id="scheduled-run", tags=scheduled.tags,
                      status=dg.DagsterRunStatus.SUCCESS)
    )  # fmt: skip
    zone = Landing(landing, instance, monkeypatch)
    zone.tick()
    requests, why = zone.tick()
    assert requests == [] and "already run" in why
    # and the other way round: a batch the sensor ran is not run again by the schedule
    # for the same night
    skipped = schedule.evaluate_tick(ctx)
    assert skipped.run_requests == [] and fp[:12] in skipped.skip_message
    # another night on the same files is run (its as-of date is new)
    later = dg.build_schedule_context(scheduled_execution_time=tick + timedelta(days=1),
                                      instance=instance)  # fmt: skip
    assert len(schedule.evaluate_tick(later).run_requests) == 1


def test_the_failure_sensor_skips_cxalign_runs_own_alerts(instance):
    run = dg.DagsterRun(job_name=NIGHTLY_JOB, run_id="cli-run",
                        tags={"cxalign/alerts": "cli", "cxalign/as_of": "2026-11-01"},
                        status=dg.DagsterRunStatus.FAILURE)  # fmt: skip
    instance.add_run(run)
    ctx = dg.build_run_status_sensor_context(
        sensor_name="cxalign_failure_alerts",
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=dg.DagsterEvent(
            event_type_value="PIPELINE_FAILURE", job_name=NIGHTLY_JOB, message="failed"
        ),
    ).for_run_failure()
    result = cxalign_failure_alerts(ctx)
    assert isinstance(result, dg.SkipReason) and "cxalign run" in result.skip_message


def test_sensors_and_freshness_policies_are_defined():
    from pipelines.definitions import defs

    d = defs()
    names = {s.name for s in d.resolve_all_sensor_defs()} if hasattr(
        d, "resolve_all_sensor_defs") else {s.name for s in d.sensors}  # fmt: skip
    assert {"cxalign_landing_sensor", "cxalign_failure_alerts", "cxalign_night_alerts"} <= names
    graph = d.resolve_asset_graph()
    policies = {
        key.to_user_string(): graph.get(key).freshness_policy
        for key in graph.get_all_asset_keys()
        if graph.get(key).freshness_policy is not None
    }
    assert policies["landing/support_tickets"].fail_window.to_timedelta() == timedelta(days=2)
    assert policies["landing/revenue"].fail_window.to_timedelta() == timedelta(days=32)
    assert all(k.startswith("landing/") for k in policies)
    # the raw asset of each source reads its landing asset
    assert dg.AssetKey(["landing", "revenue"]) in graph.get(dg.AssetKey(["raw", "revenue"])).parent_keys


def test_dg_list_defs_shows_the_automation(tmp_path):
    """What the UI's automation list shows, without a screenshot: `dg list defs`."""
    env = {**os.environ, "VIRTUAL_ENV": str(PROJECT_ROOT / ".venv")}
    dg_cli = PROJECT_ROOT / ".venv" / "bin" / "dg"
    if not dg_cli.exists():
        dg_cli = sys.executable.replace("python", "dg")
    out = subprocess.run([str(dg_cli), "list", "defs", "--json"], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout  # fmt: skip
    listed = json.loads(out[out.index("{"):])
    sensors = {s["name"] for s in listed["sensors"]}
    assert {"cxalign_landing_sensor", "cxalign_failure_alerts", "cxalign_night_alerts"} <= sensors
    assert {s["name"] for s in listed["schedules"]} == {"cxalign_nightly_schedule"}
    landing = {a["asset_key"]: a for a in listed["assets"] if a["asset_key"].startswith("landing/")}
    assert "expected daily" in landing["landing/support_tickets"]["description"]
    assert "expected monthly" in landing["landing/revenue"]["description"]


def test_loading_a_new_file_materializes_the_sources_landing_asset(tmp_path):
    """The landing asset's freshness is the source's arrival: the raw asset reports it when it
    loads a new or changed file, and not when every file is unchanged."""
    from pipelines.defs.ingest.assets import ingest_assets

    raw = next(a for a in ingest_assets if a.key == dg.AssetKey(["raw", "support_costs"]))
    landing = tmp_path / "landing"
    _write(landing / "support_costs" / "costs.csv", "business_unit,month,cost\nNorth,2026-10-01,100\n")
    resource = CxalignResource(landing_dir=str(landing),
                               warehouse_path=str(tmp_path / "warehouse.duckdb"))  # fmt: skip
    with dg.instance_for_test() as instance:
        for expected in (1, 0):  # a new file; then the same file again
            result = dg.materialize([raw], resources={"cxalign": resource}, instance=instance,
                                    tags={"cxalign/as_of": "2026-11-01"})  # fmt: skip
            assert result.success
            landed = [e for e in result.get_asset_materialization_events()
                      if e.asset_key == dg.AssetKey(["landing", "support_costs"])]  # fmt: skip
            assert len(landed) == expected
        event = instance.get_latest_materialization_event(dg.AssetKey(["landing", "support_costs"]))
        assert event is not None and event.asset_materialization.metadata["files_loaded"].value == 1


def test_the_night_alerts_sensor_does_not_send_again_what_a_rerun_s_night_already_sent(
    tmp_path, instance, monkeypatch
):
    """The sensor records what it sent in the working database; the rerun's published copy
    carries it, and the sensor holds those alerts for the rerun."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import duckdb

    from pipelines.defs.automation import cxalign_night_alerts
    from pipelines.history import ensure_history_tables
    from pipelines.warehouse import work_path

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "cx.yml"
    config.write_text("alerts:\n  channels:\n    - {type: webhook, url: "
                      f"\"http://127.0.0.1:{server.server_address[1]}/cx\"}}\n")  # fmt: skip
    warehouse = tmp_path / "warehouse.duckdb"
    monkeypatch.setenv("CXALIGN_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("CXALIGN_CONFIG", str(config))
    con = duckdb.connect(str(warehouse))
    ensure_history_tables(con)
    con.execute(
        "insert into analytics.ingest_history by name select '2026-11-10'::date as as_of, "
        "'accounts' as source, 'r' as run_id, now() as published_at, 0.0 as quarantine_share, "
        "'daily' as cadence, true as stale, 9 as days_since_arrival"
    )
    con.close()

    def night(run_id):
        run = dg.DagsterRun(job_name=NIGHTLY_JOB, run_id=run_id,
                            tags={"cxalign/as_of": "2026-11-10"},
                            status=dg.DagsterRunStatus.SUCCESS)  # fmt: skip
        instance.add_run(run)
        ctx = dg.build_run_status_sensor_context(
            sensor_name="cxalign_night_alerts", dagster_instance=instance, dagster_run=run,
            dagster_event=dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS",
                                          job_name=NIGHTLY_JOB, message="ok"),
        )  # fmt: skip
        return cxalign_night_alerts(ctx)

    try:
        night("night-1")
        assert [a["kind"] for a in received] == ["source_stale"]
        work = work_path(warehouse)
        con = duckdb.connect(str(work), read_only=True)
        assert con.execute("select kind, subject, run_id, delivered from ops.alerts_sent"
                           ).fetchall() == [("source_stale", "accounts", "night-1", True)]  # fmt: skip
        con.close()
        # the rerun of the night publishes the working database, which carries the record
        con = duckdb.connect(str(warehouse))
        con.execute(f"attach '{work}' as w (read_only)")
        con.execute("create schema ops")
        con.execute("create table ops.alerts_sent as select * from w.ops.alerts_sent")
        con.close()
        night("night-1-rerun")
        assert [a["kind"] for a in received] == ["source_stale"]  # not sent again
    finally:
        server.shutdown()
        server.server_close()


def test_a_batch_the_sensor_ran_before_the_tick_is_not_run_again_under_the_next_as_of(
    tmp_path, instance, monkeypatch
):
    """Files settle at 23:59: the sensor runs them as of that day's last complete day; the
    02:00 tick would run the very same files as of the next day. It skips them."""
    from pipelines.defs.jobs import SCHEDULED_NIGHT_TAG, _schedule

    monkeypatch.delenv("CXALIGN_CONFIG", raising=False)  # the default schedule: 02:00 UTC
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    _write(zone.root / "support_tickets" / "2026-11-30.csv", "ticket_id\nT1\n")
    zone.tick()
    (request,), _ = zone.tick()
    now = datetime.now(UTC)
    tick = now.replace(hour=2, minute=0, second=0, microsecond=0)
    tick += timedelta(days=1) if tick <= now else timedelta(0)  # the next 02:00 UTC
    assert request.tags[SCHEDULED_NIGHT_TAG] == (tick - timedelta(days=1)).date().isoformat()
    assert request.tags["cxalign/as_of"] == (now - timedelta(days=1)).date().isoformat()
    instance.add_run(dg.DagsterRun(job_name=NIGHTLY_JOB, run_id="sensor-run", tags=request.tags,
                                   status=dg.DagsterRunStatus.SUCCESS))  # fmt: skip
    schedule = _schedule()
    at_tick = schedule.evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=tick, instance=instance)
    )
    assert at_tick.run_requests == [] and "one as-of date" in at_tick.skip_message
    # the night after, the same files are that night's (nothing new arrived): run
    later = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=tick + timedelta(days=1), instance=instance))  # fmt: skip
    assert len(later.run_requests) == 1


def test_an_abandoned_upload_no_longer_holds_the_batch_back_and_is_announced_once(
    tmp_path, instance, monkeypatch
):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "cx.yml"
    config.write_text("ingest:\n  abandoned_upload_hours: 2\nalerts:\n  channels:\n"
                      f"    - {{type: webhook, url: \"http://127.0.0.1:{server.server_address[1]}/cx\"}}\n")  # fmt: skip
    monkeypatch.setenv("CXALIGN_CONFIG", str(config))
    try:
        zone = Landing(tmp_path / "landing", instance, monkeypatch)
        _write(zone.root / "revenue" / "2026-10.csv", "account_id\nA1\n")
        part = zone.root / "accounts" / "accounts.csv.part"
        _write(part, "account_id\n")
        zone.tick()
        requests, why = zone.tick()  # a young upload holds the batch back
        assert requests == [] and "upload(s) in progress (e.g. accounts/accounts.csv.part)" in why
        assert received == []
        three_hours_ago = time.time() - 3 * 3600
        os.utime(part, (three_hours_ago, three_hours_ago))  # left there, untouched since
        requests, why = zone.tick()  # (the zone changed: one more look)
        assert requests == [] and "taken as abandoned (e.g. accounts/accounts.csv.part)" in why
        (request,), _ = zone.tick()
        # announced once, as an alert, on the tick that first took it as abandoned
        assert [(a["kind"], a["details"]["file"]) for a in received] == [
            ("upload_abandoned", "accounts/accounts.csv.part")
        ]
        # the batch is the files the night reads: the abandoned upload is no part of it
        assert zone.tick()[0] == [] and len(received) == 1
        part.unlink()  # removing it is no new batch
        assert zone.tick()[0] == [] and zone.tick()[0] == []
    finally:
        server.shutdown()
        server.server_close()


def test_many_abandoned_uploads_are_one_alert_a_tick_and_a_failed_one_is_tried_again(
    tmp_path, instance, monkeypatch
):
    """80 abandoned uploads and a webhook answering in 1 s: they were 80 alerts sent inside
    the tick (80 s, past Dagster's 60 s: the tick failed, its cursor unsaved). Now one alert
    listing them; and an alert no channel took is sent again on the next tick."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received, down = [], [True]

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(0.5)  # slow, but answering
            if not down[0]:
                received.append(body)
            self.send_response(500 if down[0] else 200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = tmp_path / "cx.yml"
    config.write_text("alerts:\n  channels:\n    - {type: webhook, url: "
                      f"\"http://127.0.0.1:{server.server_address[1]}/cx\"}}\n")  # fmt: skip
    monkeypatch.setenv("CXALIGN_CONFIG", str(config))
    try:
        zone = Landing(tmp_path / "landing", instance, monkeypatch)
        seven_hours_ago = time.time() - 7 * 3600
        for i in range(80):
            part = zone.root / "survey_responses" / f"r{i:02d}.csv.part"
            _write(part, "x")
            os.utime(part, (seven_hours_ago, seven_hours_ago))
        started = time.monotonic()
        zone.tick()  # the channel is down: nothing delivered
        assert time.monotonic() - started < 5 and received == []
        down[0] = False
        zone.tick()  # tried again, once, listing them
        ((alert),) = received
        assert alert["kind"] == "upload_abandoned" and alert["details"]["count"] == 80
        assert len(alert["details"]["files"]) == 20 and "and 60 more" in alert["summary"]
        zone.tick()
        assert len(received) == 1  # told: not again
    finally:
        server.shutdown()
        server.server_close()


def test_a_file_replaced_with_the_same_size_and_mtime_is_a_new_batch(tmp_path, instance,
                                                                      monkeypatch):  # fmt: skip
    """`cp -p` of a corrected export over the old one keeps size and mtime; not its ctime."""
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    f = zone.root / "revenue" / "2026-10.csv"
    _write(f, "account_id\nA1\n")
    zone.tick()
    (first,), _ = zone.tick()
    st = f.stat()
    time.sleep(0.05)
    f.write_text("account_id\nB2\n")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime, as cp -p leaves it
    assert (f.stat().st_size, f.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert zone.tick()[0] == []  # seen: settling
    (second,), _ = zone.tick()
    assert second.run_key != first.run_key


def test_files_moved_in_by_renaming_their_directory_are_a_new_batch(tmp_path, instance,
                                                                     monkeypatch):  # fmt: skip
    """An upload staged in a hidden directory and published by renaming it: the files keep
    their ctime (only the directory's changes), older than the mark of the batch requested
    meanwhile; their paths are new to the sensor, so they are a batch (they were never run)."""
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    _write(zone.root / ".incoming" / "2026-11-21.csv", "ticket_id\nT1\n")  # staged first
    time.sleep(0.05)
    _write(zone.root / "revenue" / "2026-10.csv", "account_id\nA1\n")
    zone.tick()
    (first,), _ = zone.tick()
    os.rename(zone.root / ".incoming", zone.root / "support_tickets")
    assert zone.tick()[0] == []  # seen: settling
    (second,), _ = zone.tick()
    assert second.run_key != first.run_key
    assert zone.tick()[0] == []
    # a file removed is still no arrival, and a path moved in after it is one
    (zone.root / "revenue" / "2026-10.csv").unlink()
    assert zone.tick()[0] == [] and zone.tick()[0] == []
    _write(zone.root / ".later" / "2026-11.csv", "account_id\nA2\n")
    time.sleep(0.05)
    _write(zone.root / "accounts" / "a.csv", "account_id\nA1\n")
    zone.tick()
    zone.tick()
    os.rename(zone.root / ".later", zone.root / "revenue2")
    zone.tick()
    assert len(zone.tick()[0]) == 1


def test_a_clock_stepped_back_or_an_upload_dated_in_the_future_does_not_blind_the_sensor():
    """A mark taken while the clock was ahead made every later change (ctime earlier than the
    mark) no arrival; an upload whose mtime is 30 days ahead held the batch 30 days."""
    from pipelines.landing_watch import look, paths

    hour = 3600 * 10**9
    now = 1_000 * hour
    snap = {"revenue/2026-10.csv": [10, now - hour, 1, now - hour]}  # changed in place
    cursor = {"seen": "x", "requested_ctime": now + hour // 6, "paths": paths(snap)}
    assert look(snap, cursor, now, 6 * hour).arrived == ["revenue/2026-10.csv"]
    assert look(snap, cursor, now, 6 * hour).latest_ctime <= now
    part = {"accounts/a.csv.part": [1, now + 720 * hour, 2, now]}
    first = look(part, {}, now, 6 * hour)
    assert first.writing == ["accounts/a.csv.part"]
    later = look(part, {"future_uploads": first.future_uploads}, now + 7 * hour, 6 * hour)
    assert later.abandoned == ["accounts/a.csv.part"]


def test_the_sensor_s_cursor_stays_small_with_20000_files(tmp_path, instance, monkeypatch):
    zone = Landing(tmp_path / "landing", instance, monkeypatch)
    for k in range(200):
        folder = zone.root / "support_tickets" / f"day-{k:03d}"
        folder.mkdir(parents=True)
        for j in range(100):
            (folder / f"tickets-{j:03d}.csv").write_text("ticket_id\n")
    zone.tick()
    (request,), _ = zone.tick()
    assert len(zone.cursor) < 1000, len(zone.cursor)  # it was 1.16 MB
    assert zone.tick()[0] == []


AUTOMATION_QUERY = """
query Automation {
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes {
        sensors { name sensorType sensorState { status } }
        schedules { name cronSchedule executionTimezone scheduleState { status } }
        assetNodes {
          assetKey { path }
          internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def test_the_ui_s_automation_list_has_the_sensors_and_the_schedule(tmp_path, monkeypatch):
    """What the UI's Automation page asks the webserver for, asked of Dagster's own GraphQL
    schema in process, over the code location loaded as `dg dev` loads it (a code server)."""
    import yaml
    from dagster_graphql.test.utils import define_out_of_process_context, execute_dagster_graphql

    for name in ("CXALIGN_CONFIG", "CXALIGN_LANDING", "CXALIGN_WAREHOUSE"):
        monkeypatch.delenv(name, raising=False)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": {
        "module_name": "pipelines.definitions", "attribute": "defs",
        "working_directory": str(PROJECT_ROOT), "location_name": "cxalign"}}]}))  # fmt: skip
    with dg.instance_for_test() as inst, define_out_of_process_context(
        str(workspace), None, inst
    ) as context:
        result = execute_dagster_graphql(context, AUTOMATION_QUERY)
    assert not result.errors, result.errors
    (repo,) = result.data["repositoriesOrError"]["nodes"]
    sensors = {s["name"]: (s["sensorType"], s["sensorState"]["status"]) for s in repo["sensors"]}
    assert sensors == {
        "cxalign_landing_sensor": ("STANDARD", "STOPPED"),
        "cxalign_failure_alerts": ("RUN_STATUS", "RUNNING"),
        "cxalign_night_alerts": ("RUN_STATUS", "RUNNING"),
    }
    assert [(s["name"], s["cronSchedule"], s["executionTimezone"], s["scheduleState"]["status"])
            for s in repo["schedules"]] == [
        ("cxalign_nightly_schedule", "0 2 * * *", "UTC", "STOPPED")
    ]  # fmt: skip
    fresh = {"/".join(a["assetKey"]["path"]): a["internalFreshnessPolicy"]["failWindowSeconds"]
             for a in repo["assetNodes"] if a["internalFreshnessPolicy"]}  # fmt: skip
    assert fresh["landing/support_tickets"] == 2 * 86400
    assert fresh["landing/revenue"] == 32 * 86400
