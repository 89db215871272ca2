"""Landing zone -> raw tables.

A landing directory holds one folder per source; each folder holds any number of
`.csv`, `.csv.gz`, `.tsv` (tab-separated), `.parquet`, `.json` or `.ndjson` / `.jsonl` files
(TSV, JSON and NDJSON also gzipped). Each file is loaded as text into
`raw.<source>` with its path (relative to the landing directory) and its 1-based
data row number, so every later error can point at the row in the file.

Loading is incremental and idempotent, keyed on each file's content hash and on
how it is read (`raw._files`: the column mapping, encoding and delimiter in the
config, the contract's columns and what is scrubbed): a file unchanged and read the same way is
skipped, a changed one replaces its earlier rows, a new one adds its rows.
Malformed CSV records (wrong number of fields) do not stop the load: DuckDB sets
them aside and they land in `raw._rejects`, to be quarantined with the rest. A file
that cannot be read at all, or not to its end, stops the run with its name and what
is wrong: every record in the file (counted by a second parser, not by DuckDB) must
be either loaded or rejected. Free text (the contracts' free_text columns, `_extra`, malformed
records) is scrubbed of e-mail addresses and phone numbers in the insert itself
(`pipelines.privacy`): the text before never reaches a table.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import re
import sys
import tempfile
import zlib
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import numpy as np

from pipelines.contracts import Contract
from pipelines.privacy import privacy_digest, scrub_sql
from pipelines.profiles import (
    all_profiles,
    json_pointer,
    profiles_for,
    quote_key,
    reading_digest,
    reads_as_of,
    resolve_field,
)
from pipelines.settings import PrivacySettings, SourceSettings
from pipelines.vendor import (
    CANONICAL,
    EMPTY,
    JsonReads,
    Kind,
    build_source_rows,
    ensure_vendor_table,
    missing_for,
    object_mapping,
    profile_options,
    source_vendor_tables,
)

# The records a JSON file is recognised by (its fields, and the values of a profile's
# `detect: [type=...]`, which the load then holds every record to).
RECOGNITION_SAMPLE = 1000

# JSON: one document per file (an array of records, or an API page holding one array of
# records); NDJSON / JSON Lines: one record per line.
JSON_LINES_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
JSON_SUFFIXES = (".json", ".json.gz", *JSON_LINES_SUFFIXES)
TSV_SUFFIXES = (".tsv", ".tsv.gz")  # read as CSV, tab-separated whatever the config's delimiter
FILE_SUFFIXES = (".csv", ".csv.gz", *TSV_SUFFIXES, ".parquet", *JSON_SUFFIXES)
# The largest JSON document read whole (DuckDB's default is 16 MB; an API export is larger).
_MAX_JSON_DOCUMENT = 1 << 30
_DELIMITER_CANDIDATES = (",", ";", "\t", "|")
_GLOB_CHARS = re.compile(r"[*?\[\]{}]")


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
    files_writing: list[str] = field(default_factory=list)  # still being written: not read


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
    # How the file was read (load_settings_digest) and how many data records it holds as
    # counted apart from DuckDB. A file recorded before these has NULL and is loaded again.
    con.execute("alter table raw._files add column if not exists read_with varchar")
    con.execute("alter table raw._files add column if not exists records_in_file bigint")
    # What the file was read as: canonical, or a vendor profile's object ("zendesk.tickets").
    con.execute("alter table raw._files add column if not exists read_as varchar")
    # What a source's rows built from vendor records were last built with (the profiles and
    # their options): a change builds them again (pipelines.vendor.build_source_rows).
    con.execute(
        "create table if not exists raw._vendor_builds (source varchar primary key, build varchar)"
    )
    # Vendor records set aside on purpose by their profile (a deleted ticket, a survey
    # preview), each with its rule and reason (pipelines.vendor).
    con.execute(
        """
        create table if not exists raw._set_aside (
            source varchar not null,
            source_file varchar not null,
            source_row bigint not null,
            object varchar not null,
            rule varchar not null,
            reason varchar not null
        )
        """
    )
    # Vendor records a profile's select added up into a row that came from another record
    # (a Stripe customer's subscriptions in one month's row): `merged`, for conservation.
    con.execute(
        "create table if not exists raw._vendor_merged (source varchar not null, "
        "source_file varchar not null, source_row bigint not null)"
    )
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
    # A contract that gained a column: the files are loaded again (the contract's columns are
    # part of load_settings_digest), so the new column is filled.
    for c in contract.columns:
        con.execute(f'alter table raw.{contract.name} add column if not exists "{c.name}" varchar')
    # The vendor record a row was built from (pipelines.vendor); NULL for a canonical file's row.
    con.execute(f"alter table raw.{contract.name} add column if not exists _origin_file varchar")
    con.execute(f"alter table raw.{contract.name} add column if not exists _origin_row bigint")


# Files still being written by an upload or a download (skipped, with a warning).
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".tmp", ".crdownload", ".filepart")


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


def other_files(landing_dir: Path, source: str) -> tuple[list[Path], list[Path]]:
    """The files of a source's folder that are not read: (files still being written, files of
    a kind cxalign does not read). Hidden files (a leading dot: .DS_Store, an editor's
    swap file) are neither."""
    folder = landing_dir / source
    if not folder.is_dir():
        return [], []
    others = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not p.name.lower().endswith(FILE_SUFFIXES)
    )
    writing = [p for p in others if p.name.lower().endswith(IN_PROGRESS_SUFFIXES)]
    return writing, [p for p in others if p not in writing]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_settings_digest(
    contract: Contract, settings: SourceSettings, privacy: PrivacySettings | None = None
) -> str:
    """What decides how a file's bytes become raw rows besides the bytes: the column mapping,
    encoding and delimiter of the config and the contract's columns (names, order, required).
    A change to any of them loads every file of the source again."""
    read_with = {
        "columns": sorted(settings.columns.items()),
        "encoding": settings.encoding,
        "delimiter": settings.delimiter,
        "contract": [(c.name, c.required) for c in contract.columns],
    }
    # What is scrubbed, and how (pipelines.privacy): the free-text columns and the patterns.
    read_with["privacy"] = [
        privacy_digest(privacy or PrivacySettings()),
        [c.name for c in contract.columns if c.free_text],
    ]
    return hashlib.sha256(json.dumps(read_with, sort_keys=True).encode()).hexdigest()


def forget_loaded_files(con: duckdb.DuckDBPyConnection) -> None:
    """--full-refresh: every file in the landing zone is loaded again on the next run (the rows
    of files no longer there stay, as ingest.on_missing_file says)."""
    ensure_raw_schema(con)
    con.execute("update raw._files set read_with = null")


def load_source(
    con: duckdb.DuckDBPyConnection,
    landing_dir: Path,
    contract: Contract,
    settings: SourceSettings,
    on_missing_file: str = "keep",
    run_id: str | None = None,
    privacy: PrivacySettings | None = None,
    on_file: Callable[[Path, int | None], None] | None = None,
    as_of: date | None = None,
) -> LoadReport:
    """Bring raw.<source> in line with the source's folder in the landing zone, free text
    scrubbed as `privacy` says (default: e-mail addresses and phone numbers). on_file is
    told of each file when it is done: its rows loaded, or None when unchanged (not read).
    as_of: the night's as-of date, for a profile whose rows depend on it (a Stripe
    subscription still live counts through it)."""
    privacy = privacy or PrivacySettings()
    ensure_raw_schema(con)
    ensure_raw_table(con, contract)
    report = LoadReport(contract.name)
    writing, unreadable = other_files(landing_dir, contract.name)
    if unreadable:
        # Its rows would be missing without a word (a month delivered as .zip, say).
        names = ", ".join(p.relative_to(landing_dir).as_posix() for p in unreadable[:5])
        raise LandingFileError(
            f"{names}{' ...' if len(unreadable) > 5 else ''}: not a kind of file cxalign reads "
            f"({', '.join(FILE_SUFFIXES)}); unpack or convert it, or move it out of the landing "
            "zone (files whose names start with a dot are ignored)"
        )
    report.files_writing = [p.relative_to(landing_dir).as_posix() for p in writing]
    profiles = profiles_for(contract.name, settings.profile)
    options = {p.name: profile_options(p, settings) for p in profiles}
    for p in profiles:  # a profile the config names must have the options it requires
        if p.name == settings.profile:
            p.check_required(options[p.name], contract.name)
    files = discover_files(landing_dir, contract.name)
    # A profile may read this source's records from another source's folder (an Intercom
    # conversation holds the ticket and its rating): those files count only when they are
    # one of its objects.
    elsewhere = sorted(
        set().union(*(p.sources[contract.name].folders for p in profiles)) - {contract.name}
    )
    borrowed = [f for folder in elsewhere for f in discover_files(landing_dir, folder)]
    report.files_seen = len(files)
    known = {
        rel: (digest, read_with, read_as)
        for rel, digest, read_with, read_as in con.execute(
            "select source_file, content_sha256, read_with, read_as from raw._files "
            "where source = ?",
            [contract.name],
        ).fetchall()
    }
    canonical = load_settings_digest(contract, settings, privacy)
    privacy_key = privacy_digest(privacy)

    def reading(kind: Kind) -> str:
        if kind.profile is None:
            return canonical
        return reading_digest(kind.profile, kind.obj, options[kind.profile.name], privacy_key)

    def kind_of(label: str | None) -> Kind | None:
        if label == "empty":
            return EMPTY
        if label in (None, "canonical"):
            return CANONICAL if settings.profile is None else None
        name, _, obj = label.partition(".")
        for p in profiles:
            smap = p.sources[contract.name]
            if p.name == name and obj in (*smap.objects, *smap.lookups):
                return Kind(p, p.objects[obj])
        return None

    present = set()
    vendor_changed = False
    # One transaction for the source: tonight's files land together or not at all, and
    # one commit instead of one per file (a commit per monthly file was half the load time).
    con.execute("begin transaction")
    try:
        for path, own in [(f, True) for f in files] + [(f, False) for f in borrowed]:
            rel = path.relative_to(landing_dir).as_posix()
            digest = file_sha256(path)
            before = known.get(rel)
            kind = kind_of(before[2]) if before and before[0] == digest else None
            if kind is not None and before[1] == reading(kind):
                present.add(rel)
                report.files_unchanged += 1
                if on_file is not None:
                    on_file(path, None)
                continue
            try:
                kind = _recognise(con, path, rel, contract, settings, privacy, profiles, options,
                                  canonical_ok=own and settings.profile is None)  # fmt: skip
            except LandingFileError:
                _refuse_damaged_gzip(path, rel)  # a damaged file says so, not what it lacks
                raise
            if kind is None:  # another source's file, none of this source's objects
                continue
            present.add(rel)
            if kind.empty:  # nothing to load, and nothing lost: recorded as read, 0 records
                vendor_changed |= before is not None and before[2] not in (None, "canonical")
                if rel in known:
                    _delete_file_rows(con, contract.name, rel)
                _record_file(con, contract.name, rel, (digest, reading(kind)), path, 0, 0, 0,
                             run_id)  # fmt: skip
                con.execute(
                    "update raw._files set read_as = 'empty' where source = ? and source_file = ?",
                    [contract.name, rel],
                )
                report.files_loaded.append(rel)
                continue
            target = None
            if kind.profile is not None:
                vendor_changed = True
                kind.profile.check_required(options[kind.profile.name], contract.name)
                table = ensure_vendor_table(con, contract.name, kind.profile, kind.obj)
                reads = JsonReads() if _is_json(path) else None
                target = Target(
                    table,
                    object_mapping(kind.obj, options[kind.profile.name], privacy, rel, reads),
                    header_rows=kind.obj.header_rows,
                    records=kind.obj.records,
                    json_reads=reads,
                    detect_values=kind.obj.detect_values,
                )
            elif before is not None and before[2] not in (None, "canonical"):
                vendor_changed = True  # was a vendor file: its records leave their table
            loaded, rejected = _load_file(
                con, path, rel, (digest, reading(kind)), contract, settings, run_id,
                replacing=rel in known, privacy=privacy, target=target,
            )  # fmt: skip
            con.execute(
                "update raw._files set read_as = ? where source = ? and source_file = ?",
                [kind.label, contract.name, rel],
            )
            report.files_loaded.append(rel)
            report.rows_loaded += loaded
            report.rows_rejected += rejected
            if on_file is not None:
                on_file(path, loaded)
        report.files_missing = sorted(set(known) - present)
        if report.files_missing and on_missing_file == "remove":
            for rel in report.files_missing:
                vendor_changed |= known[rel][2] not in (None, "canonical")
                _delete_file_rows(con, contract.name, rel)
        used = _profiles_read(con, contract.name, profiles)
        build = json.dumps(
            [[p.name, p.digest, sorted(options[p.name].items())] for p in used] + [privacy_key]
            # rows that depend on the as-of date are built again when it moves
            + [as_of.isoformat() if as_of and any(reads_as_of(p, contract.name) for p in used)
               else None]
        )  # fmt: skip
        if vendor_changed or _last_build(con, contract.name) != build:
            build_source_rows(con, contract, [(p, options[p.name]) for p in used], privacy, as_of)
            con.execute("delete from raw._vendor_builds where source = ?", [contract.name])
            con.execute("insert into raw._vendor_builds values (?, ?)", [contract.name, build])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return report


def _profiles_read(con: duckdb.DuckDBPyConnection, source: str, profiles) -> list:
    """The profiles whose objects this source has files of."""
    labels = {
        r[0].split(".")[0]
        for r in con.execute(
            "select distinct read_as from raw._files where source = ? and read_as like '%.%'",
            [source],
        ).fetchall()
    }
    return [p for p in profiles if p.name in labels]


def _last_build(con: duckdb.DuckDBPyConnection, source: str) -> str | None:
    row = con.execute("select build from raw._vendor_builds where source = ?", [source]).fetchone()
    return row[0] if row else None


def _recognise(
    con: duckdb.DuckDBPyConnection, path: Path, rel: str, contract: Contract,
    settings: SourceSettings, privacy: PrivacySettings, profiles, options: dict,
    canonical_ok: bool,
) -> Kind | None:  # fmt: skip
    """What a file is, from its header or keys: the canonical export of the source, or one
    object of a profile that feeds it. Exactly one must fit; none or several is an error that
    names the file, the candidates and what each is missing (and the folder a file of another
    source's object goes in). None: a file of another source's folder that is none of this
    source's objects."""
    folder = Path(rel).parts[0]
    objects = [
        (p, p.objects[o]) for p in profiles for o in p.sources[contract.name].objects_in(folder)
    ]
    fields, values = _file_fields_and_values(
        con, path, rel, settings, {o.records for _, o in objects},
        {f for _, o in objects for f, _ in o.detect_values},
    )  # fmt: skip
    if _is_json(path) and not any(fields.values()) and _holds_no_records(path, rel):
        return EMPTY  # an empty page or file: any kind could have sent it, and it holds nothing
    # (the records key is a JSON document's: a CSV, Parquet or NDJSON file's are its own)
    document = _is_json(path) and not path.name.lower().endswith(JSON_LINES_SUFFIXES)
    fits, misses = [], []
    canonical_error = None
    # How near the file is to each kind: the share of its required columns (of an object's
    # detect fields) the file has. A file nearest the canonical export gets its message only.
    nearest_object, canonical_near = 0.0, 0.0
    if canonical_ok and None in fields:
        have = {_normalise_header(f) for f in fields[None]}
        have |= {t for h, t in settings.columns.items() if h in fields[None]}
        required = [c.name for c in contract.columns if c.required]
        canonical_near = sum(c in have for c in required) / max(len(required), 1)
        try:
            _column_mapping(
                [f for f in fields[None] if "." not in f] if _is_json(path) else fields[None],
                contract, settings, rel, privacy,
            )  # fmt: skip
            fits.append(CANONICAL)
        except LandingFileError as exc:
            canonical_error = exc
            misses.append(f"not the {contract.name} export ({str(exc).split(': ', 1)[-1]})")
    for p, o in objects:
        key = o.records if document else None
        found = fields.get(key)
        if found is None:  # not this kind of file at all (a CSV for a JSON API object)
            continue
        missing = missing_for(o, found, options[p.name], values.get(key))
        if missing:
            misses.append(f"not {p.name} {o.name} (missing {', '.join(missing)})")
            near = 1 - len(missing) / max(len(o.detect), 1)
            nearest_object = max(nearest_object, near)
        else:
            fits.append(Kind(p, o))
    if len(fits) == 1:
        return fits[0]
    if not canonical_ok and not fits and Path(rel).parts[0] != contract.name:
        return None
    if fits and document and len({k.profile.name if k.profile else "" for k in fits}) == 1:
        # Naming the profile cannot help: one vendor's page holding two of its exports
        # (Zendesk's tickets and ticket_metrics arrays side by side).
        held = ", ".join(f"{k.label} (under {k.obj.records!r})" for k in fits)
        raise LandingFileError(
            f"{rel}: holds the records of several kinds of file: {held}; a file holds one kind "
            "of record: write each array to a file of its own, in this folder"
        )
    if fits:
        raise LandingFileError(
            f"{rel}: fits several kinds of file: {', '.join(k.label for k in fits)}; name the "
            f"profile in the config (sources.{contract.name}.profile)"
        )
    elsewhere = _elsewhere(con, path, rel, settings, folder, document)
    if canonical_error is not None and (len(misses) == 1 or canonical_near > nearest_object):
        # only the canonical export applies, or the file is nearest to it (a tickets CSV
        # without account_id is not a Zendesk export missing three fields)
        if elsewhere:
            raise LandingFileError(
                f"{rel}: {elsewhere}; as the {contract.name} export it is "
                f"{str(canonical_error).split(': ', 1)[-1]}"
            ) from canonical_error
        raise canonical_error
    if not misses:  # no candidate could even read it: say what each expects
        misses = [
            f"not {p.name} {o.name} (a JSON export with its records under {o.records!r})"
            if o.records
            else f"not {p.name} {o.name} (a file with "
            f"{', '.join(missing_for(o, [], options[p.name]))})"
            for p, o in objects
        ] or [f"no kind of file feeds {contract.name} from this folder"]
    raise LandingFileError(
        f"{rel}: " + (f"{elsewhere}. " if elsewhere else "") + "not recognised: "
        + "; ".join(misses)
    )  # fmt: skip


def _elsewhere(
    con: duckdb.DuckDBPyConnection, path: Path, rel: str, settings: SourceSettings,
    folder: str, document: bool,
) -> str | None:  # fmt: skip
    """Where a file refused in `folder` goes, when it is an object a profile reads from
    another folder (Zendesk's satisfaction ratings put in support_tickets/): "this looks like
    zendesk satisfaction_ratings, which go in survey_responses/"."""
    candidates = {}
    for p in all_profiles().values():
        for smap in p.sources.values():
            for o, where in [(o, smap.folder) for o in smap.objects] + list(smap.lookups.items()):
                if where != folder:
                    candidates[(p.name, o)] = (p, p.objects[o], where)
    if not candidates:
        return None
    try:
        fields, values = _file_fields_and_values(
            con, path, rel, settings,
            {o.records if document else None for _, o, _ in candidates.values()},
            {f for _, o, _ in candidates.values() for f, _ in o.detect_values},
        )  # fmt: skip
    except LandingFileError:
        return None
    by_folder: dict[str, list[str]] = {}
    for p, o, where in candidates.values():
        key = o.records if document else None
        if key in fields and not missing_for(o, fields[key], {}, values.get(key)):
            by_folder.setdefault(where, []).append(f"{p.name} {o.name}")
    hints = [
        f"this looks like {' or '.join(kinds)}, which go in {where}/"
        for where, kinds in sorted(by_folder.items())
    ]
    return "; ".join(hints) or None


def _holds_no_records(path: Path, rel: str) -> bool:
    """A JSON file with no records at all: an empty NDJSON file, `[]`, or a page whose arrays
    are all empty (Zendesk's last incremental page: {"tickets": [], "end_of_stream": true})."""
    if path.name.lower().endswith(JSON_LINES_SUFFIXES):
        return _count_json_lines(path, rel) == 0
    try:
        with _json_bytes(path, rel) as f:
            doc = json.load(f)
    except (EOFError, OSError, ValueError, zlib.error, RecursionError):
        return False
    if isinstance(doc, list):
        return not doc
    arrays = [v for v in doc.values() if isinstance(v, list)] if isinstance(doc, dict) else []
    return bool(arrays) and not any(arrays)


def _is_json(path: Path) -> bool:
    return path.name.lower().endswith(JSON_SUFFIXES)


def _file_fields(
    con: duckdb.DuckDBPyConnection, path: Path, rel: str, settings: SourceSettings,
    records_keys: set[str | None],
) -> dict[str | None, list[str]]:  # fmt: skip
    """The fields a file has, per key path of its array of records (None: the file's own
    records): a CSV header or Parquet columns, or a JSON file's field paths."""
    return _file_fields_and_values(con, path, rel, settings, records_keys, set())[0]


def _file_fields_and_values(
    con: duckdb.DuckDBPyConnection, path: Path, rel: str, settings: SourceSettings,
    records_keys: set[str | None], value_fields: set[str],
) -> tuple[dict[str | None, list[str]], dict[str | None, dict[str, set[str | None]]]]:  # fmt: skip
    """_file_fields, and per key path the values a JSON file's records hold in each of
    `value_fields` it has (a profile's `detect: [type=company]`; a few, enough to tell
    whether every record holds one value)."""
    out: dict[str | None, list[str]] = {}
    values: dict[str | None, dict[str, set[str | None]]] = {}
    with _plain_name(path) as readable:
        name = path.name.lower()
        if name.endswith(".parquet"):
            out[None] = _read_header(
                con, "read_parquet(?, file_row_number = true) _l", [str(readable)], rel, True
            )
        elif not name.endswith(JSON_SUFFIXES):
            delimiter = _delimiter(path, settings)
            out[None] = _read_header(
                con, _CSV_SCAN, [str(readable), delimiter, settings.encoding], rel, False
            )
        else:
            lines = name.endswith(JSON_LINES_SUFFIXES)
            failed: list[LandingFileError] = []
            keys = [None, *sorted(k for k in records_keys if k)] if not lines else [None]
            read: dict[tuple, str | None] = {}  # the arrays read, by their keys: the key
            for key in keys:
                try:
                    # the array the key leads to: a page's one array may be the one a key names
                    at = () if lines else tuple(document_records_keys(con, readable, rel, key))
                    if at in read:
                        out[key], values[key] = out[read[at]], values[read[at]]
                        continue
                    # What kind of file it is shows in its first records (their structure
                    # is sampled as much: json_fields); the file is read whole once, by the load.
                    json_records(con, readable, path, rel, key, sample=RECOGNITION_SAMPLE,
                                 at=None if lines else list(at))  # fmt: skip
                except LandingFileError as exc:
                    drop_json_records(con)
                    failed.append(exc)
                    if len(failed) == len(keys):  # no way to read it: say why, as the load would
                        raise failed[0] from None
                    continue
                read[at] = key
                try:
                    out[key] = _json_fields(con, rel)
                    values[key] = {}
                    for wanted in value_fields:
                        found = resolve_field((wanted,), out[key], {})
                        if found is not None and found not in values[key]:
                            values[key][found] = {
                                r[0]
                                for r in con.execute(
                                    "select distinct json_extract_string(_cx_record, ?) "
                                    "from _cx_recs limit 3",
                                    [json_pointer(found)],
                                ).fetchall()
                            }
                finally:
                    drop_json_records(con)
    return out, values


# Rows deleted from a table keep their bytes in DuckDB's blocks until the block is rewritten
# (and a freed block is not cleared): the working database can hold the text of a file
# loaded again (after scrubbing was turned on, say) or removed from the landing zone. Each
# deletion is recorded here until the next publish copies the working database row by row
# into a fresh file and makes that file the working database (pipelines.warehouse).
DELETED_ROWS = "ops.rows_deleted_since_compaction"


def _delete_file_rows(con: duckdb.DuckDBPyConnection, source: str, rel: str) -> None:
    con.execute("create schema if not exists ops")
    con.execute(
        f"create table if not exists {DELETED_ROWS} "
        "(source varchar, source_file varchar, deleted_at timestamptz)"
    )
    con.execute(f"insert into {DELETED_ROWS} values (?, ?, now())", [source, rel])
    con.execute(f"delete from raw.{source} where _source_file = ?", [rel])
    # A vendor file's records are in its object's table (the rows built from them are built
    # again once the source's files are loaded: pipelines.vendor.build_source_rows).
    for table in source_vendor_tables(con, source):
        con.execute(f"delete from raw.{table} where _source_file = ?", [rel])
    con.execute("delete from raw._rejects where source = ? and source_file = ?", [source, rel])
    con.execute("delete from raw._files where source = ? and source_file = ?", [source, rel])


@dataclass(frozen=True)
class Target:
    """Where a file's records go, and how its header becomes the table's columns.

    mapping(header, more_header_rows) -> (select list over the scan aliased _l, the headers
    kept only in _extra). The canonical target is raw.<source> mapped by the contract; a
    vendor profile's object has its own table and fields (pipelines.vendor)."""

    table: str
    mapping: Callable[[list[str], list[list[str]]], tuple[list[str], list[str]]]
    header_rows: int = 1  # CSV header lines; the first names the columns
    records: str | None = None  # JSON: the key path of the array of records
    # JSON: the paths the mapping reads, by path (a vendor object's; None: by key)
    json_reads: JsonReads | None = None
    # (field, value) every record holds: a vendor object's detect values (`type=company`),
    # told from the first records when the file was recognised and held to on every record
    detect_values: tuple = ()


def canonical_target(
    contract: Contract, settings: SourceSettings, rel: str, privacy: PrivacySettings
) -> Target:
    return Target(
        contract.name, lambda header, _: _column_mapping(header, contract, settings, rel, privacy)
    )


def _load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    rel: str,
    fingerprint: tuple[str, str],
    contract: Contract,
    settings: SourceSettings,
    run_id: str | None = None,
    replacing: bool = True,
    *,
    privacy: PrivacySettings,
    target: Target | None = None,
) -> tuple[int, int]:
    """Load one file into raw.<source>, replacing rows an earlier version left there.

    fingerprint: (content hash, load_settings_digest), recorded in raw._files.
    replacing=False (a file not seen before) skips the delete, a scan of the whole raw
    table that a nightly file never needs."""
    target = target or canonical_target(contract, settings, rel, privacy)
    with _plain_name(path) as readable:
        if path.name.lower().endswith(".parquet"):
            return _load_parquet(con, readable, path, rel, fingerprint, contract, settings,
                                 run_id, replacing, privacy, target)  # fmt: skip
        if path.name.lower().endswith(JSON_SUFFIXES):
            return _load_json(con, readable, path, rel, fingerprint, contract, settings, run_id,
                              replacing, privacy, target)  # fmt: skip
        return _load_csv(con, readable, path, rel, fingerprint, contract, settings, run_id,
                         replacing, privacy, target)  # fmt: skip


