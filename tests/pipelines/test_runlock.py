"""One run at a time per warehouse: the lock names the run that holds it, and a dead run's
lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.runlock import RunLocked, lock_path, run_lock

HOLD = """
import sys, time
from pipelines.runlock import run_lock
with run_lock(sys.argv[1], run_id="run-of-the-other", command="cxalign run --as-of 2026-11-01"):
    print("held", flush=True)
    time.sleep(600)
"""


def _hold(warehouse: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(warehouse)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_run_is_refused_with_the_running_runs_pid_start_and_id(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse)
    try:
        with pytest.raises(RunLocked) as refused, run_lock(warehouse):
            pass
        message = str(refused.value)
        assert f"pid {holder.pid}" in message
        assert "run run-of-the-other" in message
        assert "started 20" in message and "cxalign run --as-of 2026-11-01" in message
        assert "One run at a time per warehouse" in message
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_run_is_taken_over_and_reported(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    holder = _hold(warehouse)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    # The dead run's record is still in the file; the kernel dropped its lock.
    assert json.loads(lock_path(warehouse).read_text())["pid"] == holder.pid
    lines: list[str] = []
    with run_lock(warehouse, run_id="tonight", log=lines.append) as me:
        assert me["pid"] == os.getpid() and me["run_id"] == "tonight"
        assert json.loads(lock_path(warehouse).read_text())["run_id"] == "tonight"
    assert len(lines) == 1 and f"pid {holder.pid}" in lines[0] and "no longer running" in lines[0]
    # Released cleanly: nothing left to report as a dead holder.
    lines.clear()
    with run_lock(warehouse, log=lines.append):
        pass
    assert lines == []


def test_the_lock_is_reentrant_within_the_process_that_holds_it(tmp_path):
    """`cxalign run` holds it, then the `cxalign` resource of the run it starts takes it."""
    warehouse = tmp_path / "warehouse.duckdb"
    with run_lock(warehouse, run_id="r1"), run_lock(warehouse, run_id="r1") as inner:
        assert inner["run_id"] == "r1"
    # and it is free again afterwards, also for another process
    holder = _hold(warehouse)
    holder.kill()
    holder.wait()


def test_a_pid_alone_in_the_file_does_not_hold_the_lock(tmp_path):
    """A stale lock file whose pid is alive (pid reuse) or dead does not block: only a
    process holding the file lock does."""
    warehouse = tmp_path / "warehouse.duckdb"
    lock_path(warehouse).parent.mkdir(parents=True)
    lock_path(warehouse).write_text(json.dumps({"pid": 1, "run_id": "long-gone"}))
    started = time.monotonic()
    with run_lock(warehouse, run_id="tonight"):
        pass
    assert time.monotonic() - started < 5
