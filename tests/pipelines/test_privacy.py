"""Personal data out of free text: what the detector finds, what it must leave alone, and that
loading scrubs every free-text field, unmapped column and malformed record before raw."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from pipelines.contracts import source_contracts
from pipelines.landing import load_settings_digest, load_source
from pipelines.privacy import scrub_sql
from pipelines.settings import ConfigError, PrivacySettings, SourceSettings, load_settings

DEFAULT = PrivacySettings()
IBAN = r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"

# Each written as people write them; the whole text becomes the placeholder.
EMAILS = [
    "jane.doe@example.com",
    "JANE_DOE+cx@mail.example.co.uk",
    "jürgen.müller@beispiel.de",
    "иван.петров@пример.рф",
    "ελένη@παράδειγμα.ελ",
    "jane @ example.com",
    "jane dot doe at example dot com",
    "JANE AT EXAMPLE DOT COM",
    "jane(at)example.com",
    "jane (at) example (dot) com",
    "jane [at] example [dot] com",
    "jane{at}example{dot}co{dot}uk",
    "jane<at>example.com",
    "jane[@]example.com",
]
PHONES = [
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "+81-3-1234-5678",
    "+1 (415) 555-0132",
    "+4915112345678",
    "0044 20 7946 0958",
    "(415) 555-0132",
    "(415)555-0132",
    "415-555-0132",
    "415.555.0132",
    "415 555 0132",
    "1-800-555-0199",
    "030 1234567",
    "(030) 1234567",
    "0171/1234567",
    "020 7946 0958",
    "03-1234-5678",
    "07700 900123",
    "06 12 34 56 78",
    "01.23.45.67.89",
]
# A digit run that is a phone number only because a word says so; the word is kept.
NAMED_PHONES = [
    ("call me on 07700900123", "call me on [phone]"),
    ("phone: 07700900123", "phone: [phone]"),
    ("Tel. 0301234567", "Tel. [phone]"),
    ("mobile no. 4155550132", "mobile no. [phone]"),
    ("whatsapp +4915112345678", "whatsapp [phone]"),
]
# The false-positive guards: identifiers, dates, times, amounts and other numbers stay as
# written (docs/ingestion.md lists them).
UNTOUCHED = [
    # ticket, account and order ids
    "T-2024-000123", "INC0012345", "ZD-4815162342", "#123456789", "ACC-000123",
    "INV-2024-0001", "R-415-555-0132", "order 123-456-7890", "4155550132", "20240315",
    "123e4567-e89b-12d3-a456-426614174000",
    # dates and times, with offsets
    "2024-03-15", "2024-03-15T10:00:00+01:00", "2024-03-15 10:00:00.123456789+05:30",
    "2024-03-15 10:00 +0530", "2024-03-15 10:00:00+01", "15/03/2024", "03/15/2024",
    "15.03.2024", "05-03-2024", "06 2024", "2019-2024", "10:00-12:00",
    # amounts and other numbers
    "1000.50", "1,234,567.89", "1 234 567", "12 345 678", "123 456 789", "EUR 1.234,56",
    "+7", "-3", "1.5e-3", "192.168.0.1", "v1.2.3", "scores 9 10 8 7 9 10",
    # @ and "at" that are no address
    "price @ 3.50", "@support please", "arrived at example.com", "meet at 10 dot 30",
    "phone ordered on 2024-03-15",
    # a CSV record of ids, dates and amounts
    'A001,2024-03-15,9,100.5,"great"',
]  # fmt: skip


@pytest.fixture
def con():
    c = duckdb.connect()
    yield c
    c.close()


def scrub(con, text: str, privacy: PrivacySettings = DEFAULT) -> str:
    return con.execute(f"select {scrub_sql('?::varchar', privacy)}", [text]).fetchone()[0]


@pytest.mark.parametrize("address", EMAILS)
def test_an_email_address_is_replaced_in_any_written_form(con, address):
    assert scrub(con, address) == "[email]"
    assert scrub(con, f"Write to {address}, thanks!") == "Write to [email], thanks!"


@pytest.mark.parametrize("number", PHONES)
def test_a_phone_number_is_replaced_in_national_and_international_formats(con, number):
    assert scrub(con, number) == "[phone]"
    assert scrub(con, f"ring {number} or '{number}'.") == "ring [phone] or '[phone]'."


@pytest.mark.parametrize(("text", "expected"), NAMED_PHONES)
def test_a_bare_number_after_a_word_naming_a_phone_is_replaced(con, text, expected):
    assert scrub(con, text) == expected


@pytest.mark.parametrize("text", UNTOUCHED)
def test_ids_dates_amounts_and_other_numbers_are_left_as_written(con, text):
    assert scrub(con, text) == text


def test_several_in_one_text_and_null_stays_null(con):
    text = "a: +44 20 7946 0958, b: (415) 555-0132; jane@example.com / 415-555-0133,415-555-0134"
    assert scrub(con, text) == "a: [phone], b: [phone]; [email] / [phone],[phone]"
    assert con.execute(f"select {scrub_sql('null::varchar', DEFAULT)}").fetchone()[0] is None


def test_configured_patterns_get_their_own_placeholder_and_scrubbing_can_be_turned_off(con):
    iban = PrivacySettings(patterns={"iban": IBAN})
    text = "refund DE89 3704 0044 0532 0130 00 to jane@example.com"
    assert scrub(con, text, iban) == "refund [iban] to [email]"
    assert scrub(con, text, PrivacySettings(scrub=False)) == text


@pytest.mark.parametrize(
    ("patterns", "message"),
    [
        ("{email: 'x+'}", "not email or phone"),
        ("{Card: 'x+'}", "lower case letters"),
        ("{card: '[0-9'}", "not a valid regular expression"),
        ("{card: '[0-9]*'}", "matches the empty text"),
    ],
)
def test_a_bad_configured_pattern_names_itself(tmp_path, patterns, message):
    p = tmp_path / "cx.yml"
    p.write_text(f"privacy:\n  patterns: {patterns}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(p)


# --- loading -----------------------------------------------------------------------------

ACCOUNTS = source_contracts()["accounts"]


def _landing(tmp_path: Path, text: str) -> Path:
    (tmp_path / "accounts").mkdir(exist_ok=True)
    (tmp_path / "accounts" / "a.csv").write_text(text, encoding="utf-8")
    return tmp_path


def test_loading_scrubs_free_text_unmapped_columns_and_malformed_records_but_not_ids(con, tmp_path):
    landing = _landing(
        tmp_path,
        "account_id,account_name,business_unit,segment,created_at,Contact\n"
        "A1,Acme (jane@acme.com),Payments,SMB,2024-01-01,+44 20 7946 0958\n"
        "A2,Beta,Payments,SMB,2024-01-01,jane dot doe at beta dot com,one too many\n"
        "A3,Gamma 030 1234567,Payments,SMB,2024-01-01,T-2024-000123\n",
    )
    load_source(con, landing, ACCOUNTS, SourceSettings())
    rows = con.execute(
        "select account_id, account_name, created_at, _extra->>'Contact' from raw.accounts "
        "order by 1"
    ).fetchall()
    assert rows == [
        ("A1", "Acme ([email])", "2024-01-01", "[phone]"),
        ("A3", "Gamma [phone]", "2024-01-01", "T-2024-000123"),
    ]
    assert con.execute("select csv_line from raw._rejects").fetchall() == [
        ("A2,Beta,Payments,SMB,2024-01-01,[email],one too many",)
    ]


def test_a_change_to_what_is_scrubbed_loads_the_files_again(con, tmp_path):
    landing = _landing(
        tmp_path,
        "account_id,account_name,business_unit,segment,created_at\n"
        "A1,Acme DE89 3704 0044 0532 0130 00,Payments,SMB,2024-01-01\n",
    )
    load_source(con, landing, ACCOUNTS, SourceSettings())
    again = load_source(con, landing, ACCOUNTS, SourceSettings())
    assert again.files_loaded == []
    iban = PrivacySettings(patterns={"iban": IBAN})
    assert load_settings_digest(ACCOUNTS, SourceSettings(), iban) != load_settings_digest(
        ACCOUNTS, SourceSettings()
    )
    assert load_source(con, landing, ACCOUNTS, SourceSettings(), privacy=iban).files_loaded == [
        "accounts/a.csv"
    ]
    assert con.execute("select account_name from raw.accounts").fetchall() == [("Acme [iban]",)]


def test_a_change_to_what_is_scrubbed_restages_the_source(con, tmp_path):
    from pipelines.ingest import staging_inputs
    from pipelines.settings import Settings

    landing = _landing(
        tmp_path,
        "account_id,account_name,business_unit,segment,created_at\nA1,Acme,Payments,SMB,2024-01-01\n",
    )
    load_source(con, landing, ACCOUNTS, SourceSettings())
    iban = Settings(privacy={"patterns": {"iban": IBAN}})
    assert staging_inputs(con, ACCOUNTS, Settings()) != staging_inputs(con, ACCOUNTS, iban)
