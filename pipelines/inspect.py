"""`cxalign inspect`: what the night would do with a landing zone, without writing a warehouse.

Every source is loaded and staged by the night's own code (`landing.load_source`,
`ingest.stage_source`, `ingest.conservation`) into a throwaway DuckDB database in a temporary
directory, deleted at the end; the landing zone is only read. What each file was recognised
as, its rows, the quarantine and the records set aside are then read back from that database.
Only the file's mapping (which of its fields feed which column) is asked again of the night's
recognition code (`landing._file_fields`, `landing._column_mapping`, `vendor.object_mapping`),
from the file's header or keys.

A file the night cannot read stops its whole source at night; here each file of such a source
is tried alone, so that every broken file is named, and the source is inspected on the others.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from pipelines.contracts import Contract, quote_ident, source_contracts
from pipelines.ingest import conservation, describe_bad_share, stage_source
from pipelines.landing import (
    JSON_LINES_SUFFIXES,
    LandingFileError,
    _column_mapping,
    _file_fields,
    _is_json,
    _more_header_rows,
    _sniff_delimiter,
    discover_files,
    load_source,
    other_files,
)
from pipelines.profiles import ProfileError, all_profiles, profiles_for
from pipelines.settings import Settings, SourceSettings
from pipelines.vendor import JsonReads, object_mapping, profile_options
from pipelines.warehouse import connect

RUN_ID = "inspect"
SAMPLE_ROWS = 3
_FILE_ERRORS = (LandingFileError, ProfileError)


@dataclass
class FileReport:
    """One landing file: what the night reads it as and what becomes of its rows."""

    file: str
    kind: str | None = None  # "canonical" or "<profile>.<object>"; None: not read
    lookup: bool = False  # read only to look values up (its records count in its own folder)
    error: str | None = None  # why the night cannot read it
    records: int = 0  # data records in the file, counted as the night counts them
    malformed: int = 0
    mapped: dict[str, str] = field(default_factory=dict)  # column -> the file's field
    unmapped: list[str] = field(default_factory=list)  # fields of the file not read
    missing: list[str] = field(default_factory=list)  # optional columns the file lacks
    dates: dict[str, list[str]] = field(default_factory=dict)  # column -> [first, last] staged
    staged: int = 0
    quarantined: int = 0  # rows (a row breaking two rules counts once)
    quarantine_rules: list[dict] = field(default_factory=list)  # column, rule, rows
    quarantine: list[dict] = field(default_factory=list)  # the first rows: row, column, rule ...
    set_aside_rules: list[dict] = field(default_factory=list)  # object, rule, reason, records
    set_aside: list[dict] = field(default_factory=list)  # the first records: row, object, rule
    samples: list[dict] = field(default_factory=list)  # rows after mapping, as the night keeps


@dataclass
class SourceReport:
    source: str
    optional: bool
    files: list[FileReport] = field(default_factory=list)
    files_writing: list[str] = field(default_factory=list)  # skipped tonight, with a warning
    rows_read: int = 0
    rows_staged: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    bad_share: float = 0.0
    max_bad_share: float = 0.0
    conservation_holds: bool = True
    conservation: dict = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # why the night would fail on it

    @property
    def passes(self) -> bool:
        return not self.failures


@dataclass
class Inspection:
    landing: str
    as_of: date
    sources: list[SourceReport]

    @property
    def passes(self) -> bool:
        return all(s.passes for s in self.sources)

    def to_json(self) -> dict:
        return {
            "landing": self.landing,
            "as_of": self.as_of.isoformat(),
            "passes": self.passes,
            "failures": [f for s in self.sources for f in s.failures],
            "sources": [{**asdict(s), "passes": s.passes} for s in self.sources],
        }


def inspect_landing(
    landing: Path, settings: Settings, as_of: date, *, rows: int = 5, progress=None
) -> Inspection:
    """Load and stage every source of `landing` as the night would, in a temporary database,
    and report per source and file. `rows`: quarantined and set-aside rows listed per file."""
    landing = landing.resolve()
    with tempfile.TemporaryDirectory(prefix="cxalign-inspect-") as tmp:
        con = connect(Path(tmp) / "inspect.duckdb", settings.duckdb)
        try:
            reports = []
            for contract in source_contracts().values():
                if progress is not None:
                    progress(contract.name)
                reports.append(
                    _inspect_source(con, landing, contract, settings, as_of, rows, Path(tmp))
                )
        finally:
            con.close()
    return Inspection(str(landing), as_of, reports)


def _inspect_source(
    con: duckdb.DuckDBPyConnection, landing: Path, contract: Contract, settings: Settings,
    as_of: date, rows: int, tmp: Path,
) -> SourceReport:  # fmt: skip
    src = contract.name
    ssettings = settings.source(src)
    out = SourceReport(src, contract.optional, max_bad_share=settings.ingest.max_bad_share)
    writing, _ = other_files(landing, src)
    out.files_writing = [p.relative_to(landing).as_posix() for p in writing]

    broken, source_error = _load(con, landing, contract, settings, tmp, as_of)
    for rel, message in broken.items():
        out.files.append(FileReport(rel, error=message))
        out.failures.append(f"{src}: {message}")
    if source_error is not None:
        out.failures.append(f"{src}: {source_error}")
    # As the night: a required source with neither files in its folder nor rows (a profile
    # may build its rows from another folder's files, Intercom's ratings from conversations).
    files_seen = len(discover_files(landing, src))
    raw_rows = con.execute(f"select count(*) from raw.{src}").fetchone()[0]
    if files_seen == 0 and raw_rows == 0 and not contract.optional:
        out.failures.append(
            f"{src}: no .csv, .parquet, .json or .ndjson files in {landing / src}; "
            "this source is required"
        )

    result = stage_source(con, contract, as_of=as_of, settings=settings, run_id=RUN_ID)
    conserved, counts = conservation(con, RUN_ID, src)
    out.rows_read, out.rows_staged = result.rows_read, result.rows_staged
    out.rows_quarantined, out.rows_duplicate = result.rows_quarantined, result.rows_duplicate
    out.bad_share = round(result.bad_share, 6)
    out.conservation_holds, out.conservation = conserved, counts
    if result.bad_share > settings.ingest.max_bad_share:
        out.failures.append(describe_bad_share(result, settings.ingest.max_bad_share))
    if not conserved:
        out.failures.append(f"{src}: rows do not add up: {counts}")

    out.files += _file_reports(con, landing, contract, ssettings, settings, rows)
    out.files.sort(key=lambda f: f.file)
    return out


def _load(
    con: duckdb.DuckDBPyConnection, landing: Path, contract: Contract, settings: Settings,
    tmp: Path, as_of: date,
) -> tuple[dict[str, str], str | None]:  # fmt: skip
    """Load the source as the night does. When that fails, try each of its files alone (in a
    view of the landing zone holding only that file) to name every file the night cannot
    read, then load the others. Returns ({file: why it cannot be read}, an error of the
    source not owed to one file)."""
    src, ssettings = contract.name, settings.source(contract.name)

    def load(root: Path, into: duckdb.DuckDBPyConnection) -> None:
        load_source(
            into, root, contract, ssettings, run_id=RUN_ID, privacy=settings.privacy, as_of=as_of
        )

    try:
        load(landing, con)
        return {}, None
    except _FILE_ERRORS as exc:
        first = str(exc)
    try:
        folders = {src}.union(
            *(p.sources[src].folders for p in profiles_for(src, ssettings.profile))
        )
    except ProfileError as exc:
        return {}, str(exc)
    candidates = sorted(
        {f for folder in folders for f in discover_files(landing, folder)}
        | set(other_files(landing, src)[1])
    )
    broken: dict[str, str] = {}
    for path in candidates:
        view = _view(tmp / "view", landing, [path])
        probe = duckdb.connect()
        probe.execute("set TimeZone = 'UTC'")
        try:
            load(view, probe)
        except _FILE_ERRORS as exc:
            broken[path.relative_to(landing).as_posix()] = str(exc)
        finally:
            probe.close()
            shutil.rmtree(view)
    good = [p for p in candidates if p.relative_to(landing).as_posix() not in broken]
    view = _view(tmp / "view", landing, good)
    try:
        load(view, con)
    except _FILE_ERRORS as exc:
        return broken, str(exc)
    finally:
        shutil.rmtree(view)
    return broken, None if broken else first


def _view(root: Path, landing: Path, files: list[Path]) -> Path:
    """A landing zone holding only `files` (links, at their own paths): the night's code reads
    it as the real one, and names each file as it would there."""
    root.mkdir(parents=True)
    for f in files:
        link = root / f.relative_to(landing)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(f.resolve())
    return root


# --- what each file came to, read back from the throwaway database -------------------------


def _file_reports(
    con: duckdb.DuckDBPyConnection, landing: Path, contract: Contract, ssettings: SourceSettings,
    settings: Settings, rows: int,
) -> list[FileReport]:  # fmt: skip
    src = contract.name
    reports = {
        rel: FileReport(rel, kind=read_as or "canonical", records=records, malformed=rejected)
        for rel, read_as, records, rejected in con.execute(
            "select source_file, read_as, coalesce(records_in_file, rows_loaded + rows_rejected), "
            "rows_rejected from raw._files where source = ? order by source_file",
            [src],
        ).fetchall()
    }
    for rep in reports.values():
        _mapping(con, landing, rep, contract, ssettings, settings)

    # A row built from a vendor record names that record's file and row (_origin_file, _row).
    vendor = con.execute(
        f"select count(*) > 0 from raw.{src} where _origin_file is not null"
    ).fetchone()[0]

    def scan(table: str, alias: str, file: str, row: str) -> tuple[str, str, str]:
        """(from clause, file expression, row expression) naming each row's landing file."""
        if not vendor:
            return f"{table} {alias}", f"{alias}.{file}", f"{alias}.{row}"
        return (
            f"{table} {alias} left join raw.{src} r on r._source_file = {alias}.{file} "
            f"and r._source_row = {alias}.{row}",
            f"coalesce(r._origin_file, {alias}.{file})",
            f"coalesce(r._origin_row, {alias}.{row})",
        )

    dates = [
        c.name for c in contract.columns if c.required and c.type in ("date", "timestamp", "month")
    ]
    date_cols = "".join(
        f", min(s.{quote_ident(d)})::varchar, max(s.{quote_ident(d)})::varchar" for d in dates
    )
    staged, file_of, _ = scan(f"staging.{src}", "s", "_source_file", "_source_row")
    for file, n, *bounds in con.execute(
        f"select {file_of} as f, count(*){date_cols} from {staged} group by f"
    ).fetchall():
        if file in reports:
            reports[file].staged = n
            reports[file].dates = {
                d: [bounds[2 * i], bounds[2 * i + 1]]
                for i, d in enumerate(dates)
                if bounds[2 * i] is not None
            }

    quarantine, file_of, row_of = scan("analytics.quarantine", "q", "source_file", "source_row")
    quarantine += " where q.source = $src"
    for file, column, rule, n in con.execute(
        f"select {file_of} as f, q.column_name, q.rule, count(*) from {quarantine} "
        "group by all order by f, count(*) desc, q.rule, q.column_name",
        {"src": src},
    ).fetchall():
        if file in reports:
            reports[file].quarantine_rules.append({"column": column, "rule": rule, "rows": n})
    for file, n in con.execute(
        f"select f, count(*) from (select distinct {file_of} as f, {row_of} "
        f"from {quarantine}) group by f",
        {"src": src},
    ).fetchall():
        if file in reports:
            reports[file].quarantined = n
    for file, row, column, rule, value, detail in con.execute(
        f"select {file_of} as f, {row_of} as row, q.column_name, "
        f"q.rule, q.value, q.detail from {quarantine} qualify row_number() over "
        "(partition by f order by row, q.column_name, q.rule) <= $n order by f, row",
        {"src": src, "n": rows},
    ).fetchall():
        if file in reports:
            reports[file].quarantine.append(
                {"row": row, "column": column, "rule": rule, "value": value, "detail": detail}
            )

    for file, obj, rule, reason, n in con.execute(
        "select source_file, object, rule, reason, count(*) from raw._set_aside "
        "where source = ? group by all order by 1, count(*) desc, rule",
        [src],
    ).fetchall():
        if file in reports:
            reports[file].set_aside_rules.append(
                {"object": obj, "rule": rule, "reason": reason, "records": n}
            )
    for file, row, obj, rule in con.execute(
        "select source_file, source_row, object, rule from raw._set_aside where source = $src "
        "qualify row_number() over (partition by source_file order by source_row) <= $n "
        "order by 1, 2",
        {"src": src, "n": rows},
    ).fetchall():
        if file in reports:
            reports[file].set_aside.append({"row": row, "object": obj, "rule": rule})

    # The source's columns as the night keeps them in raw.<source> (mapped, free text
    # scrubbed), before the contract's rules: what the rules are run on.
    cols = [c.name for c in contract.columns]
    sample_file = "coalesce(_origin_file, _source_file)"
    sample_row = "coalesce(_origin_row, _source_row)"
    for file, *values in con.execute(
        f"select {sample_file} as f, {', '.join(map(quote_ident, cols))} from raw.{src} "
        f"qualify row_number() over (partition by f order by {sample_row}, _source_file) "
        f"<= {SAMPLE_ROWS} order by f, {sample_row}, _source_file"
    ).fetchall():
        if file in reports:
            reports[file].samples.append(dict(zip(cols, values, strict=True)))
    return list(reports.values())


