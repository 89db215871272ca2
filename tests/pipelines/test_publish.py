"""Publication: the warehouse and the scorecards switch together, whatever step a kill hits.

Each night here is a small stand-in (a working database carrying its run id in
analytics.warehouse_version, and a scorecard directory naming the same run), published by
`publish_night` in a child process that dies at a chosen step (CXALIGN_CRASH_AT), as a
kill would. After every kill the two published paths must lead to one version, and the
next start must clean what the kill left and publish the next night.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.landing import DELETED_ROWS
from pipelines.warehouse import (
    CRASH_AT,
    CRASH_EXIT,
    PUBLISH_STEPS,
    building_dir,
    publish_night,
    published_dir,
    recover,
    work_path,
)

# The steps after which the new version is the published one.
AFTER_SWITCH = PUBLISH_STEPS[PUBLISH_STEPS.index("switch") :]


def _night(root: Path, run_id: str) -> None:
    """Tonight's working database and scorecards, as the night's assets leave them."""
    work = work_path(root / "warehouse.duckdb")
    work.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(work))
    con.execute("create schema if not exists analytics")
    con.execute(
        "create or replace table analytics.warehouse_version as select ? as run_id", [run_id]
    )
    con.execute("create or replace table analytics.night as select range as i from range(50000)")
    # Rows deleted from raw tonight (a file loaded again), so that the publish copies row by
    # row and compacts the working database: every step of PUBLISH_STEPS is reached. The
    # e2e crash test covers the byte copy of a night that deleted nothing.
    con.execute("create schema if not exists ops")
    con.execute(f"create table if not exists {DELETED_ROWS} (source varchar, "
                "source_file varchar, deleted_at timestamptz)")  # fmt: skip
    con.execute(f"insert into {DELETED_ROWS} values ('comments', 'old.csv', now())")
    con.close()
    building = building_dir(root / "scorecards")
    shutil.rmtree(building, ignore_errors=True)
    (building / "units").mkdir(parents=True)
    (building / "scorecard.md").write_text(f"_Lineage fingerprint x; run {run_id}._\n")
    (building / "units" / "payments.html").write_text(f"<p>run {run_id}</p>")


def _publish(root: Path, run_id: str) -> Path:
    return publish_night(
        work_path(root / "warehouse.duckdb"), building_dir(root / "scorecards"),
        root / "warehouse.duckdb", root / "scorecards", run_id,
    )  # fmt: skip


def _publish_killed_at(root: Path, run_id: str, step: str) -> None:
    code = (
        "import sys; from pathlib import Path; from tests.pipelines.test_publish import _publish; "
        "_publish(Path(sys.argv[1]), sys.argv[2])"
    )
    env = {**os.environ, CRASH_AT: step}
    done = subprocess.run([sys.executable, "-c", code, str(root), run_id], env=env, cwd=Path.cwd())
    assert done.returncode == CRASH_EXIT, f"the publish did not stop at {step}"


def published_pair(root: Path) -> tuple[str | None, str | None]:
    """(the run of the warehouse readers open, the run of the scorecards they open)."""
    warehouse, scorecard = root / "warehouse.duckdb", root / "scorecards" / "scorecard.md"
    wh = sc = None
    if warehouse.exists():
        con = duckdb.connect(str(warehouse), read_only=True)
        wh = con.execute("select run_id from analytics.warehouse_version").fetchone()[0]
        con.close()
    if scorecard.exists():
        sc = re.search(r"run (\S+?)\._", scorecard.read_text()).group(1)
        page = (root / "scorecards" / "units" / "payments.html").read_text()
        assert sc in page  # every file of the scorecards is of one night
    return wh, sc


def _leftovers(root: Path) -> list[str]:
    """Anything a publish makes on its way, which must not outlive it."""
    versions = published_dir(root / "warehouse.duckdb")
    found = [p.name for p in root.iterdir() if p.name.startswith(".") and p.name != ".cxalign"]
    found += [p.name for p in (root / ".cxalign").iterdir() if p.name.startswith(".")]
    # The published version and the one before it (kept a night for readers that followed
    # the link just before the switch); nothing else.
    current = os.readlink(versions / "current") if (versions / "current").is_symlink() else None
    entries = sorted(p.name for p in versions.iterdir() if p.name != "current")
    older = [e for e in entries if current is not None and e < current]
    allowed = {current, *older[-1:]}
    if current is None:
        found.append("current missing")
    found += [e for e in entries if e not in allowed]
    return found


def _legacy_layout(root: Path, run_id: str) -> None:
    """What an older cxalign published: a real file and a real directory, and the copy a
    killed publish of it left beside the file."""
    _night(root, run_id)
    shutil.copyfile(work_path(root / "warehouse.duckdb"), root / "warehouse.duckdb")
    os.replace(building_dir(root / "scorecards"), root / "scorecards")
    (root / ".warehouse.duckdb.publishing-4242").write_bytes(b"half a copy")


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_kill_at_any_publish_step_leaves_a_matching_pair_and_the_next_start_cleans_up(
    tmp_path, step
):
    _night(tmp_path, "night-1")
    _publish(tmp_path, "night-1")
    assert published_pair(tmp_path) == ("night-1", "night-1")

    _night(tmp_path, "night-2")
    _publish_killed_at(tmp_path, "night-2", step)
    want = "night-2" if step in AFTER_SWITCH else "night-1"
    assert published_pair(tmp_path) == (want, want)

    recover(tmp_path / "warehouse.duckdb", tmp_path / "scorecards")
    assert published_pair(tmp_path) == (want, want)
    assert _leftovers(tmp_path) == []

    _night(tmp_path, "night-3")
    _publish(tmp_path, "night-3")
    assert published_pair(tmp_path) == ("night-3", "night-3")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_the_first_publish_over_an_older_layout_never_pairs_two_nights(tmp_path, step):
    """The first night after an upgrade turns the real file and directory into links: for
    a moment there may be no scorecards, never last night's beside tonight's warehouse."""
    _legacy_layout(tmp_path, "night-1")
    assert published_pair(tmp_path) == ("night-1", "night-1")

    _night(tmp_path, "night-2")
    _publish_killed_at(tmp_path, "night-2", step)
    wh, sc = published_pair(tmp_path)
    assert wh is not None  # readers always have a warehouse
    assert sc in (None, wh), (wh, sc)

    recover(tmp_path / "warehouse.duckdb", tmp_path / "scorecards")
    want = "night-2" if step in AFTER_SWITCH else "night-1"
    assert published_pair(tmp_path)[0] == want
    assert not (tmp_path / ".warehouse.duckdb.publishing-4242").exists()

    _night(tmp_path, "night-3")
    _publish(tmp_path, "night-3")
    assert published_pair(tmp_path) == ("night-3", "night-3")
    assert _leftovers(tmp_path) == []


def test_publishing_needs_tonights_scorecards(tmp_path):
    _night(tmp_path, "night-1")
    _publish(tmp_path, "night-1")
    _night(tmp_path, "night-2")
    shutil.rmtree(building_dir(tmp_path / "scorecards"))
    with pytest.raises(FileNotFoundError, match="scorecards are not in"):
        _publish(tmp_path, "night-2")
    assert published_pair(tmp_path) == ("night-1", "night-1")


def _analyst_writes_and_is_killed(warehouse: Path) -> None:
    """An analyst opens the published warehouse read-write (the DuckDB CLI's default),
    makes a scratch table and the session dies before closing: its WAL stays."""
    code = (
        "import duckdb, os, sys; con = duckdb.connect(sys.argv[1]); "
        "con.execute('create table analytics.scratch as select 42 as answer'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(warehouse)], check=True)


def _tables(warehouse: Path) -> set[str]:
    code = (
        "import duckdb, sys; con = duckdb.connect(sys.argv[1], read_only=True); "
        "q = 'select table_name from information_schema.tables'; "
        "print(*sorted(r[0] for r in con.execute(q).fetchall()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(warehouse)], check=True, capture_output=True, text=True
    )
    return set(out.stdout.split())


def _version_wals(warehouse: Path) -> list[Path]:
    versions = [d for d in published_dir(warehouse).iterdir() if not d.is_symlink()]
    return [wal for d in versions for wal in d.glob("*.wal")]


def test_an_analysts_stale_wal_never_reaches_the_next_night(tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    _night(tmp_path, "night-1")
    _publish(tmp_path, "night-1")
    _analyst_writes_and_is_killed(warehouse)
    # DuckDB keeps the WAL beside the file's real path, inside that night's version: if a
    # DuckDB upgrade put it beside the link instead, the next night could replay it.
    assert len(_version_wals(warehouse)) == 1 and not Path(f"{warehouse}.wal").exists()
    assert "scratch" in _tables(warehouse)  # that night's file: the analyst changed it

    lines: list[str] = []
    _night(tmp_path, "night-2")
    publish_night(
        work_path(warehouse), building_dir(tmp_path / "scorecards"), warehouse,
        tmp_path / "scorecards", "night-2", log=lines.append,
    )  # fmt: skip
    assert "scratch" not in _tables(warehouse)
    assert published_pair(tmp_path) == ("night-2", "night-2")
    # The WAL stays with night 1's version, kept one more night beside night 2's, and
    # leaves with it at the next publish.
    current = published_dir(warehouse) / os.readlink(published_dir(warehouse) / "current")
    wals = _version_wals(warehouse)
    assert len(wals) == 1 and wals[0].parent != current
    _night(tmp_path, "night-3")
    publish_night(
        work_path(warehouse), building_dir(tmp_path / "scorecards"), warehouse,
        tmp_path / "scorecards", "night-3", log=lines.append,
    )  # fmt: skip
    assert _version_wals(warehouse) == []
    assert any("read-write session" in line and "-readonly" in line for line in lines)


def test_a_stale_wal_beside_an_older_layouts_file_is_set_aside(tmp_path):
    """The case as it was reported: the WAL beside the real file an older cxalign published."""
    warehouse = tmp_path / "warehouse.duckdb"
    _legacy_layout(tmp_path, "night-1")
    _analyst_writes_and_is_killed(warehouse)
    assert Path(f"{warehouse}.wal").exists()

    _night(tmp_path, "night-2")
    _publish(tmp_path, "night-2")
    assert "scratch" not in _tables(warehouse)
    assert not Path(f"{warehouse}.wal").exists()
    assert len(list((tmp_path / ".cxalign" / "stale-wal").iterdir())) == 1


LIVE_ANALYST = """
import duckdb, sys
con = duckdb.connect(sys.argv[1])  # read-write, and kept open across the publish
con.execute("create table analytics.scratch as select 42 as answer")
print("open", flush=True)
sys.stdin.readline()  # the night publishes meanwhile
for sql in ("insert into analytics.scratch values (43)", "checkpoint",
            "insert into analytics.scratch values (44)"):
    try:
        con.execute(sql)
    except duckdb.Error:
        pass  # that night's directory may be gone by now: its file still reads
print("wrote", flush=True)
sys.stdin.readline()
"""


def test_a_read_write_session_open_across_the_publish_never_reaches_the_new_night(tmp_path):
    """The session still writes (and checkpoints, and writes a new WAL) after the switch:
    none of it lands beside the new night's file."""
    warehouse = tmp_path / "warehouse.duckdb"
    _night(tmp_path, "night-1")
    _publish(tmp_path, "night-1")
    analyst = subprocess.Popen(
        [sys.executable, "-c", LIVE_ANALYST, str(warehouse)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert analyst.stdout.readline().strip() == "open"
        _night(tmp_path, "night-2")
        _publish(tmp_path, "night-2")
        analyst.stdin.write("\n")
        analyst.stdin.flush()
        assert analyst.stdout.readline().strip() == "wrote"
        assert not Path(f"{warehouse}.wal").exists()
        assert "scratch" not in _tables(warehouse)
        assert published_pair(tmp_path) == ("night-2", "night-2")
    finally:
        analyst.stdin.close()
        analyst.wait(timeout=60)
    assert "scratch" not in _tables(warehouse)


def test_rows_deleted_from_the_working_database_are_not_in_the_published_files_bytes(tmp_path):
    # A file loaded again (after scrubbing was turned on, say) or removed from the landing
    # zone has its rows deleted from raw.*; DuckDB keeps their bytes in the block until it
    # rewrites it. Uncompressed storage makes the bytes greppable: the working file still
    # holds the address; the published file must not, nor the working file after publishing.
    from pipelines.landing import _delete_file_rows

    _night(tmp_path, "run-1")
    work = work_path(tmp_path / "warehouse.duckdb")
    con = duckdb.connect(str(work))
    con.execute("pragma force_compression = 'uncompressed'")
    con.execute("create schema raw")
    con.execute("create table raw._rejects (source varchar, source_file varchar)")
    con.execute("create table raw._files (source varchar, source_file varchar)")
    con.execute("create table raw.comments (_source_file varchar, comment varchar)")
    con.execute(
        "insert into raw.comments select 'old.csv', 'reach me at jane.doe.' || range || "
        "'@example.com' from range(2000)"
    )
    con.execute("insert into raw.comments select 'new.csv', 'fine ' || range from range(100000)")
    con.execute("checkpoint")
    _delete_file_rows(con, "comments", "old.csv")
    con.execute("checkpoint")
    con.close()
    planted = b"jane.doe.1234@example.com"
    assert planted in work.read_bytes()  # the premise: the deleted rows' bytes are there

    published = _publish(tmp_path, "run-1")

    assert planted not in published.read_bytes()
    assert planted not in work.read_bytes()  # compacted: later nights may copy its bytes
    for db in (published, work):
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute("select count(*), min(comment) from raw.comments").fetchone() == (
            100000, "fine 0",
        )  # fmt: skip
        assert con.execute("select run_id from analytics.warehouse_version").fetchone() == (
            "run-1",
        )  # fmt: skip
        con.close()
    for db in (published, work):  # no record of deletions: neither file has any
        con = duckdb.connect(str(db), read_only=True)
        assert con.execute(
            "select count(*) from duckdb_tables() where table_name = 'rows_deleted_since_compaction'"
        ).fetchone() == (0,)
        con.close()
