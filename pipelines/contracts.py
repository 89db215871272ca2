"""Data contracts: `data_contracts/<name>.yml`, loaded, checked and compiled.

A contract lists a table's columns (type, description, rules) and its key. For a
landing source it is also the list of rules every input row must pass; this
module compiles those rules to DuckDB SQL (the quarantine pass in
`pipelines.ingest`) and describes them for great-expectations
(`pipelines.validation`), so both engines read one definition.

Rule names, as they appear in `analytics.quarantine.rule`:

    required            a required value is empty
    type                the text does not parse as the column's type
    allowed_values      not one of the allowed values
    range               below the minimum or above the maximum
    range_by_<column>   outside the range for that row's <column> (survey score by survey type)
    pattern             does not match the column's pattern
    reporting_currency  differs from the configured reporting currency
    time_order          earlier than the column it must not precede
    before_earliest_date  dated before the contract's earliest_date (default 1990-01-01)
    after_as_of         dated after the run's as-of date
    unknown_<column>    refers to a <column> that is not in the referenced staged table
    conflicting_duplicate  the key appears more than once with different content
    malformed_row       the CSV record has the wrong number of fields (or similar)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path

import yaml

from pipelines.paths import CONTRACTS_DIR

SQL_TYPES = {
    "text": "varchar",
    "integer": "bigint",
    "decimal": "decimal(18, 4)",
    "decimal_sum": "decimal(38, 4)",  # sums of decimals: exact, so reconciliations are exact
    "double": "double",
    "date": "date",
    "month": "date",
    "timestamp": "timestamptz",
    "boolean": "boolean",
}

_COLUMN_KEYS = {
    "name", "type", "required", "description", "normalise", "allowed", "min", "max",
    "range_by", "not_before", "not_after_as_of", "unknown_after_as_of", "known_with", "pattern",
    "references", "default_setting", "equals_setting", "unit", "nullable", "free_text",
}  # fmt: skip
_CONTRACT_KEYS = {
    "name", "kind", "contract_version", "owner", "optional", "description", "key", "columns",
    "grain", "schema", "earliest_date",
}  # fmt: skip
DATED_TYPES = ("date", "month", "timestamp")
# The earliest date a source may hold unless its contract says otherwise (earliest_date):
# earlier dates are typos and placeholders (1900-01-01, 0001-01-01), not history.
EARLIEST_DATE = date(1990, 1, 1)


class ContractError(ValueError):
    """A contract file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    type: str
    description: str = ""
    required: bool = False
    normalise: str | None = None  # lower | upper
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    range_by: tuple[str, tuple[tuple[str, float, float], ...]] | None = None
    not_before: str | None = None
    not_after_as_of: bool = False  # a value after the as-of date quarantines the row
    unknown_after_as_of: bool = False  # ... is not yet known: staged as NULL (not_yet_known)
    known_with: tuple[str, ...] = ()  # NULL when any of these columns is not yet known
    pattern: str | None = None
    references: tuple[str, str] | None = None  # (table, column)
    default_setting: str | None = None
    equals_setting: str | None = None
    unit: str | None = None
    nullable: bool = True
    # Written by people (a comment, a reason, a name): scrubbed of e-mail addresses and phone
    # numbers as it is loaded (pipelines.privacy).
    free_text: bool = False

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    name: str
    kind: str  # source | table
    version: int
    owner: str
    description: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    optional: bool = False
    schema: str = "analytics"
    grain: str = ""
    earliest_date: date = EARLIEST_DATE
    path: Path | None = None

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _fail(path: Path, msg: str) -> ContractError:
    return ContractError(f"data contract {path.name}: {msg}")


