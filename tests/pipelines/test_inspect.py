"""`cxalign inspect`: what the night would do with a landing zone, by the night's own code, with
nothing written to the landing zone and no warehouse."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.contracts import source_contracts
from pipelines.demo_data import generate
from tests.conftest import FIXTURES

AS_OF = "2026-10-31"
HOSTILE = FIXTURES / "hostile" / "ingest"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("demo") / "landing"
    generate(landing, accounts=200, months=4, file_format="csv")
    return landing


def _inspect(capsys, landing: Path, *more: str) -> tuple[int, str]:
    code = main(["inspect", "--landing", str(landing), "--as-of", AS_OF, *more])
    return code, capsys.readouterr().out


def _tree(root: Path) -> dict[str, tuple[int, int, str]]:
    """Every file under root: size, modification time and content hash."""
    return {
        p.relative_to(root).as_posix(): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest(),
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_the_demo_landing_zone_passes_and_every_source_is_reported(demo, capsys):
    code, text = _inspect(capsys, demo)
    assert code == 0, text
    assert "the night would pass" in text
    for source in source_contracts():
        assert f"\n{source}: " in text
    code, out = _inspect(capsys, demo, "--json")
    assert code == 0
    found = json.loads(out)
    assert found["passes"] is True and found["failures"] == []
    assert [s["source"] for s in found["sources"]] == list(source_contracts())
    sources = {s["source"]: s for s in found["sources"]}
    assert sources["transactions"]["files"] == []  # optional, not in the demo
    accounts = sources["accounts"]["files"][0]
    assert accounts["file"] == "accounts/accounts.csv" and accounts["kind"] == "canonical"
    assert accounts["records"] == 200 and accounts["mapped"]["account_id"] == "account_id"
    assert accounts["unmapped"] == ["crm_owner"]  # a column of the export no contract reads
    assert len(accounts["samples"]) == 3 and accounts["samples"][0]["account_id"]
    tickets = sources["support_tickets"]
    assert [f["file"] for f in tickets["files"]] == [
        f"support_tickets/support_tickets_2026-{m:02d}.csv" for m in (7, 8, 9, 10)
    ]
    first, last = tickets["files"][0]["dates"]["created_at"]
    assert first.startswith("2026-07") and last.startswith("2026-07")
    for s in found["sources"]:
        # The counts are the night's: read = staged + quarantined + duplicates, conserved.
        assert s["conservation_holds"] is True
        assert s["rows_read"] == s["rows_staged"] + s["rows_quarantined"] + s["rows_duplicate"]
        assert s["bad_share"] <= s["max_bad_share"]


def _broken_zone(demo: Path, root: Path) -> Path:
    """The demo zone with one broken file of each kind."""
    landing = root / "landing"
    shutil.copytree(demo, landing)
    account = "ACC-0000001"
    # A CSV with a bad value: a date that is no date (data row 2).
    (landing / "churn_events" / "late_churn.csv").write_text(
        "account_id,churned_at,churn_type,reason\n"
        f"{account},2026-08-01,voluntary,price\n"
        f"{account},2026-13-45,voluntary,price\n"
    )
    # A malformed CSV record: a field too many (data row 2).
    (landing / "churn_events" / "extra_field.csv").write_text(
        "account_id,churned_at,churn_type,reason\n"
        f"{account},2026-08-02,voluntary,budget\n"
        f"{account},2026-08-03,voluntary,budget,one too many\n"
    )
    # A .csv.gz cut short.
    shutil.copy(HOSTILE / "truncated.csv.gz", landing / "churn_events" / "cut_short.csv.gz")
    # A JSON file that is no export cxalign knows.
    (landing / "support_tickets" / "odd.json").write_text('[{"foo": 1, "bar": "x"}]')
    # An NDJSON file with a line that is not JSON (line 2).
    (landing / "support_tickets" / "more.ndjson").write_text(
        json.dumps({"ticket_id": "T-NDJSON-1", "account_id": account,
                    "created_at": "2026-09-01T10:00:00Z"}) + "\n"
        '{"ticket_id": "T-NDJSON-2", "account_id": \n'
    )  # fmt: skip
    return landing


def test_one_broken_file_of_each_kind_is_named_with_its_row_column_and_rule(
    demo, tmp_path, capsys, monkeypatch
):
    landing = _broken_zone(demo, tmp_path)
    before = _tree(landing)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))

    code, text = _inspect(capsys, landing)
    assert code == 1
    assert "the night would FAIL" in text
    # Files the night cannot read: named, with why.
    assert "churn_events/cut_short.csv.gz: cannot be read to its end" in text
    # (not the canonical export, and none of a profile's objects: the night's own words)
    assert "support_tickets/odd.json: " in text and "support_tickets/odd.json  NOT READ" in text
    # Rows quarantined: file, row, column and rule.
    assert "churn_events/late_churn.csv  canonical" in text
    assert "row 2      churned_at type: '2026-13-45'" in text
    assert "churn_events/extra_field.csv  canonical" in text
    assert "support_tickets/more.ndjson  canonical" in text
    assert text.count("row 2      (row) malformed_row") == 2

    code, out = _inspect(capsys, landing, "--json")
    assert code == 1
    found = json.loads(out)
    assert found["passes"] is False
    files = {f["file"]: f for s in found["sources"] for f in s["files"]}
    assert "cut short" in files["churn_events/cut_short.csv.gz"]["error"]
    assert files["churn_events/cut_short.csv.gz"]["kind"] is None
    assert files["support_tickets/odd.json"]["error"].startswith("support_tickets/odd.json: ")
    assert files["support_tickets/odd.json"]["kind"] is None
    assert files["churn_events/late_churn.csv"]["quarantine"] == [
        {"row": 2, "column": "churned_at", "rule": "type", "value": "2026-13-45",
         "detail": files["churn_events/late_churn.csv"]["quarantine"][0]["detail"]}
    ]  # fmt: skip
    assert files["churn_events/late_churn.csv"]["staged"] == 1
    for name in ("churn_events/extra_field.csv", "support_tickets/more.ndjson"):
        assert [(q["row"], q["column"], q["rule"]) for q in files[name]["quarantine"]] == [
            (2, None, "malformed_row")
        ]
        assert files[name]["malformed"] == 1 and files[name]["staged"] == 1
    assert any("cut_short.csv.gz" in f for f in found["failures"])
    assert any("odd.json" in f for f in found["failures"])
    # The sources' other files were inspected all the same.
    assert files["churn_events/churn_events.csv"]["staged"] > 0

    # Nothing written: the landing zone as it was, no database left anywhere.
    assert _tree(landing) == before
    assert list(cwd.iterdir()) == []
    assert list(temp.iterdir()) == []


def test_a_vendor_export_is_reported_as_its_profile_object(tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURES / "profiles" / "zendesk" / "landing", landing)
    code, out = _inspect(capsys, landing, "--json")
    assert code == 1  # no revenue or churn_events: required
    found = json.loads(out)
    assert any("revenue: no .csv" in f and "this source is required" in f
               for f in found["failures"])  # fmt: skip
    tickets = {f["file"]: f for f in next(s for s in found["sources"]
                                          if s["source"] == "support_tickets")["files"]}  # fmt: skip
    metrics = tickets["support_tickets/ticket_metrics.json"]
    assert metrics["kind"] == "zendesk.ticket_metrics"
    assert metrics["mapped"]["reply_minutes"] == "reply_time_in_minutes.calendar"
    assert [(r["rule"], r["records"]) for r in metrics["set_aside_rules"]] == [("orphan", 1)]
    main_file = tickets["support_tickets/tickets.json"]
    assert main_file["kind"] == "zendesk.tickets"
    assert main_file["mapped"]["channel"] == "via.channel"
    assert "requester_id" in main_file["unmapped"]
    assert sorted((r["rule"], r["records"]) for r in main_file["set_aside_rules"]) == [
        ("deleted", 1), ("superseded", 1)
    ]  # fmt: skip
    assert [(q["row"], q["column"], q["rule"]) for q in main_file["quarantine"]] == [
        (3, "account_id", "required")
    ]
    # Sample rows are the source's columns built from the records, as the night keeps them.
    assert main_file["samples"][0]["ticket_id"] == "101"
    assert set(main_file["samples"][0]) == {c.name for c in
                                            source_contracts()["support_tickets"].columns}  # fmt: skip


def test_a_source_built_from_another_folder_is_not_reported_missing(tmp_path, capsys):
    # Intercom's ratings come from the conversations in support_tickets/: survey_responses
    # has no folder of its own and the night does not call it missing; neither does inspect.
    landing = tmp_path / "landing"
    shutil.copytree(FIXTURES / "profiles" / "intercom" / "landing", landing)
    code, out = _inspect(capsys, landing, "--json")
    found = json.loads(out)
    surveys = next(s for s in found["sources"] if s["source"] == "survey_responses")
    assert not any("this source is required" in f for f in surveys["failures"])
    assert surveys["rows_read"] > 0
    kinds = {f["file"]: (f["kind"], f["lookup"]) for f in surveys["files"]}
    assert kinds["support_tickets/contacts.json"] == ("intercom.contacts", True)
