"""The DuckDB files: where the pipeline writes, and how a finished night is published.

Two files, because DuckDB allows one writing process and no readers beside it:

* the **working database** (`<dir>/.cxalign/<name>.work.duckdb`): the pipeline's
  own state, raw files' rows and every table being rebuilt. Only the nightly run
  opens it, and only one run at a time (pipelines/runlock.py).
* the **published warehouse** (`--warehouse`, default `data/warehouse.duckdb`):
  what analysts open read-only. A run never writes it in place. When every
  stage and blocking check has passed, the working database is checkpointed and
  copied (row by row into a fresh file when rows were deleted from it, so that their bytes
  stay behind), with the night's scorecards, into a new version directory, and one
  `rename(2)` makes that version the published one (see "Publication" below):
  a reader sees the old version or the new one, never half of one, and a reader
  that still holds the old file keeps reading it until it closes.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pipelines.settings import DuckDBSettings


def work_path(warehouse: str | Path) -> Path:
    warehouse = Path(warehouse)
    return warehouse.parent / ".cxalign" / f"{warehouse.stem}.work.duckdb"


def connect(
    path: str | Path, duck: DuckDBSettings | None = None, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the pipeline's session settings (UTC, limits)."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("set TimeZone = 'UTC'")
    if duck and duck.memory_limit:
        con.execute("set memory_limit = ?", [duck.memory_limit])
    if duck and duck.threads:
        con.execute("set threads = ?", [duck.threads])
    return con


@contextmanager
def session(
    path: str | Path, duck: DuckDBSettings | None = None, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(path, duck, read_only)
    try:
        yield con
    finally:
        con.close()


def record_version(con: duckdb.DuckDBPyConnection, run_id: str, as_of) -> None:
    """Write analytics.warehouse_version: this run and every analytics table's row count."""
    con.execute(
        """
        create or replace table analytics.warehouse_version (
            run_id varchar not null,
            as_of date not null,
            published_at timestamptz not null,
            table_name varchar not null,
            row_count bigint not null
        )
        """
    )
    tables = [
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'analytics' "
            "and table_type = 'BASE TABLE' and table_name <> 'warehouse_version' order by 1"
        ).fetchall()
    ]
    now = con.execute("select now()").fetchone()[0]
    for t in tables:
        n = con.execute(f'select count(*) from analytics."{t}"').fetchone()[0]
        con.execute(
            "insert into analytics.warehouse_version values (?, ?, ?, ?, ?)",
            [run_id, as_of, now, t, n],
        )


# --- Publication ---------------------------------------------------------------------
#
# The analysts' warehouse and the leaders' scorecards are one published version and
# switch together. Each night is published into a directory of its own,
#
#     <dir>/.cxalign/<name>.published/<version>/<name>.duckdb
#                                              /scorecards/
#                                              /version.json
#     <dir>/.cxalign/<name>.published/current -> <version>
#
# and the two paths people open are symbolic links through `current`:
#
#     <warehouse>  -> .cxalign/<name>.published/current/<name>.duckdb
#     <out>        -> .../.cxalign/<name>.published/current/scorecards
#
# Publishing is one rename(2) of the link `current`, so at every instant both paths lead
# into the same version: the old pair or the new pair. DuckDB opens a database at its real
# path and keeps the WAL beside it, so an analyst who opens the warehouse read-write
# writes a WAL into that night's version directory, which no later night's file shares;
# it leaves with that version.

# Testing hook: with CXALIGN_CRASH_AT=<step> the process dies at that step of the publish,
# as a kill would (no cleanup, no finally), so the crash tests can stop a night at each one.
CRASH_AT = "CXALIGN_CRASH_AT"
CRASH_EXIT = 86
PUBLISH_STEPS = (
    "checkpoint",  # the working database checkpointed
    "copy",  # half of the warehouse copied into the new version
    "copied",  # the warehouse copied and fsynced
    "scorecards",  # the scorecards moved into the new version
    "staged",  # the version complete on disk, not yet published
    "link",  # the new `current` link made beside the old one
    "switch",  # `current` renamed: the new version is published
    "expose-aside",  # first publish over an old layout: its scorecards directory set aside
    "expose-warehouse",  # the warehouse path is a link through `current`
    "exposed",  # the scorecards path too
    "pruned",  # versions older than the one before removed
    "compacting",  # rows were deleted: the compacted copy written beside the working database
)
# Reached only by a night that deleted rows from raw tables (see _compact_work).
COMPACTION_STEPS = ("compacting",)
SCORECARDS = "scorecards"
CURRENT = "current"


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_AT) == step:
        os._exit(CRASH_EXIT)


