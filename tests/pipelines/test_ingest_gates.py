"""The staging gates cannot be skipped: a source is kept only if it passed them when staged."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipelines.defs.ingest.assets import ingest_assets
from pipelines.defs.resources import AS_OF_TAG, CxalignResource
from pipelines.warehouse import work_path

ACCOUNTS = "account_id,account_name,business_unit,segment,region,plan,created_at\n" + "".join(
    f"A{i},Co {i},Payments,SMB,EU,Starter,2024-01-05\n" for i in range(1, 4)
)
SOURCES = ("accounts", "revenue")


def _night(landing: Path, root: Path, config: Path | None = None) -> dg.ExecuteInProcessResult:
    keys = {dg.AssetKey([layer, s]) for layer in ("raw", "staging") for s in SOURCES}
    return dg.materialize(
        [a for a in ingest_assets if a.key in keys],
        resources={
            "cxalign": CxalignResource(
                landing_dir=str(landing),
                warehouse_path=str(root / "warehouse.duckdb"),
                config_path=str(config) if config else "",
            )
        },
        tags={AS_OF_TAG: "2025-01-01"},
        raise_on_error=False,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        f"{e.asset_key.path[-1]}.{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def _modes(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    mats = [
        e.event_specific_data.materialization for e in result.get_asset_materialization_events()
    ]
    return {m.asset_key.path[-1]: m.metadata["mode"].value for m in mats if "mode" in m.metadata}


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    root = tmp_path / "landing"
    (root / "accounts").mkdir(parents=True)
    (root / "accounts" / "accounts.csv").write_text(ACCOUNTS)
    (root / "revenue").mkdir()
    (root / "revenue" / "revenue.csv").write_text(
        "account_id,month,mrr,currency\nA1,2024-03,100,USD\nA2,2024-03,90,USD\n"
    )
    return root


def _engines_disagree_on_revenue(landing, monkeypatch) -> None:
    """The SQL side misses the mrr range rule and a negative mrr lands: contract_agreement
    fails on revenue (as test_rule_engines_disagreeing_stops_the_run sets up)."""
    import pipelines.ingest as ingest

    real = ingest.row_rules
    monkeypatch.setattr(
        ingest,
        "row_rules",
        lambda c: [r for r in real(c) if (r.column, r.rule) != ("mrr", "range")],
    )
    with (landing / "revenue" / "revenue.csv").open("a") as f:
        f.write("A3,2024-03,-5,USD\n")


def test_a_failed_contract_gate_fails_again_on_an_identical_rerun(landing, tmp_path, monkeypatch):
    # The rule engines disagree on revenue (the SQL side misses the mrr range rule, as
    # test_rule_engines_disagreeing_stops_the_run sets up): contract_agreement fails. The same
    # inputs the next night must be staged and checked again, not kept as if they had passed.
    _engines_disagree_on_revenue(landing, monkeypatch)

    first = _checks(_night(landing, tmp_path))
    assert first["revenue.contract_agreement"] is False
    assert first["accounts.contract_agreement"] is True

    second = _night(landing, tmp_path)
    assert _checks(second)["revenue.contract_agreement"] is False
    # accounts passed its gates last night: kept; revenue did not: staged again.
    assert _modes(second) == {"accounts": "kept", "revenue": "rebuilt"}


def test_a_failed_gate_is_not_appended_to(landing, tmp_path, monkeypatch):
    # A new file the next night must not take the "new files only" path over rows that failed.
    _engines_disagree_on_revenue(landing, monkeypatch)
    assert _checks(_night(landing, tmp_path))["revenue.contract_agreement"] is False
    (landing / "revenue" / "z_april.csv").write_text("account_id,month,mrr\nA1,2024-04,100\n")
    assert _checks(_night(landing, tmp_path))["revenue.contract_agreement"] is False


def test_the_gate_passes_once_the_input_is_fixed_and_is_kept_after(landing, tmp_path):
    (landing / "revenue" / "revenue.csv").write_text(
        "account_id,month,mrr,currency\nA1,2024-03,100,USD\n"
    )
    assert all(_checks(_night(landing, tmp_path)).values())
    con = duckdb.connect(str(work_path(tmp_path / "warehouse.duckdb")), read_only=True)
    built_from = con.execute(
        "select built_from from ops.table_state where relation = 'staging.revenue'"
    ).fetchone()[0]
    con.close()
    assert built_from is not None
    second = _night(landing, tmp_path)
    assert all(_checks(second).values())


def test_the_keys_of_quarantined_revenue_rows_are_kept_when_sound(landing, tmp_path):
    # Kept: a month whose MRR broke a rule (A1, April) and a month given twice with two amounts
    # (A2, March): their MRR is unknown, not zero (int_account_months). Not kept: a month
    # after the as-of date, a month that does not parse, an account that does not exist.
    (landing / "revenue" / "revenue.csv").write_text(
        "account_id,month,mrr,currency\nA1,2024-03,100,USD\nA1,2024-04,-5,USD\n"
        "A2,2024-03,90,USD\nA2,2024-03,91,USD\nA3,2025-02,10,USD\nA3,2024-13,10,USD\n"
        "A9,2024-03,10,USD\n"
    )
    _night(landing, tmp_path)
    con = duckdb.connect(str(work_path(tmp_path / "warehouse.duckdb")), read_only=True)
    keys = con.execute(
        "select distinct account_id, month::varchar from staging.revenue_quarantined_keys "
        "order by all"
    ).fetchall()
    recorded = con.execute(
        "select count(*) from ops.table_state where relation = 'staging.revenue_quarantined_keys'"
    ).fetchone()[0]
    con.close()
    assert keys == [("A1", "2024-04-01"), ("A2", "2024-03-01")]
    assert recorded == 1
