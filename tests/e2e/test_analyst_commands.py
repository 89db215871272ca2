"""The README's analyst commands, as written, in a folder laid out as a clone after `make run`:
the DuckDB shell opens the published warehouse read-only and answers, `make sql` too, and the
Python lines return the frame; `make notebook`'s set-up installs JupyterLab with jupytext's
notebook view of the notebooks/*.py files (no server is started)."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.paths import PROJECT_ROOT
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

PREFIX = Path(sys.prefix)  # the environment running the tests: the clone's .venv


def analyst_blocks() -> tuple[list[str], list[str]]:
    """The shell commands and the Python blocks of the README's section for analysts."""
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("\n## For analysts", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    commands = [
        line.split("#", 1)[0].strip() for lang, body in blocks if lang == "sh" for line in body.splitlines()
    ]  # fmt: skip
    return [c for c in commands if c], [body for lang, body in blocks if lang == "python"]


@pytest.fixture(scope="module")
def clone(small_demo, tmp_path_factory) -> Path:
    """A clone after `make run`: its Makefile, .venv (this environment), data/warehouse.duckdb."""
    root = tmp_path_factory.mktemp("clone")
    (root / ".venv").symlink_to(PREFIX)
    for name in ("Makefile", "pyproject.toml", "requirements.lock"):
        (root / name).symlink_to(PROJECT_ROOT / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)  # not the developer's instance
        assert run_cli(small_demo, root / "data", "2026-11-01") == 0
    return root


def _shell(command: str, cwd: Path, sql: str) -> subprocess.CompletedProcess:
    args = shlex.split(command)
    if args[0] == "make":
        # The environment is set up (`make run` did it): make is not to reinstall it here.
        args[1:1] = ["-s", "-o", ".venv/.installed"]
    return subprocess.run(args, cwd=cwd, input=sql, capture_output=True, text=True, timeout=120)


def test_the_readme_names_the_shell_make_sql_and_python():
    commands, python = analyst_blocks()
    assert commands == ["make sql", ".venv/bin/duckdb -readonly data/warehouse.duckdb"]
    assert len(python) == 1 and "read_only=True" in python[0]


@pytest.mark.parametrize("command", analyst_blocks()[0])
def test_each_readme_shell_command_answers_a_query_and_refuses_a_write(clone, command):
    with duckdb.connect(str(clone / "data" / "warehouse.duckdb"), read_only=True) as con:
        units, as_of = con.execute(
            "select (select count(*) from analytics.unit_alignment), "
            "(select any_value(as_of) from analytics.warehouse_version)"
        ).fetchone()
    assert units > 0
    answer = _shell(
        command, clone,
        ".mode csv\nselect (select count(*) from analytics.unit_alignment) as units, "
        "(select any_value(as_of) from analytics.warehouse_version) as as_of;\n",
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.splitlines()[-2:] == ["units,as_of", f"{units},{as_of}"]

    write = _shell(command, clone, "create table analytics.mine as select 1 as x;\n")
    assert write.returncode != 0 and "read-only" in write.stdout + write.stderr
    with duckdb.connect(str(clone / "data" / "warehouse.duckdb"), read_only=True) as con:
        assert not con.execute(
            "select * from duckdb_tables() where table_name = 'mine'"
        ).fetchall()


def test_the_shell_is_the_pipelines_duckdb(clone):
    version = subprocess.run(
        [str(clone / ".venv" / "bin" / "duckdb"), "-version"], capture_output=True, text=True
    )
    assert version.stdout.split()[0] == f"v{duckdb.__version__}"


def test_the_readme_python_lines_return_the_frame(clone, monkeypatch):
    [code] = analyst_blocks()[1]
    tree = ast.parse(code)
    *statements, last = tree.body
    monkeypatch.chdir(clone)
    scope: dict = {}
    exec(compile(ast.Module(statements, []), "README.md", "exec"), scope)
    frame = eval(compile(ast.Expression(last.value), "README.md", "eval"), scope)
    scope["con"].close()
    assert isinstance(frame, pl.DataFrame) and frame.height > 0
    assert frame.columns == ["business_unit", "month", "nps", "nps_ci_low", "nps_ci_high"]


def test_make_notebook_sets_up_jupyterlab_opening_the_py_notebooks_as_notebooks(clone):
    setup = subprocess.run(
        ["make", "-s", "-C", str(PROJECT_ROOT), "-o", f"{PREFIX}/.installed", "notebook-setup",
         f"VENV={PREFIX}"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stdout + setup.stderr
    lab = subprocess.run([PREFIX / "bin" / "jupyter", "lab", "--version"], capture_output=True,
                         text=True)  # fmt: skip
    assert lab.stdout.strip() == "4.6.6"
    extensions = subprocess.run([PREFIX / "bin" / "jupyter", "labextension", "list"],
                                capture_output=True, text=True)  # fmt: skip
    assert re.search(r"jupyterlab-jupytext v[\d.]+ .*enabled", extensions.stdout + extensions.stderr)
    # Python files open with jupytext's notebook view in this Lab, not the text editor...
    overrides = json.loads((PREFIX / "share/jupyter/lab/settings/overrides.json").read_text())
    viewers = overrides["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    # ...and the server's jupytext contents manager hands analyst_tour.py over as a notebook.
    opened = subprocess.run(
        [PREFIX / "bin" / "python", "-c",
         "import asyncio, json, sys; from jupytext import AsyncTextFileContentsManager as M; "
         "m = asyncio.run(M(root_dir=sys.argv[1]).get('analyst_tour.py', type='notebook')); "
         "print(json.dumps([m['type'], [c['cell_type'] for c in m['content']['cells']]]))",
         str(PROJECT_ROOT / "notebooks")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert opened.returncode == 0, opened.stderr
    kind, cells = json.loads(opened.stdout)
    assert kind == "notebook" and cells.count("code") >= 4 and "markdown" in cells

    # `make notebook` starts it on notebooks/ with the published warehouse's absolute path.
    plan = _shell("make -n notebook", clone, "")
    assert plan.returncode == 0, plan.stderr
    [start] = [ln for ln in plan.stdout.splitlines() if "jupyter lab" in ln]
    assert f'CXALIGN_WAREHOUSE="{clone}/data/warehouse.duckdb"' in start
    assert "--ServerApp.root_dir=notebooks" in start
    assert "CXALIGN_WAREHOUSE" in (PROJECT_ROOT / "notebooks" / "analyst_tour.py").read_text()
