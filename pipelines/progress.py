"""Progress for people watching a night: one line per stage, and how far a long stage is.

Assets call `report(context, ...)`: the line goes to Dagster's log (the UI) and to the
`cxalign.progress` logger, which the CLI prints to the terminal (the run's summary).

Inside a long stage, `RowsProgress` (rows read from a source's files, with a rate and an
estimate) and `UnitsProgress` (business units fitted out of units to fit) say how far it is:
- on a terminal, as one line redrawn in place by the CLI's `TerminalHandler`, and erased
  before the stage's own line; when the output is not a terminal (CI, cron, a file) nothing
  is drawn, so what the run prints is what it printed before;
- in Dagster's log (the run's page in the UI), at most one line every LOG_EVERY seconds, so a
  short stage adds none and a long one a line now and then.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pipelines.scorecard.names import display

_log = logging.getLogger("cxalign.progress")

# Seconds between two progress lines of one stage in Dagster's log.
LOG_EVERY = 10.0


def report(context, message: str) -> None:
    if context is not None:
        context.log.info(message)
    _log.info(message)


class TerminalHandler(logging.StreamHandler):
    """The CLI's printer for `cxalign.progress`: each stage's line with the time, and the
    running stage's progress drawn in place on the line below, only when the stream is a
    terminal."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self.setFormatter(logging.Formatter("%(asctime)s  %(message)s", "%H:%M:%S"))
        isatty = getattr(stream, "isatty", None)
        self.live = bool(isatty and isatty())
        self._drawn = False

    def draw(self, text: str) -> None:
        """Show text as the progress line (erased by the next stage line); "" erases it."""
        if not self.live:
            return
        width = max(20, shutil.get_terminal_size().columns - 1)  # a wrapped line cannot be redrawn
        with self.lock:
            self.stream.write("\r\x1b[K" + text[:width])
            self.stream.flush()
            self._drawn = bool(text)

    def emit(self, record: logging.LogRecord) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        super().emit(record)


def _draw(text: str) -> None:
    for handler in _log.handlers:
        if isinstance(handler, TerminalHandler):
            handler.draw(text)


def duration(seconds: float) -> str:
    """3 s, 48 s, 2 min 05 s, 1 h 02 min."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Progress:
    """One stage's progress: every update drawn on the terminal, one in LOG_EVERY seconds
    written to Dagster's log. Updates may come from worker threads. Use with `with`: the
    terminal line is erased when the stage ends, however it ends."""

    def __init__(self, context, clock: Callable[[], float] = time.monotonic) -> None:
        self._context = context
        self._clock = clock
        self._started = clock()
        self._logged = self._started
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return self._clock() - self._started

    def _show(self, line: str) -> None:
        _draw(line)
        now = self._clock()
        if self._context is not None and now - self._logged >= LOG_EVERY:
            self._logged = now
            self._context.log.info(line)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        _draw("")


class RowsProgress(_Progress):
    """Rows read from one source's landing files, a file at a time: rows so far, the rate,
    and, from the bytes still to read, about how many rows and how long are left."""

    def __init__(self, context, source: str, files: Iterable[Path], **kw) -> None:
        super().__init__(context, **kw)
        self.source = source
        self._sizes = {Path(f): Path(f).stat().st_size for f in files}
        self._bytes_left = sum(self._sizes.values())
        self._bytes_read = 0
        self._files_done = 0
        self.rows = 0

    def file_done(self, path: Path, rows: int | None) -> None:
        """One file handled: its rows loaded, or None when it was unchanged (not read)."""
        with self._lock:
            size = self._sizes.get(Path(path), 0)
            self._bytes_left -= size
            self._files_done += 1
            if rows is not None:
                self.rows += rows
                self._bytes_read += size
            line = self.line()
        self._show(line)

    def line(self) -> str:
        seconds = self.elapsed()
        text = (
            f"ingest   {self.source:<17} {self._files_done}/{len(self._sizes)} files, "
            f"{self.rows:,} rows read"
        )
        if self.rows and seconds > 0:
            rate = self.rows / seconds
            text += f" ({rate:,.0f} rows/s)"
            if self._bytes_left > 0 and self._bytes_read:
                more = self.rows / self._bytes_read * self._bytes_left
                text += f"; about {self.rows + more:,.0f} rows" + _left(more / rate)
        return text


class UnitsProgress(_Progress):
    """Business units fitted out of units to fit, and about how long the rest take, from
    the time so far and the units' sizes (account-months: a unit's fits take time in
    proportion)."""

    def __init__(self, context, stage: str, sizes: dict[str, float], **kw) -> None:
        super().__init__(context, **kw)
        self.stage = stage
        self._sizes = dict(sizes)
        self._done: list[str] = []

    def start(self) -> None:
        """Show the stage's units before the first is fitted."""
        with self._lock:
            line = self.line()
        _draw(line)

    def unit_done(self, unit: str) -> None:
        with self._lock:
            self._done.append(unit)
            line = self.line()
        self._show(line)

    def line(self) -> str:
        total = sum(self._sizes.values())
        done = sum(self._sizes.get(u, 0) for u in self._done)
        seconds = self.elapsed()
        text = (
            f"models   {self.stage}: {len(self._done)}/{len(self._sizes)} units fitted"
            + (f" (last: {display(self._done[-1])})" if self._done else "")  # no raw ESC
            + f", {duration(seconds)}"
        )
        if done and total > done:
            text += _left(seconds * (total - done) / done)
        return text


def _left(seconds: float) -> str:
    return f", ~{duration(seconds)} left" if seconds >= 1 else ""
