"""What a typed column accepts: only what a person means as that type, within a plausible range.

Each case lands a small file, stages it as the nightly job does (DuckDB decides the quarantine)
and counts the rule breaks with great-expectations too: the two engines must agree.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.contracts import source_contracts
from pipelines.ingest import stage_source
from pipelines.landing import load_source
from pipelines.settings import Settings
from pipelines.validation import ge_rule_counts

AS_OF = date(2025, 1, 1)
ACCOUNTS = (
    "account_id,account_name,business_unit,segment,region,plan,created_at\n"
    "A1,Acme,Payments,SMB,EU,Starter,2024-01-05\n"
)
HEADERS = {
    "survey_responses": "response_id,account_id,survey_type,score,responded_at",
    "revenue": "account_id,month,mrr,currency",
    "support_tickets": "ticket_id,account_id,created_at,first_response_at,solved_at,"
    "reopens,first_contact_resolution,handle_minutes",
    "accounts": "account_id,business_unit,segment,created_at",
    "support_costs": "business_unit,month,cost,agents",
}


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    yield c
    c.close()


def stage(con, tmp_path: Path, source: str, rows: list[str], as_of: date = AS_OF):
    """Land `rows` (CSV lines under HEADERS[source]) with one account A1 (unit Payments), stage
    them, and return (quarantine rows (row, column, rule, value), staged rows)."""
    contracts = source_contracts()
    files = {"accounts": ACCOUNTS}
    files[source] = "\n".join([HEADERS[source], *rows]) + "\n"
    settings = Settings()
    for name in dict.fromkeys(("accounts", source)):
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.csv").write_text(files[name])
        load_source(con, tmp_path, contracts[name], settings.source(name), run_id="r")
        result = stage_source(con, contracts[name], as_of=as_of, settings=settings, run_id="r")
        # The second engine counts the same rule breaks.
        ge = ge_rule_counts(
            con, contracts[name], as_of=as_of, currency=settings.currency, batch_rows=1000
        )
        assert ge == result.row_rule_counts, name
    quarantine = con.execute(
        "select source_row, column_name, rule, value from analytics.quarantine "
        "where source = ? order by all",
        [source],
    ).fetchall()
    staged = con.execute(f"select * exclude (_source_file) from staging.{source}").fetchall()
    return quarantine, staged


def scores(con, tmp_path, cases: list[tuple[str, str]]):
    """Stage one survey answer per (survey_type, score text); rows are numbered from 1."""
    rows = [f'R{i},A1,{t},"{text}",2024-03-01' for i, (t, text) in enumerate(cases, 1)]
    quarantine, staged = stage(con, tmp_path, "survey_responses", rows)
    return quarantine, sorted((r[-1], r[3]) for r in staged)


# --- integers ---------------------------------------------------------------------------

NOT_INTEGERS = [
    ("csat", "3.5"),  # was 4: top-2-box
    ("nps", "6.5"),  # was 7: passive, not detractor
    ("nps", "0x9"), ("nps", "0b101"), ("nps", "1_0"), ("nps", "1e0"), ("nps", "7."),
    ("nps", "٣"), ("nps", "99999999999999999999"), ("nps", "1 0"), ("nps", "--1"),
    ("nps", "nan"), ("nps", "inf"),
]  # fmt: skip


def test_an_integer_column_quarantines_what_is_not_an_integer(con, tmp_path):
    quarantine, staged = scores(con, tmp_path, NOT_INTEGERS)
    assert staged == []
    assert quarantine == [(i, "score", "type", text) for i, (_, text) in enumerate(NOT_INTEGERS, 1)]


def test_an_integer_column_reads_what_a_person_means_as_an_integer(con, tmp_path):
    # 7.0 is read as 7: exports write whole numbers so when the column has empty cells
    # (pandas), and no information is lost; 7.5 is not an integer (above).
    texts = ["7", "+7", "007", "7.0", "7.00", "\t7\n", "-0"]
    quarantine, staged = scores(con, tmp_path, [("nps", t) for t in texts])
    assert quarantine == []
    assert staged == [(1, 7), (2, 7), (3, 7), (4, 7), (5, 7), (6, 7), (7, 0)]


# --- decimals ---------------------------------------------------------------------------

NOT_DECIMALS = ["1_0", "0x9", "nan", "inf", "-inf", "infinity", "1e400", "1e3", "1,000", "10.",
                "123456789012345"]  # the last: more digits than decimal(18, 4) holds  # fmt: skip


def test_a_decimal_column_quarantines_what_is_not_a_plain_decimal(con, tmp_path):
    rows = [f'A1,2024-{i:02d},"{text}",USD' for i, text in enumerate(NOT_DECIMALS, 1)]
    quarantine, staged = stage(con, tmp_path, "revenue", rows)
    assert staged == []
    assert quarantine == [(i, "mrr", "type", text) for i, text in enumerate(NOT_DECIMALS, 1)]


def test_a_decimal_column_reads_plain_decimals(con, tmp_path):
    texts = ["10", "+10.5", ".5", "10.12345", "0.25"]
    rows = [f"A1,2024-{i:02d},{text},USD" for i, text in enumerate(texts, 1)]
    quarantine, staged = stage(con, tmp_path, "revenue", rows)
    assert quarantine == []
    assert sorted((r[-1], float(r[2])) for r in staged) == [
        (1, 10.0), (2, 10.5), (3, 0.5), (4, 10.1235), (5, 0.25),
    ]  # fmt: skip


def test_a_double_column_accepts_finite_numbers_only(con):
    from pipelines.contracts import ColumnSpec, clean_expr, parse_expr

    c = ColumnSpec(name="x", type="double")
    parsed = parse_expr(c, clean_expr(c), {})
    texts = ["1.5", "-2e3", ".5", "nan", "inf", "-Infinity", " 1e400", "1_0", "0x9", "1e"]
    got = [con.execute(f"select {parsed} from (select ? as x)", [t]).fetchone()[0] for t in texts]
    assert got == [1.5, -2000.0, 0.5, None, None, None, None, None, None, None]


# --- dates, months and timestamps -------------------------------------------------------

BAD_TIMESTAMPS = [
    ("infinity", "type"),  # crashed the night downstream, blaming cxalign
    ("-infinity", "type"),
    ("294248-01-01", "type"),
    ("2024-02-30", "type"),
    ("2024-03-01 25:00", "type"),
    ("2024-03-01 24:00", "type"),
    ("2024-03-01 10:00:60", "type"),
    ("2024-03-01 America/New_York", "type"),
    ("0044-03-15 (BC)", "type"),
    ("44-03-15", "type"),
    ("epoch", "type"),
    ("1900-01-01", "before_earliest_date"),
    ("0001-01-01 00:00:00+00", "before_earliest_date"),
    ("1989-12-31 23:59:59Z", "before_earliest_date"),
    ("9999-12-31 23:59:59-05:00", "after_as_of"),  # year 10000 in UTC: no crash
    ("2025-01-02 00:00:00+00", "after_as_of"),
]


def test_a_timestamp_outside_its_form_or_range_is_quarantined(con, tmp_path):
    rows = [f"R{i},A1,nps,9,{text}" for i, (text, _) in enumerate(BAD_TIMESTAMPS, 1)]
    quarantine, staged = stage(con, tmp_path, "survey_responses", rows)
    assert staged == []
    assert quarantine == [
        (i, "responded_at", rule, text) for i, (text, rule) in enumerate(BAD_TIMESTAMPS, 1)
    ]


GOOD_TIMESTAMPS = [
    ("2024-03-01", "2024-03-01 00:00:00+00"),
    ("2024-03-01 10:00", "2024-03-01 10:00:00+00"),
    ("2024-03-01T10:00:00Z", "2024-03-01 10:00:00+00"),
    ("2024-03-01 10:00:00 UTC", "2024-03-01 10:00:00+00"),
    ("2024-03-01 10:00+02", "2024-03-01 08:00:00+00"),
    ("2024-03-01 10:00:00+0530", "2024-03-01 04:30:00+00"),
    ("2024-03-01T10:00:00.5-05:00", "2024-03-01 15:00:00.5+00"),
    ("1990-01-01 00:00:00Z", "1990-01-01 00:00:00+00"),
    ("2024-12-31 23:59:59", "2024-12-31 23:59:59+00"),  # the as-of day itself
]


def test_a_timestamp_in_a_stated_form_is_read_in_utc(con, tmp_path):
    rows = [f"R{i},A1,nps,9,{text}" for i, (text, _) in enumerate(GOOD_TIMESTAMPS, 1)]
    quarantine, _ = stage(con, tmp_path, "survey_responses", rows)
    assert quarantine == []
    got = con.execute(
        "select responded_at::varchar from staging.survey_responses order by _source_row"
    ).fetchall()
    assert got == [(utc,) for _, utc in GOOD_TIMESTAMPS]


BAD_MONTHS = [
    ("1000000-01-01", "type"),  # was a conversion error naming no file or row
    ("294248-01-01", "type"),
    ("infinity", "type"),
    ("2024-13", "type"),
    ("2024-3", "type"),
    ("2024-03-01 25:00", "type"),
    ("1900-01", "before_earliest_date"),
    ("2025-02-01", "after_as_of"),
]


def test_a_month_outside_its_form_or_range_is_quarantined(con, tmp_path):
    rows = [f"A1,{text},10,USD" for text, _ in BAD_MONTHS]
    quarantine, staged = stage(con, tmp_path, "revenue", rows)
    assert staged == []
    assert quarantine == [(i, "month", rule, text) for i, (text, rule) in enumerate(BAD_MONTHS, 1)]


BAD_DATES = [
    ("2023-12-31 25:00", "type"),  # was read as 2023-12-31
    ("infinity", "type"),
    ("-infinity", "type"),
    ("1900-01-01", "before_earliest_date"),
    ("0044-03-15", "before_earliest_date"),
    ("2030-01-01", "after_as_of"),
]


def test_a_date_outside_its_form_or_range_is_quarantined(con, tmp_path):
    rows = ["A1,Payments,SMB,2024-01-05"] + [
        f"A{i},Payments,SMB,{text}" for i, (text, _) in enumerate(BAD_DATES, 2)
    ]
    quarantine, staged = stage(con, tmp_path, "accounts", rows)
    assert [r[0] for r in staged] == ["A1"]
    assert quarantine == [
        (i, "created_at", rule, text) for i, (text, rule) in enumerate(BAD_DATES, 2)
    ]


def test_a_date_with_a_valid_time_keeps_its_date(con, tmp_path):
    quarantine, staged = stage(
        con, tmp_path, "accounts", ["A1,Payments,SMB,2024-01-05 23:30-05:00"]
    )
    assert quarantine == []
    assert [r[6] for r in staged] == [date(2024, 1, 5)]


def test_the_earliest_date_is_the_contracts_to_set(tmp_path):
    from pipelines.contracts import EARLIEST_DATE, load_contract_file

    path = tmp_path / "old_books.yml"
    path.write_text(
        "name: old_books\nkind: source\nearliest_date: 1970-01-01\n"
        "columns:\n  - {name: d, type: date, not_after_as_of: true}\n"
    )
    assert load_contract_file(path).earliest_date == date(1970, 1, 1)
    assert all(c.earliest_date == EARLIEST_DATE for c in source_contracts().values())
    # A dated source column without an upper bound is refused.
    path.write_text("name: old_books\nkind: source\ncolumns:\n  - {name: d, type: date}\n")
    with pytest.raises(ValueError, match="column d: a dated column needs not_after_as_of"):
        load_contract_file(path)


# --- tickets answered or solved after the as-of date ------------------------------------


def test_a_ticket_answered_or_solved_after_the_as_of_date_is_staged_open(con, tmp_path):
    # On the as-of date (2025-01-01) ticket T1 was answered but not solved, T2 not answered:
    # both are kept, and what happened later is not yet known (NULL, listed with its text).
    # T3 was opened later: the whole row is held back, as before.
    rows = [
        "T1,A1,2024-12-31 23:00,2025-01-01 23:59:59,2025-01-02 00:00:01,2,false,35.5",
        "T2,A1,2024-12-30 09:00,2025-03-01 08:00,,0,,",
        "T3,A1,2025-01-02 09:00,,,0,,",
        "T4,A1,2024-12-30 09:00,2024-12-30 09:05,2025-01-01 12:00,1,true,12",
    ]
    quarantine, staged = stage(con, tmp_path, "support_tickets", rows)
    assert quarantine == [(3, "created_at", "after_as_of", "2025-01-02 09:00")]
    got = con.execute(
        "select ticket_id, first_response_at::varchar, solved_at::varchar, reopens, "
        "first_contact_resolution, handle_minutes::double from staging.support_tickets "
        "order by ticket_id"
    ).fetchall()
    assert got == [
        ("T1", "2025-01-01 23:59:59+00", None, None, None, None),
        ("T2", None, None, 0, None, None),  # open on the as-of date and still: as given
        ("T4", "2024-12-30 09:05:00+00", "2025-01-01 12:00:00+00", 1, True, 12.0),
    ]
    assert con.execute(
        "select source_row, column_name, value from analytics.not_yet_known order by all"
    ).fetchall() == [
        (1, "first_contact_resolution", "false"),
        (1, "handle_minutes", "35.5"),
        (1, "reopens", "2"),
        (1, "solved_at", "2025-01-02 00:00:01"),
        (2, "first_response_at", "2025-03-01 08:00"),
    ]


def test_not_yet_known_values_are_counted_and_replaced_on_a_rebuild(con, tmp_path):
    from pipelines.ingest import stage_source

    rows = ["T1,A1,2024-12-31 23:00,2025-01-01 10:00,2025-01-02 00:00:01,0,true,5"]
    stage(con, tmp_path, "support_tickets", rows)
    contract = source_contracts()["support_tickets"]
    later = stage_source(con, contract, as_of=date(2025, 1, 2), settings=Settings(), run_id="r2")
    assert later.values_not_yet_known == 0
    assert con.execute("select count(*) from analytics.not_yet_known").fetchone()[0] == 0
    assert con.execute("select solved_at::varchar from staging.support_tickets").fetchall() == [
        ("2025-01-02 00:00:01+00",)
    ]
    again = stage_source(con, contract, as_of=AS_OF, settings=Settings(), run_id="r3")
    assert again.values_not_yet_known == 4
