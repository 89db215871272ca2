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
    # pasted from a web page or a link, typed on a Chinese or Japanese keyboard
    "jane%40example.com",
    "JANE%40EXAMPLE.COM",
    "jane&#64;example.com",
    "jane&#x40;example.com",
    "jane&commat;example.com",
    "jane\uff20example.com",  # full-width @
    "jane\ufe6bexample.com",  # small @
    "jane@example\uff0ecom",  # full-width dot
    "\uff4a\uff41\uff4e\uff45\uff20\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\uff0e\uff43\uff4f\uff4d",
    "jane\u00a0@\u00a0example.com",  # no-break spaces
    "jane\u00a0(at)\u00a0example\u00a0(dot)\u00a0com",
    "jane\u00a0dot\u00a0doe\u00a0at\u00a0example\u00a0dot\u00a0com",
    # invisible characters before or after the @, or inside
    "jane\u200b@example.com",
    "jane@\u200bexample.com",
    "jane\u200d@\ufeffexample.com",
    "ja\u200cne@exa\u00admple.com",
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
    # no-break, narrow no-break and thin spaces; non-breaking hyphen, en and em dashes
    "+44\u00a020\u00a07946\u00a00958",
    "+1\u00a0(415)\u00a0555-0132",
    "0044\u00a020\u00a07946\u00a00958",
    "07700\u00a0900123",
    "07700\u202f900123",
    "030\u20091234567",
    "+33\u202f6\u202f12\u202f34\u202f56\u202f78",
    "+33\u20096\u200912\u200934\u200956\u200978",
    "(415)\u00a0555\u20110132",
    "415\u2013555\u20130132",
    "415\u2014555\u20140132",
    "03\u20111234\u20115678",
    # dots, international
    "+44.20.7946.0958",
    "+1.415.555.0132",
    "+33.6.12.34.56.78",
    "+49.30.1234567",
    # full-width digits, +, hyphen and brackets
    "\uff10\uff17\uff17\uff10\uff10 \uff19\uff10\uff10\uff11\uff12\uff13",  # ０７７００ ９００１２３
    "\uff0b\uff14\uff14 \uff12\uff10 \uff17\uff19\uff14\uff16 \uff10\uff19\uff15\uff18",  # ＋４４ ２０ ７９４６ ０９５８
    "\uff10\uff13\uff0d\uff11\uff12\uff13\uff14\uff0d\uff15\uff16\uff17\uff18",  # ０３－１２３４－５６７８
    "\uff08\uff10\uff13\uff10\uff09\uff11\uff12\uff13\uff14\uff15\uff16\uff17",  # （０３０）１２３４５６７
    # invisible characters inside
    "0770\u200b0 900123",
    "+44 20 7946\u200b0958",
    "415-555\u200b-0132",
    "\u200b(415) 555-0132",
    "+44\u200d20\u200d7946\u200d0958",
]
# A digit run that is a phone number only because a word says so; the word is kept.
NAMED_PHONES = [
    ("call me on 07700900123", "call me on [phone]"),
    ("phone: 07700900123", "phone: [phone]"),
    ("Tel. 0301234567", "Tel. [phone]"),
    ("mobile no. 4155550132", "mobile no. [phone]"),
    ("whatsapp +4915112345678", "whatsapp [phone]"),
    ("phone\uff1a07700900123", "phone\uff1a[phone]"),  # full-width colon
    ("phone:\u00a007700900123", "phone:\u00a0[phone]"),
    ("Tel\uff0e0301234567", "Tel\uff0e[phone]"),
    (
        "call me on \uff10\uff17\uff17\uff10\uff10\uff19\uff10\uff10\uff11\uff12\uff13",
        "call me on [phone]",
    ),
    ("tel 0770\u200b0900123", "tel [phone]"),
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
    # the same with no-break, narrow and thin spaces, non-breaking hyphens and dashes
    "T\u20112024\u2011000123", "R\u2013415\u2013555\u20130132", "ZD\u20114815162342",
    "order 123\u2013456\u20137890", "2024\u201303\u201315", "05\u201103\u20112024",
    "06\u00a02024", "2019\u20132024", "10:00\u201312:00", "2024-03-15\u00a010:00\u00a0+0530",
    "1\u202f234\u202f567", "12\u00a0345\u00a0678", "123\u2009456\u2009789", "1.5e\u22123",
    "scores 9\u00a010\u00a08\u00a07\u00a09\u00a010",
    # dotted numbers after a +: signed amounts and addresses
    "+12.345.678", "+1.234.567,89", "+1.234.567.890", "+192.168.0.1", "+10.0.0.1",
    # full-width ids, dates and amounts: ２０２４－０３－１５, １５．０３．２０２４, １ ２３４ ５６７,
    # ＩＮＣ００１２３４５, ４１５５５５０１３２, ＋７
    "\uff12\uff10\uff12\uff14\uff0d\uff10\uff13\uff0d\uff11\uff15",
    "\uff11\uff15\uff0e\uff10\uff13\uff0e\uff12\uff10\uff12\uff14",
    "\uff11 \uff12\uff13\uff14 \uff15\uff16\uff17",
    "\uff29\uff2e\uff23\uff10\uff10\uff11\uff12\uff13\uff14\uff15",
    "\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff13\uff12", "\uff0b\uff17",
    # invisible characters: a bare run stays a bare run, an id stays an id
    "415\u200b555\u200b0132", "R-\u200b415-555-0132",
    # @ and %40 that are no address
    "price \uff20 3.50", "&#64;support please", "50%40 off",
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


def test_an_address_in_a_pasted_link_is_replaced_and_the_link_kept(con):
    text = "unsubscribe: https://x.example/u?email=jane%40example.com&list=7"
    assert scrub(con, text) == "unsubscribe: https://x.example/u?email=[email]&list=7"


def test_full_width_numbers_side_by_side_are_each_replaced(con):
    # a full-width number ends where its digits do (RE2's \b knows ASCII digits only)
    one, two = (
        "\uff10\uff13\uff0d\uff11\uff12\uff13\uff14\uff0d\uff15\uff16\uff17\uff18",
        "\uff10\uff19\uff10 \uff11\uff12\uff13\uff14 \uff15\uff16\uff17\uff18",
    )
    assert scrub(con, f"{one}\u3001{two}\u3002") == "[phone]\u3001[phone]\u3002"


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


def test_a_quarantined_value_is_scrubbed_whatever_its_column(con, tmp_path):
    # A value that breaks its column's rule may be anything: an address typed into the
    # created_at column reached analytics.quarantine.value as written.
    from datetime import date

    from pipelines.ingest import stage_source
    from pipelines.settings import Settings

    landing = _landing(
        tmp_path,
        "account_id,account_name,business_unit,segment,created_at\n"
        "A1,Acme,Payments,SMB,jane.doe@example.com\nA2,Beta,Payments,SMB,2024-01-01\n",
    )
    load_source(con, landing, ACCOUNTS, SourceSettings())
    con.execute("set TimeZone = 'UTC'")
    stage_source(con, ACCOUNTS, as_of=date(2025, 1, 1), settings=Settings(), run_id="n")
    assert con.execute(
        "select column_name, rule, value from analytics.quarantine"
    ).fetchall() == [("created_at", "type", "[email]")]
