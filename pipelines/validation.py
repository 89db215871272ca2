"""great-expectations executes each source contract's row rules, independently of DuckDB.

Where validation runs, and why. The quarantine itself is decided in DuckDB
(`pipelines.ingest`): row-level work over tens of millions of rows belongs in
the database, where it is one vectorised scan per rule. great-expectations 1.x
cannot run its SQL engine on DuckDB (its SQLAlchemy engine fetches results after
closing the connection, which duckdb-engine answers with an empty result; see
docs/ingestion.md), and its pandas engine is too slow to be asked for the
offending rows themselves (about 140 s per million rows when most rows fail,
because it builds a Python dict per unexpected row).

So great-expectations runs in SUMMARY mode over the same candidate rows, streamed
from DuckDB in Arrow batches of `ingest.validation_batch_rows` rows (memory is
bounded by one batch; about 0.05 s per million rows per expectation), and counts
the rows that break each rule. The blocking check `contract_agreement` then
requires its counts to equal the quarantine's, rule by rule: two engines read the
one contract, and a disagreement (a compiler bug, a contract the SQL misreads)
stops the run before anything is published. Rules that need the whole table at
once (keys and references) are decided in DuckDB only; a batch-wise engine
cannot see duplicates across batches.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from datetime import date, timedelta
from functools import cache

import duckdb
import pandas as pd

from pipelines.contracts import DATED_TYPES, Contract, quote_ident
from pipelines.ingest import CANDIDATES

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@cache
def _gx():
    import great_expectations as gx

    # GE logs progress bars and analytics chatter at INFO; keep the run output clean.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    # GE's pandas engine fingerprints every batch under 1 GB (an md5 over a hash of every
    # value) for a marker in the result's metadata, which we do not read: 40% of GE's time
    # at 1.8M tickets. A zero threshold turns the fingerprint off; validation is unchanged.
    from great_expectations.execution_engine import pandas_execution_engine

    if not hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        raise RuntimeError("great-expectations changed: HASH_THRESHOLD is gone (see _gx)")
    pandas_execution_engine.HASH_THRESHOLD = 0
    return gx


def expectations_for(contract: Contract, as_of: date, currency: str) -> list:
    """The contract's row rules as great-expectations Expectations (meta names the rule)."""
    gxe = _gx().expectations
    from great_expectations.expectations.row_conditions import Column

    out = []

    def add(exp_cls, rule_column: str, rule: str, **kw):
        out.append(exp_cls(meta={"column": rule_column, "rule": rule}, **kw))

    for c in contract.columns:
        raw = f"{c.name}__raw"
        if c.required:
            add(gxe.ExpectColumnValuesToNotBeNull, c.name, "required", column=raw)
        if c.type != "text":
            add(
                gxe.ExpectColumnValuesToNotBeNull,
                c.name,
                "type",
                column=c.name,
                row_condition=Column(name=raw).is_not_null(),
            )
        if c.allowed is not None:
            add(gxe.ExpectColumnValuesToBeInSet, c.name, "allowed_values",
                column=c.name, value_set=list(c.allowed))  # fmt: skip
        if c.min is not None or c.max is not None:
            add(gxe.ExpectColumnValuesToBeBetween, c.name, "range",
                column=c.name, min_value=c.min, max_value=c.max)  # fmt: skip
        if c.range_by is not None:
            by, ranges = c.range_by
            for cat, lo, hi in ranges:
                add(
                    gxe.ExpectColumnValuesToBeBetween,
                    c.name,
                    f"range_by_{by}",
                    column=c.name,
                    min_value=lo,
                    max_value=hi,
                    row_condition=Column(name=by) == cat,
                )
        if c.pattern is not None:
            # The whole text, as DuckDB's regexp_full_match: Python's `$` also matches before
            # a final newline, so "USD\n" passed here and failed there.
            add(gxe.ExpectColumnValuesToMatchRegex, c.name, "pattern",
                column=c.name, regex=f"(?:{c.pattern})\\Z")  # fmt: skip
        if c.equals_setting is not None:
            rule = (
                "reporting_currency"
                if c.equals_setting == "currency"
                else f"equals_{c.equals_setting}"
            )
            add(gxe.ExpectColumnValuesToBeInSet, c.name, rule, column=c.name, value_set=[currency])
        if c.not_before is not None:
            add(
                gxe.ExpectColumnPairValuesAToBeGreaterThanB,
                c.name,
                "time_order",
                column_A=c.name,
                column_B=c.not_before,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
            )
        if c.type in DATED_TYPES and contract.kind == "source":
            add(gxe.ExpectColumnValuesToBeBetween, c.name, "before_earliest_date",
                column=c.name, min_value=_epoch_us(contract.earliest_date))  # fmt: skip
        if c.not_after_as_of:
            # Times reach GE as microseconds since the epoch (UTC): its pandas
            # engine compares numbers vectorised but maps datetimes row by row.
            if c.type in ("date", "month"):
                limit = _epoch_us(as_of)
            else:  # a timestamp on the as-of day itself is allowed
                limit = _epoch_us(as_of + timedelta(days=1)) - 1
            add(gxe.ExpectColumnValuesToBeBetween, c.name, "after_as_of",
                column=c.name, max_value=limit)  # fmt: skip
    return out


