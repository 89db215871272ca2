"""A night's progress: on a terminal the running stage says how far it is, the Dagster log
(the run's page in the UI) has the same lines, and printed to a pipe the night prints only its
stages and summary."""

from __future__ import annotations

import io
import re
import sys

import dagster as dg
import duckdb
import pytest

from pipelines import progress
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

ROWS = re.compile(
    r"ingest   (\w+) +(\d+)/(\d+) files, ([\d,]+) rows read \([\d,]+ rows/s\)"
    r"(; about [\d,]+ rows(, ~.* left)?)?"
)
UNITS = re.compile(r"models   (alignment|SCI): (\d+)/(\d+) units fitted.*")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_and_in_the_dagster_log_and_none_in_a_pipe(
    small_demo, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)  # every update in the log, not one in 10 s
    terminal, piped = Terminal(), sys.stdout
    monkeypatch.setattr(sys, "stdout", terminal)
    assert run_cli(small_demo, tmp_path, "2026-11-01") == 0
    monkeypatch.setattr(sys, "stdout", piped)

    out = terminal.getvalue()
    drawn = [d for line in out.split("\n") for d in line.split("\r\x1b[K")[:-1] if d]
    rows = [m for m in map(ROWS.fullmatch, drawn) if m]
    units = [m for m in map(UNITS.fullmatch, drawn) if m]
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        read = dict(con.execute("select source, rows_read from analytics.ingest_runs").fetchall())
        n_units = con.execute("select count(*) from analytics.dim_business_unit").fetchone()[0]
    # Each source's last file brings its count to the rows the night read from it.
    last = {m[1]: m for m in rows}
    assert {s for s, n in read.items() if n} <= set(last)
    for source, m in last.items():
        assert m[2] == m[3] and int(m[4].replace(",", "")) == read[source]
    # Months of tickets arrive one file at a time, with an estimate while files remain.
    tickets = [m for m in rows if m[1] == "support_tickets"]
    assert len(tickets) > 2 and tickets[0][5]
    for stage in ("alignment", "SCI"):
        counts = [int(m[2]) for m in units if m[1] == stage]
        assert counts == list(range(n_units + 1))  # 0 before the first, then each unit
    # What stays on the screen once each line is redrawn: the stages and the summary alone.
    screen = [line.split("\r\x1b[K")[-1] for line in out.split("\n")]
    assert not [ln for ln in screen if ROWS.fullmatch(ln) or UNITS.fullmatch(ln)]
    assert any(ln.startswith("cxalign run finished in ") for ln in screen)
    assert sum(" validate " in ln for ln in screen) == len(read)

    # The Dagster log of the run: the same progress, for the run's page in the UI.
    with dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")) as instance:
        [run] = instance.get_runs()
        logged = [e.user_message for e in instance.all_logs(run.run_id) if e.dagster_event is None]
    assert [m for m in logged if ROWS.fullmatch(m)] and [m for m in logged if UNITS.fullmatch(m)]

    # A second night printed to a pipe (capsys): no progress drawn, the lines as before.
    assert run_cli(small_demo, tmp_path, "2026-11-01") == 0
    piped = capsys.readouterr().out
    assert "\r" not in piped and "\x1b" not in piped
    assert " files, " not in piped and "units fitted" not in piped
    assert "cxalign run finished in " in piped