@contextmanager
def _plain_name(path: Path) -> Iterator[Path]:
    """The file under a name DuckDB reads as itself. DuckDB expands `*`, `?` and `[...]` in any
    path it is given (there is no escape), so `export[1].csv` would read `export1.csv` and a
    file named `*.csv` every file beside it: DuckDB is given a link with a plain name instead."""
    with tempfile.TemporaryDirectory(prefix="cxalign-") as tmp:
        if _GLOB_CHARS.search(tmp):
            raise LandingFileError(
                f"the temporary directory {tmp!r} has *, ? or [ in its path; set TMPDIR to "
                "a plain path"
            )
        name = path.name.lower()
        suffix = next(s for s in sorted(FILE_SUFFIXES, key=len, reverse=True) if name.endswith(s))
        link = Path(tmp) / f"file{suffix}"
        link.symlink_to(path.resolve())
        yield link


def _load_parquet(
    con: duckdb.DuckDBPyConnection, readable: Path, path: Path, rel: str,
    fingerprint: tuple[str, str], contract: Contract, settings: SourceSettings,
    run_id: str | None, replacing: bool, privacy: PrivacySettings, target: Target,
) -> tuple[int, int]:  # fmt: skip
    scan, scan_params = "read_parquet(?, file_row_number = true) _l", [str(readable)]
    header = _read_header(con, scan, scan_params, rel, True)
    _refuse_repeated(_parquet_columns(con, readable), rel)
    select_list, extra_keys = target.mapping(header, [])
    # Typed columns and exact row numbers, nothing rejected: straight into raw, with no
    # copy of the file in a temp table first (at 1M accounts, the same raw rows:
    # tickets 64 -> 37 s, revenue 26 -> 15 s, survey answers 19 -> 13 s).
    if replacing:
        _delete_file_rows(con, contract.name, rel)
    try:
        loaded = _insert_rows(con, target.table, rel, "_l.file_row_number + 1", select_list,
                              extra_keys, scan, scan_params, privacy)  # fmt: skip
        # The row count the file's footer declares, not the rows the scan returned.
        in_file = con.execute(
            "select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [str(readable)]
        ).fetchone()[0]
    except duckdb.Error as exc:
        raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc
    if loaded != in_file:
        raise LandingFileError(_short_read(rel, in_file, loaded))
    _record_file(con, contract.name, rel, fingerprint, path, loaded, 0, in_file, run_id)
    return loaded, 0


