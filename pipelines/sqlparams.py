"""The named parameters a SQL statement uses (DuckDB refuses a value for a name it lacks),
and the one-unit-at-a-time form of a model's input query."""

from __future__ import annotations

import re
from datetime import date

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


def inline_params(sql: str, values: dict) -> str:
    """`sql` with each `$name` replaced by its value as a typed literal, for the one kind of
    statement DuckDB cannot prepare: `create view` (a view keeps its text, not its values).
    Only integers, floats and dates are accepted: nothing that needs quoting reaches the text.
    """

    def literal(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for ${name}")
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float, date)):
            raise TypeError(
                f"${name}: only numbers and dates are written into a view, not {value!r}"
            )
        if isinstance(value, date):
            return f"DATE '{value.isoformat()}'"
        return repr(value)

    return PARAM.sub(literal, sql)
