"""The hostile-input corpus of the landing zone (tests/fixtures/hostile/ingest/manifest.yml):
each file ends in a clean table or in quarantine with its file, row, column and rule, or the
load fails naming the file. Nothing is lost."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.contracts import source_contracts
from pipelines.ingest import conservation, stage_source
from pipelines.landing import LandingFileError, load_source
from pipelines.settings import Settings, SourceSettings
from pipelines.validation import ge_rule_counts
from tests.conftest import FIXTURES

CORPUS = FIXTURES / "hostile" / "ingest"
CASES = yaml.safe_load((CORPUS / "manifest.yml").read_text())["cases"]
AS_OF = date(2025, 1, 1)


def _land(tmp_path: Path, case: dict) -> Path:
    landing = tmp_path / "landing"
    (landing / "accounts").mkdir(parents=True)
    shutil.copy(CORPUS / "_accounts.csv", landing / "accounts" / "accounts.csv")
    folder = landing / case["source"]
    folder.mkdir(exist_ok=True)
    shutil.copy(CORPUS / case["file"], folder / case.get("land_as", case["file"]))
    for other in case.get("beside", []):
        shutil.copy(CORPUS / other, folder / other)
    return landing


def _stage(con, landing: Path, name: str, settings: Settings):
    contract = source_contracts()[name]
    load_source(con, landing, contract, settings.source(name), run_id="night")
    result = stage_source(con, contract, as_of=AS_OF, settings=settings, run_id="night")
    return contract, result


def test_the_corpus_lists_every_file_it_holds():
    listed = {c["file"] for c in CASES} | {f for c in CASES for f in c.get("beside", [])}
    held = {p.name for p in CORPUS.iterdir()} - {"manifest.yml", "_accounts.csv"}
    assert listed == held


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_hostile_landing_file(case, tmp_path):
    landing = _land(tmp_path, case)
    settings = Settings(sources={case["source"]: SourceSettings(columns=case.get("columns", {}))})
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    _stage(con, landing, "accounts", settings)
    if case["expect"] == "fails":
        with pytest.raises(LandingFileError) as err:
            _stage(con, landing, case["source"], settings)
        for text in case["message"]:
            assert text in str(err.value)
        # Nothing of the failed source reached raw.
        assert (
            con.execute(
                "select count(*) from raw._files where source = ?", [case["source"]]
            ).fetchone()[0]
            == 0
        )
        return

    assert case["expect"] == "conserved"
    src = case["source"]
    contract, result = _stage(con, landing, src, settings)
    staged: dict[str, list[int]] = {}
    for file, row in con.execute(
        f"select _source_file, _source_row from staging.{src} order by 1, 2"
    ).fetchall():
        staged.setdefault(file, []).append(row)
    assert staged == case["staged"]
    quarantined = con.execute(
        "select source_file, source_row, column_name, rule from analytics.quarantine "
        "where source = ? order by 1, 2, 3, 4",
        [src],
    ).fetchall()
    assert quarantined == sorted(tuple(q) for q in case["quarantine"])
    ok, counts = conservation(con, "night", src)
    assert ok, counts
    ge = ge_rule_counts(con, contract, as_of=AS_OF, currency=settings.currency, batch_rows=1000)
    assert {k: v for k, v in ge.items() if v} == result.row_rule_counts
