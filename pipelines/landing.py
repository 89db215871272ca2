"""Landing zone -> raw tables.

A landing directory holds one folder per source; each folder holds any number of
`.csv`, `.csv.gz` or `.parquet` files. Each file is loaded as text into
`raw.<source>` with its path (relative to the landing directory) and its 1-based
data row number, so every later error can point at the row in the file.

Loading is incremental and idempotent, keyed on each file's content hash
(`raw._files`): an unchanged file is skipped, a changed one replaces its earlier
rows, a new one adds its rows. Malformed CSV records (wrong number of fields) do
not stop the load: DuckDB sets them aside and they land in `raw._rejects`, to be
quarantined with the rest. A file that cannot be read at all stops the run with
its name and what is wrong.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pipelines.contracts import Contract
from pipelines.settings import SourceSettings

FILE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_DELIMITER_CANDIDATES = (",", ";", "\t", "|")


class LandingFileError(RuntimeError):
    """A landing file cannot be read; the message names the file and the problem."""


@dataclass
class LoadReport:
    source: str
    files_seen: int = 0
    files_loaded: list[str] = field(default_factory=list)
    files_unchanged: int = 0
    files_missing: list[str] = field(default_factory=list)
    rows_loaded: int = 0
    rows_rejected: int = 0


def ensure_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        """
        create table if not exists raw._files (
            source varchar not null,
            source_file varchar not null,
            content_sha256 varchar not null,
            size_bytes bigint not null,
            rows_loaded bigint not null,
            rows_rejected bigint not null,
            loaded_at timestamptz not null,
            run_id varchar,
            primary key (source, source_file)
        )
        """
    )
    # Working databases from before run_id was recorded.
    con.execute("alter table raw._files add column if not exists run_id varchar")
    con.execute(
        """
        create table if not exists raw._rejects (
            source varchar not null,
            source_file varchar not null,
            source_row bigint not null,
            error_type varchar not null,
            error_message varchar,
            csv_line varchar
        )
        """
    )


def ensure_raw_table(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    cols = ",\n".join(f'    "{c.name}" varchar' for c in contract.columns)
    con.execute(
        f"""
        create table if not exists raw.{contract.name} (
            _source_file varchar not null,
            _source_row bigint not null,
        {cols},
            _extra json
        )
        """
    )


def discover_files(landing_dir: Path, source: str) -> list[Path]:
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(FILE_SUFFIXES)
    ]
    return sorted(files)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_source(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    contract: Contract,
    settings: SourceSettings,
    on_missing_file: str = "keep",
    run_id: str | None = None,
) -> LoadReport:
    """Bring raw.<source> in line with the source's folder in the landing zone."""
    ensure_raw_schema(con)
    ensure_raw_table(con, contract)
    report = LoadReport(contract.name)
    files = discover_files(landing_dir, contract.name)
    report.files_seen = len(files)
    known = dict(
        con.execute(
            "select source_file, content_sha256 from raw._files where source = ?", [contract.name]
        ).fetchall()
    )
    present = set()
    # One transaction for the source: tonight's files land together or not at all, and
    # one commit instead of one per file (a commit per monthly file was half the load time).
    con.execute("begin transaction")
    try:
        for path in files:
            rel = path.relative_to(landing_dir).as_posix()
            present.add(rel)
            digest = file_sha256(path)
            if known.get(rel) == digest:
                report.files_unchanged += 1
                continue
            loaded, rejected = _load_file(
                con, path, rel, digest, contract, settings, run_id, replacing=rel in known
            )
            report.files_loaded.append(rel)
            report.rows_loaded += loaded
            report.rows_rejected += rejected
        report.files_missing = sorted(set(known) - present)
        if report.files_missing and on_missing_file == "remove":
            for rel in report.files_missing:
                _delete_file_rows(con, contract.name, rel)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return report


def _delete_file_rows(con: duckdb.DuckDBPyConnection, source: str, rel: str) -> None:
    con.execute(f"delete from raw.{source} where _source_file = ?", [rel])
    con.execute("delete from raw._rejects where source = ? and source_file = ?", [source, rel])
    con.execute("delete from raw._files where source = ? and source_file = ?", [source, rel])