_ALIAS = re.compile(r' as "((?:[^"]|"")*)"$')
_COLUMN_REF = re.compile(r'_l\."((?:[^"]|"")*)"')


def _read_from(expr: str, reads: JsonReads | None = None) -> str | None:
    """The field of the file a mapping's select expression reads (None: not in the file);
    reads: a JSON file's, which its mapping read by path."""
    found = reads.field_of(expr) if reads is not None else None
    if found is not None:
        return found
    m = _COLUMN_REF.search(expr)
    if m:
        return m.group(1).replace('""', '"')
    if expr.startswith("'"):
        return "(a header line)"  # a Qualtrics column's import id, the same on every row
    return None


def _mapping(
    con: duckdb.DuckDBPyConnection, landing: Path, rep: FileReport, contract: Contract,
    ssettings: SourceSettings, settings: Settings,
) -> None:  # fmt: skip
    """Which fields of the file feed which column, by the mapping the night built for it: the
    source's columns for a canonical file, the object's for a vendor file."""
    path, rel = landing / rep.file, rep.file
    reads = None
    try:
        if rep.kind == "canonical":
            fields = _file_fields(con, path, rel, ssettings, {None})[None]
            header = [f for f in fields if "." not in f] if _is_json(path) else fields
            select, _ = _column_mapping(header, contract, ssettings, rel, settings.privacy)
        else:
            name, _, obj_name = rep.kind.partition(".")
            profile = all_profiles()[name]
            obj = profile.objects[obj_name]
            rep.lookup = obj_name in profile.sources[contract.name].lookups
            # (the records key is a JSON document's: a CSV, Parquet or NDJSON file's are its own)
            document = _is_json(path) and not path.name.lower().endswith(JSON_LINES_SUFFIXES)
            key = obj.records if document else None
            header = _file_fields(con, path, rel, ssettings, {key})[key]
            more = []
            if obj.header_rows > 1 and not _is_json(path):
                delimiter = ssettings.delimiter or _sniff_delimiter(path, ssettings.encoding)
                more = _more_header_rows(
                    path, rel, delimiter, ssettings.encoding, obj.header_rows - 1
                )
            reads = JsonReads() if _is_json(path) else None
            mapping = object_mapping(
                obj, profile_options(profile, ssettings), settings.privacy, rel, reads
            )
            select, _ = mapping(header, more)
    except (*_FILE_ERRORS, duckdb.Error, KeyError):
        return  # read once already; what it came to is reported all the same
    for expr in select:
        column = _ALIAS.search(expr).group(1).replace('""', '"')
        found = _read_from(expr[: _ALIAS.search(expr).start()], reads)
        if found is None:
            rep.missing.append(column)
        else:
            rep.mapped[column] = found
    used = set(rep.mapped.values())
    # A JSON object not read is named once, not with each of its fields; one holding a field
    # that is read is not "not read".
    rep.unmapped = [
        f
        for f in header
        if f not in used
        and not any(u.startswith(f + ".") for u in used)
        and not any(f.startswith(g + ".") for g in header if g not in used and g != f)
    ]


