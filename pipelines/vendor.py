"""Vendor exports in the landing zone: recognise each file, load a profile object's records,
and build the source's rows from them (the profiles themselves: pipelines/profiles.py).

Row-level work is DuckDB SQL: the profile's `select`, its set-aside rules and the checks that
every record ends in one place. Python only decides, per file, which object it is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date

import duckdb

from pipelines.contracts import Contract
from pipelines.privacy import scrub_sql
from pipelines.profiles import (
    _OPTION,
    Profile,
    ProfileError,
    ProfileObject,
    SetAside,
    json_pointer,
    option_named,
    resolve_field,
    substitute_options,
    vendor_table,
)
from pipelines.settings import PrivacySettings, SourceSettings


@dataclass(frozen=True)
class Kind:
    """What a landing file is: the source's canonical export, or a profile's object."""

    profile: Profile | None = None
    obj: ProfileObject | None = None
    empty: bool = False  # a JSON file holding no records (an export's last, empty page)

    @property
    def label(self) -> str:
        if self.empty:
            return "empty"
        return "canonical" if self.profile is None else f"{self.profile.name}.{self.obj.name}"


CANONICAL = Kind()
EMPTY = Kind(empty=True)


def profile_options(profile: Profile, settings: SourceSettings) -> dict[str, str | None]:
    return profile.resolve_options(getattr(settings, profile.name, None))


def ensure_vendor_table(con: duckdb.DuckDBPyConnection, source: str, profile: Profile,
                        obj: ProfileObject) -> str:  # fmt: skip
    table = vendor_table(source, profile.name, obj.name)
    cols = ",\n".join(f'    "{c}" varchar' for c in obj.fields)
    con.execute(
        f"create table if not exists raw.{table} (\n    _source_file varchar not null,\n"
        f"    _source_row bigint not null,\n{cols}\n)"
    )
    for c in obj.fields:
        con.execute(f'alter table raw.{table} add column if not exists "{c}" varchar')
    # A field the profile no longer reads leaves the table (its files are read again: the
    # profile changed), so that nothing it no longer needs (a contact's e-mail) stays stored.
    for (c,) in con.execute(
        "select column_name from duckdb_columns() where schema_name = 'raw' and table_name = ? "
        "and database_name = current_database()",
        [table],
    ).fetchall():
        if c not in obj.fields and c not in ("_source_file", "_source_row"):
            con.execute(f'alter table raw.{table} drop column "{c}"')
    return table


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class JsonReads:
    """The paths a mapping reads from a JSON record, each record parsed once for all of them:
    the mapping's expressions name list items (`_l._cx_v[2]`), and the loader builds the lists
    with one json_extract_string (and one json_type) per record over every path. Read field by
    field, a record was parsed once per field: the Intercom tickets of the M preset took 4.5
    times as long to load as the same rows as CSV."""

    def __init__(self) -> None:
        self.strings: list[str] = []  # field paths read as text
        self.types: list[str] = []  # field paths whose JSON type is read

    def string(self, field: str) -> str:
        return f"_l._cx_v[{self._index(self.strings, field)}]"

    def type(self, field: str) -> str:
        return f"_l._cx_t[{self._index(self.types, field)}]"

    @staticmethod
    def _index(fields: list[str], field: str) -> int:
        json_pointer(field)  # a field path, or the profile's error
        if field not in fields:
            fields.append(field)
        return fields.index(field) + 1

    def columns(self, record: str = "_cx_record") -> str:
        """SQL select items of the lists (_cx_v, _cx_t) over a table holding `record`."""
        out = []
        for name, fn, fields in (("_cx_v", "json_extract_string", self.strings),
                                 ("_cx_t", "json_type", self.types)):  # fmt: skip
            if fields:
                pointers = ", ".join(_literal(json_pointer(f)) for f in fields)
                out.append(f"{fn}({record}, [{pointers}]) as {name}")
        return ", ".join(out)

    def field_of(self, expr: str) -> str | None:
        """The field the first text read of `expr` reads (inspect: which field feeds a column)."""
        m = re.search(r"_l\._cx_v\[(\d+)\]", expr)
        return self.strings[int(m.group(1)) - 1] if m else None


def object_mapping(
    obj: ProfileObject, options: dict, privacy: PrivacySettings, rel: str,
    json_reads: JsonReads | None = None,
):  # fmt: skip
    """The mapping (landing.Target) of an object's file onto its table: each field read from
    the first of its candidates the file has; a candidate `@<n>:<header>` is the text of
    header line n in that column (a Qualtrics column's import id), the same on every row.
    json_reads: a JSON file's; the mapping's reads by path are added to it.
    Where the object has a label line (`label_row`), a candidate not in the header is looked
    for there, as written (a Qualtrics question by its text). Nothing else of the file is
    kept."""

    json_paths = json_reads is not None

    def mapping(header: list[str], more: list[list[str]]) -> tuple[list[str], list[str]]:
        labels = _labels(obj, header, more) if not json_paths else {}
        select = []
        for col, candidates in obj.fields.items():
            expr = None
            # A field the config chose is read from that field only, never the defaults.
            chosen = [c for c in candidates if _OPTION.search(c)
                      and all(options.get(n) is not None for n in _OPTION.findall(c))]  # fmt: skip
            candidates = chosen or candidates
            for cand in candidates:
                if cand.startswith("@") and ":" in cand and not json_paths:
                    line, name = cand[1:].split(":", 1)
                    found = resolve_field((name,), header, options)
                    if found is not None and 2 <= int(line) <= len(more) + 1:
                        row = more[int(line) - 2]
                        i = header.index(found)
                        expr = _literal(row[i]) if i < len(row) else "null"
                        break
                    continue
                found = resolve_field((cand,), header, options)
                if found is None and labels:
                    found = _by_label(cand, labels, options, obj, rel)
                if found is not None:
                    if json_paths:
                        expr = _json_value(found, candidates, json_reads)
                    else:
                        expr = '_l."' + found.replace('"', '""') + '"::varchar'
                    break
            if expr is None and chosen:
                bare = next((c for c in chosen if _OPTION.fullmatch(c)), chosen[0])
                name = _OPTION.sub(lambda m: str(options[m.group(1)]), bare)
                raise ProfileError(
                    f"{rel}: has no field {name!r}, which the config chose for {obj.name}.{col} "
                    "(matched ignoring case, spaces and punctuation)"
                )
            if expr is None and col in _detect_columns(obj):
                raise ProfileError(f"{rel}: has no field for {obj.name}.{col} ({candidates})")
            if expr is not None and col in obj.keep:
                expr = _kept_json(expr, obj.keep[col])
            if expr is not None and col in obj.free_text:
                expr = scrub_sql(expr, privacy)
            select.append(f'{expr or "null::varchar"} as "{col}"')
        return select, []

    if not json_paths:
        return mapping

    def with_declared_paths(header: list[str], more: list[list[str]]):
        # A nested object null in every record sampled for the file's structure (the rating
        # of a conversation on a page of unrated ones) leaves its fields out of it: a field
        # none of whose candidates is there is read by its first path (null where absent)
        # rather than left null for the whole file.
        extra = []
        for candidates in obj.fields.values():
            plain = [c for c in candidates if "{" not in c and not c.startswith("@")]
            if plain and resolve_field(candidates, header, options) is None:
                extra.append(plain[0])
        return mapping(header + extra, more)

    return with_declared_paths


def _json_value(found: str, candidates: tuple[str, ...], reads: JsonReads) -> str:
    """SQL reading field `found` of a JSON record. Where another candidate is its parent or
    child (`customer` and `customer.id`: an id, or the expanded object), per record: the child
    when the parent holds an object, else the parent, never the whole object."""
    for cand in candidates:
        if cand.startswith(found + "."):
            parent, child = found, cand
        elif found.startswith(cand + "."):
            parent, child = cand, found
        else:
            continue
        return (
            f"case when {reads.type(parent)} = 'OBJECT' then {reads.string(child)} "
            f"else {reads.string(parent)} end"
        )
    return reads.string(found)


def _kept_json(expr: str, keep: tuple[str, ...]) -> str:
    """SQL keeping, of the JSON `expr` holds (an object, or an array of objects), only the
    fields `keep` names (`price.unit_amount`); anything else (metadata, nicknames) is never
    stored."""
    shape: dict = {}
    for path in keep:
        *parents, leaf = path.split(".")
        node = shape
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = "JSON"
    one, many = _literal(json.dumps(shape)), _literal(json.dumps([shape]))
    value = f"try_cast({expr} as json)"
    return (
        f"(case json_type({value}) when 'ARRAY' then to_json(json_transform({value}, {many})) "
        f"when 'OBJECT' then to_json(json_transform({value}, {one})) end)::varchar"
    )


def _labels(obj: ProfileObject, header: list[str], more: list[list[str]]) -> dict[str, list]:
    """Each label of the object's label line (stripped) and the columns that carry it."""
    if obj.label_row is None or len(more) < obj.label_row - 1:
        return {}
    out: dict[str, list[str]] = {}
    for name, label in zip(header, more[obj.label_row - 2], strict=False):
        out.setdefault(label.strip(), []).append(name)
    return out


def _by_label(cand: str, labels: dict[str, list], options: dict, obj: ProfileObject,
              rel: str) -> str | None:  # fmt: skip
    """The column whose label is exactly the candidate's text (or the option's value)."""
    option = option_named(cand)
    text = options.get(option) if option else cand
    columns = labels.get((text or "").strip(), [])
    if len(columns) > 1:
        raise ProfileError(
            f"{rel}: {text!r} is the label of several columns ({', '.join(columns)}) in header "
            f"line {obj.label_row}; name the column by its header instead"
        )
    return columns[0] if columns else None


def _detect_columns(obj: ProfileObject) -> set[str]:
    """The object's columns read from a detect field (a file of the object has them)."""
    detect = {f for d in obj.detect for f in ((d,) if isinstance(d, str) else d)}
    return {c for c, cands in obj.fields.items() if set(cands) & detect}


def missing_for(
    obj: ProfileObject, fields: list[str], options: dict,
    values: dict[str, set[str | None]] | None = None,
) -> list[str]:  # fmt: skip
    """What of `obj`'s detect entries `fields` (a header, or a JSON file's paths) lacks: its
    fields, and its values (`type=company`): `values` holds the values the file's records hold
    in a field (a JSON file's, read by the caller for `detect_values`); each record must hold
    the detect value."""
    out = []
    for field_, value in obj.detect_values:
        found = resolve_field((field_,), fields, options)
        seen = (values or {}).get(found) if found is not None else None
        if seen != {value}:
            held = sorted("null" if v is None else repr(v) for v in seen or ())
            out.append(f"{field_}={value}" + (f" (holds {', '.join(held)})" if held else ""))
    return out + [
        d if isinstance(d, str) else " or ".join(d)
        for d in obj.detect
        if resolve_field((d,) if isinstance(d, str) else d, fields, options) is None
    ]


def build_source_rows(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    profiles: list[tuple[Profile, dict]],
    privacy: PrivacySettings,
    as_of: date | None = None,
) -> None:
    """Rebuild raw.<source>'s rows that come from vendor records: apply each profile's
    set-aside rules to its objects' records, then its select. Deleting the rows it built
    before is not recorded as a deletion (pipelines.landing.DELETED_ROWS): they hold only text
    the objects' tables hold, whose own deletions are recorded."""
    src = contract.name
    con.execute(f"delete from raw.{src} where _origin_file is not null")
    con.execute("delete from raw._set_aside where source = ?", [src])
    con.execute("delete from raw._vendor_merged where source = ?", [src])
    for profile, options in profiles:
        smap = profile.sources[src]
        tables = {o: ensure_vendor_table(con, src, profile, profile.objects[o])
                  for o in (*smap.objects, *smap.lookups)}  # fmt: skip
        for o in (*smap.objects, *smap.lookups):  # the primary first: belongs_to reads it
            # (a lookup belongs to nothing here: it is accounted for in its own source)
            _set_aside(con, src, profile, profile.objects[o], tables, options,
                       belongs=o in smap.objects, as_of=as_of)  # fmt: skip
        ctes = ",\n".join(
            f'"{o}" as (select t.* from raw.{t} t anti join raw._set_aside a '
            f"on a.source = {_literal(src)} and a.object = {_literal(f'{profile.name}.{o}')} "
            "and a.source_file = t._source_file and a.source_row = t._source_row)"
            for o, t in tables.items()
        )
        select = substitute_options(smap.select, options, as_of)
        try:
            con.execute(
                f"create or replace temp table _cx_built as with {ctes} select * from ({select})"
            )
        except duckdb.Error as exc:
            raise ProfileError(
                f"profile {profile.name}, source {src}: its select fails: {exc}"
            ) from exc
        given = {r[0] for r in con.execute("describe _cx_built").fetchall()}
        free = {c.name for c in contract.columns if c.free_text}
        cols = ", ".join(
            (scrub_sql(f's."{c.name}"', privacy) if c.name in free else f's."{c.name}"')
            + f' as "{c.name}"'
            for c in contract.columns
            if c.name in given
        )
        part = "s._part" if "_part" in given else "null"
        con.execute(
            f"insert into raw.{src} by name select s._source_file || "
            f"coalesce(' #' || {part}, '') as _source_file, s._source_row, s._source_file as "
            f"_origin_file, s._source_row as _origin_row, {cols} from _cx_built s"
        )
        if "_merged" in given:
            # The records each row adds up (a list of {_source_file, _source_row}): those
            # without a row of their own are merged into it.
            con.execute(
                "insert into raw._vendor_merged select distinct ?, m._source_file, "
                "m._source_row from (select unnest(_merged) as m from _cx_built) "
                "where m._source_file is not null",
                [src],
            )
        con.execute("drop table _cx_built")


def _set_aside(
    con: duckdb.DuckDBPyConnection, src: str, profile: Profile, obj: ProfileObject,
    tables: dict[str, str], options: dict, belongs: bool = True, as_of: date | None = None,
) -> None:  # fmt: skip
    """Record the object's records set aside on purpose, each with its first rule."""
    label = f"{profile.name}.{obj.name}"
    table = f"raw.{tables[obj.name]}"
    # A rule may read the object's other records by the object's name (a Stripe subscription
    # that ended while its customer kept another one): only the copies kept, never an earlier
    # version of a record that a later export supersedes.
    kept = (
        f"select * from {table} k where not exists (select 1 from raw._set_aside a where "
        f"a.source = {_literal(src)} and a.object = {_literal(label)} and a.rule = 'superseded' "
        "and a.source_file = k._source_file and a.source_row = k._source_row)"
    )

    def add(rule: str, reason: str, where: str) -> None:
        con.execute(
            f'insert into raw._set_aside with "{obj.name}" as ({kept}) '
            f"select ?, _source_file, _source_row, ?, ?, ? "
            f"from {table} t where ({where}) and not exists (select 1 from raw._set_aside a "
            "where a.source = ? and a.object = ? and a.source_file = t._source_file "
            "and a.source_row = t._source_row)",
            [src, label, rule, reason, src, label],
        )

    if obj.key and obj.latest_by:
        # Decided first: one record per key, the latest by latest_by (a column, or SQL over
        # the object's table), then the last in file and row order; earlier versions set aside.
        latest = _latest_expr(obj)
        add(
            "superseded",
            f"an earlier version of the same {obj.name} record (the latest by "
            f"{obj.latest_by.strip()} is kept)",
            f"(t._source_file, t._source_row) not in (select (_source_file, _source_row) from "
            f'(select _source_file, _source_row, row_number() over (partition by "{obj.key}" '
            "order by _latest desc nulls last, _source_file desc, _source_row desc) as rn "
            f"from (select *, {latest} as _latest from {table})) where rn = 1)",
        )
    for rule in obj.set_aside:
        add(rule.rule, rule.reason, substitute_options(rule.when, options, as_of))
    if obj.belongs_to and belongs:
        parent, key, ref = obj.belongs_to
        parent_label = f"{profile.name}.{parent}"
        orphan = obj.orphan or SetAside(
            "orphan", "", f"no {parent} record with {ref} equal to its {key} (or that record was "
            "set aside)",
        )  # fmt: skip
        add(
            orphan.rule,
            orphan.reason,
            f'"{key}" is null or "{key}" not in (select p."{ref}" from raw.{tables[parent]} p '
            f"anti join raw._set_aside a on a.source = {_literal(src)} and a.object = "
            f"{_literal(parent_label)} and a.source_file = p._source_file "
            'and a.source_row = p._source_row where p."' + ref + '" is not null)',
        )


def _latest_expr(obj: ProfileObject) -> str:
    """SQL for how late a record is: its latest_by column, or latest_by's own SQL (which may
    read the record's file: a window over _source_file)."""
    if obj.latest_by in obj.fields:
        return f'"{obj.latest_by}"'
    return f"({obj.latest_by})"


def fates(con: duckdb.DuckDBPyConnection, contract: Contract,
          profiles: list[Profile]) -> dict[str, int]:  # fmt: skip
    """Where the vendor records of a source went: rows (records), set aside, belonging to a
    record that gave rows, merged (a primary record the select added up into a row of another:
    its `_merged` list names it), and unaccounted (a primary record that gave no row, or a row
    that names no primary record: a profile's select at fault). Conservation needs
    unaccounted = 0."""
    src = contract.name
    out = {"vendor_records": 0, "set_aside": 0, "gave_rows": 0, "belong": 0, "merged": 0,
           "unaccounted": 0}  # fmt: skip
    primaries = []
    present = set(source_vendor_tables(con, src))
    for profile in profiles:
        smap = profile.sources.get(src)
        if smap is None:
            continue
        for i, o in enumerate(smap.objects):
            name = vendor_table(src, profile.name, o)
            if name not in present:
                continue
            rows = f"(select distinct _origin_file, _origin_row from raw.{src})"
            merged = "0"
            if i == 0:
                # Gave no row of its own, but a row's select named it as added up into it.
                merged = (
                    "count(*) filter (where a.source is null and r._origin_row is null and "
                    "exists (select 1 from raw._vendor_merged m where m.source = $src and "
                    "m.source_file = t._source_file and m.source_row = t._source_row))"
                )
            total, aside, gave, merged = con.execute(
                f"select count(*), count(a.source), count(r._origin_row), {merged} "
                f"from raw.{name} t "
                "left join raw._set_aside a on a.source = $src and a.object = $obj and "
                "a.source_file = t._source_file and a.source_row = t._source_row "
                f"left join {rows} r on "
                "r._origin_file = t._source_file and r._origin_row = t._source_row",
                {"src": src, "obj": f"{profile.name}.{o}"},
            ).fetchone()
            out["vendor_records"] += total
            out["set_aside"] += aside
            if i == 0:
                primaries.append(name)
                out["gave_rows"] += gave
                out["merged"] += merged
                out["unaccounted"] += total - aside - gave - merged
            else:
                out["belong"] += total - aside
    known = " union all ".join(f"select _source_file, _source_row from raw.{t}" for t in primaries)
    out["unaccounted"] += con.execute(
        f"select count(*) from raw.{src} r where r._origin_file is not null"
        + (
            f" and (r._origin_file, r._origin_row) not in (select (_source_file, _source_row) "
            f"from ({known}))"
            if primaries
            else ""
        )
    ).fetchone()[0]
    return out


def source_vendor_tables(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    """The raw tables of the vendor objects read for `source` (raw.<source>__<profile>_<object>)
    in the working database."""
    return [
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'raw' and "
            "database_name = current_database() and starts_with(table_name, ?) order by 1",
            [f"{source}__"],
        ).fetchall()
    ]
