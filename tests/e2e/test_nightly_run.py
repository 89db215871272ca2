"""The nightly job end to end: real Dagster materialisations on temporary DuckDB files."""

from __future__ import annotations

import csv
import re
import shutil

import duckdb
import pytest

from tests.conftest import FIXTURES, run_cli, table_contents, write_config

pytestmark = pytest.mark.slow

BAD = FIXTURES / "bad_landing"
# Hostile-input corpora: <name>/landing (a landing zone) and <name>/manifest.csv, which lists
# each case's expected outcome per file, row and column: quarantined (with its rule and the
# text), staged (with the staged value as text, NULL for none) or not_yet_known (the text).
HOSTILE = FIXTURES / "hostile"
# Logs of the run itself: they gain rows (ingest_runs) or name the run (warehouse_version,
# and the history tables, whose rerun night is replaced by rows naming the rerun).
LOG_TABLES = (
    "analytics.ingest_runs",
    "analytics.warehouse_version",
    "analytics.unit_alignment_history",
    "analytics.ingest_history",
)


def _expected_quarantine(
    path=FIXTURES / "bad_landing_expected_quarantine.csv", outcome: str = "quarantined"
) -> list[tuple]:
    """(source, file, row, column, rule, value) per expected row; a manifest with an outcome
    column gives the rows of that outcome."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("outcome", "quarantined") == outcome]
    null = lambda v: None if v == "NULL" else v  # noqa: E731
    return sorted(
        (r["source"], r["source_file"], int(r["source_row"]), null(r["column_name"]), r["rule"],
         null(r["value"]))
        for r in rows
    )  # fmt: skip


def test_bad_input_corpus_lands_in_quarantine_exactly(tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(BAD, landing)
    config = write_config(tmp_path / "cx.yml", "ingest:\n  max_bad_share: 1.0\n")

    assert run_cli(landing, tmp_path, "2025-01-01", config) == 0

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    got = sorted(
        con.execute(
            "select source, source_file, source_row, column_name, rule, value "
            "from analytics.quarantine"
        ).fetchall()
    )
    assert got == _expected_quarantine()

    # Conservation, per source: read = staged + quarantined + identical duplicates.
    runs = {
        r[0]: r[1:]
        for r in con.execute(
            "select source, rows_read, rows_staged, rows_quarantined, rows_duplicate "
            "from analytics.ingest_runs"
        ).fetchall()
    }
    assert runs == {
        "accounts": (9, 3, 5, 1),
        "survey_responses": (12, 2, 10, 0),
        "support_tickets": (6, 2, 4, 0),
        "revenue": (10, 1, 8, 1),
        "churn_events": (4, 1, 3, 0),
        "support_costs": (4, 1, 3, 0),
        "transactions": (0, 0, 0, 0),  # optional and absent
    }
    # What survived is typed and normalised: UTC, lower-case enums, months as first day.
    assert con.execute(
        "select response_id, survey_type, score, responded_at::varchar, comment "
        "from staging.survey_responses order by 1"
    ).fetchall() == [
        ("R1", "nps", 9, "2024-03-01 10:00:00+00", "great"),
        ("R11", "csat", 5, "2024-04-01 10:00:00+00", "multi\nline comment"),
    ]
    assert con.execute(
        "select account_id, month::varchar, mrr, currency from staging.revenue"
    ).fetchall() == [("A1", "2024-03-01", pytest.approx(100), "USD")]
    # T5 was solved after the as-of date: staged open, what was not yet known listed.
    assert con.execute(
        "select source_row, column_name, value from analytics.not_yet_known order by all"
    ).fetchall() == [
        (5, "first_contact_resolution", "true"), (5, "handle_minutes", "5"), (5, "reopens", "0"),
        (5, "solved_at", "2025-01-02 00:00:01"),
    ]  # fmt: skip
    # Every quarantined or absorbed row is accounted for by the blocking check's recount.
    con.close()


@pytest.mark.parametrize("corpus", ["values"])
def test_hostile_corpus_lands_where_its_manifest_says(tmp_path, corpus):
    """Every case of the corpus ends as its manifest says, and the night does not crash: a
    value outside its type's form or range is a quarantined row naming file, row, column and
    rule; a value after the as-of date that is not yet known is staged as NULL and listed."""
    landing = tmp_path / "landing"
    shutil.copytree(HOSTILE / corpus / "landing", landing)
    manifest = HOSTILE / corpus / "manifest.csv"
    config = write_config(tmp_path / "cx.yml", "ingest:\n  max_bad_share: 1.0\n")

    assert run_cli(landing, tmp_path, "2025-01-01", config) == 0

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    got = con.execute(
        "select source, source_file, source_row, column_name, rule, value "
        "from analytics.quarantine order by all"
    ).fetchall()
    assert got == _expected_quarantine(manifest)
    got = con.execute(
        "select source, source_file, source_row, column_name, '', value "
        "from analytics.not_yet_known order by all"
    ).fetchall()
    assert got == _expected_quarantine(manifest, "not_yet_known")
    for source, file, row, column, _, value in _expected_quarantine(manifest, "staged"):
        staged = con.execute(
            f'select "{column}"::varchar from staging.{source} '
            "where _source_file = ? and _source_row = ?",
            [file, row],
        ).fetchall()
        assert staged == [(value,)], (source, file, row, column)
    con.close()


def test_bad_share_above_threshold_fails_and_publishes_nothing(tmp_path, capsys):
    landing = tmp_path / "landing"
    shutil.copytree(BAD, landing)

    assert run_cli(landing, tmp_path, "2025-01-01") == 1

    err = capsys.readouterr().err
    assert "accounts: 5 of 9 rows (55.6%) broke the data contract" in err
    assert "above the 5% threshold" in err
    assert "Most broken rules:" in err and "conflicting_duplicate (2 rows)" in err
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_a_failed_night_is_not_published_by_a_run_of_a_few_assets(demo_copy, tmp_path, capsys):
    """The UI's "Materialize selected" on the scorecards and the publish step after a night
    that failed its bad-row gate published that night's working database (its rows staged
    from the failing file, its quarantine) beside the previous night's marts."""
    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.jobs import NIGHTLY_JOB
    from pipelines.defs.resources import AS_OF_TAG

    assert run_cli(demo_copy, tmp_path, "2026-10-31") == 0
    published = (tmp_path / "warehouse.duckdb").resolve()
    with open(demo_copy / "survey_responses" / "late.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["response_id", "account_id", "survey_type", "score", "responded_at"])
        acc = "ACC-0000001"
        out.writerows([f"BAD-{i}", acc, "nps", "eleven", "2026-10-15"] for i in range(400))
        out.writerows([f"GATEFAILED-{i}", acc, "nps", "9", "2026-10-15"] for i in range(20))
    assert run_cli(demo_copy, tmp_path, "2026-10-31") == 1
    assert "survey_responses" in capsys.readouterr().err

    job = defs().resolve_job_def(NIGHTLY_JOB)
    config = {"landing_dir": str(demo_copy), "warehouse_path": str(tmp_path / "warehouse.duckdb"),
              "out_dir": str(tmp_path / "scorecards")}  # fmt: skip
    result = job.execute_in_process(
        run_config={"resources": {"cxalign": {"config": config}}},
        tags={AS_OF_TAG: "2026-10-31"},
        asset_selection=[
            dg.AssetKey(["scorecards", "html"]),
            dg.AssetKey(["warehouse", "published"]),
        ],
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "not published: this run did not build" in str(failure.event_specific_data.error)
    assert (tmp_path / "warehouse.duckdb").resolve() == published
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute(
        "select count(*) from staging.survey_responses where response_id like 'GATEFAILED-%'"
    ).fetchone() == (0,)
    con.close()


def test_rerun_changes_nothing_and_new_files_add_only_their_rows(demo_copy, tmp_path, capsys):
    landing = demo_copy
    assert run_cli(landing, tmp_path, "2026-11-01") == 0
    first = table_contents(tmp_path / "warehouse.duckdb", exclude=LOG_TABLES)
    assert "results kept" not in capsys.readouterr().out

    assert run_cli(landing, tmp_path, "2026-11-01") == 0
    second = table_contents(tmp_path / "warehouse.duckdb", exclude=LOG_TABLES)
    assert second == first
    # Nothing changed, so the alignment models kept last night's results.
    assert "results kept" in capsys.readouterr().out

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    runs = con.execute(
        "select run_id, source, rows_read, rows_staged, rows_quarantined, rows_duplicate, "
        "files_loaded from analytics.ingest_runs order by finished_at"
    ).fetchall()
    con.close()
    per_run = {}
    for run_id, *rest in runs:
        per_run.setdefault(run_id, []).append(tuple(rest))
    assert len(per_run) == 2
    a, b = per_run.values()
    assert [r[:5] for r in a] == [r[:5] for r in b]  # same counts both nights

    # A new file adds exactly its rows, also when its name sorts before the staged files'
    # (then the staged table is rewritten with its rows in file order; a new day's file,
    # which sorts last, is appended: test_new_day_validates_only_its_files...).
    new = landing / "churn_events" / "a_late.csv"
    new.write_text(
        "account_id,churned_at,churn_type,reason\nACC-0000001,2026-10-31,voluntary,late\n"
    )
    assert run_cli(landing, tmp_path, "2026-11-01") == 0
    alignment = next(
        ln for ln in capsys.readouterr().out.splitlines() if "models   alignment" in ln
    )
    assert "results kept" not in alignment  # the panel changed: refitted
    third = table_contents(tmp_path / "warehouse.duckdb", exclude=LOG_TABLES)
    added = set(third["staging.churn_events"]) - set(first["staging.churn_events"])
    assert len(third["staging.churn_events"]) == len(first["staging.churn_events"]) + 1
    assert [r[0] for r in added] == ["ACC-0000001"]
    for table in ("staging.support_tickets", "staging.revenue", "raw.support_tickets"):
        assert third[table] == first[table]

    # A changed file replaces its earlier rows rather than adding to them.
    new.write_text(
        "account_id,churned_at,churn_type,reason\nACC-0000002,2026-10-30,involuntary,card\n"
    )
    assert run_cli(landing, tmp_path, "2026-11-01") == 0
    fourth = table_contents(tmp_path / "warehouse.duckdb", exclude=LOG_TABLES)
    assert len(fourth["staging.churn_events"]) == len(first["staging.churn_events"]) + 1
    added = set(fourth["staging.churn_events"]) - set(first["staging.churn_events"])
    assert [r[:3] for r in added][0][0] == "ACC-0000002"


def test_missing_optional_source_is_fine(demo_copy, tmp_path):
    shutil.rmtree(demo_copy / "support_costs")
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    assert con.execute("select count(*) from staging.support_costs").fetchone()[0] == 0
    con.close()


def test_missing_required_source_fails_with_its_name(demo_copy, tmp_path, capsys):
    shutil.rmtree(demo_copy / "churn_events")
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 1
    assert "churn_events: no .csv, .parquet, .json or .ndjson files" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("garbage.csv", bytes(range(256)) * 40, "support_tickets/garbage.csv: cannot be read"),
        (
            "latin1.csv",
            "ticket_id,account_id,created_at\nT9,ACC-0000001,Café\n".encode("latin-1"),
            "support_tickets/latin1.csv: not valid utf-8 text",
        ),
        (
            "no_account.csv",
            b"ticket_id,created_at\nT9,2026-10-01\n",
            "support_tickets/no_account.csv: missing required column(s) account_id",
        ),
    ],
)
def test_unreadable_files_fail_with_file_name_and_reason(
    demo_copy, tmp_path, capsys, name, content, message
):
    (demo_copy / "support_tickets" / name).write_bytes(content)
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 1
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "warehouse.duckdb").exists()