_CSV_SCAN = (
    "read_csv(?, all_varchar = true, header = true, delim = ?, quote = '\"', "
    "escape = '\"', encoding = ?, store_rejects = true, "
    "rejects_table = '_cx_reject_errors', rejects_scan = '_cx_reject_scans', "
    "parallel = false)"
)


def _load_csv(
    con: duckdb.DuckDBPyConnection, readable: Path, path: Path, rel: str,
    fingerprint: tuple[str, str], contract: Contract, settings: SourceSettings,
    run_id: str | None, replacing: bool, privacy: PrivacySettings, target: Target,
) -> tuple[int, int]:  # fmt: skip
    delimiter = _delimiter(path, settings)
    scan = _CSV_SCAN
    scan_params = [str(readable), delimiter, settings.encoding]
    header = _read_header(con, scan, scan_params, rel, False)
    _refuse_repeated_headers(path, rel, delimiter, settings.encoding)
    skip = target.header_rows - 1  # the header's further lines (Qualtrics: question, import id)
    more = _more_header_rows(path, rel, delimiter, settings.encoding, skip) if skip else []
    select_list, extra_keys = target.mapping(header, more)

    con.execute("drop table if exists _cx_reject_errors")
    con.execute("drop table if exists _cx_reject_scans")
    try:
        con.execute(f"create or replace temp table _cx_load as select * from {scan}", scan_params)
    except duckdb.Error as exc:
        raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc
    # An export's own ROWID column (Oracle, SQLite) would hide DuckDB's rowid, which numbers
    # the rows below: it is read under another name.
    refs: dict[str, str] = {}
    for h in header:
        if h.lower() == "rowid":
            refs[h] = "_cx_export_rowid"
            con.execute(f"alter table _cx_load rename column {_ident(h)} to _cx_export_rowid")
            select_list = [e.replace(f"_l.{_ident(h)}", "_l._cx_export_rowid") for e in select_list]

    # One row per rejected record (DuckDB reports each missing column separately).
    con.execute(
        "create or replace temp table _cx_rejects as "
        "select line - 1 as source_row, string_agg(distinct error_type::varchar, ', ' order by "
        "error_type::varchar) as error_type, min(error_message) as error_message, "
        "min(csv_line) as csv_line from _cx_reject_errors group by line"
    )
    bad_encoding = con.execute(
        "select min(source_row) from _cx_rejects where error_type like '%INVALID ENCODING%'"
    ).fetchone()[0]
    if bad_encoding is not None:
        raise LandingFileError(
            f"{rel}: not valid {settings.encoding} text (first at data row {bad_encoding}); "
            f"set sources.{contract.name}.encoding in the config (e.g. latin-1 or utf-16)"
        )

    # Every record of the file, counted by a second parser: DuckDB stops silently where a
    # .csv.gz is cut short, so what it returned cannot be the measure of what the file holds.
    fields = _record_fields(path, rel, delimiter, settings.encoding)
    blank = np.flatnonzero(fields == 0) + 1  # data row numbers of blank lines (not records)
    in_file = int(len(fields) - len(blank))
    loaded_rows, rejected = con.execute(
        "select (select count(*) from _cx_load), (select count(*) from _cx_rejects)"
    ).fetchone()
    if loaded_rows + rejected != in_file:
        raise LandingFileError(_short_read(rel, in_file, loaded_rows + rejected))

    # The data row number of each accepted record. DuckDB keeps file order (insertion order
    # is preserved) and numbers records as a blank line counts, so the k-th accepted record
    # is the k-th data row that was not skipped (rejected, or a blank line): the rows of the
    # file less the skipped ones, numbered in order, joined on k. Linear, where counting the
    # rejects before each accepted record was quadratic (see docs/BENCHMARKS.md).
    # rowid counts from 0 in a committed table but from a large offset inside an open
    # transaction (the source's load is one): positions are rowid minus the first rowid.
    first = con.execute("select coalesce(min(rowid), 0) from _cx_load").fetchone()[0]
    position = f"(_l.rowid - {int(first)} + 1)::bigint"
    if rejected or len(blank):
        con.execute(
            """
            create or replace temp table _cx_rownum as
            select row_number() over (order by r) as k, r
            from range(1, ?::bigint + 1) t(r)
            anti join (select source_row as s from _cx_rejects
                       union all select unnest(?::bigint[])) x on x.s = t.r
            """,
            [len(fields), blank.tolist()],
        )
        rows = f"_cx_load _l join _cx_rownum _n on _n.k = {position}"
        row_expr = "_n.r"
    else:
        rows, row_expr = "_cx_load _l", position

    try:
        if skip:  # the header's further lines are not records (numbered: rows 1 to skip)
            con.execute(f"delete from _cx_load where rowid < {int(first)} + {int(skip)}")
            in_file -= skip
        if replacing:
            _delete_file_rows(con, contract.name, rel)
        loaded = _insert_rows(con, target.table, rel, row_expr, select_list, extra_keys, rows, [],
                              privacy, refs)  # fmt: skip
        # A malformed record's text holds every field of it: scrubbed whole.
        con.execute(
            "insert into raw._rejects select ?, ?, source_row, error_type, "
            f"{scrub_sql('error_message', privacy)}, {_kept_record_text(target, privacy)} "
            "from _cx_rejects order by source_row",
            [contract.name, rel],
        )
        _record_file(con, contract.name, rel, fingerprint, path, loaded, rejected, in_file,
                     run_id)  # fmt: skip
    finally:
        for temp in ("_cx_load", "_cx_rejects", "_cx_rownum"):
            con.execute(f"drop table if exists {temp}")
    return loaded, rejected


