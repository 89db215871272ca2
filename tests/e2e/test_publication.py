"""Publication of real nights: one run at a time, a killed night at each publish step, and
an analyst's read-write session, each checked on what readers then open."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.warehouse import work_path
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

AS_OF = "2026-11-01"


def _cli(landing: Path, root: Path, **popen) -> subprocess.Popen:
    """`cxalign run` in a process of its own, on an ephemeral Dagster instance."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | popen.pop("env", {})
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", "--landing", str(landing),
         "--warehouse", str(root / "warehouse.duckdb"), "--out", str(root / "scorecards"),
         "--as-of", AS_OF],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen,
    )  # fmt: skip


def published_pair(root: Path) -> tuple[str | None, str | None]:
    """(the run of the warehouse readers open, the run the scorecards they open name)."""
    warehouse, md = root / "warehouse.duckdb", root / "scorecards" / "scorecard.md"
    wh = sc = None
    if warehouse.exists():
        con = duckdb.connect(str(warehouse), read_only=True)
        wh = con.execute("select distinct run_id from analytics.warehouse_version").fetchall()
        con.close()
        assert len(wh) == 1
        wh = wh[0][0]
    if md.exists():
        sc = re.search(r"; run ([0-9a-f-]+)\._", md.read_text(encoding="utf-8")).group(1)
    return wh, sc


def test_a_night_killed_at_each_publish_step_leaves_a_matching_pair_and_the_next_one_cleans_up(
    demo_copy, tmp_path
):
    from pipelines.runlock import lock_path
    from pipelines.warehouse import (
        COMPACTION_STEPS,
        CRASH_AT,
        CRASH_EXIT,
        PUBLISH_STEPS,
        published_dir,
    )

    assert run_cli(demo_copy, tmp_path, AS_OF) == 0
    published = published_pair(tmp_path)
    assert published[0] == published[1] is not None
    # A night that deleted no raw rows publishes by copying the file's bytes and has no
    # compaction to do (tests/pipelines/test_publish.py kills one that has, at each step).
    for step in [s for s in PUBLISH_STEPS if s not in COMPACTION_STEPS]:
        night = _cli(demo_copy, tmp_path, env={CRASH_AT: step})
        output = night.communicate(timeout=600)[0]
        assert night.returncode == CRASH_EXIT, (step, output[-2000:])
        killed = json.loads(lock_path(tmp_path / "warehouse.duckdb").read_text())["run_id"]
        if step in PUBLISH_STEPS[PUBLISH_STEPS.index("switch") :]:
            published = (killed, killed)
        assert published_pair(tmp_path) == published, step

    night = _cli(demo_copy, tmp_path)
    output = night.communicate(timeout=600)[0]
    assert night.returncode == 0, output[-2000:]
    assert "no longer running" in output  # the last killed night's lock, taken over
    run_id = re.search(r"cxalign run finished in .* \(run ([0-9a-f-]+)\)", output).group(1)
    assert published_pair(tmp_path) == (run_id, run_id)
    # Nothing of the killed nights is left: the published version and the one published
    # before it (kept a night for readers), no building or half-made copies.
    versions = published_dir(tmp_path / "warehouse.duckdb")
    kept = sorted(p.name for p in versions.iterdir() if not p.is_symlink())
    assert len(kept) <= 2 and kept[-1] == os.readlink(versions / "current")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".cxalign", "landing", "scorecards", "warehouse.duckdb"
    ]  # fmt: skip


def test_a_second_run_is_refused_naming_the_running_one_from_the_cli_and_from_dagster(
    demo_copy, tmp_path, capsys, monkeypatch
):
    first = _cli(demo_copy, tmp_path)
    # (the lock's place spelled out, so that this test also runs on code from before the lock)
    lock, work = tmp_path / ".cxalign" / "warehouse.lock", work_path(tmp_path / "warehouse.duckdb")
    deadline = time.monotonic() + 120
    holder: dict = {}
    while time.monotonic() < deadline and not work.exists():
        if lock.exists() and (holder := json.loads(lock.read_text() or "{}")).get("pid"):
            break
        time.sleep(0.1)
    assert first.poll() is None, "the first run ended before the second started"
    try:
        # The CLI: refused at once, naming the running run; nothing touched.
        assert run_cli(demo_copy, tmp_path, AS_OF) == 1
        err = capsys.readouterr().err
        assert "another cxalign run is working on" in err
        assert f"pid {first.pid}" in err and f"run {holder.get('run_id')}" in err
        assert "started 20" in err
        assert "lock" in err and "IO Error" not in err and "Conflicting" not in err

        # A run Dagster launches (the UI, the schedule) while `cxalign run` works: its
        # `cxalign` resource is refused the same way before any step starts.
        monkeypatch.setenv("CXALIGN_LANDING", str(demo_copy))
        monkeypatch.setenv("CXALIGN_WAREHOUSE", str(tmp_path / "warehouse.duckdb"))
        monkeypatch.setenv("CXALIGN_OUT", str(tmp_path / "scorecards"))
        from pipelines.definitions import defs
        from pipelines.defs.jobs import NIGHTLY_JOB

        with dg.DagsterInstance.ephemeral() as instance:
            result = (
                defs()
                .resolve_job_def(NIGHTLY_JOB)
                .execute_in_process(instance=instance, raise_on_error=False)
            )
        assert not result.success
        assert not [e for e in result.all_events if e.event_type_value == "STEP_START"]
        failure = next(
            e for e in result.all_events if e.event_type_value == "RESOURCE_INIT_FAILURE"
        )
        text = str(failure.event_specific_data.error.to_string())
        assert "another cxalign run is working on" in text and f"pid {first.pid}" in text
    finally:
        output = first.communicate(timeout=600)[0]
    # The running night was not disturbed.
    assert first.returncode == 0, output[-2000:]
    run_id = re.search(r"cxalign run finished in .* \(run ([0-9a-f-]+)\)", output).group(1)
    assert published_pair(tmp_path) == (run_id, run_id)


ANALYST_KILLED = """
import duckdb, os, sys
con = duckdb.connect(sys.argv[1])  # read-write: the DuckDB CLI's default
con.execute("create table analytics.scratch as select 42 as answer")
os._exit(0)  # the session dies before it closes: its WAL stays behind
"""

READER = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
tables = [r[0] for r in con.execute(
    "select table_name from information_schema.tables where table_schema = 'analytics'"
).fetchall()]
counts = {t: n for t, n in con.execute(
    "select table_name, row_count from analytics.warehouse_version").fetchall()}
wrong = [t for t, n in counts.items()
         if con.execute(f'select count(*) from analytics."{t}"').fetchone()[0] != n]
print(json.dumps({"tables": tables, "wrong": wrong}))
"""


def test_an_analysts_read_write_session_never_reaches_the_next_night(demo_copy, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    assert run_cli(demo_copy, tmp_path, AS_OF) == 0
    subprocess.run([sys.executable, "-c", ANALYST_KILLED, str(warehouse)], check=True)

    (demo_copy / "churn_events" / "late.csv").write_text(
        "account_id,churned_at,churn_type\nACC-0000001,2026-10-30,voluntary\n"
    )
    assert run_cli(demo_copy, tmp_path, AS_OF) == 0

    seen = json.loads(
        subprocess.run(
            [sys.executable, "-c", READER, str(warehouse)],
            check=True, capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    assert "scratch" not in seen["tables"]
    assert seen["wrong"] == []
    wh, sc = published_pair(tmp_path)
    assert wh == sc
