"""The Intercom profile beside the others: its conversations export, read from
support_tickets/ by two sources, is never taken for a Zendesk export nor the other way round,
leaves the canonical files of either folder alone, and keeps a rating whatever the records
sampled for the file's structure held (its golden landing zone: test_profiles.py)."""

from __future__ import annotations

import json
import shutil
from functools import partial

import duckdb
import pytest

import pipelines.landing
from pipelines.contracts import source_contracts
from pipelines.landing import LandingFileError, load_source
from pipelines.settings import Settings, SourceSettings
from tests.pipelines.test_profiles import PROFILES, _night

INTERCOM = PROFILES / "intercom" / "landing" / "support_tickets"
ZENDESK = PROFILES / "zendesk" / "landing" / "support_tickets"


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    yield c
    c.close()


def _read_as(con, source: str) -> dict[str, str]:
    rows = con.execute(
        "select source_file, read_as from raw._files where source = ?", [source]
    ).fetchall()
    return dict(rows)


def test_zendesk_and_intercom_exports_are_each_read_as_their_own(con, tmp_path):
    landing = tmp_path / "landing"
    (landing / "survey_responses").mkdir(parents=True)
    shutil.copytree(INTERCOM, landing / "support_tickets")
    shutil.copy(ZENDESK / "tickets.json", landing / "support_tickets" / "tickets.json")
    # canonical files in both folders: each is its own folder's, never borrowed
    (landing / "support_tickets" / "canonical.csv").write_text(
        "ticket_id,account_id,created_at\nT1,acct-001,2026-09-01\n"
    )
    (landing / "survey_responses" / "canonical.csv").write_text(
        "response_id,account_id,survey_type,score,responded_at\nR1,acct-001,nps,9,2026-09-01\n"
    )
    for source in ("support_tickets", "survey_responses"):
        load_source(con, landing, source_contracts()[source], SourceSettings())

    assert _read_as(con, "support_tickets") == {
        "support_tickets/canonical.csv": "canonical",
        "support_tickets/tickets.json": "zendesk.tickets",
        "support_tickets/conversations.json": "intercom.conversations",
        "support_tickets/contacts.json": "intercom.contacts",
        "support_tickets/companies.json": "intercom.companies",
    }
    assert _read_as(con, "survey_responses") == {
        "survey_responses/canonical.csv": "canonical",
        "support_tickets/tickets.json": "zendesk.tickets",  # looked up for a rating's ticket
        "support_tickets/conversations.json": "intercom.conversation_ratings",
        "support_tickets/contacts.json": "intercom.contacts",
        "support_tickets/companies.json": "intercom.companies",
    }
    assert con.execute("select response_id from raw.survey_responses order by 1").fetchall() == [
        ("R1",),
        ("intercom-1001",),
        ("intercom-1002",),
        ("intercom-1005",),
    ]


@pytest.mark.parametrize(
    ("named", "page", "lacks"),
    [
        ("intercom", ZENDESK / "tickets.json", "not intercom conversations (missing state, "
         "statistics)"),
        ("zendesk", INTERCOM / "conversations.json", "not zendesk tickets (missing status, via)"),
    ],
)  # fmt: skip
def test_a_page_of_one_vendor_is_refused_as_the_other(con, tmp_path, named, page, lacks):
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    # the records under the key the named vendor's pages use: only their fields tell
    (landing / "support_tickets" / "page.json").write_text(
        json.dumps({"tickets" if named == "zendesk" else "conversations": _records(page)})
    )
    with pytest.raises(LandingFileError) as err:
        load_source(con, landing, source_contracts()["support_tickets"],
                    SourceSettings(profile=named))  # fmt: skip
    assert lacks in str(err.value)


def _records(page) -> list[dict]:
    doc = json.loads(page.read_text())
    return doc.get("tickets") or doc["conversations"]


def test_a_rating_is_read_when_the_records_sampled_for_the_structure_hold_none(
    con, tmp_path, monkeypatch
):
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "intercom" / "landing", landing)
    page = landing / "support_tickets" / "conversations.json"
    doc = json.loads(page.read_text())
    # an unrated conversation first, and a structure sampled from the first record only
    doc["conversations"] = [doc["conversations"][2], doc["conversations"][0]]
    page.write_text(json.dumps(doc))
    monkeypatch.setattr(
        pipelines.landing, "json_fields", partial(pipelines.landing.json_fields, sample=1)
    )
    _night(con, landing, Settings(), ["survey_responses"])
    assert con.execute(
        "select response_id, score, comment from staging.survey_responses"
    ).fetchall() == [("intercom-1001", 5, "Quick fix, thanks! Write to [email]")]
