"""`make dev`'s preparation of $DAGSTER_HOME: the code location is `cxalign` whatever the
clone's folder is called, and the daemon's first start finds its retry cursors set."""

from __future__ import annotations

import logging
import shutil
import sys
import tomllib

import dagster as dg
from dagster._core.workspace.load import location_origins_from_yaml_paths
from dagster._daemon.auto_run_reexecution.event_log_consumer import (
    DAGSTER_EVENT_TYPES,
    _fetch_persisted_cursors,
)
from dagster.components.core.component_tree import ComponentTree

from pipelines.dev_instance import LOCATION_NAME, main, seed_retry_cursors, write_workspace
from pipelines.paths import PROJECT_ROOT


def test_the_workspace_names_the_location_cxalign_and_runs_this_environment(tmp_path):
    workspace = write_workspace(tmp_path)
    [origin] = location_origins_from_yaml_paths([str(workspace)])
    assert origin.location_name == LOCATION_NAME == "cxalign"
    assert origin.loadable_target_origin.module_name == "pipelines.definitions"
    assert origin.loadable_target_origin.working_directory == str(PROJECT_ROOT)
    assert origin.loadable_target_origin.executable_path == sys.executable
    before = workspace.stat().st_mtime_ns
    write_workspace(tmp_path)  # unchanged: not rewritten
    assert workspace.stat().st_mtime_ns == before


def test_the_projects_location_name_does_not_depend_on_the_folders_name(tmp_path):
    # dg names a project's location after its folder unless pyproject.toml says otherwise;
    # the UI warns when that name is not the one the location is registered under.
    clone = tmp_path / "my-clone-of-the-repo"
    clone.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", clone / "pyproject.toml")
    assert ComponentTree.for_project(clone).code_location_name == LOCATION_NAME
    # `dagster dev` reads [tool.dagster] first: no second name there.
    tool = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]
    assert tool.get("dagster", {}).get("code_location_name", LOCATION_NAME) == LOCATION_NAME


def test_the_retry_cursors_are_set_once_to_the_newest_event(tmp_path, caplog):
    home = tmp_path / "home"
    assert main([str(home)]) == 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        with caplog.at_level(logging.WARNING):
            cursors = _fetch_persisted_cursors(
                instance, DAGSTER_EVENT_TYPES, logging.getLogger("daemon")
            )
        assert not caplog.records  # the daemon's "No cursor for event type" warning
        assert set(cursors.values()) == {0}  # an empty instance: nothing before
        # A run recorded since: the cursors already set stay (the daemon moves them on).
        dg.materialize([dg.asset(name="one")(lambda: 1)], instance=instance)
        assert seed_retry_cursors(home) == []
        assert set(_fetch_persisted_cursors(
            instance, DAGSTER_EVENT_TYPES, logging.getLogger("daemon")).values()) == {0}  # fmt: skip
    assert (home / "workspace.yaml").exists()
