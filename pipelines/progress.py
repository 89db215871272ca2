"""One progress line per stage, for people watching `cxalign run`.

Assets call `report(context, ...)`: the line goes to Dagster's log (the UI) and
to the `cxalign.progress` logger, which the CLI prints to the terminal.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("cxalign.progress")


def report(context, message: str) -> None:
    if context is not None:
        context.log.info(message)
    _log.info(message)
