"""Progress inside long stages: drawn in place on a terminal, silent elsewhere, and written to
Dagster's log at a bounded pace."""

from __future__ import annotations

import io
import logging

import pytest

from pipelines import progress as progress_mod
from pipelines.progress import RowsProgress, TerminalHandler, UnitsProgress, duration, report


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, message: str) -> None:
        self.lines.append(message)


class Context:
    def __init__(self) -> None:
        self.log = Log()


@pytest.fixture
def printed(request, monkeypatch):
    """The CLI's handler on cxalign.progress, writing to a terminal or to a pipe."""
    monkeypatch.setenv("COLUMNS", "200")
    stream = Terminal() if request.param == "terminal" else io.StringIO()
    handler = TerminalHandler(stream)
    logger = logging.getLogger("cxalign.progress")
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


def _night(clock: Clock, context: Context, tmp_path) -> None:
    """A stage's line, then a source read file by file, then units fitted, then a line."""
    files = []
    for i, size in enumerate((1000, 1000, 2000)):
        f = tmp_path / f"tickets_{i}.csv"
        f.write_bytes(b"x" * size)
        files.append(f)
    report(context, "ingest   accounts          1 file(s): 1 loaded")
    with RowsProgress(context, "support_tickets", files, clock=clock) as rows:
        clock.now += 2
        rows.file_done(files[0], 500)
        clock.now += 2
        rows.file_done(files[1], None)  # unchanged: not read
        clock.now += 4
        rows.file_done(files[2], 1000)
    report(context, "ingest   support_tickets   3 file(s): 2 loaded")
    with UnitsProgress(context, "alignment", {"Retail": 100, "Payments": 300}, clock=clock) as u:
        u.start()
        clock.now += 12
        u.unit_done("Retail")
        clock.now += 36
        u.unit_done("Payments")
    report(context, "models   alignment: Retail: Innovative, Payments: Inactive")


@pytest.mark.parametrize("printed", ["pipe"], indirect=True)
def test_not_on_a_terminal_only_the_stages_lines_are_printed(printed, tmp_path):
    _night(Clock(), Context(), tmp_path)
    lines = printed.getvalue().splitlines()
    assert [ln.split("  ", 1)[1] for ln in lines] == [
        "ingest   accounts          1 file(s): 1 loaded",
        "ingest   support_tickets   3 file(s): 2 loaded",
        "models   alignment: Retail: Innovative, Payments: Inactive",
    ]
    assert "\r" not in printed.getvalue() and "\x1b" not in printed.getvalue()


@pytest.mark.parametrize("printed", ["terminal"], indirect=True)
def test_on_a_terminal_progress_is_drawn_in_place_and_erased_before_each_stage_line(
    printed, tmp_path
):
    _night(Clock(), Context(), tmp_path)
    out = printed.getvalue()
    # What the screen shows once each \r\x1b[K (back to the start, erase the line) is applied.
    screen = [chunk.split("\r\x1b[K")[-1] for chunk in out.split("\n")]
    assert [ln.split("  ", 1)[1] for ln in screen if ln] == [
        "ingest   accounts          1 file(s): 1 loaded",
        "ingest   support_tickets   3 file(s): 2 loaded",
        "models   alignment: Retail: Innovative, Payments: Inactive",
    ]
    drawn = [d for d in out.replace("\n", "\r\x1b[K").split("\r\x1b[K") if d and ":" not in d[:9]]
    assert drawn == [
        # 500 rows from the first 1,000 bytes, 3,000 bytes to go: about 2,000 rows in all.
        "ingest   support_tickets   1/3 files, 500 rows read (250 rows/s); about 2,000 rows, ~6 s left",
        "ingest   support_tickets   2/3 files, 500 rows read (125 rows/s); about 1,500 rows, ~8 s left",
        "ingest   support_tickets   3/3 files, 1,500 rows read (188 rows/s)",
        "models   alignment: 0/2 units fitted, 0 s",
        # A quarter of the account-months in 12 s: 36 s for the rest.
        "models   alignment: 1/2 units fitted (last: Retail), 12 s, ~36 s left",
        "models   alignment: 2/2 units fitted (last: Payments), 48 s",
    ]


@pytest.mark.parametrize("printed", ["terminal"], indirect=True)
def test_dagster_log_gets_a_progress_line_at_most_every_log_every_seconds(
    printed, tmp_path, monkeypatch
):
    monkeypatch.setattr(progress_mod, "LOG_EVERY", 10.0)
    context = Context()
    _night(Clock(), context, tmp_path)
    # The source's three files came within 8 s of its start: no line; the units after 12 s
    # and 36 s more: one line each. The stages' own lines are all there.
    assert context.log.lines == [
        "ingest   accounts          1 file(s): 1 loaded",
        "ingest   support_tickets   3 file(s): 2 loaded",
        "models   alignment: 1/2 units fitted (last: Retail), 12 s, ~36 s left",
        "models   alignment: 2/2 units fitted (last: Payments), 48 s",
        "models   alignment: Retail: Innovative, Payments: Inactive",
    ]


@pytest.mark.parametrize("printed", ["terminal"], indirect=True)
def test_a_stage_that_fails_leaves_no_progress_line_behind(printed, tmp_path):
    f = tmp_path / "a.csv"
    f.write_text("x")
    with pytest.raises(RuntimeError), RowsProgress(None, "accounts", [f]) as rows:
        rows.file_done(f, 1)
        raise RuntimeError("cut short")
    assert printed.getvalue().endswith("\r\x1b[K")


@pytest.mark.parametrize("printed", ["terminal"], indirect=True)
def test_the_progress_line_is_cut_to_the_terminals_width(printed, tmp_path, monkeypatch):
    # A line longer than the terminal wraps, and \r returns only to the start of its last row.
    monkeypatch.setenv("COLUMNS", "40")
    f = tmp_path / "a.csv"
    f.write_text("x")
    RowsProgress(None, "support_tickets", [f]).file_done(f, 1234)
    assert printed.getvalue() == "\r\x1b[K" + "ingest   support_tickets   1/1 files, 1,234 rows read"[:39]


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (0.4, 48, 125, 3720)] == ["0 s", "48 s", "2 min 05 s", "1 h 02 min"]
