"""The Dagster code location: what it defines, and the nightly schedule."""

from datetime import UTC, datetime

import dagster as dg

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


def test_schedule_follows_config_and_tags_the_night(tmp_path, monkeypatch):
    cfg = tmp_path / "cx.yml"
    cfg.write_text("schedule:\n  cron: '30 3 * * *'\n  timezone: Europe/Berlin\n")
    monkeypatch.setenv("CXALIGN_CONFIG", str(cfg))
    from pipelines.defs.jobs import _schedule

    sched = _schedule()
    assert sched.cron_schedule == "30 3 * * *"
    assert sched.execution_timezone == "Europe/Berlin"
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 20, 2, 30, tzinfo=UTC)
    )
    request = sched.evaluate_tick(ctx).run_requests[0]
    assert request.tags["cxalign/as_of"] == "2026-11-20"
    assert request.run_key == "nightly-2026-11-20"
