"""Vendor profiles: the exports a company already has, read as cxalign's landing sources.

A profile (`data_contracts/profiles/<vendor>.yml`) is data, not Python: it declares the
vendor's **objects** (the kinds of file an export holds: Zendesk's tickets, ticket metrics,
satisfaction ratings), how a file is recognised as one (`detect`: fields it must have), which
fields are kept (`fields`: a column of the object's raw table and the JSON path or header it
is read from), and, per canonical source it feeds, the **DuckDB SQL** that turns the objects'
rows into the source's rows (`select`), with the rules that set a record aside on purpose
(`set_aside`: a deleted ticket, a survey preview) and the records that belong to another
(`belongs_to`: a ticket's metrics).

How a night reads a vendor file (pipelines/landing.py):

1. Each file in a source's folder is matched against the canonical contract and against the
   objects of the profiles that feed the source (or only the profile named in the config,
   `sources.<source>.profile`). Exactly one must match; an ambiguous or unknown file is refused
   with the candidates and what each is missing.
2. A vendor file's records (CSV rows, JSON or NDJSON records, Parquet rows) land in the
   object's raw table, `raw.<source>__<profile>_<object>`, one row per record, with its file
   and row number, only the declared fields kept (free text scrubbed): nothing else of the
   export (requester e-mails, names) is ever stored.
3. The source's rows are then built from those tables by the profile's SQL into
   `raw.<source>`, each carrying the file and row of the record it came from
   (`_origin_file`, `_origin_row`; `_source_file` adds ` #<part>` when one record gives
   several rows, a Qualtrics response's NPS and CSAT answers), and are validated against the
   contract like any other row. Every record ends in exactly one place: it gave rows, it was
   set aside with its rule and reason (`raw._set_aside`, published with the raw schema), or
   it belongs to a record that gave rows. Conservation checks that.

docs/profiles.md describes each profile and what it assumes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path

import yaml

from pipelines.paths import CONTRACTS_DIR

PROFILES_DIR = CONTRACTS_DIR / "profiles"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_OPTION = re.compile(r"\{option\.([a-z][a-z0-9_]*)\}")
_AS_OF = "{as_of}"  # in a profile's SQL: the night's as-of date
# A detect entry naming a field's value: `type=company` (the field may be a quoted key).
_CONDITION = re.compile(r'((?:"(?:[^"\\]|\\.)*"|[^="])+)=(.+)')
_BELONGS_KEYS = {"object", "key", "references", "rule", "reason"}
# A JSON field path: keys joined by dots, a key holding a dot, a quote or a bracket written in
# double quotes as JSON writes it ("via.channel"), an array's element by its place ([0]).
_PATH_STEP = re.compile(r'(?:"((?:[^"\\]|\\.)*)"|([^."\[\]]+))((?:\[\d+\])*)')
_PLAIN_KEY = re.compile(r'[^."\[\]]+')


class ProfileError(ValueError):
    """A profile file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Option:
    name: str
    default: str | None
    allowed: tuple[str, ...] = ()  # empty: any text (a field name, a question id)
    description: str = ""
    required: bool = False  # the config must set it when the profile is used
    one_of: str | None = None  # a group of options of which the config must set at least one


@dataclass(frozen=True)
class SetAside:
    rule: str
    when: str  # SQL over the object's columns
    reason: str


@dataclass(frozen=True)
class ProfileObject:
    name: str
    description: str
    # JSON: the key path of the array of records in a document ("tickets"); None: the document
    # is the array, or NDJSON, CSV, Parquet.
    records: str | None
    # Fields (paths or headers) a file must have to be this object; a tuple is alternatives
    # (an API name or a UI label: ("Id", "Account ID")), any one of which will do.
    detect: tuple[str | tuple[str, ...], ...]
    fields: dict[str, tuple[str, ...]]  # column -> the paths or headers it may be read from
    free_text: frozenset[str] = frozenset()
    header_rows: int = 1  # CSV: header lines (Qualtrics: 3); the first names the columns
    # CSV: the header line holding each column's label (Qualtrics: 2, the question text); a
    # field (or an option naming one) may then be given by its label, exactly as written.
    label_row: int | None = None
    key: str | None = None  # one record per key ...
    # ... the latest by this column, or by this SQL over the record's columns; earlier ones set
    # aside
    latest_by: str | None = None
    belongs_to: tuple[str, str, str] | None = None  # (object, this column, its column)
    set_aside: tuple[SetAside, ...] = ()
    # column -> the fields kept of the JSON (an object, or an array of objects) it holds
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # A record with no such record to belong to is set aside with this rule and reason (default:
    # orphan); read as a lookup of another source, the object belongs to nothing there.
    orphan: SetAside | None = None
    # (field, value): every record of a JSON file of this object holds this value in the field
    # (Intercom's "type": "company"); `detect: [type=company, ...]` in the profile.
    detect_values: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SourceMap:
    source: str
    folder: str  # the landing folder its objects' files are in (default: the source's own)
    objects: tuple[str, ...]  # the objects it reads, the primary first
    select: str
    # Objects read only to look values up (a rating's ticket, for its organisation), from
    # the folder of the source they belong to: their records are accounted for there.
    lookups: dict[str, str] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return self.objects[0]

    def objects_in(self, folder: str) -> list[str]:
        """The objects (and lookups) whose files are in `folder`."""
        own = list(self.objects) if folder == self.folder else []
        return own + [o for o, f in self.lookups.items() if f == folder]

    @property
    def folders(self) -> set[str]:
        return {self.folder, *self.lookups.values()}