def published_dir(warehouse: str | Path) -> Path:
    """Where the published versions live (never resolve the warehouse path: it is a link)."""
    warehouse = Path(warehouse).absolute()
    return warehouse.parent / ".cxalign" / f"{warehouse.stem}.published"


def building_dir(out_dir: str | Path) -> Path:
    """Where the scorecards asset writes tonight's scorecards until they are published."""
    out = Path(out_dir).absolute()
    return out.parent / f".{out.name}.building"


def published_version(warehouse: str | Path) -> Path | None:
    """The directory of the version readers see now, or None before the first publish."""
    current = published_dir(warehouse) / CURRENT
    return current.resolve() if current.is_symlink() and current.exists() else None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_durably(src: Path, dst: Path) -> None:
    # In blocks, so that the crash point "copy" can stop it half-way.
    block = max(1, min(16 << 20, src.stat().st_size // 2))
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(fin.read(block))
        fout.flush()
        _crash_point("copy")
        shutil.copyfileobj(fin, fout, 16 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def _holds_deleted_rows(con: duckdb.DuckDBPyConnection) -> bool:
    """Rows were deleted from raw.* since the working database was last compacted (see
    pipelines.landing.DELETED_ROWS): their bytes may still be in its blocks."""
    from pipelines.landing import DELETED_ROWS

    schema, table = DELETED_ROWS.split(".")
    known = con.execute(
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = ? "
        "and database_name = current_database()",
        [schema, table],
    ).fetchone()[0]
    return bool(known) and con.execute(f"select count(*) from {DELETED_ROWS}").fetchone()[0] > 0


def _sql_str(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _copy_live(src: Path, dst: Path, duck: DuckDBSettings | None = None) -> None:
    """Write the live contents of `src` into a new database file `dst`, then fsync it.

    A logical copy, not a byte copy: DuckDB marks rows deleted from the working database
    (the rows of a file loaded again or dropped from the landing zone, text loaded before
    scrubbing was turned on) and keeps their bytes in its blocks until it rewrites them, and
    a byte copy would publish those bytes. Only the catalog and the rows a query can see
    reach the new file. Table by table, so that the crash point "copy" can stop it half-way.
    Slower than a byte copy (M: 24 s against 0.6 s), so only used when rows were deleted.
    """
    con = duckdb.connect()
    try:
        if duck and duck.memory_limit:
            con.execute("set memory_limit = ?", [duck.memory_limit])
        if duck and duck.threads:
            con.execute("set threads = ?", [duck.threads])
        con.execute(f"attach {_sql_str(src)} as src (read_only)")
        con.execute(f"attach {_sql_str(dst)} as dst")
        con.execute("copy from database src to dst (schema)")
        tables = con.execute(
            "select schema_name, table_name from duckdb_tables() "
            "where database_name = 'src' order by schema_name, table_name"
        ).fetchall()
        for i, (schema, table) in enumerate(tables):
            if i == len(tables) // 2:
                _crash_point("copy")
            name = '"' + schema.replace('"', '""') + '"."' + table.replace('"', '""') + '"'
            con.execute(f"insert into dst.{name} select * from src.{name}")
        con.execute("detach dst")  # checkpoints: the new file carries no WAL
    finally:
        con.close()
    _fsync(dst)


def _links_to(path: Path, target: str) -> bool:
    return path.is_symlink() and os.readlink(path) == target


def _link_over(path: Path, target: str) -> None:
    """Make `path` a symbolic link to `target` in one rename (over a file or a link)."""
    tmp = path.with_name(f".{path.name}.link-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, path)


def _set_aside_stale_wal(warehouse: Path, log) -> None:
    """A WAL beside the warehouse *link* is an old layout's leftover (the file used to be
    there) or a reader's whose DuckDB did not follow the link: it belongs to no published
    file, and is moved into .cxalign/stale-wal/ so that nothing can replay it."""
    wal = warehouse.with_name(warehouse.name + ".wal")
    if not warehouse.is_symlink() or not wal.exists():
        return
    aside = warehouse.parent / ".cxalign" / "stale-wal"
    aside.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = aside / f"{wal.name}.{stamp}"
    os.replace(wal, dest)
    log(
        f"publish: set aside {wal} (a read-write session's changes to an earlier published "
        f"file; never replayed) as {dest}. Open the warehouse read-only: duckdb -readonly"
    )


def _expose(warehouse: Path, out: Path, log, crash_point=lambda step: None) -> None:
    """Make the warehouse and scorecards paths links through `current` (once; idempotent)."""
    root = published_dir(warehouse)
    wh_target = os.path.relpath(root / CURRENT / warehouse.name, warehouse.parent)
    out_target = os.path.relpath(root / CURRENT / SCORECARDS, out.parent)
    legacy = out.with_name(f".{out.name}.legacy")
    if not _links_to(out, out_target) and out.is_dir() and not out.is_symlink():
        # An older cxalign published real files here. Its scorecards go first, so that
        # for a moment there are none rather than last night's beside tonight's warehouse.
        shutil.rmtree(legacy, ignore_errors=True)
        os.replace(out, legacy)
    crash_point("expose-aside")
    if not _links_to(warehouse, wh_target):
        _link_over(warehouse, wh_target)
    crash_point("expose-warehouse")
    if not _links_to(out, out_target):
        out.parent.mkdir(parents=True, exist_ok=True)
        _link_over(out, out_target)
    shutil.rmtree(legacy, ignore_errors=True)
    _set_aside_stale_wal(warehouse, log)


def _prune(root: Path, log) -> None:
    """Remove every version but the published one and the one published before it, and
    half-made links.

    The one before stays for a night: an analyst's program that followed the warehouse
    link just before the switch opens that version's file a moment after it, and would
    find nothing if it were gone ("database does not exist"). A reader that already has
    it open keeps reading even once it is removed (the file outlives its name). Versions
    are named by their publication time, so the one before is the newest older name; a
    version newer than the published one was never published (a killed run's) and goes."""
    keep = os.readlink(root / CURRENT) if (root / CURRENT).is_symlink() else None
    versions = sorted(e.name for e in root.iterdir() if e.is_dir() and not e.is_symlink())
    before = [v for v in versions if keep is not None and v < keep]
    previous = before[-1] if before else None
    for entry in sorted(root.iterdir()):
        if entry.name in (CURRENT, keep, previous):
            continue
        if entry.is_dir() and not entry.is_symlink():
            for wal in entry.glob("*.wal"):
                log(
                    f"publish: {wal.relative_to(root)} is a read-write session's changes to "
                    "that night's published file; they leave with it (open the warehouse "
                    "read-only: duckdb -readonly)"
                )
            shutil.rmtree(entry)
        else:
            entry.unlink()


def publish_night(
    work: str | Path,
    building: str | Path,
    warehouse: str | Path,
    out_dir: str | Path,
    run_id: str,
    as_of=None,
    log=lambda line: None,
    duck: DuckDBSettings | None = None,
) -> Path:
    """Publish the working database and the scorecards in `building` as one new version.

    The caller holds the run lock. Returns the new version's warehouse file.
    """
    work, building = Path(work), Path(building)
    warehouse, out = Path(warehouse).absolute(), Path(out_dir).absolute()
    root = published_dir(warehouse)
    if not building.is_dir():
        raise FileNotFoundError(
            f"not published: tonight's scorecards are not in {building}; the warehouse and "
            "the scorecards are published together, so run the scorecards asset with publish"
        )
    with session(work) as con:
        con.execute("checkpoint")
        compact = _holds_deleted_rows(con)
    _crash_point("checkpoint")

    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{run_id[:8]}"
    vdir = root / version
    vdir.mkdir(parents=True)
    if compact:  # only the rows a query can see, in a fresh file (see _copy_live)
        from pipelines.landing import DELETED_ROWS

        _copy_live(work, vdir / warehouse.name, duck)
        with session(vdir / warehouse.name) as con:  # the fresh file has no deleted rows
            con.execute(f"drop table if exists {DELETED_ROWS}")
            con.execute("checkpoint")
        _fsync(vdir / warehouse.name)
    else:
        _copy_durably(work, vdir / warehouse.name)
    _crash_point("copied")
    shutil.move(building, vdir / SCORECARDS)
    for path in sorted((vdir / SCORECARDS).rglob("*"), reverse=True):
        _fsync(path)
    _crash_point("scorecards")
    (vdir / "version.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "as_of": str(as_of) if as_of else None,
                "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        + "\n"
    )
    _fsync(vdir / "version.json")
    _fsync(vdir / SCORECARDS)
    _fsync(vdir)
    _fsync(root)
    _crash_point("staged")

    _set_aside_stale_wal(warehouse, log)
    new = root / f"{CURRENT}.new"
    new.unlink(missing_ok=True)
    os.symlink(version, new)
    _crash_point("link")
    os.replace(new, root / CURRENT)  # the one step that publishes
    _fsync(root)
    _crash_point("switch")
    _expose(warehouse, out, log, _crash_point)
    _crash_point("exposed")
    _prune(root, log)
    _crash_point("pruned")
    if compact:
        _compact_work(work, vdir / warehouse.name, log)
    return vdir / warehouse.name


def _compact_work(work: Path, compacted: Path, log) -> None:
    """Make the freshly written copy the working database, so that the deleted rows' bytes
    leave it too and later nights can publish by copying its bytes again. A kill before the
    rename leaves the old working database and its record of deletions: the next publish
    compacts again."""
    tmp = work.with_name(work.name + ".compacted")
    _copy_durably(compacted, tmp)  # holds no record of deletions: it has none
    _crash_point("compacting")
    Path(str(work) + ".wal").unlink(missing_ok=True)
    os.replace(tmp, work)
    _fsync(work.parent)
    log("publish  the working database compacted (rows deleted from raw tables are gone from it)")


def recover(warehouse: str | Path, out_dir: str | Path, log=lambda line: None) -> list[Path]:
    """Clean what a killed publish left, at the start of the next run (under the run lock).

    A version killed before its switch is removed (readers never saw it); one killed after
    it is finished (the links made, older versions removed). Returns what was removed.
    """
    warehouse, out = Path(warehouse).absolute(), Path(out_dir).absolute()
    root = published_dir(warehouse)
    removed: list[Path] = []
    leftovers = [
        # the copy an older cxalign made beside the warehouse before renaming it
        *warehouse.parent.glob(f".{glob.escape(warehouse.name)}.publishing-*"),
        *warehouse.parent.glob(f".{glob.escape(warehouse.name)}.link-*"),
        *out.parent.glob(f".{glob.escape(out.name)}.link-*"),
        out.with_name(f".{out.name}.old"),  # an older cxalign's scorecard swap
        building_dir(out),
        # the compacted working database not yet renamed over the old one (_compact_work)
        work_path(warehouse).with_name(work_path(warehouse).name + ".compacted"),
    ]
    for path in leftovers:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            continue
        removed.append(path)
    if root.is_dir():
        before = set(root.iterdir())
        if published_version(warehouse) is not None:
            _expose(warehouse, out, log)  # a publish killed after its switch: finish it
        else:
            (root / CURRENT).unlink(missing_ok=True)
        _prune(root, log)
        removed += sorted(before - set(root.iterdir()))
    _set_aside_stale_wal(warehouse, log)
    if removed:
        log(
            "recovered: removed what a killed publish left: "
            + ", ".join(str(p.name) for p in removed)
        )
    return removed