def _load_json(
    con: duckdb.DuckDBPyConnection, readable: Path, path: Path, rel: str,
    fingerprint: tuple[str, str], contract: Contract, settings: SourceSettings,
    run_id: str | None, replacing: bool, privacy: PrivacySettings, target: Target,
) -> tuple[int, int]:  # fmt: skip
    """A JSON or NDJSON file: each record (a JSON object) is a row, its keys the header (a
    vendor object's fields: the paths its records hold)."""
    in_file = json_records(con, readable, path, rel, target.records)
    try:
        if target.json_reads is not None:
            fields = _json_fields(con, rel)
            select_list, extra_keys = target.mapping(fields, [])
            reads = target.json_reads
            checks = [(f, reads.string(f), v) for f, v in _detect_fields(target, fields)]
            con.execute(
                f"create or replace temp table _cx_load as select _cx_n, {reads.columns()} "
                "from _cx_recs"
            )
            _hold_to_detect_values(con, checks, rel)
        else:
            keys = [
                r[0]
                for r in con.execute(
                    "select k from (select _cx_n, unnest(json_keys(_cx_record)) as k, "
                    "generate_subscripts(json_keys(_cx_record), 1) as p from _cx_recs) "
                    "group by k order by min(_cx_n * 1000000 + p)"
                ).fetchall()
            ]
            _refuse_repeated(keys, rel)
            odd = next((k for k in keys if not k or "\x00" in k), None)
            if odd is not None:
                raise LandingFileError(
                    f"{rel}: a record has a key {'that is empty' if not odd else repr(odd)}; a "
                    "key is a column's name: rename it in the export"
                )
            select_list, extra_keys = target.mapping(keys, [])
            # One text column per key (nested values as their JSON text), named as the key, so
            # that the mapping reads a JSON record as it reads a CSV row: one parse a record.
            reads = JsonReads()
            columns = "".join(
                f", {reads.string(quote_key(k)).replace('_l.', '')} as {_ident(k)}" for k in keys
            )
            con.execute(
                f"create or replace temp table _cx_load as select _cx_n{columns} from "
                f"(select _cx_n{', ' if keys else ''}{reads.columns()} from _cx_recs)"
            )
        loaded_rows, rejected = con.execute(
            "select (select count(*) from _cx_load), (select count(*) from _cx_rejects)"
        ).fetchone()
        if loaded_rows + rejected != in_file:
            raise LandingFileError(_short_read(rel, in_file, loaded_rows + rejected))
        if replacing:
            _delete_file_rows(con, contract.name, rel)
        loaded = _insert_rows(con, target.table, rel, "_l._cx_n", select_list, extra_keys,
                              "_cx_load _l", [], privacy)  # fmt: skip
        con.execute(
            "insert into raw._rejects select ?, ?, source_row, error_type, error_message, "
            f"{_kept_record_text(target, privacy)} from _cx_rejects order by source_row",
            [contract.name, rel],
        )
        _record_file(con, contract.name, rel, fingerprint, path, loaded, rejected, in_file,
                     run_id)  # fmt: skip
    finally:
        drop_json_records(con)
        try:
            con.execute("drop table if exists _cx_load")
        except duckdb.TransactionException:
            pass
    return loaded, rejected