def _parse_column(path: Path, i: int, raw: dict) -> ColumnSpec:
    if not isinstance(raw, dict) or "name" not in raw or "type" not in raw:
        raise _fail(path, f"columns[{i}] needs at least a name and a type")
    name = raw["name"]
    unknown = sorted(set(raw) - _COLUMN_KEYS)
    if unknown:
        raise _fail(path, f"column {name}: unknown key {unknown[0]!r}")
    if raw["type"] not in SQL_TYPES:
        raise _fail(
            path, f"column {name}: unknown type {raw['type']!r} (one of {sorted(SQL_TYPES)})"
        )
    range_by = None
    if "range_by" in raw:
        rb = raw["range_by"]
        ranges = []
        for cat, bounds in rb["ranges"].items():
            lo, hi = bounds
            if lo > hi:
                raise _fail(path, f"column {name}: range for {cat} is the wrong way round")
            ranges.append((str(cat), float(lo), float(hi)))
        range_by = (rb["column"], tuple(ranges))
    if raw.get("min") is not None and raw.get("max") is not None and raw["min"] > raw["max"]:
        raise _fail(path, f"column {name}: min is above max")
    references = None
    if "references" in raw:
        table, _, col = str(raw["references"]).partition(".")
        if not col:
            raise _fail(path, f"column {name}: references must be <table>.<column>")
        references = (table, col)
    if raw.get("normalise") not in (None, "lower", "upper"):
        raise _fail(path, f"column {name}: normalise must be lower or upper")
    if raw.get("free_text") and raw["type"] != "text":
        raise _fail(path, f"column {name}: only a text column is free_text")
    return ColumnSpec(
        name=name,
        type=raw["type"],
        description=str(raw.get("description", "")).strip(),
        required=bool(raw.get("required", False)),
        normalise=raw.get("normalise"),
        allowed=tuple(str(v) for v in raw["allowed"]) if "allowed" in raw else None,
        min=raw.get("min"),
        max=raw.get("max"),
        range_by=range_by,
        not_before=raw.get("not_before"),
        not_after_as_of=bool(raw.get("not_after_as_of", False)),
        unknown_after_as_of=bool(raw.get("unknown_after_as_of", False)),
        known_with=(
            (raw["known_with"],) if isinstance(raw.get("known_with"), str)
            else tuple(raw.get("known_with") or ())
        ),
        pattern=raw.get("pattern"),
        references=references,
        default_setting=raw.get("default_setting"),
        equals_setting=raw.get("equals_setting"),
        unit=raw.get("unit"),
        nullable=bool(raw.get("nullable", True)),
        free_text=bool(raw.get("free_text", False)),
    )


# libyaml's safe loader where PyYAML was built with it: the same documents, ten times faster
# (the contracts are read at every start).
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_contract_file(path: Path) -> Contract:
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise _fail(path, "must be a mapping")
    unknown = sorted(set(raw) - _CONTRACT_KEYS)
    if unknown:
        raise _fail(path, f"unknown key {unknown[0]!r}")
    for k in ("name", "kind", "columns"):
        if k not in raw:
            raise _fail(path, f"missing {k!r}")
    if raw["kind"] not in ("source", "table"):
        raise _fail(path, "kind must be source or table")
    columns = tuple(_parse_column(path, i, c) for i, c in enumerate(raw["columns"]))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise _fail(path, "a column name appears twice")
    key = tuple(raw.get("key") or ())
    for k in key:
        if k not in names:
            raise _fail(path, f"key column {k!r} is not a column")
    for c in columns:
        if c.not_before and c.not_before not in names:
            raise _fail(
                path, f"column {c.name}: not_before refers to unknown column {c.not_before!r}"
            )
        if c.range_by and c.range_by[0] not in names:
            raise _fail(
                path, f"column {c.name}: range_by refers to unknown column {c.range_by[0]!r}"
            )
        if c.not_after_as_of and c.unknown_after_as_of:
            raise _fail(path, f"column {c.name}: not_after_as_of or unknown_after_as_of, not both")
        if (c.not_after_as_of or c.unknown_after_as_of) and c.type not in DATED_TYPES:
            raise _fail(path, f"column {c.name}: only a date, month or timestamp has an as-of rule")
        if (
            raw["kind"] == "source"
            and c.type in DATED_TYPES
            and not (c.not_after_as_of or c.unknown_after_as_of)
        ):
            # Every date has a plausible range: earliest_date up to the as-of date.
            raise _fail(
                path,
                f"column {c.name}: a dated column needs not_after_as_of or unknown_after_as_of",
            )
        for known_with in c.known_with:
            by = next((o for o in columns if o.name == known_with), None)
            if by is None or not by.unknown_after_as_of:
                raise _fail(
                    path,
                    f"column {c.name}: known_with must name columns with unknown_after_as_of",
                )
    earliest = raw.get("earliest_date", EARLIEST_DATE)
    if not isinstance(earliest, date):
        raise _fail(path, "earliest_date must be a date (YYYY-MM-DD)")
    return Contract(
        name=raw["name"],
        kind=raw["kind"],
        version=int(raw.get("contract_version", 1)),
        owner=str(raw.get("owner", "")),
        description=str(raw.get("description", "")).strip(),
        columns=columns,
        key=key,
        optional=bool(raw.get("optional", False)),
        schema=str(raw.get("schema", "staging" if raw["kind"] == "source" else "analytics")),
        grain=str(raw.get("grain", "")).strip(),
        earliest_date=earliest,
        path=path,
    )


