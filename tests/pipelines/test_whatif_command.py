"""`cxalign whatif` on a small published warehouse: text and JSON answers, the table's own
scenarios reproduced without refitting, and clear errors."""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl
import pytest

from models import whatif as W
from models.simulation_whatif import WhatifSim, simulate
from pipelines.cli import main
from pipelines.marts import analyst_contracts
from pipelines.tables import write_table

UNITS = ("North", "South")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Two planted units (first response drives churn in North only), the what-if stage
    run on them, its two tables written as the night writes them."""
    path = tmp_path_factory.mktemp("whatif") / "warehouse.duckdb"
    panels = [
        simulate(WhatifSim(accounts=1200, lever_effect=effect, unit=unit), seed=i).panel
        for i, (unit, effect) in enumerate(zip(UNITS, (0.8, 0.0), strict=True))
    ]
    con = duckdb.connect(str(path))
    con.execute("create schema analytics")
    con.register("panel_frame", pl.concat(panels))
    con.execute("create table analytics.account_month as select * from panel_frame")
    con.unregister("panel_frame")
    frames = W.warehouse_stage(con, W.WhatifConfig(replicates=40), list(UNITS), {})
    for name, frame in frames.items():
        write_table(con, analyst_contracts()[name], frame.with_columns(as_of=pl.lit("2026-11-01").str.to_date()))
    con.close()
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_answer_in_words(warehouse, capsys):
    before = _digest(warehouse)
    code = main(["whatif", "--warehouse", str(warehouse), "--unit", "North",
                 "--change", "first_response=-20%", "--change", "fcr=+10pts"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "North: first response time -20%; first-contact resolution +10.0 points" in out
    assert "churned accounts avoided" in out and "95% interval" in out
    assert "Evidence:" in out and "cause" not in out.replace("because", "")
    assert _digest(warehouse) == before  # read-only


def test_json_reproduces_the_tables_own_scenario_without_refitting(warehouse, capsys):
    con = duckdb.connect(str(warehouse), read_only=True)
    table = con.execute(
        "select * from analytics.unit_whatif where business_unit = 'North' "
        "and scenario = 'first_response to best quartile'"
    ).pl().row(0, named=True)
    # the CLI opens the file read-only beside this reader
    assert main(["whatif", "--warehouse", str(warehouse), "--unit", "North",
                 "--change", "first_response=best", "--json"]) == 0  # fmt: skip
    con.close()
    answer = json.loads(capsys.readouterr().out)
    for column in ("churn_avoided", "churn_avoided_ci_low", "churn_avoided_ci_high",
                   "mrr_retained_per_year", "churn_avoided_within", "scenario_level"):  # fmt: skip
        assert answer[column] == pytest.approx(table[column], rel=1e-9), column
    assert answer["evidence_grade"] == table["evidence_grade"]
    assert answer["months"] == 12


def test_months_change_the_horizon(warehouse, capsys):
    args = ["whatif", "--warehouse", str(warehouse), "--unit", "North", "--change", "fcr=+10pts", "--json"]
    assert main(args) == 0
    year = json.loads(capsys.readouterr().out)
    assert main([*args, "--months", "3"]) == 0
    quarter = json.loads(capsys.readouterr().out)
    assert quarter["months"] == 3
    assert quarter["expected_churn_baseline"] < year["expected_churn_baseline"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--unit", "East", "--change", "fcr=+10pts"], "unknown business unit 'East'; the warehouse's units are: North, South"),
        (["--unit", "North", "--change", "fcr=+10"], "percentage points, e.g. fcr=+10pts"),
        (["--unit", "North", "--change", "speed=-20%"], "unknown lever 'speed'"),
        (["--unit", "North", "--change", "fcr=+5pts", "--change", "fcr=+1pts"], "each lever may be changed once"),
    ],
)
def test_a_question_it_cannot_answer_says_why(warehouse, capsys, args, message):
    assert main(["whatif", "--warehouse", str(warehouse), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cxalign whatif: ") and message in err


def test_a_missing_warehouse_says_so(tmp_path, capsys):
    assert main(["whatif", "--warehouse", str(tmp_path / "none.duckdb"), "--unit", "North",
                 "--change", "fcr=+10pts"]) == 2  # fmt: skip
    assert "no warehouse at" in capsys.readouterr().err


def test_a_file_that_is_not_a_warehouse_says_so(tmp_path, capsys):
    junk = tmp_path / "notes.duckdb"
    junk.write_text("not a database")
    assert main(["whatif", "--warehouse", str(junk), "--unit", "North",
                 "--change", "fcr=+10pts"]) == 2  # fmt: skip
    assert "cannot open" in capsys.readouterr().err


@pytest.mark.parametrize("months", ["0", "61", "100000"])
def test_months_outside_one_to_sixty_are_refused(warehouse, capsys, months):
    with pytest.raises(SystemExit) as exc:
        main(["whatif", "--warehouse", str(warehouse), "--unit", "North",
              "--change", "fcr=+10pts", "--months", months])  # fmt: skip
    assert exc.value.code == 2
    assert "from 1 to 60" in capsys.readouterr().err


def test_accounts_at_a_level_the_model_never_saw_are_flagged(warehouse, tmp_path, capsys):
    """A segment renamed after the night: its accounts would take the reference level's
    effect without a word; the answer says how many."""
    renamed = tmp_path / "renamed.duckdb"
    renamed.write_bytes(warehouse.read_bytes())
    con = duckdb.connect(str(renamed))
    con.execute("update analytics.account_month set segment = 'Strategic' where segment = 'Enterprise'")
    con.close()
    assert main(["whatif", "--warehouse", str(renamed), "--unit", "North",
                 "--change", "first_response=-20%", "--json"]) == 0  # fmt: skip
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    assert len(warnings) == 1 and "at a segment the published model was not fitted on" in warnings[0]
