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
        ("intercom", ZENDESK / "tickets.json", "not intercom conversations (missing "
         "type=conversation (holds 'question', null), state, statistics)"),
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


def test_a_conversation_keeps_only_its_first_contacts_id(con, tmp_path):
    # Intercom's contact reference carries external_id, often the customer's e-mail address
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "intercom" / "landing", landing)
    page = landing / "support_tickets" / "conversations.json"
    doc = json.loads(page.read_text())
    for conversation in doc["conversations"]:
        for contact in conversation["contacts"]["contacts"]:
            contact["external_id"] = "jane.doe@example.com"
    page.write_text(json.dumps(doc))
    # the table as an earlier profile made it, with a column for the whole contacts array
    con.execute("create schema raw")
    con.execute(
        "create table raw.support_tickets__intercom_conversations (_source_file varchar not "
        "null, _source_row bigint not null, contacts varchar)"
    )
    _night(con, landing, Settings(), ["support_tickets", "survey_responses"])

    for (table,) in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'raw' "
        "and table_name like '%intercom%'"
    ).fetchall():
        columns = [r[0] for r in con.execute(f"describe raw.{table}").fetchall()]
        text = " || ".join(f"coalesce(\"{c}\"::varchar, '')" for c in columns)
        assert con.execute(
            f"select count(*) from raw.{table} where ({text}) like '%example.com%'"
        ).fetchone() == (0,), table
        assert "contacts" not in columns, table
    assert con.execute(
        "select contact_id from raw.support_tickets__intercom_conversations where id = '1001'"
    ).fetchall() == [("6329bd9ffe4e2e91dac76188",)]


def _page(records_key: str, records: list[dict]) -> str:
    return json.dumps({"type": "list", records_key: records})


def test_a_list_of_ids_and_company_ids_is_not_taken_for_intercom_companies(con, tmp_path):
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    (landing / "support_tickets" / "x.json").write_text(
        _page("data", [{"id": "1", "company_id": "c1", "email": "a@b.c"}])
    )
    with pytest.raises(LandingFileError) as err:
        load_source(con, landing, source_contracts()["support_tickets"], SourceSettings())
    assert "not intercom companies (missing type=company)" in str(err.value)
    assert "not intercom contacts (missing type=contact, role, companies)" in str(err.value)


def test_contacts_and_companies_no_conversation_needs_are_set_aside(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "intercom" / "landing", landing)
    for name, extra in [
        ("contacts.json", {"type": "contact", "id": "c-nobody", "role": "user",
                           "updated_at": 1788257100,
                           "companies": {"type": "list", "data": [{"id": "co-nobody"}]}}),
        ("companies.json", {"type": "company", "id": "co-nobody", "company_id": "acct-009",
                            "updated_at": 1787220000}),
    ]:  # fmt: skip
        page = landing / "support_tickets" / name
        doc = json.loads(page.read_text())
        doc["data"].append(extra)
        page.write_text(json.dumps(doc))
    counts = _night(con, landing, Settings(), ["support_tickets", "survey_responses"])

    assert con.execute(
        "select source_file, source_row, object, rule from raw._set_aside "
        "where source = 'support_tickets' and rule = 'not_needed' order by all"
    ).fetchall() == [
        ("support_tickets/companies.json", 3, "intercom.companies", "not_needed"),
        ("support_tickets/contacts.json", 4, "intercom.contacts", "not_needed"),
    ]
    assert (counts["support_tickets"]["belong"], counts["support_tickets"]["set_aside"]) == (5, 4)
    # looked up for the ratings, never accounted for (nor set aside) by survey_responses
    assert con.execute(
        "select count(*) from raw._set_aside where source = 'survey_responses' "
        "and object in ('intercom.contacts', 'intercom.companies')"
    ).fetchone() == (0,)


def test_a_record_of_another_type_after_the_records_a_file_is_recognised_by_refuses_it(
    con, tmp_path
):
    """A file is told from its first records (RECOGNITION_SAMPLE); a contact among the
    companies further on is not loaded as a company: the file is refused, naming the row."""
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "intercom" / "landing", landing)
    companies = landing / "support_tickets" / "companies.json"
    first = json.loads(companies.read_text())["data"][0]
    n = pipelines.landing.RECOGNITION_SAMPLE + 5
    records = [dict(first, id=f"co-{i}", company_id=f"acct-{i:04d}") for i in range(n)]
    records[n - 2] = dict(records[n - 2], type="contact")
    companies.unlink()
    (landing / "support_tickets" / "companies.ndjson").write_text(
        "".join(json.dumps(r) + "\n" for r in records)
    )
    with pytest.raises(
        LandingFileError,
        match=rf"support_tickets/companies\.ndjson: row {n - 1}, field type: holds 'contact' "
        r"where the file's first records hold 'company'",
    ):
        _night(con, landing, Settings(), ["support_tickets"])
    # nothing of the source's files was kept: its load is one transaction
    assert con.execute(
        "select count(*) from raw._files where source = 'support_tickets'"
    ).fetchone() == (0,)
