"""Everything a scorecard shows, read from the warehouse in one place."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from models.alignment import METHOD_VERSION
from models.sci import SCI_VERSION
from models.whatif import ALL, LEVERS
from models.whatif import METHOD_VERSION as WHATIF_VERSION
from pipelines.contracts import all_contracts


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@dataclass
class ScorecardData:
    as_of: date
    run_id: str
    fingerprint: str
    freshness: dict
    company: dict
    units: list[dict]
    previous: dict[str, dict]
    company_trends: dict[str, list[dict]]
    unit_trends: dict[str, dict[str, list[dict]]]
    sci_latest: dict[str, dict]
    sci_trend: dict[str, list[dict]]
    clv: dict[str, dict]
    drivers: dict[str, list[dict]]
    churn_by_nps: dict[str, dict]
    predictive: dict[str, list[dict]]
    benefits: dict[str, list[dict]]
    maturity: dict = field(default_factory=dict)
    building_blocks: list[dict] = field(default_factory=list)
    # analytics.unit_whatif per unit, levers in models.whatif.LEVERS order, "all" last
    whatif: dict[str, list[dict]] = field(default_factory=dict)
    # Each unit's type on its last published nights and tonight (oldest first), at most
    # TYPE_NIGHTS: {"as_of", "quadrant", "confidence"}.
    type_history: dict[str, list[dict]] = field(default_factory=dict)
    # Sources that stopped arriving at their cadence: {"source", "days_since_arrival", ...}.
    stale_sources: list[dict] = field(default_factory=list)


TYPE_NIGHTS = 12


def fingerprint(con: duckdb.DuckDBPyConnection, settings_json: str) -> str:
    """Hash of the inputs (every landing file's content hash) and the method versions."""
    files = con.execute(
        "select source, source_file, content_sha256 from raw._files order by 1, 2"
    ).fetchall()
    contracts = sorted((c.name, c.version) for c in all_contracts().values())
    payload = json.dumps(
        {"files": files, "contracts": contracts, "methods": [METHOD_VERSION, SCI_VERSION, WHATIF_VERSION],
         "settings": settings_json},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()


def _has_history(con: duckdb.DuckDBPyConnection) -> bool:
    """The working database keeps a verdict history (it has published a night since)."""
    exists = con.execute(
        "select count(*) from information_schema.tables where table_schema = 'analytics' "
        "and table_name = 'unit_alignment_history'").fetchone()[0]  # fmt: skip
    return bool(exists) and bool(
        con.execute("select count(*) from analytics.unit_alignment_history").fetchone()[0]
    )


def load(con: duckdb.DuckDBPyConnection, as_of: date, run_id: str, settings_json: str,
         previous_warehouse: Path | None = None, strategy_declared: bool = False,
         stale_sources: list[dict] | None = None) -> ScorecardData:  # fmt: skip
    """previous_warehouse: read only when the working database has no verdict history yet
    (the first night after an upgrade). stale_sources: pipelines.freshness's stale rows."""
    units = _rows(con, "select * from analytics.unit_alignment order by business_unit")
    # One row per outcome tested (never pooled across outcomes): the page leads with
    # retention, the default outcome, or else the first outcome any unit tests.
    company = _rows(
        con, "select * from analytics.company_alignment order by outcome <> 'retention', outcome"
    )[0]
    freshness = _rows(
        con,
        """
        select (select max(month) from staging.revenue) as last_revenue_month,
               (select max(created_at) from staging.support_tickets) as last_ticket_at,
               (select max(responded_at) from staging.survey_responses) as last_answer_at,
               (select max(finished_at) from analytics.ingest_runs) as ingested_at
        """,
    )[0]
    # Trends show complete months: the month in progress would show a few days as a month.
    complete = "where month < date_trunc('month', ?::date) order by business_unit, month"
    cx = _rows(con, f"select * from analytics.unit_month_cx {complete}", [as_of])
    revenue = _rows(con, f"select * from analytics.unit_month_revenue {complete}", [as_of])
    company_trends = {
        "cx": [r for r in cx if r["level"] == "company"],
        "revenue": [r for r in revenue if r["level"] == "company"],
    }
    unit_trends = {
        u["business_unit"]: {
            "cx": [r for r in cx if r["business_unit"] == u["business_unit"]],
            "revenue": [r for r in revenue if r["business_unit"] == u["business_unit"]],
        }
        for u in units
    }
    sci = _rows(con, "select * from analytics.unit_month_sci order by business_unit, month")
    sci_trend: dict[str, list[dict]] = {}
    for r in sci:
        sci_trend.setdefault(r["business_unit"], []).append(r)
    sci_latest = {u: rows[-1] for u, rows in sci_trend.items()}
    clv = {r["business_unit"]: r for r in _rows(
        con, "select * from analytics.unit_clv where segment = 'All segments'")}  # fmt: skip
    drivers: dict[str, list[dict]] = {}
    for r in _rows(
        con, "select * from analytics.unit_drivers order by business_unit, importance desc"
    ):
        drivers.setdefault(r["business_unit"], []).append(r)
    predictive: dict[str, list[dict]] = {}
    for r in _rows(
        con, "select * from analytics.unit_predictive_check order by business_unit, model"
    ):
        predictive.setdefault(r["business_unit"], []).append(r)
    benefits: dict[str, list[dict]] = {}
    for r in _rows(con, "select * from analytics.sci_benefits order by business_unit"):
        benefits.setdefault(r["business_unit"], []).append(r)
    churn_by_nps = {
        r["business_unit"]: r
        for r in _rows(
            con,
            """
            select business_unit,
                   count(*) filter (where nps_category_latest = 'detractor') as detractor_n,
                   avg(churned_next_month_voluntary::int) filter (where nps_category_latest = 'detractor')
                       as detractor_rate,
                   count(*) filter (where nps_category_latest = 'promoter') as promoter_n,
                   avg(churned_next_month_voluntary::int) filter (where nps_category_latest = 'promoter')
                       as promoter_rate
            from analytics.account_month
            where is_at_risk_next_month and not churned_next_month_involuntary
            group by all
            """,
        )
    }
    whatif: dict[str, list[dict]] = {}
    order = {lever: i for i, lever in enumerate([*LEVERS, ALL])}
    for r in sorted(_rows(con, "select * from analytics.unit_whatif order by business_unit"),
                    key=lambda r: (r["business_unit"], order.get(r["lever"], len(order)))):  # fmt: skip
        whatif.setdefault(r["business_unit"], []).append(r)
    previous: dict[str, dict] = {}
    type_history: dict[str, list[dict]] = {u["business_unit"]: [] for u in units}
    has_history = _has_history(con)
    if has_history:
        # The nights published before this one (a rerun of tonight replaces tonight's rows,
        # so they are left out): the last one is "since last night".
        earlier = _rows(
            con,
            """
            select * from analytics.unit_alignment_history
            where as_of < ?
            qualify row_number() over (partition by business_unit order by as_of desc) < ?
            order by business_unit, as_of
            """,
            [as_of, TYPE_NIGHTS],
        )
        for r in earlier:
            if r["business_unit"] in type_history:
                type_history[r["business_unit"]].append(
                    {k: r[k] for k in ("as_of", "quadrant", "confidence")}
                )
            previous[r["business_unit"]] = r  # ordered by as_of: the last one stays
    for u in units:
        type_history[u["business_unit"]].append(
            {"as_of": as_of, "quadrant": u["quadrant"], "confidence": u["confidence"]}
        )
    if not has_history and previous_warehouse is not None and previous_warehouse.exists():
        try:
            old = duckdb.connect(str(previous_warehouse), read_only=True)
            try:
                previous = {
                    r["business_unit"]: r
                    for r in _rows(old, "select * from analytics.unit_alignment")
                }
            finally:
                old.close()
        except duckdb.Error:
            previous = {}  # an older warehouse without the table: nothing to compare
    data = ScorecardData(
        as_of=as_of, run_id=run_id, fingerprint=fingerprint(con, settings_json),
        freshness=freshness, company=company, units=units, previous=previous,
        company_trends=company_trends, unit_trends=unit_trends, sci_latest=sci_latest,
        sci_trend=sci_trend, clv=clv, drivers=drivers, churn_by_nps=churn_by_nps,
        predictive=predictive, benefits=benefits, whatif=whatif, type_history=type_history,
        stale_sources=stale_sources or [],
    )  # fmt: skip
    data.maturity = maturity(data, strategy_declared)
    data.building_blocks = building_blocks(data)
    return data


def maturity(data: ScorecardData, strategy_declared: bool) -> dict:
    """The evidence-based maturity level (DOMAIN §2): indicative, from what the data shows."""
    cx = data.company_trends["cx"]
    months = len(cx)
    months_with_nps = sum(1 for r in cx if r["nps_n"] and r["nps_n"] > 0)
    mean_rate = sum(r["response_rate"] or 0 for r in cx) / months if months else 0.0
    n_units = len(data.units)
    strong = sum(1 for u in data.units if u["link_verdict"] == "strong")
    tested = sum(1 for u in data.units if u["link_verdict"] != "inconclusive")
    evidence = [
        f"survey answers from {mean_rate:.0%} of active accounts a month on average",
        f"NPS measured in {months_with_nps} of {months} months",
        f"CX linked to the tested outcome (strong) in {strong} of {n_units} business units",
        f"{tested} of {n_units} units have enough evidence for a verdict",
        "support, survey and revenue data joined per account" if data.sci_latest else "support data not joined",
        "units declare their own outcomes and targets (strategy.yaml)" if strategy_declared
        else "no unit declares its own outcome or targets",
    ]  # fmt: skip
    consistent = months and months_with_nps >= 0.8 * months and mean_rate >= 0.05
    if not consistent:
        level = 1
    elif strong == 0:
        level = 2
    elif strong < max(1, n_units // 2):
        level = 3
    elif not strategy_declared:
        level = 4
    else:
        level = 5
    names = {
        1: "No CX strategy: feedback not collected consistently",
        2: "Metrics reported, not tied to business outcomes",
        3: "Business goals measured against CX metrics in some units",
        4: "CX drives decisions with integrated customer and operational data",
        5: "Every unit has CX goals feeding the strategy",
    }
    return {"level": level, "name": names[level], "evidence": evidence}


def building_blocks(data: ScorecardData) -> list[dict]:
    """Which of the building blocks (C4 + I2 + B2) the data evidences, and how."""
    has_surveys = any(r["nps_n"] for r in data.company_trends["cx"])
    return [
        {"block": "Customer voice (C4)", "evidenced": has_surveys,
         "how": "NPS, CSAT and CES answers collected and reported with intervals"},
        {"block": "Customer intelligence (C4)", "evidenced": bool(data.units),
         "how": "CX tested against outcomes per unit, with key drivers and a predictive check"},
        {"block": "Customer value / CLV (C4)", "evidenced": bool(data.clv),
         "how": "lifetime value per account and CLV at risk per unit"},
        {"block": "Customer-centred (C4)", "evidenced": False,
         "how": "culture and leadership are not visible in this data"},
        {"block": "CX improvement (I2)", "evidenced": bool(data.sci_latest),
         "how": "Support Contribution Index per unit and month"},
        {"block": "CX innovation (I2)", "evidenced": False, "how": "not visible in this data"},
        {"block": "Branding and internal branding (B2)", "evidenced": False,
         "how": "not visible in this data"},
    ]  # fmt: skip