def _detect_fields(target: Target, fields: list[str]) -> list[tuple[str, str]]:
    """The fields (as the file names them) and values of the target's detect values."""
    out = []
    for wanted, value in target.detect_values:
        found = resolve_field((wanted,), fields, {})
        if found is not None:
            out.append((found, value))
    return out


def _hold_to_detect_values(
    con: duckdb.DuckDBPyConnection, checks: list[tuple[str, str, str]], rel: str
) -> None:
    """A file is recognised from its first records: a later one holding another value where
    the object's records all hold one (Intercom's `type`: a contact among companies) refuses
    the file, naming the record, rather than loading it as what it is not."""
    for name, expr, value in checks:
        row = con.execute(
            f"select _l._cx_n, {expr} from _cx_load _l where {expr} is distinct from ? "
            "order by 1 limit 1",
            [value],
        ).fetchone()
        if row is not None:
            raise LandingFileError(
                f"{rel}: row {row[0]}, field {name}: holds "
                f"{'nothing' if row[1] is None else repr(row[1])} where the file's first records "
                f"hold {value!r}; a file holds one kind of record"
            )


def json_records(
    con: duckdb.DuckDBPyConnection, readable: Path, path: Path, rel: str,
    records: str | None = None, sample: int | None = None, at: list[str] | None = None,
) -> int | None:  # fmt: skip
    """Read the records of a JSON or NDJSON file: the temp view _cx_recs (_cx_n: the record's
    row number, _cx_record: the object's JSON text) and what is not a record, the temp view
    _cx_rejects (source_row, error_type, error_message, csv_line), both over the temp table
    _cx_items (drop_json_records drops the three). Returns how many records the file holds,
    counted by Python's own parser, apart from DuckDB (a .gz cut short, say).

    sample: only the first `sample` records (JSON objects: blank and malformed lines are passed
    over), to tell what kind of file it is; not counted (returns None).
    at: a JSON document's keys to its records, when the caller has them already
    (document_records_keys), not to read the document's top level again.

    NDJSON: a record per line, numbered by line (blank lines count, as in a CSV file); a line
    that is not a JSON object is set aside as malformed. JSON: one document, whose records are
    the array at `records` (a key path: "tickets", "data.items"), or the document itself when
    it is an array, or the one array an object holds (an API page: {"tickets": [...],
    "next_page": ...}); numbered from 1 in the array. A document that cannot be parsed fails
    with its name: where its records begin cannot be known.

    Each line or item is parsed three times at most, once each to tell whether it is JSON,
    an object and one with no key given twice (the values are read later, by path, in one
    parse per record: pipelines.vendor.JsonReads)."""
    if path.name.lower().endswith(JSON_LINES_SUFFIXES):
        lines = (
            "read_csv(?, columns = {'line': 'VARCHAR'}, header = false, delim = ?, quote = '', "
            "escape = '', auto_detect = false, parallel = false, strict_mode = false)"
        )
        params = [str(readable), "\x01"]  # no JSON text holds a raw 0x01: one field per line
        try:
            if sample:  # (numbered 0: a sample's records are only looked at, never loaded)
                _classify_items(con, f"select 0::bigint as n, line as item from {lines}",
                                blank_lines=True, params=params, sample=sample)  # fmt: skip
                return None
            con.execute(
                f"create or replace temp table _cx_lines as select line from {lines}", params
            )
        except duckdb.Error as exc:
            raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc
        # rowid counts from a large offset inside an open transaction: lines are numbered
        # from the first rowid
        first = con.execute("select coalesce(min(rowid), 0) from _cx_lines").fetchone()[0]
        _classify_items(
            con, f"select (rowid - {int(first)} + 1)::bigint as n, line as item from _cx_lines",
            blank_lines=True,
        )  # fmt: skip
        con.execute("drop table _cx_lines")
        return _count_json_lines(path, rel)

    keys = at if at is not None else document_records_keys(con, readable, rel, records)
    scan = _JSON_DOCUMENT_SCAN
    params = [str(readable), _max_object_size(readable)]
    array_path = _json_path(keys)
    try:
        # The array is taken out of the document first: unnested beside the document (a
        # lateral join), each record carried a copy of it, and a 5 MB page used 18 GB.
        _classify_items(
            con, f"with a as (select json_extract(json, ?) as items from {scan}) select n, "
            "item::varchar as item from (select generate_subscripts(items, 1)::bigint as n, "
            "unnest(items) as item from a)",
            blank_lines=False, params=[array_path + "[*]", *params], sample=sample,
        )  # fmt: skip
    except duckdb.Error as exc:
        raise LandingFileError(f"{rel}: cannot be read: {_first_line(exc)}") from exc
    return None if sample else _count_json_document(path, rel, keys)