def test_column_mapping_from_config(demo_copy, tmp_path):
    path = demo_copy / "churn_events" / "churn_events.csv"
    text = path.read_text().replace("account_id,churned_at", "Customer Ref,Cancelled On", 1)
    path.write_text(text)
    config = write_config(
        tmp_path / "cx.yml",
        "sources:\n  churn_events:\n    columns:\n      Customer Ref: account_id\n"
        "      Cancelled On: churned_at\n",
    )
    assert run_cli(demo_copy, tmp_path, "2026-11-01", config) == 0
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    n = con.execute("select count(*) from staging.churn_events").fetchone()[0]
    assert n == len(text.strip().splitlines()) - 1
    con.close()


def test_rule_engines_disagreeing_stops_the_run(tmp_path, monkeypatch, capsys):
    """If the SQL quarantine misreads a rule, great-expectations' count exposes it."""
    import pipelines.ingest as ingest

    real = ingest.row_rules

    def without_reopens_range(contract):
        return [r for r in real(contract) if (r.column, r.rule) != ("reopens", "range")]

    monkeypatch.setattr(ingest, "row_rules", without_reopens_range)
    landing = tmp_path / "landing"
    shutil.copytree(BAD, landing)
    config = write_config(tmp_path / "cx.yml", "ingest:\n  max_bad_share: 1.0\n")
    assert run_cli(landing, tmp_path, "2025-01-01", config) == 1
    err = capsys.readouterr().err
    assert "support_tickets: great-expectations and the quarantine disagree on reopens.range" in err
    assert not (tmp_path / "warehouse.duckdb").exists()


