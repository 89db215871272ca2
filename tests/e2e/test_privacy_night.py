"""Personal data planted in a landing zone reaches no analyst (issue 19, point 10).

E-mail addresses and phone numbers, plain and obfuscated, are planted in every free-text
column of every source (the contracts' `free_text` columns, one source as Parquet), in a
column the contract does not know (kept in `_extra`) and in a malformed CSV record; after a
night, every column of every table and view of the published warehouse and the text of
every scorecard file (HTML, Markdown, SVG, PDF text, PNG text chunks; alt text is in the
pages) is searched for them, and none is found. The placeholders are found where the
planted values went, so the rows did flow through.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines import demo_data
from pipelines.contracts import source_contracts
from tests.conftest import run_cli
from tests.e2e.viewers import require

pytestmark = pytest.mark.slow

AS_OF = "2026-11-01"
PLANTED = [
    "zelda.quistgaard@example.com",
    "Zelda_Q+cx@mail.example.co.uk",
    "zelda dot quistgaard at example dot com",
    "zquistgaard(at)example.com",
    "z.quistgaard [at] example [dot] com",
    "+44 20 7946 0321",
    "(415) 555-0187",
    "030 4917283",
    "+81-3-4917-2836",
    "0044 20 7946 0874",
    "06 48 91 72 83",
    "call me on 07700900461",
]
# What must not be found anywhere: the values as planted, and their distinctive parts (a
# name, a subscriber number), in any case.
NEEDLES = [
    *PLANTED,
    "quistgaard", "zelda", "7946 0321", "79460321", "555-0187", "5550187", "4917283",
    "4917-2836", "49172836", "7946 0874", "79460874", "48 91 72 83", "07700900461",
]  # fmt: skip
NEEDLE_RE = "|".join(re.escape(n.lower()) for n in NEEDLES)


def _planted(i: int, prefix: str) -> str:
    return f"{prefix} {i}: reach me {PLANTED[i % len(PLANTED)]}, thanks"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("privacy")
    landing = root / "landing"
    demo_data.generate(landing, accounts=300, months=8, seed=5, file_format="csv", bad_row_rate=0)
    planted_in = []
    for name, contract in source_contracts().items():
        free = [c.name for c in contract.columns if c.free_text]
        for path in sorted((landing / name).glob("*.csv")) if free else []:
            frame = pl.read_csv(path, infer_schema=False)
            frame = frame.with_columns(
                pl.Series(col, [_planted(i, col) for i in range(frame.height)]) for col in free
            )
            planted_in += [f"{name}.{col}" for col in free]
            if name == "survey_responses":  # the Parquet path scrubs too
                path.unlink()
                frame.write_parquet(path.with_suffix(".parquet"))
            else:
                frame.write_csv(path)
    assert sorted(set(planted_in)) == [
        "accounts.account_name", "churn_events.reason", "survey_responses.comment",
    ]  # fmt: skip
    # A column no contract has: kept in raw.support_tickets._extra.
    tickets = sorted((landing / "support_tickets").glob("*.csv"))[0]
    frame = pl.read_csv(tickets, infer_schema=False)
    frame.with_columns(
        pl.Series("Requester Contact", [PLANTED[i % len(PLANTED)] for i in range(frame.height)])
    ).write_csv(tickets)
    # A malformed record (a field too many), quarantined with its whole text.
    churn = sorted((landing / "churn_events").glob("*.csv"))[0]
    with churn.open("a", encoding="utf-8") as f:
        f.write(f'ACC-X,2025-01-01,voluntary,"{PLANTED[0]}","{PLANTED[5]}",{PLANTED[7]}\n')
    landed = "\n".join(p.read_text(encoding="utf-8") for p in landing.rglob("*.csv"))
    assert all(v in landed for v in PLANTED[:5] + PLANTED[6:])  # the needles find them there
    assert run_cli(landing, root, AS_OF) == 0
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield root, con
    con.close()


def test_no_table_or_column_of_the_published_warehouse_holds_planted_personal_data(night):
    _, con = night
    relations = con.execute(
        "select table_schema, table_name from information_schema.tables order by 1, 2"
    ).fetchall()
    assert len(relations) > 30
    found = {}
    for schema, table in relations:
        cols = [
            r[0]
            for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
        ]
        for col in cols:
            hits = con.execute(
                f'select "{col}"::varchar from "{schema}"."{table}" '
                f'where regexp_matches(lower("{col}"::varchar), ?) limit 3',
                [NEEDLE_RE],
            ).fetchall()
            if hits:
                found[f"{schema}.{table}.{col}"] = hits
    assert found == {}


def test_the_placeholders_are_where_the_planted_values_went(night):
    _, con = night

    def texts(sql: str) -> str:
        return " ".join(r[0] or "" for r in con.execute(sql).fetchall())

    for sql in (
        "select account_name from analytics.dim_account",
        "select account_name from raw.accounts",
        "select comment from staging.survey_responses",
        "select reason from staging.churn_events",
        "select _extra->>'Requester Contact' from raw.support_tickets",
    ):
        text = texts(sql)
        assert "[email]" in text and "[phone]" in text, sql
    malformed = texts(
        "select value from analytics.quarantine where rule = 'malformed_row' "
        "and source = 'churn_events'"
    )
    assert "ACC-X,2025-01-01,voluntary" in malformed
    assert malformed.count("[email]") == 1 and malformed.count("[phone]") == 2


def _text_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".html", ".md", ".svg", ".txt", ".json", ".csv", ".css"):
        return path.read_text(encoding="utf-8")
    if suffix == ".pdf":
        pdftotext = require("pdftotext", "poppler-utils")
        out = subprocess.run(
            [pdftotext, "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True
        )
        return out.stdout.decode("utf-8")
    if suffix == ".png":
        from PIL import Image

        with Image.open(path) as im:  # tEXt, iTXt and zTXt chunks
            return " ".join(f"{k} {v}" for k, v in im.text.items())
    raise AssertionError(f"{path.name}: a scorecard file this test cannot read; add its type")


def test_no_scorecard_file_holds_planted_personal_data(night):
    root, _ = night
    files = [p for p in (root / "scorecards").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".html", ".md", ".pdf"}
    found = {}
    for path in files:
        text = _text_of(path).lower()
        # PDF text may break a line inside a value: spaces and line breaks as one space
        flat = re.sub(r"\s+", " ", text)
        hits = sorted({m.group(0) for m in re.finditer(NEEDLE_RE, text + "\n" + flat)})
        if hits:
            found[str(path.relative_to(root))] = hits
    assert found == {}


def test_no_file_the_night_wrote_holds_planted_personal_data_in_its_bytes(night):
    # The text before scrubbing never enters the working database, so no file the night
    # wrote (working database, published warehouse, WAL, scorecards) holds it, not even in a
    # freed block. DuckDB may compress a string, so this adds to the scans above, it does not
    # replace them; with scrubbing off it finds the planted values in both databases.
    root, _ = night
    needle = re.compile(NEEDLE_RE.encode(), re.IGNORECASE)
    written = [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and "landing" not in p.parts
    ]
    assert any(p.name.endswith(".duckdb") for p in written)
    found = {str(p.relative_to(root)): sorted(set(needle.findall(p.read_bytes()))) for p in written}
    assert {k: v for k, v in found.items() if v} == {}