def _load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    rel: str,
    digest: str,
    contract: Contract,
    settings: SourceSettings,
    run_id: str | None = None,
    replacing: bool = True,
) -> tuple[int, int]:
    """Load one file into raw.<source>, replacing rows an earlier version left there.

    replacing=False (a file not seen before) skips the delete, a scan of the whole raw
    table that a nightly file never needs."""
    is_parquet = path.name.lower().endswith(".parquet")
    if is_parquet:
        scan, scan_params = "read_parquet(?, file_row_number = true)", [str(path)]
    else:
        delimiter = settings.delimiter or _sniff_delimiter(path, settings.encoding)
        scan = (
            "read_csv(?, all_varchar = true, header = true, delim = ?, quote = '\"', "
            "escape = '\"', encoding = ?, store_rejects = true, "
            "rejects_table = '_cx_reject_errors', rejects_scan = '_cx_reject_scans', "
            "parallel = false)"
        )
        scan_params = [str(path), delimiter, settings.encoding]

    header = _read_header(con, scan, scan_params, rel, is_parquet)
    select_list, extra_keys = _column_mapping(header, contract, settings, rel)

    if is_parquet:
        # Typed columns and exact row numbers, nothing rejected: straight into raw, with no
        # copy of the file in a temp table first (at 1M accounts, the same raw rows:
        # tickets 64 -> 37 s, revenue 26 -> 15 s, survey answers 19 -> 13 s).
        if replacing:
            _delete_file_rows(con, contract.name, rel)
        try:
            loaded = _insert_rows(con, contract.name, rel, "file_row_number + 1", select_list,
                                  extra_keys, scan, scan_params)  # fmt: skip
        except duckdb.Error as exc:
            raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc
        _record_file(con, contract.name, rel, digest, path, loaded, 0, run_id)
        return loaded, 0

    con.execute("drop table if exists _cx_reject_errors")
    con.execute("drop table if exists _cx_reject_scans")
    try:
        con.execute(f"create or replace temp table _cx_load as select * from {scan}", scan_params)
    except duckdb.Error as exc:
        raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc

    # One row per rejected record (DuckDB reports each missing column separately).
    rejects = con.execute(
        "select line - 1, string_agg(distinct error_type::varchar, ', ' order by "
        "error_type::varchar), min(error_message), min(csv_line) "
        "from _cx_reject_errors group by line order by line"
    ).fetchall()
    bad_encoding = [r for r in rejects if "INVALID ENCODING" in r[1]]
    if bad_encoding:
        raise LandingFileError(
            f"{rel}: not valid {settings.encoding} text (first at data row "
            f"{bad_encoding[0][0]}); set sources.{contract.name}.encoding in the config "
            "(e.g. latin-1 or utf-16)"
        )

    # The data row number of each accepted record. DuckDB keeps file order
    # (insertion order is preserved), so the k-th accepted record is data row
    # k plus the number of rejected records before it: with rejects at rows
    # d_1 < d_2 < ..., reject j precedes accepted record k iff d_j - j < k.
    # rowid counts from 0 in a committed table but from a large offset inside an open
    # transaction (the source's load is one): positions are rowid minus the first rowid.
    first = con.execute("select coalesce(min(rowid), 0) from _cx_load").fetchone()[0]
    position = f"(rowid - {int(first)})"
    if rejects:
        con.execute(
            "create or replace temp table _cx_reject_rows as "
            "select unnest(?::bigint[]) as d, unnest(range(1, ?::bigint + 1)) as j",
            [[r[0] for r in rejects], len(rejects)],
        )
        row_expr = (
            f"{position} + 1 + (select count(*) from _cx_reject_rows r "
            f"where r.d - r.j < _l.rowid - {int(first)} + 1)"
        )
    else:
        row_expr = f"{position} + 1"

    try:
        if replacing:
            _delete_file_rows(con, contract.name, rel)
        loaded = _insert_rows(
            con, contract.name, rel, row_expr, select_list, extra_keys, "_cx_load _l", []
        )
        if rejects:
            con.executemany(
                "insert into raw._rejects values (?, ?, ?, ?, ?, ?)",
                [(contract.name, rel, r[0], r[1], r[2], r[3]) for r in rejects],
            )
        _record_file(con, contract.name, rel, digest, path, loaded, len(rejects), run_id)
    finally:
        con.execute("drop table if exists _cx_load")
    return loaded, len(rejects)