@dataclass(frozen=True)
class Profile:
    name: str
    title: str
    version: int
    options: dict[str, Option]
    objects: dict[str, ProfileObject]
    sources: dict[str, SourceMap]
    path: Path
    digest: str = field(repr=False, default="")

    def resolve_options(self, given: dict | None) -> dict[str, str | None]:
        """The profile's options as the config sets them (`sources.<source>.<profile>`)."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise ProfileError(
                f"{self.name}: unknown option {unknown[0]!r}; known: {', '.join(self.options)}"
            )
        out: dict[str, str | None] = {}
        for name, opt in self.options.items():
            value = given.get(name, opt.default)
            value = None if value is None else str(value)
            if opt.allowed and value not in opt.allowed:
                raise ProfileError(
                    f"{self.name}.{name}: {value!r} is not one of {', '.join(opt.allowed)}"
                )
            if not opt.allowed and value is not None and not any(c.isalnum() for c in value):
                # A field's name or a question: "$" or ".." would name the object holding it
                # (HubSpot's properties, whole), once punctuation is set aside.
                raise ProfileError(f"{self.name}.{name}: {value!r} names no field")
            out[name] = value
        return out

    def check_required(self, options: dict[str, str | None], source: str) -> None:
        """The options the config must set when the profile is used, each named with where."""
        where = f"sources.{source}.{self.name}"
        for name, opt in self.options.items():
            if opt.required and options.get(name) is None:
                raise ProfileError(f"{where}.{name} is required: {opt.description}")
        groups: dict[str, list[str]] = {}
        for name, opt in self.options.items():
            if opt.one_of is not None:
                groups.setdefault(opt.one_of, []).append(name)
        for names in groups.values():
            if all(options.get(n) is None for n in names):
                each = "; ".join(f"{n}: {self.options[n].description}" for n in names)
                raise ProfileError(f"{where}: set at least one of {', '.join(names)} ({each})")


def vendor_table(source: str, profile: str, obj: str) -> str:
    """The raw table of one vendor object's records, read from a source's folder."""
    return f"{source}__{profile}_{obj}"


def _fail(path: Path, where: str, msg: str) -> ProfileError:
    return ProfileError(f"profile {path.name}: {where}: {msg}")


def _as_tuple(value, path: Path, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _fail(path, where, "must be a name or a list of names")


def _parse_object(path: Path, name: str, raw: dict) -> ProfileObject:
    where = f"objects.{name}"
    if not isinstance(raw, dict) or "fields" not in raw or "detect" not in raw:
        raise _fail(path, where, "needs fields and detect")
    # A field given as {path: ..., keep: [...]} holds JSON of which only the `keep` fields are
    # stored (a Stripe subscription's items: their prices, not their metadata).
    keep = {}
    for col, src in raw["fields"].items():
        if isinstance(src, dict):
            if set(src) != {"path", "keep"}:
                raise _fail(path, f"{where}.fields.{col}", "needs path and keep (a list)")
            keep[col] = _as_tuple(src["keep"], path, f"{where}.fields.{col}.keep")
    fields = {
        col: _as_tuple(src["path"] if col in keep else src, path, f"{where}.fields.{col}")
        for col, src in raw["fields"].items()
    }
    for col in fields:
        if not _NAME.fullmatch(col):
            raise _fail(path, f"{where}.fields", f"{col!r} is not a lower-case name")
    if not isinstance(raw["detect"], list):
        raise _fail(path, f"{where}.detect", "must be a list")
    conditions = [d for d in raw["detect"] if isinstance(d, str) and _CONDITION.fullmatch(d)]
    detect = tuple(
        d if isinstance(d, str) else _as_tuple(d, path, f"{where}.detect")
        for d in raw["detect"]
        if d not in conditions
    )
    detect_values = tuple((m.group(1), m.group(2)) for m in map(_CONDITION.fullmatch, conditions))
    for key in ("free_text",):
        unknown = set(raw.get(key, [])) - set(fields)
        if unknown:
            raise _fail(path, f"{where}.{key}", f"not fields: {sorted(unknown)}")
    for key in ("key", "latest_by"):
        # latest_by may also be SQL over the record's columns (how late a copy is)
        plain = key == "key" or _NAME.fullmatch(str(raw.get(key)))
        if raw.get(key) is not None and plain and raw[key] not in fields:
            raise _fail(path, f"{where}.{key}", f"{raw[key]!r} is not a field")
    belongs = raw.get("belongs_to")
    orphan = None
    if belongs is not None:
        if (
            not {"object", "key", "references"} <= set(belongs) <= _BELONGS_KEYS
            or belongs["key"] not in fields
            or ("rule" in belongs) != ("reason" in belongs)
        ):
            raise _fail(
                path, f"{where}.belongs_to",
                "needs object, key (a field), references, and optionally rule with reason",
            )  # fmt: skip
        if "rule" in belongs:
            orphan = SetAside(belongs["rule"], "", str(belongs["reason"]).strip())
        belongs = (belongs["object"], belongs["key"], belongs["references"])
    rules = tuple(
        SetAside(r["rule"], r["when"], r["reason"]) for r in raw.get("set_aside", []) or []
    )
    label_row = raw.get("label_row")
    if label_row is not None and not 2 <= label_row <= int(raw.get("header_rows", 1)):
        raise _fail(path, f"{where}.label_row", "must be one of the header lines after the first")
    return ProfileObject(
        name=name,
        description=str(raw.get("description", "")).strip(),
        records=raw.get("records"),
        detect=detect,
        fields=fields,
        free_text=frozenset(raw.get("free_text", [])),
        keep=keep,
        header_rows=int(raw.get("header_rows", 1)),
        label_row=label_row,
        key=raw.get("key"),
        latest_by=raw.get("latest_by"),
        belongs_to=belongs,
        set_aside=rules,
        orphan=orphan,
        detect_values=detect_values,
    )


def load_profile(path: Path) -> Profile:
    text = path.read_bytes()
    raw = yaml.safe_load(text)
    if not isinstance(raw, dict) or not _NAME.fullmatch(str(raw.get("profile", ""))):
        raise _fail(path, "profile", "a lower-case name is required")
    options = {
        name: Option(name, o.get("default"), tuple(o.get("allowed", []) or ()),
                     str(o.get("description", "")).strip(), bool(o.get("required", False)),
                     o.get("one_of"))
        for name, o in (raw.get("options") or {}).items()
    }  # fmt: skip
    objects = {name: _parse_object(path, name, o) for name, o in raw["objects"].items()}
    for obj in objects.values():
        if obj.belongs_to and obj.belongs_to[0] not in objects:
            raise _fail(path, f"objects.{obj.name}.belongs_to", f"no object {obj.belongs_to[0]}")
    sources = {}
    for src, s in (raw.get("sources") or {}).items():
        reads = _as_tuple(s.get("objects"), path, f"sources.{src}.objects")
        missing = [o for o in reads if o not in objects]
        if missing:
            raise _fail(path, f"sources.{src}.objects", f"no object {missing[0]}")
        lookups = dict(s.get("lookups") or {})
        missing = [o for o in lookups if o not in objects]
        if missing:
            raise _fail(path, f"sources.{src}.lookups", f"no object {missing[0]}")
        for o in reads[1:]:
            # A record that gives no row of its own is accounted for by the record it belongs
            # to, of an object the source reads; one that belongs to none is set aside.
            parent = objects[o].belongs_to
            if parent is None or parent[0] not in reads:
                raise _fail(
                    path, f"objects.{o}.belongs_to",
                    f"source {src} reads {o} beside {reads[0]}: it must belong to a record of "
                    f"one of {', '.join(r for r in reads if r != o)}",
                )  # fmt: skip
        used = set(_OPTION.findall(s["select"]))
        for obj in (*reads, *lookups):
            for rule in objects[obj].set_aside:
                used |= set(_OPTION.findall(rule.when))
        if used - set(options):
            raise _fail(path, f"sources.{src}", f"no option {sorted(used - set(options))}")
        if "merged_by" in s:  # a record is merged when a row names it: the select's _merged
            raise _fail(path, f"sources.{src}.merged_by", "replaced by the select's _merged list")
        sources[src] = SourceMap(src, s.get("folder", src), reads, s["select"], lookups)
    return Profile(
        name=raw["profile"],
        title=str(raw.get("title", raw["profile"])),
        version=int(raw.get("version", 1)),
        options=options,
        objects=objects,
        sources=sources,
        path=path,
        digest=hashlib.sha256(text).hexdigest(),
    )


@cache
def all_profiles(directory: Path = PROFILES_DIR) -> dict[str, Profile]:
    return {p.name: p for p in map(load_profile, sorted(directory.glob("*.yml")))}


def profiles_for(source: str, named: str | None = None) -> list[Profile]:
    """The profiles that can feed `source` (only `named` when the config names one)."""
    found = [p for p in all_profiles().values() if source in p.sources]
    if named is not None:
        if named not in all_profiles():
            raise ProfileError(
                f"sources.{source}.profile: no profile {named!r}; known: "
                f"{', '.join(sorted(all_profiles()))}"
            )
        found = [p for p in found if p.name == named]
        if not found:
            raise ProfileError(f"sources.{source}.profile: {named} does not feed {source}")
    return found


def reading_digest(profile: Profile, obj: ProfileObject, options: dict, privacy: str) -> str:
    """How a vendor file becomes rows of its object's table: part of `raw._files.read_with`."""
    spec = [profile.name, profile.digest, obj.name, sorted(options.items()), privacy]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()


