"""`cxalign whatif`: any what-if scenario for a business unit, from the published warehouse
(read-only; nothing is refitted: the bootstrap replicates' coefficients are published in
analytics.unit_whatif_model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

from models import whatif as W


class WhatifCommandError(Exception):
    """What the user asked cannot be answered, in words."""


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def answer(warehouse: Path, unit: str, changes: list[str], months: int) -> dict:
    """The scenario's figures as a dict (the analytics.unit_whatif columns, with `months`)."""
    if not warehouse.exists():
        raise WhatifCommandError(f"no warehouse at {warehouse}")
    parsed = [W.parse_change(c) for c in changes]
    if len({c.lever for c in parsed}) < len(parsed):
        raise WhatifCommandError("each lever may be changed once")
    try:
        con = duckdb.connect(str(warehouse), read_only=True)
    except duckdb.Error as exc:
        raise WhatifCommandError(
            f"cannot open {warehouse} as a DuckDB warehouse ({type(exc).__name__}): is it the "
            "published warehouse, and not a file another process is writing?"
        ) from exc
    try:
        try:
            frame = con.execute(
                "select business_unit, model, replicate, term, coefficient "
                "from analytics.unit_whatif_model where business_unit = ?", [unit]
            ).pl()  # fmt: skip
            units = [r[0] for r in con.execute(
                "select distinct business_unit from analytics.unit_whatif order by 1").fetchall()]  # fmt: skip
        except duckdb.CatalogException as exc:
            raise WhatifCommandError(
                f"{warehouse} has no what-if tables (analytics.unit_whatif_model): it was "
                "written by an earlier version; run a night with this one"
            ) from exc
        if frame.is_empty():
            if unit in units:
                reason = con.execute(
                    "select not_estimated_reason from analytics.unit_whatif "
                    "where business_unit = ? limit 1", [unit]).fetchone()[0]  # fmt: skip
                raise WhatifCommandError(f"{unit!r} has no what-if model: {reason}")
            raise WhatifCommandError(
                f"unknown business unit {unit!r}; the warehouse's units are: " + ", ".join(units)
            )
        try:
            rows = W.read_rows(con, unit, *W.sample_of(frame))
        except duckdb.CatalogException as exc:
            raise WhatifCommandError(
                f"{warehouse} has no analytics.account_month: the what-if projects the "
                "published panel's active accounts"
            ) from exc
        targets = (
            W.best_quartile(W.company_levels(con))
            if any(c.kind == "best_quartile" for c in parsed) else None
        )  # fmt: skip
    finally:
        con.close()
    models = W.models_from_frame(unit, frame, rows)
    try:
        lever = parsed[0].lever if len(parsed) == 1 else W.ALL
        result = W.run_scenario(models, parsed, targets, months, lever=lever)
    except W.NotEstimable as exc:
        raise WhatifCommandError(f"{unit}: {exc}") from exc
    row = result.row()
    row["months"] = months
    row["left_out"] = list(result.left_out)
    unseen = W.unseen_levels(models.book, models.association)
    row["warnings"] = [
        f"{n:,} active accounts are at a {prefix} the published model was not fitted on (new or "
        f"renamed since that night): they take the reference {prefix}'s effect"
        for prefix, n in unseen.items()
    ]  # fmt: skip
    row["levels"] = {
        c.lever: {"baseline": W.shown_level(c.lever, result.applied.baseline[c.lever]),
                  "scenario": W.shown_level(c.lever, result.applied.after[c.lever])}
        for c in result.changes
    }  # fmt: skip
    return row


def level_words(lever: str, value: float | None) -> str:
    """A lever's level as leaders read it (W.shown_level's scale)."""
    if value is None:
        return "not measured"
    scale = W.LEVERS[lever].scale
    if scale in ("share", "binary"):
        return f"{100 * value:.1f}%"
    if scale == "log_minutes":
        return f"{value:,.0f} minutes"
    return f"{value:.2f}"


def text(row: dict) -> str:
    """The answer in words, for a terminal."""
    months = row["months"]
    lines = [f"{row['business_unit']}: {row['change_description']}, over the next {months} months "
             f"({row['active_accounts']:,} active accounts)"]  # fmt: skip
    for lever, lv in row["levels"].items():
        lines.append(f"  {W.LEVERS[lever].label}: {level_words(lever, lv['baseline'])} -> "
                     f"{level_words(lever, lv['scenario'])}")  # fmt: skip
    for suffix, name in (("", "across accounts (association)"),
                         ("_within", "within the same accounts")):  # fmt: skip
        if row[f"churn_avoided{suffix}"] is None:
            lines.append(f"  {name}: not estimable")
            continue
        lines.append(f"  {name}:")

        def ci(column, money=False):
            low, high = row[f"{column}_ci_low"], row[f"{column}_ci_high"]
            f = _money if money else (lambda v: "n/a" if v is None else f"{v:,.1f}")
            return f"{f(row[column])} (95% interval {f(low)} to {f(high)})"

        lines.append(f"    churned accounts avoided  {ci('churn_avoided' + suffix)}")
        lines.append(f"    MRR retained over {months} months  {ci('mrr_retained_per_year' + suffix, True)}")
        if row[f"clv_retained{suffix}"] is not None:
            lines.append(f"    CLV retained              {ci('clv_retained' + suffix, True)}")
    lines.append(f"  {row['evidence_note']}")
    for why in row["left_out"]:
        lines.append(f"  left out: {why}")
    for warning in row["warnings"]:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)


def run_whatif(args) -> int:
    try:
        row = answer(args.warehouse, args.unit, args.change, args.months)
    except (W.ChangeError, WhatifCommandError, W.NoModel) as exc:
        print(f"cxalign whatif: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(row, indent=2, default=str))
    else:
        print(text(row))
    return 0



