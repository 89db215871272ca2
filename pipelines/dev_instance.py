"""What `make dev` prepares in $DAGSTER_HOME before `dg dev` starts there.

    python -m pipelines.dev_instance DAGSTER_HOME

`dg dev` in the project folder warns that the project's dagster.yaml is not the instance's
(the instance is $DAGSTER_HOME, a copy of it), so `make dev` starts it in $DAGSTER_HOME on a
workspace file naming the code location `cxalign`, the name pyproject.toml gives it, whatever
the clone's folder is called. On its first start the daemon also warns that the run-retry
consumer has no cursor yet and ignores older events; the cursors are set here to what the
daemon would take (the newest event), so the first start is as quiet as the next ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from pipelines.paths import PROJECT_ROOT

LOCATION_NAME = "cxalign"


def write_workspace(home: Path, python: Path | None = None) -> Path:
    """$DAGSTER_HOME/workspace.yaml: the code location `cxalign` (pipelines.definitions),
    loaded by this environment's Python from the project folder."""
    workspace = home / "workspace.yaml"
    location = {
        "module_name": "pipelines.definitions",
        "location_name": LOCATION_NAME,
        "working_directory": str(PROJECT_ROOT),
        "executable_path": str(python or Path(sys.executable)),
    }
    text = (
        "# Written by `make dev` (pipelines/dev_instance.py); rewritten on each start.\n"
        + yaml.safe_dump({"load_from": [{"python_module": location}]}, sort_keys=False)
    )
    home.mkdir(parents=True, exist_ok=True)
    if not workspace.exists() or workspace.read_text() != text:
        workspace.write_text(text)
    return workspace


def seed_retry_cursors(home: Path) -> list[str]:
    """Set the run-retry consumer's missing cursors to the newest event, as its first
    iteration would (never older: that would retry old failed runs). Returns the keys set."""
    import dagster as dg
    from dagster._daemon.auto_run_reexecution.event_log_consumer import (
        DAGSTER_EVENT_TYPES,
        _create_cursor_key,
    )

    with dg.DagsterInstance.from_config(str(home)) as instance:
        keys = [_create_cursor_key(t) for t in DAGSTER_EVENT_TYPES]
        have = instance.daemon_cursor_storage.get_cursor_values(set(keys))
        missing = [k for k in keys if have.get(k) is None]
        if missing:
            newest = instance.event_log_storage.get_maximum_record_id() or 0
            instance.daemon_cursor_storage.set_cursor_values({k: str(newest) for k in missing})
    return missing


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m pipelines.dev_instance DAGSTER_HOME", file=sys.stderr)
        return 2
    home = Path(args[0])
    write_workspace(home)
    seed_retry_cursors(home)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
