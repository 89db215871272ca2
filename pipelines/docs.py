"""The analysts' data dictionary, generated from the data contracts.

    cxalign data-dictionary            # rewrites docs/data_dictionary.md

A test fails when the file and the contracts disagree, so the dictionary is
always the contracts.
"""

from __future__ import annotations

from pipelines.contracts import DATED_TYPES, Contract, all_contracts
from pipelines.paths import DOCS_DIR

DICTIONARY = DOCS_DIR / "data_dictionary.md"

_TYPE_NAMES = {
    "text": "VARCHAR",
    "integer": "BIGINT",
    "decimal": "DECIMAL(18,4)",
    "decimal_sum": "DECIMAL(38,4)",
    "double": "DOUBLE",
    "date": "DATE",
    "month": "DATE (first of month)",
    "timestamp": "TIMESTAMPTZ (UTC)",
    "boolean": "BOOLEAN",
}


def _rules(c, earliest=None) -> str:
    parts = []
    if c.required:
        parts.append("required")
    if earliest is not None and c.type in DATED_TYPES:
        parts.append(f"not before {earliest.isoformat()}")
    if c.allowed:
        parts.append("one of " + ", ".join(c.allowed))
    if c.min is not None:
        parts.append(f"≥ {c.min:g}")
    if c.max is not None:
        parts.append(f"≤ {c.max:g}")
    if c.range_by:
        by, ranges = c.range_by
        parts.append(f"by {by}: " + ", ".join(f"{cat} {lo:g}–{hi:g}" for cat, lo, hi in ranges))
    if c.pattern:
        parts.append(f"matches `{c.pattern}`")
    if c.equals_setting:
        parts.append(f"equals the configured {c.equals_setting}")
    if c.not_before:
        parts.append(f"not before {c.not_before}")
    if c.not_after_as_of:
        parts.append("not after the as-of date")
    if c.unknown_after_as_of:
        parts.append("NULL (not yet known) when after the as-of date")
    if c.known_with:
        parts.append(f"NULL while {' or '.join(c.known_with)} is not yet known")
    if c.references:
        parts.append(f"in {c.references[0]}.{c.references[1]}")
    return "; ".join(parts)


def _table(contract: Contract, source: bool) -> list[str]:
    rel = f"{contract.schema}.{contract.name}"
    lines = [f"### `{rel}`", "", " ".join(contract.description.split()), ""]
    facts = []
    if contract.grain:
        facts.append(f"**Grain:** {contract.grain}.")
    if contract.key:
        facts.append(f"**Key:** {', '.join(contract.key)}.")
    facts.append(
        f"**Owner:** {contract.owner}. **Contract:** `data_contracts/{contract.name}.yml` v{contract.version}."
    )
    lines += [" ".join(facts), ""]
    if source:
        lines += ["| column | type | rules | description |", "|---|---|---|---|"]
        for c in contract.columns:
            rules = _rules(c, contract.earliest_date)
            lines.append(f"| `{c.name}` | {_TYPE_NAMES[c.type]} | {rules} | {c.description} |")
        lines.append(
            "| `_source_file`, `_source_row` | VARCHAR, BIGINT | | File and 1-based data row the row came from. |"
        )
    else:
        lines += ["| column | type | null | description |", "|---|---|---|---|"]
        for c in contract.columns:
            lines.append(
                f"| `{c.name}` | {_TYPE_NAMES[c.type]} | {'yes' if c.nullable else 'no'} | {c.description} |"
            )
    return lines + [""]


def render_data_dictionary() -> str:
    contracts = all_contracts()
    published = sorted((c for c in contracts.values() if c.kind == "table"), key=lambda c: c.name)
    sources = sorted((c for c in contracts.values() if c.kind == "source"), key=lambda c: c.name)
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated from data_contracts/ by `cxalign data-dictionary`; a test keeps it",
        "     current. Edit the contracts, not this file. -->",
        "",
        "Every table an analyst queries, every column, and the rules the input had to pass.",
        "The same descriptions are in the warehouse itself: `select table_name, comment from",
        "duckdb_tables()` and `select column_name, comment from duckdb_columns()`.",
        "",
        "## Published tables (`analytics`)",
        "",
    ]
    for c in published:
        lines += _table(c, source=False)
    lines += [
        "## Validated sources (`staging`)",
        "",
        "The landing sources after validation: typed, normalised, and every row passing its",
        "contract's rules (rows that did not are in `analytics.quarantine`).",
        "",
    ]
    for c in sources:
        lines += _table(c, source=True)
    return "\n".join(lines).rstrip() + "\n"


def write_data_dictionary(path=DICTIONARY) -> None:
    path.write_text(render_data_dictionary(), encoding="utf-8")
