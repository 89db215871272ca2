"""The named parameters a SQL statement uses: DuckDB refuses a value for a name it lacks."""

from __future__ import annotations

import re

PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def used_params(sql: str, available: dict) -> dict:
    """The entries of `available` whose `$name` the statement mentions."""
    names = set(PARAM.findall(sql))
    return {name: value for name, value in available.items() if name in names}