@cache
def all_contracts(directory: Path = CONTRACTS_DIR) -> dict[str, Contract]:
    contracts = {}
    for path in sorted(directory.glob("*.yml")):
        c = load_contract_file(path)
        if c.name != path.stem:
            raise _fail(path, f"name {c.name!r} must match the file name")
        contracts[c.name] = c
    return contracts


def source_contracts() -> dict[str, Contract]:
    """Landing-source contracts, referenced sources first (accounts before the rest)."""
    sources = {n: c for n, c in all_contracts().items() if c.kind == "source"}
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for col in sources[name].columns:
            if col.references and col.references[0] != name:
                visit(col.references[0])
        ordered.append(name)

    for name in sorted(sources):
        visit(name)
    return {n: sources[n] for n in ordered}


# --- compiling a source contract to DuckDB SQL -------------------------------------------


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def clean_expr(col: ColumnSpec) -> str:
    """The raw text, trimmed, empty as NULL, case-normalised where the contract says so."""
    e = f"nullif(trim({quote_ident(col.name)}), '')"
    if col.normalise == "lower":
        e = f"lower({e})"
    elif col.normalise == "upper":
        e = f"upper({e})"
    return e


# What a typed column accepts. DuckDB's own casts are far more lenient (try_cast('3.5' as
# bigint) is 4, and '0x9', '1_0', '1e0', 'infinity', '44-03-15' and year 294248 all parse),
# so the text must first match one of these patterns in full, surrounding whitespace (spaces,
# tabs, line breaks) allowed; only then is it cast. Digits are ASCII only.
INTEGER_TEXT = r"[+-]?[0-9]+(\.0+)?"  # 7.0 is 7 (exports write integers with NaNs so); 7.5 is not
DECIMAL_TEXT = r"[+-]?([0-9]+(\.[0-9]+)?|\.[0-9]+)"  # no exponent, no separators
DOUBLE_TEXT = r"[+-]?([0-9]+(\.[0-9]+)?|\.[0-9]+)([eE][+-]?[0-9]+)?"  # and finite
MONTH_TEXT = r"[0-9]{4}-[0-9]{2}"
# A calendar date with a four-digit year, optionally a time of day (00:00 to 23:59:59,
# fractions of a second allowed) and, after a time, a UTC offset (Z, UTC, +hh, +hhmm, +hh:mm).
DATE_TEXT = r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
TIME_TEXT = (
    DATE_TEXT + r"(?:[Tt ]([01][0-9]|2[0-3]):([0-5][0-9])(?::([0-5][0-9](?:\.[0-9]{1,9})?))?"
    r"(?: ?([Zz]|UTC|[+-](?:0[0-9]|1[0-4])(?::?[0-5][0-9])?))?)?"
)
_SPACE = r"[ \t\r\n]*"


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _whole(pattern: str) -> str:
    """The pattern matching the whole text, with surrounding whitespace, as a SQL string."""
    return _sql_str(f"^{_SPACE}{pattern}{_SPACE}$")


def _parse_timestamp(text: str) -> str:
    # DuckDB's cast reads most of the forms TIME_TEXT admits, and reads them right; the rest
    # (an offset after hh:mm, ' +05:30', 'UTC' after hh:mm, a lower-case 'z') are rewritten
    # to 'date hh:mm:ss+hh:mm' from the pattern's parts first.
    m = f"regexp_extract({text}, {_whole(TIME_TEXT)}, ['d', 'h', 'mi', 's', 'z'])"
    z = f"replace(({m}).z, ':', '')"
    offset = (
        f"case when ({m}).z in ('', 'Z', 'z', 'UTC') then '+00:00' "
        f"else left({z}, 3) || ':' || coalesce(nullif(substr({z}, 4, 2), ''), '00') end"
    )
    canonical = (
        f"({m}).d || ' ' || coalesce(nullif(({m}).h, ''), '00') || ':' "
        f"|| coalesce(nullif(({m}).mi, ''), '00') || ':' || coalesce(nullif(({m}).s, ''), '00') "
        f"|| {offset}"
    )
    return (
        f"case when regexp_matches({text}, {_whole(TIME_TEXT)}) then coalesce("
        f"try_cast({text} as timestamptz), try_cast({canonical} as timestamptz)) end"
    )