def _insert_rows(
    con: duckdb.DuckDBPyConnection, source: str, rel: str, row_expr: str,
    select_list: list[str], extra_keys: list[str], rows: str, rows_params: list,
) -> int:  # fmt: skip
    """Insert `rows` (a scan or a table) into raw.<source> as the file `rel`, each row numbered
    by row_expr, the contract's columns as select_list maps them, the file's other columns
    as JSON in _extra. Returns the rows inserted."""
    extra, extra_params = "null", []
    if extra_keys:
        extra = "json_object(" + ", ".join(f"?, {_ident(k)}::varchar" for k in extra_keys) + ")"
        extra_params = list(extra_keys)
    return con.execute(
        f"""
        insert into raw.{source}
        select ? as _source_file, {row_expr} as _source_row,
               {", ".join(select_list)},
               {extra} as _extra
        from {rows}
        """,
        [rel, *extra_params, *rows_params],
    ).fetchone()[0]


def _record_file(
    con: duckdb.DuckDBPyConnection, source: str, rel: str, digest: str, path: Path,
    loaded: int, rejected: int, run_id: str | None,
) -> None:  # fmt: skip
    con.execute(
        "insert into raw._files values (?, ?, ?, ?, ?, ?, now(), ?)",
        [source, rel, digest, path.stat().st_size, loaded, rejected, run_id],
    )


def _read_header(con, scan: str, params: list, rel: str, is_parquet: bool) -> list[str]:
    try:
        rows = con.execute(f"describe select * from {scan}", params).fetchall()
    except duckdb.Error as exc:
        kind = "Parquet" if is_parquet else "CSV"
        raise LandingFileError(f"{rel}: cannot be read as {kind}: {_first_line(exc)}") from exc
    return [r[0] for r in rows if not (is_parquet and r[0] == "file_row_number")]


def _normalise_header(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _column_mapping(
    header: list[str], contract: Contract, settings: SourceSettings, rel: str
) -> tuple[list[str], list[str]]:
    """Map the file's header onto the contract's columns.

    Explicit mappings from the config win; otherwise a header matches a
    canonical column ignoring case, spaces and punctuation ("Ticket ID" ->
    ticket_id). Returns the select list and the headers kept only in _extra.
    """
    canonical = {c.name for c in contract.columns}
    unknown_targets = sorted(set(settings.columns.values()) - canonical)
    if unknown_targets:
        raise LandingFileError(
            f"config sources.{contract.name}.columns maps onto {unknown_targets[0]!r}, "
            f"which is not a column of {contract.name} ({', '.join(sorted(canonical))})"
        )
    chosen: dict[str, str] = {}
    extras: list[str] = []
    for h in header:
        target = settings.columns.get(h)
        if target is None:
            norm = _normalise_header(h)
            target = norm if norm in canonical else None
        if target is None:
            extras.append(h)
            continue
        if target in chosen:
            raise LandingFileError(
                f"{rel}: columns {chosen[target]!r} and {h!r} both map onto {target!r}"
            )
        chosen[target] = h
    missing = [c.name for c in contract.columns if c.required and c.name not in chosen]
    if missing:
        shown = ", ".join(header[:12]) + (" ..." if len(header) > 12 else "")
        raise LandingFileError(
            f"{rel}: missing required column(s) {', '.join(missing)}; header found: [{shown}]. "
            f"Rename the column in the export or map it in the config under "
            f"sources.{contract.name}.columns"
        )
    select_list = [
        (f"{_ident(chosen[c.name])}::varchar" if c.name in chosen else "null::varchar")
        + f' as "{c.name}"'
        for c in contract.columns
    ]
    return select_list, extras


def _sniff_delimiter(path: Path, encoding: str) -> str:
    """Pick the delimiter from the header line: the candidate it contains most."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            first = f.readline(1 << 16)
    except OSError as exc:
        raise LandingFileError(f"{path.name}: cannot be opened ({exc})") from exc
    text = first.decode("latin-1" if encoding.lower() not in ("utf-16",) else "utf-16", "replace")
    counts = {d: text.count(d) for d in _DELIMITER_CANDIDATES}
    best = max(counts, key=counts.get)
    return best if counts[best] > 0 else ","


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _first_line(exc: Exception) -> str:
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__
