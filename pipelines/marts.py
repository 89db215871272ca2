"""Published tables: documentation in the database, contract conformance, reconciliation.

Pure DuckDB, no Dagster: the warehouse assets call these, tests call them directly.
"""

from __future__ import annotations

import duckdb

from pipelines.contracts import SQL_TYPES, Contract, all_contracts, quote_ident


def analyst_contracts() -> dict[str, Contract]:
    """Contracts of the tables analysts query (schema analytics)."""
    return {n: c for n, c in all_contracts().items() if c.kind == "table"}


def _literal(text: str) -> str:
    return "'" + " ".join(text.split()).replace("'", "''") + "'"


def apply_comments(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """COMMENT ON the table and each column, from the contract (what `duckdb` shows analysts)."""
    rel = f"{contract.schema}.{contract.name}"
    # COMMENT takes a literal, not a parameter; the text is ours and escaped.
    summary = contract.description + (f" Grain: {contract.grain}." if contract.grain else "")
    con.execute(f"comment on table {rel} is {_literal(summary)}")
    for c in contract.columns:
        con.execute(f"comment on column {rel}.{quote_ident(c.name)} is {_literal(c.description)}")


def _normal_type(t: str) -> str:
    return t.replace(" ", "").upper().replace("TIMESTAMPWITHTIMEZONE", "TIMESTAMPTZ")


def conformance_problems(con: duckdb.DuckDBPyConnection, contract: Contract) -> list[str]:
    """Where the table differs from its contract: columns, types, NULLs, key."""
    rel = f"{contract.schema}.{contract.name}"
    actual = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [contract.schema, contract.name],
    ).fetchall()
    if not actual:
        return [f"{rel} does not exist"]
    problems = []
    have = dict(actual)
    want = {c.name: c for c in contract.columns}
    for name in want.keys() - have.keys():
        problems.append(f"{rel}.{name} is in the contract but not in the table")
    for name in have.keys() - want.keys():
        problems.append(f"{rel}.{name} is in the table but not in the contract")
    for name, col in want.items():
        if name in have and _normal_type(have[name]) != _normal_type(SQL_TYPES[col.type]):
            problems.append(f"{rel}.{name} is {have[name]}, contract says {col.type}")
    if problems:
        return problems
    not_null = [c.name for c in contract.columns if not c.nullable]
    if not_null:
        counts = con.execute(
            "select "
            + ", ".join(f"count(*) filter (where {quote_ident(n)} is null)" for n in not_null)
            + f" from {rel}"
        ).fetchone()
        problems += [f"{rel}.{n}: {k:,} NULLs" for n, k in zip(not_null, counts, strict=True) if k]
    if contract.key:
        key = ", ".join(quote_ident(k) for k in contract.key)
        dup = con.execute(
            f"select count(*) from (select {key} from {rel} group by all having count(*) > 1)"
        ).fetchone()[0]
        if dup:
            problems.append(
                f"{rel}: {dup:,} keys ({', '.join(contract.key)}) appear more than once"
            )
    return problems


# Each reconciliation is a query returning the rows that break it (empty = holds).
RECONCILIATIONS = {
    "units_sum_to_company": """
        with units as (
            select month, sum(starting_mrr) as starting, sum(new_mrr) as new,
                   sum(expansion_mrr) as expansion, sum(contraction_mrr) as contraction,
                   sum(churned_mrr) as churned, sum(ending_mrr) as ending
            from analytics.unit_month_revenue where level = 'unit' group by month
        ),
        company as (
            select month, starting_mrr as starting, new_mrr as new, expansion_mrr as expansion,
                   contraction_mrr as contraction, churned_mrr as churned, ending_mrr as ending
            from analytics.unit_month_revenue where level = 'company'
        )
        select month, u.ending as units_ending, c.ending as company_ending
        from units as u full join company as c using (month)
        where u.starting is distinct from c.starting or u.new is distinct from c.new
           or u.expansion is distinct from c.expansion
           or u.contraction is distinct from c.contraction
           or u.churned is distinct from c.churned or u.ending is distinct from c.ending
    """,
    "ending_equals_next_starting": """
        select a.level, a.business_unit, a.month, a.ending_mrr, b.starting_mrr
        from analytics.unit_month_revenue as a
        join analytics.unit_month_revenue as b
          on b.level = a.level and b.business_unit = a.business_unit
         and b.month = a.month + interval 1 month
        where a.ending_mrr <> b.starting_mrr
    """,
    "movements_add_up": """
        select level, business_unit, month, starting_mrr, ending_mrr
        from analytics.unit_month_revenue
        where starting_mrr + new_mrr + expansion_mrr - contraction_mrr - churned_mrr <> ending_mrr
           or churned_voluntary_mrr + churned_involuntary_mrr <> churned_mrr
    """,
    "account_months_have_a_known_unit": """
        select am.account_id, am.month, am.business_unit
        from analytics.account_month as am
        anti join analytics.dim_business_unit as bu using (business_unit)
    """,
}


def reconcile(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Each reconciliation's breaking rows (first 5); all empty means the marts add up."""
    return {name: con.execute(sql).fetchmany(5) for name, sql in RECONCILIATIONS.items()}
