"""The Qualtrics profile (data_contracts/profiles/qualtrics.yml) beyond its golden landing zone,
and what the framework gained for it: fields found by their label (header line 2), options a
profile requires, options naming a column the file lacks, and tab-separated UTF-16 exports."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

from pipelines.contracts import source_contracts
from pipelines.ingest import conservation, stage_source
from pipelines.landing import load_source
from pipelines.privacy import PrivacySettings
from pipelines.profiles import ProfileError, ProfileObject, all_profiles
from pipelines.settings import Settings, SourceSettings
from pipelines.vendor import object_mapping
from tests.pipelines.test_profiles import AS_OF, PROFILES

GOLDEN = PROFILES / "qualtrics"
EXPORT = "Customer_Pulse_2026-10-31.csv"
NPS_TEXT = "How likely are you to recommend Acme to a friend or colleague?"
OPTIONS = {"account_field": "ExternalReference", "nps": "Q1", "csat": None, "ces": "Q3"}


@pytest.fixture
def con():
    c = duckdb.connect()
    c.execute("set TimeZone = 'UTC'")
    yield c
    c.close()


def _export() -> list[list[str]]:
    """The golden export's lines (three header lines, then one response a line)."""
    text = (GOLDEN / "landing" / "survey_responses" / EXPORT).read_text(encoding="utf-8")
    return list(csv.reader(io.StringIO(text)))


def _landing(tmp_path: Path, lines: list[list[str]], name: str = EXPORT, *,
             delimiter: str = ",", encoding: str = "utf-8") -> Path:  # fmt: skip
    landing = tmp_path / "landing"
    shutil.copytree(GOLDEN / "landing" / "accounts", landing / "accounts")
    (landing / "survey_responses").mkdir(parents=True)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\r\n").writerows(lines)
    (landing / "survey_responses" / name).write_bytes(out.getvalue().encode(encoding))
    return landing


def _source(**options) -> SourceSettings:
    return SourceSettings(profile="qualtrics", qualtrics={**_golden_options(), **options})


def _golden_options() -> dict:
    expected = yaml.safe_load((GOLDEN / "expected.yml").read_text())
    return dict(expected["config"]["sources"]["survey_responses"]["qualtrics"])


def _night(con, landing: Path, source: SourceSettings) -> dict:
    settings = Settings(sources={"survey_responses": source})
    for name in ("accounts", "survey_responses"):
        contract = source_contracts()[name]
        load_source(con, landing, contract, settings.source(name), run_id="night")
        stage_source(con, contract, as_of=AS_OF, settings=settings, run_id="night")
        ok, counts = conservation(con, "night", name)
        assert ok, (name, counts)
    return counts


def _staged(con) -> list[tuple]:
    return con.execute(
        "select response_id, account_id, survey_type, score, responded_at::varchar "
        "from staging.survey_responses order by all"
    ).fetchall()


def _aside(con) -> list[tuple]:
    return con.execute(
        "select source_row, rule from raw._set_aside where source = 'survey_responses' order by all"
    ).fetchall()


def _column(lines: list[list[str]], name: str) -> int:
    return lines[0].index(name)


# --- the framework: a field by its label, options the profile requires -------------------


def _responses() -> ProfileObject:
    return all_profiles()["qualtrics"].objects["responses"]


def _select(header: list[str], more: list[list[str]], options: dict) -> dict[str, str]:
    mapping = object_mapping(_responses(), options, PrivacySettings(), "survey/x.csv")
    select, extra = mapping(header, more)
    assert extra == []
    return {e.rsplit(" as ", 1)[1].strip('"'): e.rsplit(" as ", 1)[0] for e in select}


def test_a_question_is_named_by_its_id_or_by_its_text_as_written():
    header, labels, import_ids = _export()[:3]
    by_id = _select(header, [labels, import_ids], OPTIONS)
    by_text = _select(header, [labels, import_ids], {**OPTIONS, "nps": NPS_TEXT})
    assert by_id["nps"] == by_text["nps"] == '_l."Q1"::varchar'
    assert by_id["csat"] == "null::varchar"  # an option not set: no column
    # an import id line's text is the same on every row
    assert by_id["recorded_import_id"] == (
        """'{"ImportId":"recordedDate","timeZone":"America/Denver"}'"""
    )


def test_an_option_naming_a_column_the_file_lacks_is_an_error_naming_it():
    header, labels, import_ids = _export()[:3]
    with pytest.raises(ProfileError) as err:
        _select(header, [labels, import_ids], {**OPTIONS, "nps": NPS_TEXT.lower()})
    # the text must be as written (a question's text is not matched ignoring case)
    assert str(err.value).startswith("survey/x.csv: has no field 'how likely are you")