def _parse_date(text: str) -> str:
    # A date that carries a time keeps the date as written (the time is checked, not used).
    return (
        f"case when regexp_matches({text}, {_whole(TIME_TEXT)}) "
        f"then try_cast(regexp_extract({text}, {_sql_str(DATE_TEXT)}, 1) as date) end"
    )


def parse_expr(col: ColumnSpec, clean: str, settings_values: dict[str, str]) -> str:
    """SQL that turns the cleaned text into the column's type; NULL where it does not parse
    (the `type` rule). Strict: see INTEGER_TEXT and the patterns after it."""
    if col.default_setting:
        # Bound later as a named parameter so values never enter the SQL text.
        clean = f"coalesce({clean}, ${col.default_setting})"
    t = col.type
    if t == "text":
        return clean

    def matching(pattern: str, then: str) -> str:
        return f"case when regexp_matches({clean}, {_whole(pattern)}) then {then} end"

    if t == "integer":  # the pattern leaves the cast only zeros after a point to drop
        return matching(INTEGER_TEXT, f"try_cast({clean} as bigint)")
    if t == "decimal":  # more than four decimals are rounded to four
        return matching(DECIMAL_TEXT, f"try_cast({clean} as {SQL_TYPES[t]})")
    if t == "double":
        value = f"try_cast({clean} as double)"
        return matching(DOUBLE_TEXT, f"case when isfinite({value}) then {value} end")
    if t == "boolean":
        return f"try_cast({clean} as boolean)"  # true/false, t/f, yes/no, y/n, 1/0; any case
    if t == "timestamp":
        return _parse_timestamp(clean)
    if t == "date":
        return _parse_date(clean)
    if t == "month":
        return (
            f"case when regexp_matches({clean}, {_whole(MONTH_TEXT)}) "
            f"then try_cast(regexp_extract({clean}, {_sql_str(MONTH_TEXT)}) || '-01' as date) "
            f"else cast(date_trunc('month', {_parse_date(clean)}) as date) end"
        )
    raise AssertionError(t)


@dataclass(frozen=True)
class RowRule:
    """One row-level rule on one column: a SQL predicate true for the rows that break it."""

    column: str
    rule: str
    violation_sql: str  # over the candidate table: typed columns by name, text as "<col>__raw"
    detail_sql: str  # a human sentence, as SQL


def row_rules(contract: Contract) -> list[RowRule]:
    """Every rule that can be decided from one row alone, in contract order."""
    rules: list[RowRule] = []
    for c in contract.columns:
        q, raw = quote_ident(c.name), quote_ident(c.name + "__raw")
        if c.required:
            rules.append(RowRule(c.name, "required", f"{raw} is null", "'value is required'"))
        if c.type != "text":
            rules.append(
                RowRule(
                    c.name,
                    "type",
                    f"{raw} is not null and {q} is null",
                    _sql_str(f"not a valid {c.type}: {TYPE_FORMS[c.type]}"),
                )
            )
        if c.allowed is not None:
            allowed = ", ".join("'" + v.replace("'", "''") + "'" for v in c.allowed)
            rules.append(
                RowRule(
                    c.name,
                    "allowed_values",
                    f"{q} is not null and {q} not in ({allowed})",
                    f"'must be one of {', '.join(c.allowed)}'",
                )
            )
        if c.min is not None or c.max is not None:
            conds, words = [], []
            if c.min is not None:
                conds.append(f"{q} < {c.min}")
                words.append(f"at least {c.min:g}")
            if c.max is not None:
                conds.append(f"{q} > {c.max}")
                words.append(f"at most {c.max:g}")
            rules.append(
                RowRule(
                    c.name,
                    "range",
                    f"{q} is not null and ({' or '.join(conds)})",
                    f"'must be {' and '.join(words)}'",
                )
            )
        if c.range_by is not None:
            by, ranges = c.range_by
            qb = quote_ident(by)
            case = " ".join(
                f"when {qb} = '{cat}' then {q} < {lo:g} or {q} > {hi:g}" for cat, lo, hi in ranges
            )
            detail = " ".join(
                f"when {qb} = '{cat}' then '{cat} scores run from {lo:g} to {hi:g}'"
                for cat, lo, hi in ranges
            )
            rules.append(
                RowRule(
                    c.name,
                    f"range_by_{by}",
                    f"{q} is not null and coalesce(case {case} end, false)",
                    f"case {detail} end",
                )
            )
        if c.pattern is not None:
            pat = c.pattern.replace("'", "''")
            rules.append(
                RowRule(
                    c.name,
                    "pattern",
                    f"{q} is not null and not regexp_full_match({q}, '{pat}')",
                    f"'does not match {pat}'",
                )
            )
        if c.equals_setting is not None:
            s = c.equals_setting
            rules.append(
                RowRule(
                    c.name,
                    "reporting_currency" if s == "currency" else f"equals_{s}",
                    f"{q} is not null and {q} <> ${s}",
                    f"'differs from the configured ' || '{s} ' || ${s}",
                )
            )
        if c.not_before is not None:
            qo = quote_ident(c.not_before)
            rules.append(
                RowRule(
                    c.name,
                    "time_order",
                    f"{q} is not null and {qo} is not null and {q} < {qo}",
                    f"'earlier than {c.not_before} ' || {qo}::varchar",
                )
            )
        if c.type in DATED_TYPES and contract.kind == "source":
            earliest = contract.earliest_date.isoformat()
            floor = (
                f"timestamptz '{earliest} 00:00:00+00'"
                if c.type == "timestamp"
                else f"date '{earliest}'"
            )
            rules.append(
                RowRule(
                    c.name,
                    "before_earliest_date",
                    f"{q} is not null and {q} < {floor}",
                    _sql_str(f"before {earliest}, the earliest date the contract accepts"),
                )
            )
        if c.not_after_as_of:
            rules.append(
                RowRule(
                    c.name,
                    "after_as_of",
                    after_as_of_sql(c),
                    "'after the as-of date ' || $as_of::varchar",
                )
            )
    return rules