# --- output ----------------------------------------------------------------------------------


def _short(value, width: int = 40) -> str:
    text = "" if value is None else str(value).replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= width else text[: width - 1] + "…"


def _names(items: list[str], width: int = 100) -> str:
    text = ", ".join(items)
    return text if len(text) <= width else text[: width - 1] + "…"


def render_text(ins: Inspection) -> str:
    """The inspection for a terminal: one block per source, a line or a few per file."""
    from pipelines.scorecard.names import log_safe

    lines = [
        f"cxalign inspect: {ins.landing}, as of {ins.as_of}: the night would "
        + ("pass" if ins.passes else "FAIL"),
    ]
    for s in ins.sources:
        lines.append("")
        verdict = "ok" if s.passes else "WOULD FAIL"
        if not s.files and not s.failures:
            lines.append(
                f"{s.source}: no files ({'optional' if s.optional else 'required'}) {verdict}"
            )
            continue
        lines.append(
            f"{s.source}: {verdict} · {s.rows_read:,} read = {s.rows_staged:,} staged + "
            f"{s.rows_quarantined:,} quarantined + {s.rows_duplicate:,} duplicates · bad rows "
            f"{s.bad_share:.1%} (max {s.max_bad_share:.0%}) · conservation "
            + ("holds" if s.conservation_holds else f"FAILS {s.conservation}")
        )
        for reason in s.failures:
            lines.append(f"  ! {log_safe(reason)}")
        for w in s.files_writing:
            lines.append(f"  ~ {log_safe(w)}: still being written, skipped tonight")
        shown: tuple = ()
        for f in s.files:
            if f.error is not None:
                lines.append(f"  {log_safe(f.file)}  NOT READ (above)")
                continue
            dates = "; ".join(f"{c} {a[:10]} .. {b[:10]}" for c, (a, b) in f.dates.items())
            lines.append(
                f"  {log_safe(f.file)}  {f.kind}"
                + (" (read to look values up)" if f.lookup else "")
                + f" · {f.records:,} records · {f.staged:,} staged"
                + (f", {f.quarantined:,} quarantined" if f.quarantined else "")
                + (f" ({f.malformed:,} malformed)" if f.malformed else "")
                + (
                    f", {sum(r['records'] for r in f.set_aside_rules):,} set aside"
                    if f.set_aside_rules
                    else ""
                )  # fmt: skip
                + (f" · {dates}" if dates else "")
            )
            mapping = (f.kind, f.mapped, f.unmapped, f.missing)
            if mapping != shown:  # monthly files of one export: said once
                mapped = [c if c == fld else f"{fld}→{c}" for c, fld in f.mapped.items()]
                lines.append(f"    columns    {log_safe(_names(mapped))}")
                if f.unmapped:
                    lines.append(f"    not read   {log_safe(_names(f.unmapped))}")
                if f.missing:
                    lines.append(f"    missing    {log_safe(_names(f.missing))}")
                shown = mapping
            if f.quarantine_rules:
                lines.append(
                    "    rules      "
                    + log_safe(
                        ", ".join(
                            f"{r['column'] or '(row)'} {r['rule']} ×{r['rows']:,}"
                            for r in f.quarantine_rules
                        )
                    )  # fmt: skip
                )
            for q in f.quarantine:
                lines.append(
                    f"    row {q['row']:<6} {q['column'] or '(row)'} {q['rule']}: "
                    + log_safe(
                        ("" if q["value"] is None else f"{_short(q['value'])!r} ")
                        + _short(q["detail"], 70)
                    )
                )
            more = f.quarantined - len({q["row"] for q in f.quarantine})
            if more > 0:
                lines.append(f"    ... {more:,} more quarantined rows (--json, or --rows N)")
            for r in f.set_aside_rules:
                lines.append(
                    f"    set aside  {r['object']} {r['rule']} ×{r['records']:,}: "
                    + log_safe(_short(r["reason"], 80))
                )
        sampled = next((f for f in s.files if f.samples), None)
        if sampled is not None:
            lines.append(f"  sample rows ({log_safe(sampled.file)}, as the night keeps them):")
            for row in sampled.samples:
                lines.append(
                    "    "
                    + log_safe(
                        " ".join(f"{k}={_short(v, 24)}" for k, v in row.items() if v is not None)
                    )
                )
    if not ins.passes:
        lines += ["", "The night would fail:"]
        lines += [f"  - {log_safe(_short(r, 300))}" for s in ins.sources for r in s.failures]
    return "\n".join(lines)


def print_progress(source: str) -> None:
    """A line per source on a terminal (a source can take a while on a big landing zone)."""
    if sys.stderr.isatty():
        print(f"inspecting {source} ...", file=sys.stderr)