def test_a_label_several_columns_carry_is_refused():
    header, labels, import_ids = _export()[:3]
    labels = [NPS_TEXT if h == "Q4" else t for h, t in zip(header, labels, strict=True)]
    with pytest.raises(ProfileError, match="label of several columns \\(Q1, Q4\\)"):
        _select(header, [labels, import_ids], {**OPTIONS, "nps": NPS_TEXT})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"account_field": None}, "sources.survey_responses.qualtrics.account_field is required"),
        ({"nps": None, "csat": None, "ces": None},
         "sources.survey_responses.qualtrics: set at least one of nps, csat, ces"),
    ],
)  # fmt: skip
def test_a_profile_named_without_the_options_it_requires_is_a_config_error(
    con, tmp_path, options, message
):
    landing = _landing(tmp_path, _export())
    with pytest.raises(ProfileError, match=message):
        load_source(con, landing, source_contracts()["survey_responses"], _source(**options))


def test_a_file_recognised_as_qualtrics_needs_the_options_too(con, tmp_path):
    landing = _landing(tmp_path, _export())
    with pytest.raises(ProfileError, match="qualtrics.account_field is required"):
        load_source(con, landing, source_contracts()["survey_responses"], SourceSettings())


# --- the export's variants ---------------------------------------------------------------


def test_a_tab_separated_utf16_export_gives_the_same_rows(con, tmp_path):
    _night(con, _landing(tmp_path / "csv", _export()), _source())
    tsv = _landing(tmp_path / "tsv", _export(), "export.tsv", delimiter="\t", encoding="utf-16")
    # a delimiter set for the source's .csv files does not apply to a .tsv file
    source = _source().model_copy(update={"encoding": "utf-16", "delimiter": ","})
    with duckdb.connect() as other:
        other.execute("set TimeZone = 'UTC'")
        _night(other, tsv, source)
        assert _staged(other) == _staged(con) and len(_staged(con)) == 7


def test_a_choice_text_export_sets_aside_the_same_responses(con, tmp_path):
    lines = _export()
    status, finished = _column(lines, "Status"), _column(lines, "Finished")
    words = {"0": "IP Address", "1": "Survey Preview", "2": "Survey Test"}
    for line in lines[3:]:
        line[status] = words[line[status]]
        line[finished] = {"1": "True", "0": "False"}[line[finished]]
    _night(con, _landing(tmp_path, lines), _source())
    assert _aside(con) == [(5, "preview"), (6, "test"), (7, "partial"), (11, "no_answer")]


def test_a_preview_is_known_by_its_response_type_too(con, tmp_path):
    lines = _export()
    channel = _column(lines, "DistributionChannel")
    for line in lines[3:]:
        line[channel] = "anonymous"  # Status 1 and 2 still say preview and test
    _night(con, _landing(tmp_path, lines), _source())
    assert _aside(con)[:2] == [(5, "preview"), (6, "test")]


def test_dates_are_read_in_the_zone_of_the_import_id_line(con, tmp_path):
    lines = _export()
    for i in range(len(lines[0])):
        spec = json.loads(lines[2][i])
        if "timeZone" in spec:
            lines[2][i] = json.dumps({**spec, "timeZone": "Europe/Berlin"})
    _night(con, _landing(tmp_path, lines), _source())
    # 08:15:32 in Berlin in September (CEST, UTC+2); January is CET (UTC+1)
    times = {r[0]: r[4] for r in _staged(con)}
    assert times["qualtrics-R_1a2B3c4D5e6F7g8-nps"] == "2026-09-10 06:15:32+00"
    assert times["qualtrics-R_2h3J4k5L6m7N8p9-nps"] == "2026-01-15 09:00:05+00"


def test_without_a_time_zone_every_response_is_set_aside_saying_why(con, tmp_path):
    lines = _export()
    recorded = _column(lines, "RecordedDate")
    lines[2][recorded] = '{"ImportId":"recordedDate"}'
    counts = _night(con, _landing(tmp_path, lines), _source())
    assert {r for _, r in _aside(con)} == {"preview", "test", "partial", "no_time_zone"}
    assert _staged(con) == [] and counts["unaccounted"] == 0
    reason = con.execute(
        "select distinct reason from raw._set_aside where rule = 'no_time_zone'"
    ).fetchone()[0]
    assert "does not state the time zone of RecordedDate" in reason


def test_a_response_in_two_overlapping_exports_counts_once(con, tmp_path):
    lines = _export()
    landing = _landing(tmp_path, lines)
    with (landing / "survey_responses" / "Customer_Pulse_2026-11-01.csv").open("w") as f:
        csv.writer(f, lineterminator="\r\n").writerows(lines[:4])  # repeats the first response
    counts = _night(con, landing, _source())
    assert con.execute(
        "select source_file, source_row from raw._set_aside where rule = 'superseded'"
    ).fetchall() == [(f"survey_responses/{EXPORT}", 3)]
    assert len(_staged(con)) == 7 and counts["unaccounted"] == 0