_JSON_DOCUMENT_SCAN = "read_json_objects(?, format = 'unstructured', maximum_object_size = ?)"


def _max_object_size(readable: Path) -> int:
    """The largest document DuckDB is to read from the file: the file's size, when it is not
    compressed (DuckDB sets aside a buffer of this size for every read: 1 GB took 160 ms, the
    most of reading a 700 KB API page), else _MAX_JSON_DOCUMENT."""
    if readable.name.lower().endswith(".gz"):
        return _MAX_JSON_DOCUMENT
    return min(max(readable.stat().st_size + 1, 1 << 20), _MAX_JSON_DOCUMENT)


def document_records_keys(
    con: duckdb.DuckDBPyConnection, readable: Path, rel: str, records: str | None
) -> list[str]:
    """The keys leading to a JSON document's array of records: `records` (a key path), or []
    for a document that is an array, or the one array an object holds."""
    params = [str(readable), _max_object_size(readable)]
    wanted = records.split(".") if records else []
    try:
        # The document's kind, the keys holding an array, and the kind at `records`: the
        # document itself never comes into Python (an export can be hundreds of MB).
        tops = con.execute(
            "select json_type(json), list_filter(json_keys(json), lambda k: "
            "json_type(json, '$.' || to_json(k)::varchar) = 'ARRAY'), json_type(json, ?) "
            f"from {_JSON_DOCUMENT_SCAN}",
            [_json_path(wanted), *params],
        ).fetchall()
    except duckdb.Error as exc:
        raise LandingFileError(f"{rel}: not valid JSON: {_first_line(exc)}") from exc
    if len(tops) != 1:
        raise LandingFileError(
            f"{rel}: holds {len(tops)} JSON documents; a .json file holds one (an array of "
            "records, or an API page holding one); one record per line is .ndjson"
        )
    kind, arrays, at_records = tops[0]
    return _records_keys(kind, arrays or [], at_records, rel, wanted)


def _classify_items(
    con: duckdb.DuckDBPyConnection, items_sql: str, blank_lines: bool,
    params: list | None = None, sample: int | None = None,
) -> None:  # fmt: skip
    """The temp table _cx_items (n, item, problem) from `items_sql` (n, item: the text of an
    NDJSON line or of an array's item), and over it the views _cx_recs (the JSON objects) and
    _cx_rejects (the rest, with why; a blank line is neither: it holds no record). sample:
    only the first `sample` records (the scan stops there), none of the rest."""
    # CASE, not AND: DuckDB evaluates both sides of an AND, and json_type fails on invalid
    # JSON. A key given twice: which value is meant cannot be known (DuckDB reads the first,
    # most JSON parsers the last), as with a CSV header naming a column twice.
    problem = (
        "case "
        + (f"when not ({_BLANK.format('item')}) then 'blank' " if blank_lines else "")
        + "when not json_valid(item) then 'not valid JSON' "
        "when json_type(item) <> 'OBJECT' then 'a JSON ' || lower(json_type(item)) || "
        "', not an object' "
        f"when {_REPEATED_KEY.format('item')} then 'a JSON object with a key given twice' end"
    )
    classified = f"select n, item, {problem} as problem from ({items_sql})"
    if sample:
        classified = f"select * from ({classified}) where problem is null limit {int(sample)}"
    con.execute(f"create or replace temp table _cx_items as {classified}", params or [])
    con.execute(
        "create or replace temp view _cx_recs as select n as _cx_n, item as _cx_record "
        "from _cx_items where problem is null"
    )
    con.execute(
        "create or replace temp view _cx_rejects as select n as source_row, 'INVALID JSON' as "
        "error_type, problem as error_message, item as csv_line from _cx_items "
        "where problem is not null and problem <> 'blank'"
    )