def quote_key(key: str) -> str:
    """A JSON key as one step of a field path: in double quotes when it holds a dot, a quote
    or a bracket (a flattened export's literal "via.channel"), else as it is."""
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)


def json_pointer(field: str) -> str:
    """The JSON Pointer (RFC 6901) DuckDB reads a field path by (`via.channel` -> /via/channel,
    `"via.channel"` -> /via.channel, `contacts.contacts[0].id` -> /contacts/contacts/0/id).
    A pointer takes any key as it is written (a `*`, a tab, an accent), where a `$.` path
    reads `"*"` as a wildcard and a key escaped by JSON (`\\u00e9`) as another key."""
    out, pos = "", 0
    while True:
        m = _PATH_STEP.match(field, pos)
        if m is None:
            raise ProfileError(
                f"{field!r} is not a field path (keys joined by dots, a key holding a dot in "
                'double quotes: "via.channel", an array element by its place: [0])'
            )
        key = json.loads(f'"{m.group(1)}"') if m.group(1) is not None else m.group(2)
        out += "/" + key.replace("~", "~0").replace("/", "~1")
        out += "".join(f"/{i}" for i in re.findall(r"\[(\d+)\]", m.group(3)))
        pos = m.end()
        if pos == len(field):
            return out
        if field[pos] != ".":
            raise ProfileError(
                f"{field!r} is not a field path (a dot expected after {field[:pos]!r})"
            )
        pos += 1