def _epoch_us(day: date) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000)


def _frame_select(contract: Contract) -> str:
    """The candidate columns some rule reads, in types GE's pandas engine handles fast."""
    cols = []
    for c in contract.columns:
        q = quote_ident(c.name)
        needs_value = (
            c.type != "text"
            or any((c.allowed, c.pattern, c.equals_setting))
            or any(o.range_by and o.range_by[0] == c.name for o in contract.columns)
        )
        if needs_value:
            if c.type in ("decimal", "double"):
                expr = f"{q}::double"
            elif c.type in ("date", "month", "timestamp"):
                expr = f"epoch_us({q}::timestamptz)"  # same order as the times themselves
            else:
                expr = q
            cols.append(f"{expr} as {q}")
        if c.required or c.type != "text":
            # Of the raw text GE needs only whether it is there (the required rule, and the
            # type rule's condition): its length, NULL where the text is, reaches pandas as
            # a float column instead of a Python string per row (20 M tickets: the pass
            # outside GE itself, reading the rows into pandas, 14.0 -> 10.7 s).
            raw = quote_ident(c.name + "__raw")
            cols.append(f"length({raw})::double as {raw}")
    return f"select {', '.join(cols)} from {CANDIDATES}"


def ge_rule_counts(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    *,
    as_of: date,
    currency: str,
    batch_rows: int,
) -> dict[tuple[str, str], int]:
    """Rows breaking each (column, rule), as counted by great-expectations."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = ctx.data_sources.add_pandas(name="candidates").add_dataframe_asset(name=contract.name)
    batch_def = asset.add_batch_definition_whole_dataframe("batch")
    suite = ctx.suites.add(
        gx.ExpectationSuite(name=f"{contract.name}_contract_v{contract.version}")
    )
    for exp in expectations_for(contract, as_of, currency):
        suite.add_expectation(exp)
    validation = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=f"{contract.name}_rows", data=batch_def, suite=suite)
    )
    counts: dict[tuple[str, str], int] = defaultdict(int)
    reader = con.execute(_frame_select(contract)).to_arrow_reader(batch_rows)
    for batch in reader:
        if batch.num_rows == 0:
            continue
        frame = batch.to_pandas()
        result = validation.run(
            batch_parameters={"dataframe": frame}, result_format={"result_format": "SUMMARY"}
        )
        for r in result.results:
            meta = r.expectation_config.meta
            error = _raised(r.exception_info)
            if error:
                raise RuntimeError(
                    f"great-expectations could not evaluate {contract.name}.{meta['column']} "
                    f"{meta['rule']}: {error}"
                )
            counts[(meta["column"], meta["rule"])] += int(r.result.get("unexpected_count") or 0)
    return {k: v for k, v in counts.items() if v}


def _raised(info: dict | None) -> str | None:
    """The error message if GE raised while evaluating (its info is flat or keyed by metric)."""
    if not info:
        return None
    entries = (
        [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    )
    for e in entries:
        if e.get("raised_exception"):
            return str(e.get("exception_message"))
    return None