def drop_json_records(con: duckdb.DuckDBPyConnection) -> None:
    """Drop what json_records made (after a DuckDB error has aborted the transaction, there
    is nothing to drop: it went with the rollback)."""
    try:
        con.execute("drop view if exists _cx_recs")
        con.execute("drop view if exists _cx_rejects")
        con.execute("drop table if exists _cx_items")
    except duckdb.TransactionException:
        pass


def json_fields(con: duckdb.DuckDBPyConnection, sample: int = RECOGNITION_SAMPLE) -> list[str]:
    """The fields the records in _cx_recs hold, as field paths (pipelines.profiles.json_path:
    "via.channel"), from the structure DuckDB infers over the first `sample` records (a
    schema, not the rows)."""
    structure = con.execute(
        f"select json_group_structure(_cx_record::json) from (select _cx_record from _cx_recs "
        f"order by _cx_n limit {int(sample)})"
    ).fetchone()[0]
    out: list[str] = []

    def walk(node, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                # a key holding a dot ("via.channel" as one key) is quoted: not via's channel
                out.append(prefix + quote_key(k))
                walk(v, prefix + quote_key(k) + ".")

    walk(json.loads(structure) if structure else {}, "")
    return out


def _json_fields(con: duckdb.DuckDBPyConnection, rel: str) -> list[str]:
    try:
        return json_fields(con)
    except RecursionError:
        raise LandingFileError(
            f"{rel}: nested too deeply to be read (more than {sys.getrecursionlimit()} "
            "levels); nothing of it was loaded"
        ) from None


def _json_path(keys: list[str]) -> str:
    return "$" + "".join(f".{json.dumps(k, ensure_ascii=False)}" for k in keys)


# SQL: a JSON object ({}) names a top-level key twice.
_REPEATED_KEY = "len(json_keys({0})) <> len(list_distinct(json_keys({0})))"
# SQL: a line holding something: what Python's bytes.strip() leaves (the second parser).
_BLANK = "trim(coalesce({0}, ''), ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13)) <> ''"


def _records_keys(
    kind: str, arrays: list[str], at_records: str | None, rel: str, wanted: list[str]
) -> list[str]:
    """The keys leading to a document's array of records ([] for the document itself)."""
    if wanted:
        if at_records != "ARRAY":
            raise LandingFileError(f"{rel}: has no array of records at {'.'.join(wanted)!r}")
        return wanted
    if kind == "ARRAY":
        return []
    if kind == "OBJECT":
        if len(arrays) == 1:
            return list(arrays)
        raise LandingFileError(
            f"{rel}: a JSON object whose records cannot be found: it holds "
            f"{len(arrays)} arrays ({', '.join(arrays[:5]) or 'none'}); a .json file is an array "
            "of records or an object holding one"
        )
    raise LandingFileError(f"{rel}: a JSON {kind.lower()}, not an array of records")


def _json_bytes(path: Path, rel: str):
    try:
        return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")
    except OSError as exc:
        raise LandingFileError(f"{rel}: cannot be opened ({exc})") from exc


# A compressed file that ends early or is damaged (DuckDB reads what it can of it, silently).
_DAMAGED = (EOFError, gzip.BadGzipFile, zlib.error)


def _cut_short(rel: str, exc: Exception) -> LandingFileError:
    return LandingFileError(
        f"{rel}: cannot be read to its end ({exc}); the compressed file is cut short or "
        "damaged. Nothing of it was loaded; export it again"
    )


def _refuse_damaged_gzip(path: Path, rel: str) -> None:
    """A .gz file that cannot be read to its end fails as that (it is recognised from the part
    DuckDB read of it, which may lack what the whole file has)."""
    if not path.name.lower().endswith(".gz"):
        return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 20):
                pass
    except _DAMAGED as exc:
        raise _cut_short(rel, exc) from exc


def _count_json_lines(path: Path, rel: str) -> int:
    """Lines that hold anything, counted by Python (in C: no Python code per line)."""
    try:
        with _json_bytes(path, rel) as f:
            lengths = array("q", map(len, map(bytes.strip, f)))
    except _DAMAGED as exc:
        raise _cut_short(rel, exc) from exc
    return int(np.count_nonzero(np.frombuffer(lengths, dtype=np.int64)))


def _count_json_document(path: Path, rel: str, keys: list[str]) -> int:
    """The records of a JSON document, parsed by Python's json module."""
    try:
        with _json_bytes(path, rel) as f:
            found = json.load(f)
    except RecursionError:
        raise LandingFileError(
            f"{rel}: nested too deeply to be counted (more than {sys.getrecursionlimit()} "
            "levels); nothing of it was loaded"
        ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error, ValueError) as exc:
        raise LandingFileError(
            f"{rel}: cannot be read to its end ({exc}); the file is cut short or damaged. "
            "Nothing of it was loaded; export it again"
        ) from exc
    for k in keys:
        found = found[k]
    return len(found)


def _kept_record_text(target: Target, privacy: PrivacySettings) -> str:
    """SQL for what raw._rejects keeps of a malformed record's text (csv_line): the text,
    scrubbed whole, for a canonical file; for a vendor export's record, which holds far more
    than the profile reads (names, subjects, addresses), only its length: the file and row
    say where to look."""
    if "__" in target.table:  # a profile object's table (pipelines.profiles.vendor_table)
        return (
            "'(a record of ' || length(csv_line) || ' characters, not kept: a vendor record "
            "holds more than cxalign reads)'"
        )
    return scrub_sql("csv_line", privacy)


def _short_read(rel: str, in_file: int, read: int) -> str:
    return (
        f"{rel}: holds {in_file:,} data records but only {read:,} could be read (loaded or set "
        "aside as malformed); the file is cut short or damaged (a truncated .gz, say). "
        "Nothing of it was loaded; export it again"
    )


def _text(path: Path, rel: str, encoding: str) -> io.TextIOBase:
    """The file as text, decompressed, for the second parser (csv module, universal newlines)."""
    # DuckDB drops a UTF-8 byte order mark; so does utf-8-sig.
    codec = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        raw = gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")
        return io.TextIOWrapper(raw, encoding=codec, newline="")
    except (OSError, LookupError) as exc:
        raise LandingFileError(f"{rel}: cannot be opened ({exc})") from exc


def _reader(f: io.TextIOBase, delimiter: str) -> Iterator[list[str]]:
    csv.field_size_limit(1 << 30)
    return csv.reader(f, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)


def _record_fields(path: Path, rel: str, delimiter: str, encoding: str) -> np.ndarray:
    """The number of fields of every data record of a CSV file (0 for a blank line), read to
    the file's end by Python's csv parser, independently of DuckDB. A compressed file that
    ends early or is damaged is an error naming the file. The records are counted in C
    (array(map(len, reader))): no Python code runs per record."""
    try:
        with _text(path, rel, encoding) as f:
            fields = array("q", map(len, _reader(f, delimiter)))
    except _DAMAGED as exc:
        raise _cut_short(rel, exc) from exc
    except (UnicodeError, csv.Error) as exc:  # UnicodeError: UTF-16 without its byte order mark
        raise LandingFileError(f"{rel}: cannot be read as {encoding}: {exc}") from exc
    return np.frombuffer(fields, dtype=np.int64)[1:]  # the header is not a data record


