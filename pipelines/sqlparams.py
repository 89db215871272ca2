"""The named parameters a SQL statement uses (DuckDB refuses a value for a name it lacks),
and the one-unit-at-a-time form of a model's input query."""

from __future__ import annotations

import re

PARAM = re.compile(r"\$([a-z_][a-z0-9_]*)")


def used_params(sql: str, available: dict) -> dict:
    """The entries of `available` whose `$name` the statement mentions."""
    names = set(PARAM.findall(sql))
    return {name: value for name, value in available.items() if name in names}


def for_units(sql: str, one_unit: bool) -> str:
    """`sql` with its `{units}` condition: one business unit's rows (bound as $unit), as a
    model stage reads them one unit per worker; or every unit's, as its fingerprint reads
    them."""
    return sql.replace("{units}", "business_unit = $unit" if one_unit else "true")