# The forms each type accepts, in words (the type rule's detail; docs/ingestion.md).
TYPE_FORMS = {
    "integer": "digits with an optional sign (7.0 reads as 7)",
    "decimal": "digits with an optional sign and decimal point, no exponent or separators",
    "double": "a finite number, exponent allowed",
    "boolean": "true/false, t/f, yes/no, y/n or 1/0",
    "date": "YYYY-MM-DD, optionally with a valid time",
    "month": "YYYY-MM or a date in the month",
    "timestamp": "YYYY-MM-DD[ hh:mm[:ss[.fff]]][Z|UTC|+hh[:mm]]",
}


def after_as_of_sql(c: ColumnSpec) -> str:
    """True for a value dated after the run's as-of date ($as_of); timestamps are after it
    from the first instant of the next day, UTC."""
    q = quote_ident(c.name)
    if c.type == "timestamp":
        return f"{q} is not null and {q} >= ($as_of + 1)::timestamptz"
    return f"{q} is not null and {q} > $as_of"


@dataclass(frozen=True)
class NotYetKnown:
    """A value staged as NULL because it lies after the as-of date (or goes with one that does).

    The row itself is staged: a ticket answered or solved after the as-of date was open on that
    date, and its answer or solution is not yet known then. `condition_sql` is true, over the
    candidate table, for the rows whose value is not yet known."""

    column: str
    condition_sql: str
    detail_sql: str


def not_yet_known(contract: Contract) -> list[NotYetKnown]:
    """The contract's unknown_after_as_of columns, and the columns known_with one of them."""
    out = []
    for c in contract.columns:
        if c.unknown_after_as_of:
            out.append(
                NotYetKnown(
                    c.name,
                    after_as_of_sql(c),
                    "'after the as-of date ' || $as_of::varchar || ': not yet known then'",
                )
            )
        elif c.known_with:
            # A value that goes with several dates (a ticket's state when it was solved and
            # last changed) is not yet known when any of them is after the as-of date.
            by = [contract.column(name) for name in c.known_with]
            after = [f"({after_as_of_sql(b)})" for b in by]
            which = " ".join(
                f"when {a} then '{b.name}'" for a, b in zip(after, by, strict=True)
            )
            out.append(
                NotYetKnown(
                    c.name,
                    f"{quote_ident(c.name)} is not null and ({' or '.join(after)})",
                    f"'goes with ' || case {which} end || ', which is after the as-of date ' "
                    "|| $as_of::varchar",
                )
            )
    return out


def staged_value_sql(contract: Contract, column: ColumnSpec) -> str:
    """The candidate's typed value as it is staged: NULL where it is not yet known."""
    q = quote_ident(column.name)
    for n in not_yet_known(contract):
        if n.column == column.name:
            return f"case when {n.condition_sql} then null else {q} end"
    return q