def _more_header_rows(
    path: Path, rel: str, delimiter: str, encoding: str, n: int
) -> list[list[str]]:
    """The n lines after a file's header line, when its header takes several (a Qualtrics
    export: the question texts, then each column's import id and time zone)."""
    try:
        with _text(path, rel, encoding) as f:
            rows = _reader(f, delimiter)
            next(rows, None)
            found = [next(rows, []) for _ in range(n)]
    except (EOFError, OSError, UnicodeError, csv.Error, zlib.error) as exc:
        raise LandingFileError(f"{rel}: cannot be read: {exc}") from exc
    if any(not row for row in found):
        raise LandingFileError(f"{rel}: ends before its {n + 1} header lines")
    return found


def _refuse_repeated_headers(path: Path, rel: str, delimiter: str, encoding: str) -> None:
    """A header name that appears twice: which column is meant cannot be known (DuckDB would
    rename the second `name_1` and the first would win silently)."""
    try:
        with _text(path, rel, encoding) as f:
            header = next(_reader(f, delimiter), [])
    except (EOFError, OSError, UnicodeError, csv.Error, zlib.error):
        return  # unreadable: the load says so, with DuckDB's reason
    _refuse_repeated([h.strip() for h in header], rel)


def _parquet_columns(con: duckdb.DuckDBPyConnection, readable: Path) -> list[str]:
    """The top-level column names of a Parquet file as written (DuckDB's scan renames a
    repeated one), from its schema: the root, then each column followed by its children."""
    schema = con.execute(
        "select name, coalesce(num_children, 0) from parquet_schema(?)", [str(readable)]
    ).fetchall()

    def after(i: int) -> int:  # the index after the column at i and all its children
        end = i + 1
        for _ in range(schema[i][1]):
            end = after(end)
        return end

    names, i = [], 1
    for _ in range(schema[0][1]):
        names.append(schema[i][0])
        i = after(i)
    return names


def _refuse_repeated(names: list[str], rel: str) -> None:
    """Two columns with one name: which one is meant cannot be known. One name means equal
    but for case, as DuckDB compares them (it renames the second `Reason_1`, and the first
    would win silently); names equal only once spaces and punctuation are set aside too
    ("Account ID", "account_id") are refused by _column_mapping when both map onto one
    column. Empty names (the trailing empty columns of a spreadsheet) are not names: DuckDB
    numbers them, and they land in _extra."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        key = name.strip().lower()
        if not key:
            continue
        if key in seen and names[seen[key]] == name:
            cols = [j + 1 for j, other in enumerate(names) if other == name]
            raise LandingFileError(
                f"{rel}: the header has {name!r} more than once (columns "
                f"{', '.join(map(str, cols))}); which one is meant cannot be known. Rename or "
                "remove the extra column in the export"
            )
        if key in seen:
            first = seen[key]
            raise LandingFileError(
                f"{rel}: the header has {names[first]!r} (column {first + 1}) and {name!r} "
                f"(column {i + 1}), one name but for case; "
                "which one is meant cannot be known. Rename or remove the extra column in the "
                "export"
            )
        seen[key] = i


def _insert_rows(
    con: duckdb.DuckDBPyConnection, source: str, rel: str, row_expr: str,
    select_list: list[str], extra_keys: list[str], rows: str, rows_params: list,
    privacy: PrivacySettings, refs: dict[str, str] | None = None,
) -> int:  # fmt: skip
    """Insert `rows` (a scan or a table, aliased _l) into raw.<source> as the file `rel`, each
    row numbered by row_expr, the contract's columns as select_list maps them, the file's
    other columns as JSON in _extra (scrubbed: nothing says what they hold; a vendor object's
    table, raw.<source>__<profile>_<object>, keeps only its declared fields); refs: a header
    read under another column name. Returns the rows inserted."""
    extra, extra_params = "null", []
    if extra_keys:
        extra = (
            "json_object("
            + ", ".join(
                f"?, {scrub_sql(f'_l.{_ident((refs or {}).get(k, k))}::varchar', privacy)}"
                for k in extra_keys
            )
            + ")"
        )
        extra_params = list(extra_keys)
    return con.execute(
        f"""
        insert into raw.{source} by name
        select ? as _source_file, {row_expr} as _source_row,
               {", ".join(select_list)}
               {"" if "__" in source else f", {extra} as _extra"}
        from {rows}
        """,
        [rel, *extra_params, *rows_params],
    ).fetchone()[0]


def _record_file(
    con: duckdb.DuckDBPyConnection, source: str, rel: str, fingerprint: tuple[str, str],
    path: Path, loaded: int, rejected: int, in_file: int, run_id: str | None,
) -> None:  # fmt: skip
    digest, read_with = fingerprint
    con.execute(
        "insert into raw._files (source, source_file, content_sha256, size_bytes, rows_loaded, "
        "rows_rejected, loaded_at, run_id, read_with, records_in_file) "
        "values (?, ?, ?, ?, ?, ?, now(), ?, ?, ?)",
        [source, rel, digest, path.stat().st_size, loaded, rejected, run_id, read_with, in_file],
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
    header: list[str], contract: Contract, settings: SourceSettings, rel: str,
    privacy: PrivacySettings,
) -> tuple[list[str], list[str]]:  # fmt: skip
    """Map the file's header onto the contract's columns.

    Explicit mappings from the config win; otherwise a header matches a
    canonical column ignoring case, spaces and punctuation ("Ticket ID" ->
    ticket_id). A mapped header missing from the file is an error when its column
    is not there under another header. Returns the select list (over the scan aliased
    _l) and the headers kept only in _extra.
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
    shown = ", ".join(header[:12]) + (" ..." if len(header) > 12 else "")
    # A mapped header the file does not have would leave its column NULL on every row without
    # a word: an error, unless the column came in under another header (its own name).
    for mapped, target in sorted(settings.columns.items()):
        if mapped not in header and target not in chosen:
            raise LandingFileError(
                f"{rel}: the config maps {mapped!r} onto {target} "
                f"(sources.{contract.name}.columns), but the file has no column {mapped!r}; "
                f"header found: [{shown}]. Correct the mapping or the export"
            )
    missing = [c.name for c in contract.columns if c.required and c.name not in chosen]
    if missing:
        raise LandingFileError(
            f"{rel}: missing required column(s) {', '.join(missing)}; header found: [{shown}]. "
            f"Rename the column in the export or map it in the config under "
            f"sources.{contract.name}.columns"
        )
    select_list = [
        (
            (scrub_sql(f"_l.{_ident(chosen[c.name])}::varchar", privacy) if c.free_text
             else f"_l.{_ident(chosen[c.name])}::varchar")
            if c.name in chosen
            else "null::varchar"
        )
        + f' as "{c.name}"'
        for c in contract.columns
    ]  # fmt: skip
    return select_list, extras


def _delimiter(path: Path, settings: SourceSettings) -> str:
    """A .tsv file's is a tab; a CSV file's is the config's, or the header line's guess."""
    if path.name.lower().endswith(TSV_SUFFIXES):
        return "\t"
    return settings.delimiter or _sniff_delimiter(path, settings.encoding)


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
    """DuckDB's reason, short: its first lines without the record it quotes ("Original
    Line: ..."), which holds the row's text as written (personal data included, before any
    scrubbing) and can be megabytes long."""
    lines = [
        ln
        for ln in str(exc).splitlines()
        if ln.strip() and not ln.lstrip().startswith("Original Line")
    ]
    text = " ".join(lines[:2]) if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"