# Tables that name the run or when it wrote: they differ between any two warehouses.
RUN_STATE = (*LOG_TABLES, "raw._files", "ops.model_cache", "ops.table_state")


def test_quiet_night_keeps_unchanged_work_and_equals_a_fresh_build(tmp_path, capsys):
    # Night 1 as of 2025-01-01; night 2 a year and a half later on the same files. Rows that
    # were quarantined as dated after the as-of date are now admissible, so their sources
    # must be staged again (not kept), and everything built on them rebuilt: night 2 must
    # equal a fresh build as of the later date, table for table.
    landing = tmp_path / "landing"
    shutil.copytree(BAD, landing)
    config = write_config(tmp_path / "cx.yml", "ingest:\n  max_bad_share: 1.0\n")
    nightly, fresh = tmp_path / "nightly", tmp_path / "fresh"

    assert run_cli(landing, nightly, "2025-01-01", config) == 0
    capsys.readouterr()
    assert run_cli(landing, nightly, "2026-06-01", config) == 0
    out = capsys.readouterr().out
    # churn_events had nothing waiting on the date: kept. survey_responses had: staged again.
    assert "validate churn_events" in out
    assert [line for line in out.splitlines() if "validate churn_events" in line][0].endswith(
        "(inputs unchanged: kept)"
    )
    assert (
        "(inputs unchanged: kept)"
        not in [line for line in out.splitlines() if "validate survey_responses" in line][0]
    )
    assert run_cli(landing, fresh, "2026-06-01", config) == 0

    got = table_contents(nightly / "warehouse.duckdb", exclude=RUN_STATE)
    want = table_contents(fresh / "warehouse.duckdb", exclude=RUN_STATE)
    assert got.keys() == want.keys()
    for table in want:
        assert repr(got[table]) == repr(want[table]), table  # repr: NaN equals NaN
    # The later date no longer holds back the answer dated 2026-01-01 (night 1 did).
    assert not [
        r for r in got["analytics.quarantine"] if r[4] == "after_as_of" and r[5] == "2026-01-01"
    ]


