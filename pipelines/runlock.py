"""One nightly run at a time per warehouse.

Two runs on one warehouse would write the same working database: DuckDB lets only one
process open it, so the second run's steps fail one by one with raw lock errors, and a
run that got in between the first's steps mixes two landing zones in the raw layer.

The lock is an exclusive `flock(2)` on `<dir>/.cxalign/<name>.lock`, taken before
the run opens anything and held until it ends. The kernel drops it when the holding
process dies however it dies (killed, out of memory, power cut), so a dead run's lock
is never in the way and is taken over atomically; the pid still written in the file
only names who held it. The file says who holds the lock (pid, host, start time, run
id, command) so that the run that is refused can name the one that is running.

`cxalign run` takes the lock before it touches the working database; a run launched by
Dagster (the UI, the schedule) takes it when its `cxalign` resource starts. Both are
the same lock, so `cxalign run` and a scheduled run refuse each other too. Within one
process the lock is re-entrant: the CLI's run holds it, and the resource of the run it
starts finds it held by its own process.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


class RunLocked(RuntimeError):
    """Another run holds the warehouse's lock."""


def lock_path(warehouse: str | Path) -> Path:
    warehouse = Path(warehouse).absolute()
    return warehouse.parent / ".cxalign" / f"{warehouse.stem}.lock"


# Locks this process holds: path -> [open file, depth]. flock is per open file, so a
# second open of the same path in this process would refuse its own holder.
_held: dict[Path, list] = {}


def _describe(holder: dict) -> str:
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder["host"] != socket.gethostname():
        parts[-1] += f" on {holder['host']}"
    if holder.get("started_at"):
        parts.append(f"started {holder['started_at']}")
    if holder.get("run_id"):
        parts.append(f"run {holder['run_id']}")
    if holder.get("command"):
        parts.append(holder["command"])
    return ", ".join(parts)


def _read(f) -> dict:
    f.seek(0)
    try:
        return json.loads(f.read() or "{}")
    except ValueError:
        return {}


def _write(f, holder: dict) -> None:
    f.seek(0)
    f.truncate()
    f.write(json.dumps(holder))
    f.flush()


@contextmanager
def run_lock(
    warehouse: str | Path, run_id: str = "", command: str = "", log=None
) -> Iterator[dict]:
    """Hold the warehouse's run lock, or raise RunLocked naming the run that holds it.

    `log` (a callable taking one line) is told when a lock left by a dead run is taken over.
    Yields the holder record (pid, host, started_at, run_id, command).
    """
    path = lock_path(warehouse)
    if path in _held:  # this process already runs the night: the CLI, then its resource
        entry = _held[path]
        entry[1] += 1
        holder = _read(entry[0])
        if run_id and not holder.get("run_id"):
            holder["run_id"] = run_id
            _write(entry[0], holder)
        try:
            yield holder
        finally:
            entry[1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # noqa: SIM115 - held open for as long as the lock
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(f)
            raise RunLocked(
                f"another cxalign run is working on {Path(warehouse)}: {_describe(holder)}. "
                "One run at a time per warehouse: wait for it to finish"
                + (f", or stop it (kill {holder['pid']})" if holder.get("pid") else "")
                + f". (lock: {path})"
            ) from None
        previous = _read(f)
        if previous.get("pid") and log is not None:
            log(
                f"run lock: the run that held it ({_describe(previous)}) is no longer "
                "running; its lock is taken over and its leftovers cleaned"
            )
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "run_id": run_id,
            "command": command or " ".join(["cxalign", *sys.argv[1:2]]),
        }
        _write(f, holder)
        _held[path] = [f, 1]
        try:
            yield holder
        finally:
            del _held[path]
            _write(f, {})  # released cleanly: no pid left to report as a dead holder
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    finally:
        f.close()
