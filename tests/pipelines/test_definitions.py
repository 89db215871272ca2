"""The Dagster code location: what it defines, and the nightly schedule."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from pipelines.contracts import source_contracts
from pipelines.definitions import defs


def test_code_location_loads_every_asset_check_job_and_schedule():
    d = defs()
    keys = {k.to_user_string() for k in d.resolve_asset_graph().get_all_asset_keys()}
    for src in source_contracts():
        assert f"raw/{src}" in keys and f"staging/{src}" in keys
    assert "warehouse/published" in keys
    checks = {
        (c.asset_key.to_user_string(), c.name) for c in d.resolve_asset_graph().asset_check_keys
    }
    for src in source_contracts():
        for name in ("conservation", "contract_agreement", "bad_row_share"):
            assert (f"staging/{src}", name) in checks
    assert d.resolve_job_def("cxalign_nightly") is not None
    assert d.resolve_schedule_def("cxalign_nightly_schedule").cron_schedule == "0 2 * * *"


@pytest.fixture
def instance():
    # the schedule asks the instance whether the landing sensor already ran the batch
    with dg.instance_for_test() as inst:
        yield inst


def test_schedule_follows_config_and_tags_the_night(tmp_path, monkeypatch, instance):
    cfg = tmp_path / "cx.yml"
    cfg.write_text("schedule:\n  cron: '30 3 * * *'\n  timezone: Europe/Berlin\n")
    monkeypatch.setenv("CXALIGN_CONFIG", str(cfg))
    from pipelines.defs.jobs import _schedule

    sched = _schedule()
    assert sched.cron_schedule == "30 3 * * *"
    assert sched.execution_timezone == "Europe/Berlin"
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 20, 2, 30, tzinfo=UTC),
        instance=instance,
    )
    request = sched.evaluate_tick(ctx).run_requests[0]
    # The 20th is not over at 02:30: the night is as of the 19th, the last complete day.
    assert request.tags["cxalign/as_of"] == "2026-11-19"
    assert request.run_key == "nightly-2026-11-19"


@pytest.mark.parametrize(
    ("tick", "as_of"),
    [
        # 02:00 on the 31st in Berlin is 01:00 UTC on the 31st: the 30th is the last whole day.
        (datetime(2026, 10, 31, 2, 0, tzinfo=ZoneInfo("Europe/Berlin")), "2026-10-30"),
        # 02:00 on the 31st in Tokyo is 17:00 UTC on the 30th: the 30th (UTC) is not over.
        (datetime(2026, 10, 31, 2, 0, tzinfo=ZoneInfo("Asia/Tokyo")), "2026-10-29"),
        (datetime(2026, 11, 1, 0, 0, tzinfo=UTC), "2026-10-31"),
    ],
)
def test_a_nights_as_of_date_is_the_last_complete_utc_day(tick, as_of, instance):
    from pipelines.defs.jobs import cxalign_nightly_schedule
    from pipelines.sqlrunner import WarehouseParams, last_complete_day

    request = cxalign_nightly_schedule.evaluate_tick(
        dg.build_schedule_context(
            scheduled_execution_time=tick, instance=instance
        )
    ).run_requests[0]
    assert request.tags["cxalign/as_of"] == as_of
    assert last_complete_day(tick).isoformat() == as_of
    # A month is complete only when its last day is on or before the as-of date.
    complete_before = WarehouseParams(as_of=date.fromisoformat(as_of)).months_ended_before
    assert complete_before == (date(2026, 11, 1) if as_of == "2026-10-31" else date(2026, 10, 1))


def test_a_run_without_an_as_of_date_is_as_of_yesterday():
    from pipelines.defs.resources import AS_OF_TAG, run_as_of

    class Run:
        def __init__(self, tags):
            self.tags = tags

    class Context:
        def __init__(self, tags):
            self.run = Run(tags)

    scheduled = {"dagster/scheduled_execution_time": "2026-10-31T02:00:00+00:00"}
    assert run_as_of(Context(scheduled)) == date(2026, 10, 30)
    assert run_as_of(Context({AS_OF_TAG: "2026-10-31"})) == date(2026, 10, 31)
    before = datetime.now(UTC).date()
    got = run_as_of(Context({}))
    after = datetime.now(UTC).date()  # (midnight may pass between)
    assert got in (before - timedelta(days=1), after - timedelta(days=1))