def substitute_options(sql: str, options: dict[str, str | None], as_of: date | None = None) -> str:
    """`{option.<name>}` in a profile's SQL becomes the option's value as a SQL literal, and
    `{as_of}` the night's as-of date (a DATE)."""

    def literal(m: re.Match) -> str:
        value = options[m.group(1)]
        return "null" if value is None else "'" + value.replace("'", "''") + "'"

    if _AS_OF in sql:
        if as_of is None:
            raise ProfileError(
                "the profile's SQL reads the night's as-of date ({as_of}) and none was given"
            )
        sql = sql.replace(_AS_OF, f"date '{as_of.isoformat()}'")
    return _OPTION.sub(literal, sql)


def reads_as_of(profile: Profile, source: str) -> bool:
    """Whether the rows the profile builds for `source` depend on the night's as-of date."""
    smap = profile.sources[source]
    rules = [r.when for o in (*smap.objects, *smap.lookups) for r in profile.objects[o].set_aside]
    return any(_AS_OF in sql for sql in (smap.select, *rules))


def option_named(candidate: str) -> str | None:
    """The option a field candidate names (`{option.nps}` -> nps), or None."""
    m = _OPTION.fullmatch(candidate)
    return m.group(1) if m else None


def resolve_field(
    candidates: tuple[str, ...], available: list[str], options: dict[str, str | None]
) -> str | None:
    """The first candidate the file has: exactly, then ignoring case, spaces and punctuation.
    A candidate may name an option (`{option.nps}`, `properties.{option.segment}`): the
    column the config chose; skipped while the option is unset."""
    norm = lambda s: re.sub(r"[^0-9a-z]+", "_", s.strip().lower()).strip("_")  # noqa: E731
    by_norm = {}
    for a in available:
        by_norm.setdefault(norm(a), a)
    for cand in candidates:
        if _OPTION.search(cand):
            if any(options.get(n) is None for n in _OPTION.findall(cand)):
                continue
            cand = _OPTION.sub(lambda m: str(options[m.group(1)]), cand)
        if cand in available:
            return cand
        if norm(cand) in by_norm:
            return by_norm[norm(cand)]
    return None
