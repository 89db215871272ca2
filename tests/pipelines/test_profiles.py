"""Vendor profiles (data_contracts/profiles/): golden landing zones built from each vendor's
documented export fields, loaded and staged, give exactly the expected canonical rows,
quarantine, set-aside records and conservation counts."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.contracts import source_contracts
from pipelines.ingest import conservation, stage_source
from pipelines.landing import LandingFileError, load_source
from pipelines.paths import CONTRACTS_DIR
from pipelines.profiles import ProfileError, all_profiles, json_pointer, load_profile
from pipelines.settings import Settings, SourceSettings
from tests.conftest import FIXTURES

PROFILES = FIXTURES / "profiles"
AS_OF = date(2026, 10, 31)
STAGED_COLUMNS = {
    "accounts": "account_id, account_name, business_unit, segment, region, plan, "
    "created_at::varchar",
    "support_tickets": "ticket_id, account_id, created_at::varchar, first_response_at::varchar, "
    "solved_at::varchar, channel, priority, reopens, first_contact_resolution",
    "survey_responses": "response_id, account_id, survey_type, score, responded_at::varchar, "
    "touchpoint, ticket_id, comment",
    "revenue": "account_id, month::varchar, mrr::varchar, currency",
    "churn_events": "account_id, churned_at::varchar, churn_type, reason",
}


def _night(con, landing: Path, settings: Settings, sources: list[str]) -> dict[str, dict]:
    counts = {}
    # accounts first (the other sources' rows name them), from a profile or canonical files
    for name in dict.fromkeys(["accounts", *sources]):
        contract = source_contracts()[name]
        load_source(con, landing, contract, settings.source(name), run_id="night", as_of=AS_OF)
        stage_source(con, contract, as_of=AS_OF, settings=settings, run_id="night")
        ok, counts[name] = conservation(con, "night", name)
        assert ok, (name, counts[name])
    return counts


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    yield c
    c.close()


@pytest.mark.parametrize("vendor", sorted(p.name for p in PROFILES.iterdir() if p.is_dir()))
def test_a_vendor_export_comes_to_exactly_its_expected_rows(vendor, con, tmp_path):
    expected = yaml.safe_load((PROFILES / vendor / "expected.yml").read_text())
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / vendor / "landing", landing)
    settings = Settings(**expected.get("config", {}))
    sources = list(expected["staged"])
    counts = _night(con, landing, settings, sources)

    for src in sources:
        staged = con.execute(
            f"select _source_file, _source_row, {STAGED_COLUMNS[src]} from staging.{src} "
            "order by 1, 2"
        ).fetchall()
        assert [list(r) for r in staged] == expected["staged"][src], src
        quarantined = con.execute(
            "select distinct source_file, source_row, column_name, rule from analytics.quarantine "
            "where source = ? order by all",
            [src],
        ).fetchall()
        assert [list(r) for r in quarantined] == expected["quarantine"].get(src, []), src
        aside = con.execute(
            "select source_file, source_row, object, rule from raw._set_aside where source = ? "
            "and object in (select ? || '.' || unnest(?)) order by all",
            [src, vendor, list(all_profiles()[vendor].sources[src].objects)],
        ).fetchall()
        assert [list(r) for r in aside] == expected["set_aside"].get(src, []), src
        for key, value in expected["conservation"][src].items():
            assert counts[src][key] == value, (src, key, counts[src])


def test_a_second_identical_night_loads_nothing_and_builds_the_same_rows(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "zendesk" / "landing", landing)
    contract = source_contracts()["support_tickets"]
    load_source(con, landing, contract, SourceSettings(), run_id="n1")
    first = con.execute("select * from raw.support_tickets order by all").fetchall()
    rep = load_source(con, landing, contract, SourceSettings(), run_id="n2")
    assert (rep.files_loaded, rep.files_unchanged) == ([], 2)
    assert con.execute("select * from raw.support_tickets order by all").fetchall() == first


def test_a_file_that_fits_no_kind_is_refused_with_what_each_lacks(con, tmp_path):
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    (landing / "support_tickets" / "odd.json").write_text('{"tickets": [{"id": 1}]}')
    with pytest.raises(LandingFileError) as err:
        load_source(con, landing, source_contracts()["support_tickets"], SourceSettings())
    msg = str(err.value)
    assert msg.startswith("support_tickets/odd.json: not recognised")
    assert "not zendesk tickets (missing status, created_at, via)" in msg
    assert "not the support_tickets export" in msg


def test_a_named_profile_reads_only_its_objects(con, tmp_path):
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    (landing / "support_tickets" / "t.csv").write_text(
        "ticket_id,account_id,created_at\nT1,A1,2026-01-01\n"
    )
    with pytest.raises(LandingFileError, match="not zendesk tickets"):
        load_source(con, landing, source_contracts()["support_tickets"],
                    SourceSettings(profile="zendesk"))  # fmt: skip
    with pytest.raises(ProfileError, match="no profile 'zendsk'"):
        load_source(con, landing, source_contracts()["support_tickets"],
                    SourceSettings(profile="zendsk"))  # fmt: skip


def test_options_change_the_rows_and_are_checked(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "zendesk" / "landing", landing)
    settings = Settings(sources={"survey_responses": SourceSettings(zendesk={"good": "4"})})
    _night(con, landing, settings, ["survey_responses"])
    assert con.execute("select score from staging.survey_responses").fetchall() == [(4,)]
    with pytest.raises(ProfileError, match="zendesk.good: '9' is not one of"):
        load_source(con, landing, source_contracts()["survey_responses"],
                    SourceSettings(zendesk={"good": "9"}))  # fmt: skip


CRM_OPTIONS = {
    "salesforce": {"business_unit": "Region", "segment": "Type"},
    "hubspot": {"business_unit": "business_unit", "segment": "customer_segment"},
}


def test_a_crm_export_is_recognised_as_its_vendor_and_refused_as_the_other(con, tmp_path):
    contract = source_contracts()["accounts"]
    for vendor, other in [("salesforce", "hubspot"), ("hubspot", "salesforce")]:
        landing = tmp_path / vendor
        shutil.copytree(PROFILES / vendor / "landing", landing)
        # Found by its header or keys alone, CSV (UI labels) and JSON (API names) alike
        load_source(con, landing, contract, SourceSettings(**CRM_OPTIONS))
        read_as = con.execute(
            "select distinct read_as from raw._files where source = 'accounts' and "
            "source_file in (select unnest(?))",
            [[f"accounts/{p.name}" for p in (landing / "accounts").iterdir()]],
        ).fetchall()
        assert {r[0].split(".")[0] for r in read_as} == {vendor}
        for export in sorted((landing / "accounts").iterdir()):
            lone = tmp_path / f"{vendor}-{export.name}" / "accounts"
            lone.mkdir(parents=True)
            shutil.copy(export, lone)
            with pytest.raises(LandingFileError, match=f"not {other} "):
                load_source(con, lone.parent, contract,
                            SourceSettings(profile=other, **CRM_OPTIONS))  # fmt: skip


def test_a_crm_profile_without_its_business_unit_field_is_a_config_error(con, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "salesforce" / "landing", landing)
    contract = source_contracts()["accounts"]
    with pytest.raises(ProfileError, match=r"sources\.accounts\.salesforce\.business_unit is req"):
        load_source(con, landing, contract, SourceSettings(salesforce={"segment": "Type"}))
    # a field the config names that the export does not have is refused, not read as empty
    with pytest.raises(ProfileError, match="has no field 'Division'"):
        load_source(con, landing, contract, SourceSettings(
            salesforce={"business_unit": "Division", "segment": "Type"}))  # fmt: skip


def test_the_account_id_can_be_another_field_than_the_crm_record_id(con, tmp_path):
    # A custom field holding the Stripe customer id, for sources that name accounts by it
    (tmp_path / "accounts").mkdir()
    (tmp_path / "accounts" / "accounts.json").write_text(
        '{"totalSize": 1, "done": true, "records": [{"attributes": {"type": "Account"}, '
        '"Id": "001D000000KpQrSIAV", "Name": "Delta GmbH", "Type": "SMB", "Region__c": "EMEA", '
        '"Stripe_Customer_Id__c": "cus_Q1w2E3r4", "CreatedDate": "2024-02-29T23:30:00.000+0000"}]}'
    )
    options = {"business_unit": "Region", "segment": "Type", "account_id": "Stripe Customer Id"}
    load_source(con, tmp_path, source_contracts()["accounts"],
                SourceSettings(salesforce=options))  # fmt: skip
    assert con.execute("select account_id from raw.accounts").fetchall() == [("cus_Q1w2E3r4",)]


def test_an_empty_page_or_file_is_read_as_holding_nothing(con, tmp_path):
    # Zendesk's incremental export ends on an empty page, and a day without changes writes an
    # empty file: each stopped the night as "missing required column(s)".
    landing = tmp_path / "landing"
    shutil.copytree(PROFILES / "zendesk" / "landing", landing)
    folder = landing / "support_tickets"
    (folder / "last_page.json").write_text('{"tickets": [], "end_of_stream": true}')
    (folder / "quiet_day.ndjson").write_text("")
    (folder / "nothing.json").write_text("[]")
    contract = source_contracts()["support_tickets"]
    rep = load_source(con, landing, contract, SourceSettings())
    assert rep.rows_loaded == 9
    assert con.execute(
        "select source_file, read_as, records_in_file from raw._files "
        "where read_as = 'empty' order by 1"
    ).fetchall() == [
        ("support_tickets/last_page.json", "empty", 0),
        ("support_tickets/nothing.json", "empty", 0),
        ("support_tickets/quiet_day.ndjson", "empty", 0),
    ]
    again = load_source(con, landing, contract, SourceSettings())
    assert again.files_loaded == []


def test_a_malformed_vendor_record_is_kept_as_its_length_only(con, tmp_path):
    # A Zendesk line cut off mid-record held the subject, description and requester's name
    # in raw._rejects and analytics.quarantine: fields the profile never reads.
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    good = (
        '{"id": 1, "status": "open", "created_at": "2026-09-01T09:00:00Z", '
        '"via": {"channel": "web"}, "organization_id": 7}'
    )
    cut = '{"id": 2, "status": "open", "subject": "Jane Doe, 1 Privet Drive", "via": {"ch'
    (landing / "support_tickets" / "t.ndjson").write_text(good + "\n" + cut + "\n")
    load_source(con, landing, source_contracts()["support_tickets"], SourceSettings())
    (kept,) = con.execute("select csv_line from raw._rejects").fetchone()
    assert "Privet" not in kept and kept.startswith(f"(a record of {len(cut)} characters")


@pytest.mark.parametrize("value", ["$", "..", " "])
def test_an_option_naming_no_field_is_refused(value):
    # HubSpot's business_unit "$" read the whole properties object as the business unit.
    with pytest.raises(ProfileError, match="names no field"):
        all_profiles()["hubspot"].resolve_options({"business_unit": value, "segment": "x"})


ZENDESK = PROFILES / "zendesk" / "landing"


def _records(page: Path, key: str) -> list[dict]:
    return json.loads(page.read_text())[key]


@pytest.mark.parametrize("named", [None, "zendesk"])
def test_a_page_holding_two_kinds_of_record_is_refused_with_what_to_do(con, tmp_path, named):
    # "name the profile in the config" cannot help: both arrays are Zendesk's
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    (landing / "support_tickets" / "page.json").write_text(json.dumps({
        "tickets": _records(ZENDESK / "support_tickets" / "tickets.json", "tickets"),
        "ticket_metrics": _records(
            ZENDESK / "support_tickets" / "ticket_metrics.json", "ticket_metrics"
        ),
    }))  # fmt: skip
    with pytest.raises(LandingFileError) as err:
        load_source(con, landing, source_contracts()["support_tickets"],
                    SourceSettings(profile=named))  # fmt: skip
    assert str(err.value) == (
        "support_tickets/page.json: holds the records of several kinds of file: "
        "zendesk.tickets (under 'tickets'), zendesk.ticket_metrics (under 'ticket_metrics'); "
        "a file holds one kind of record: write each array to a file of its own, in this folder"
    )


@pytest.mark.parametrize(
    ("folder", "page", "key", "hint"),
    [
        ("support_tickets", "survey_responses/satisfaction_ratings.json", "satisfaction_ratings",
         "this looks like zendesk satisfaction_ratings, which go in survey_responses/"),
        ("survey_responses", "support_tickets/tickets.json", "tickets",
         "this looks like zendesk tickets, which go in support_tickets/"),
    ],
)  # fmt: skip
def test_a_file_in_the_wrong_folder_is_refused_with_the_folder_it_goes_in(
    con, tmp_path, folder, page, key, hint
):
    landing = tmp_path / "landing"
    (landing / folder).mkdir(parents=True)
    (landing / folder / "export.json").write_text(json.dumps({key: _records(ZENDESK / page, key)}))
    with pytest.raises(LandingFileError) as err:
        load_source(con, landing, source_contracts()[folder], SourceSettings())
    assert str(err.value).startswith(f"{folder}/export.json: {hint}")


@pytest.mark.parametrize(
    ("via", "channel"),
    [
        # a flattened export's literal key beside the nested one: the nested one is via.channel
        ({"via.channel": "email", "via": {"channel": "web"}}, "web"),
        # only the literal key: read for via.channel, as a header is, ignoring punctuation
        ({"via.channel": "voice", "via": None}, "phone"),
    ],
)
def test_a_key_holding_a_dot_is_one_key(con, tmp_path, via, channel):
    landing = tmp_path / "landing"
    (landing / "support_tickets").mkdir(parents=True)
    ticket = {"id": 1, "organization_id": 7, "created_at": "2026-09-01T09:00:00Z",
              "updated_at": "2026-09-01T09:00:00Z", "status": "open", **via}  # fmt: skip
    (landing / "support_tickets" / "t.json").write_text(json.dumps({"tickets": [ticket]}))
    load_source(con, landing, source_contracts()["support_tickets"], SourceSettings())
    assert con.execute("select channel from raw.support_tickets").fetchall() == [(channel,)]


def test_a_field_path_quotes_a_key_holding_a_dot_and_indexes_an_array():
    assert json_pointer("via.channel") == "/via/channel"
    assert json_pointer('"via.channel"') == "/via.channel"
    assert json_pointer("contacts.contacts[0].id") == "/contacts/contacts/0/id"
    assert json_pointer('"a\\"b"./x~') == '/a"b/~1x~0'
    with pytest.raises(ProfileError, match="is not a field path"):
        json_pointer("via..channel")


def test_json_keys_are_read_as_they_are_written(con, tmp_path):
    """A `*` (a wildcard in a $. path), an accent (escaped by JSON), a tab or a slash in a key:
    each key of a canonical JSON file is read as itself."""
    landing = tmp_path / "landing"
    (landing / "churn_events").mkdir(parents=True)
    record = {"account_id": "A1", "churned_at": "2026-01-31", "raison_résiliation": "trop cher",
              "*": "star", "a\tb": "tab", "x/y": "slash", "t~1": "tilde"}  # fmt: skip
    (landing / "churn_events" / "c.ndjson").write_text(json.dumps(record) + "\n")
    settings = SourceSettings(columns={"raison_résiliation": "reason"})
    load_source(con, landing, source_contracts()["churn_events"], settings)
    reason, extra = con.execute("select reason, _extra from raw.churn_events").fetchone()
    assert reason == "trop cher"
    assert json.loads(extra) == {"*": "star", "a\tb": "tab", "x/y": "slash", "t~1": "tilde"}


def test_an_object_read_beside_the_primary_must_belong_to_a_record(tmp_path):
    profile = yaml.safe_load((CONTRACTS_DIR / "profiles" / "zendesk.yml").read_text())
    del profile["objects"]["ticket_metrics"]["belongs_to"]
    path = tmp_path / "zendesk.yml"
    path.write_text(yaml.safe_dump(profile))
    with pytest.raises(ProfileError, match="ticket_metrics.belongs_to: source support_tickets "
                       "reads ticket_metrics beside tickets"):  # fmt: skip
        load_profile(path)