def test_full_refresh_rebuilds_everything_to_the_same_tables(demo_copy, tmp_path, capsys):
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0
    first = table_contents(tmp_path / "warehouse.duckdb", exclude=RUN_STATE)
    capsys.readouterr()
    assert run_cli(demo_copy, tmp_path, "2026-11-01") == 0
    out = capsys.readouterr().out
    # Nothing changed: the warehouse tables and both model stages were kept.
    assert "analytics.account_month" in out and "(inputs unchanged: kept)" in out
    assert out.count("results kept") == 4  # alignment, SCI, CLV and what-if

    from pipelines.cli import main

    args = ["run", "--landing", str(demo_copy), "--warehouse", str(tmp_path / "warehouse.duckdb"),
            "--out", str(tmp_path / "scorecards"), "--as-of", "2026-11-01", "--full-refresh"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "full refresh" in out
    assert "kept" not in out
    assert table_contents(tmp_path / "warehouse.duckdb", exclude=RUN_STATE) == first


def test_new_day_validates_only_its_files_and_equals_a_fresh_build(demo_copy, tmp_path, capsys):
    from datetime import date

    from pipelines.demo_data import add_one_day

    nightly, fresh = tmp_path / "nightly", tmp_path / "fresh"
    assert run_cli(demo_copy, nightly, "2026-11-01") == 0
    assert add_one_day(demo_copy, date(2026, 11, 1)) > 0
    capsys.readouterr()
    assert run_cli(demo_copy, nightly, "2026-11-02") == 0
    lines = capsys.readouterr().out.splitlines()

    def line(prefix: str) -> str:
        return next(ln for ln in lines if prefix in ln)

    # The two sources with a new file validate only its rows; the others are kept whole.
    assert line("validate support_tickets").endswith("(new files only: 1)")
    assert line("validate survey_responses").endswith("(new files only: 1)")
    assert line("validate revenue").endswith("(inputs unchanged: kept)")
    # The new day reaches no closed month, so the panel and the models stand.
    assert line("analytics.account_month").endswith("(inputs unchanged: kept)")
    assert "results kept" in line("models   alignment")
    assert "results kept" in line("models   what-if")  # the new as-of date is not new input
    # Same complete months: no chart is drawn again.
    assert re.search(r"\(5 units, 0 of \d+ charts drawn\)", line("scorecards"))

    # Every content the night recorded (staged tables grown by adding the new rows' content,
    # the measured view int_cx_events) is what the relation holds.
    from pipelines.model_cache import content
    from pipelines.warehouse import work_path

    con = duckdb.connect(str(work_path(nightly / "warehouse.duckdb")), read_only=True)
    recorded = con.execute(
        "select relation, content from ops.table_state where relation not like 'staging.stg_%'"
    ).fetchall()
    assert "intermediate.int_cx_events" in dict(recorded)
    for relation, measured in recorded:
        assert content(con, relation) == measured, relation
    con.close()

    assert run_cli(demo_copy, fresh, "2026-11-02") == 0
    got = table_contents(nightly / "warehouse.duckdb", exclude=RUN_STATE)
    want = table_contents(fresh / "warehouse.duckdb", exclude=RUN_STATE)
    assert got.keys() == want.keys()
    for table in want:
        assert repr(got[table]) == repr(want[table]), table
