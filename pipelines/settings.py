"""The cxalign configuration file (YAML): defaults, validation, loading.

Every setting has a default, so a run needs no file at all. A file only lists
what it changes; an unknown or mistyped key is an error that names the key, not
a silently ignored line. The annotated template is `config/cxalign.example.yml`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.alignment.config import AlignmentConfig
from models.whatif import WhatifConfig

SOURCES = (
    "accounts",
    "survey_responses",
    "support_tickets",
    "revenue",
    "churn_events",
    "support_costs",
    "transactions",
)


# How often each source's exports are expected to arrive (sources.<source>.cadence): a source
# whose newest file is older than its cadence plus a day's grace is stale (pipelines/freshness.py).
CADENCES = {"daily": 1, "weekly": 7, "monthly": 31}
DEFAULT_CADENCE = {
    "accounts": "daily",
    "survey_responses": "daily",
    "support_tickets": "daily",
    "revenue": "monthly",
    "churn_events": "monthly",
    "support_costs": "monthly",
    "transactions": "daily",
}


class ConfigError(ValueError):
    """The configuration file is unreadable or breaks a rule; the message says where."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def parse_size(text: str) -> int:
    """Bytes in a size as DuckDB writes it: "2GB" (10^9 bytes each), "512MiB" (2^20)."""
    m = _SIZE.match(str(text))
    if m is None:
        raise ValueError(f"{text!r} is not a size such as 2GB or 512MiB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])


def _size_or_none(v: str | None) -> str | None:
    if v is not None:
        parse_size(v)
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSettings(_Strict):
    # Export header -> canonical column, e.g. {"Ticket ID": "ticket_id"}.
    columns: dict[str, str] = Field(default_factory=dict)
    # Character encoding of CSV files (DuckDB names: utf-8, utf-16, latin-1).
    encoding: str = "utf-8"

    @field_validator("encoding")
    @classmethod
    def _readable_encoding(cls, v: str) -> str:
        # The encodings DuckDB's CSV reader has without its encodings extension (which a
        # night cannot install offline): anything else failed only at run time, per file.
        if v.lower() not in ("utf-8", "utf-16", "latin-1"):
            raise ValueError(
                f"encoding {v!r} cannot be read; use utf-8, utf-16 or latin-1 (for Windows-1252 "
                "exports latin-1 reads every letter but the few in 0x80-0x9F: convert those files "
                "to utf-8 first)"
            )
        return v

    # Field delimiter of CSV files; None lets DuckDB's sniffer decide.
    delimiter: str | None = None
    # The vendor export the source's files are (data_contracts/profiles/<profile>.yml): a file
    # is then read only as one of that profile's objects. None: each file is recognised by
    # its header or keys, as the canonical export or any profile's object (docs/profiles.md).
    profile: str | None = None
    # Each profile's options, under its name (e.g. qualtrics: {account_field: ..., nps: Q1}).
    zendesk: dict[str, Any] | None = None
    intercom: dict[str, Any] | None = None
    qualtrics: dict[str, Any] | None = None
    stripe: dict[str, Any] | None = None
    salesforce: dict[str, Any] | None = None
    hubspot: dict[str, Any] | None = None
    # How often new exports arrive: daily, weekly or monthly (None: the source's default in
    # settings.DEFAULT_CADENCE); "none" expects no rhythm (never stale).
    cadence: Literal["daily", "weekly", "monthly", "none"] | None = None


class IngestSettings(_Strict):
    # A source whose quarantined share of rows exceeds this fails the run.
    max_bad_share: float = Field(0.05, ge=0.0, le=1.0)
    # Rows per batch that great-expectations validates in memory.
    validation_batch_rows: int = Field(1_000_000, ge=1_000)
    # A file that was loaded before and is no longer in the landing zone:
    # keep its rows (exports are often archived after loading) or remove them.
    on_missing_file: Literal["keep", "remove"] = "keep"
    # An upload in progress (.part, .tmp, ...) untouched this long is taken as abandoned: the
    # landing sensor no longer waits for it (and announces it once: upload_abandoned).
    abandoned_upload_hours: float = Field(6.0, gt=0.0)


class WarehouseSettings(_Strict):
    # CX features of an account-month come from the `cx_window_months` months
    # ending `notice_lag_months` before the outcome month (the month after the
    # row's month). Defaults: the 6 months before the row's month.
    cx_window_months: int = Field(6, ge=1, le=36)
    # At least 1: the window must end before the row's month begins.
    notice_lag_months: int = Field(1, ge=1, le=12)


class CLVSettings(_Strict):
    # Gross margin applied to revenue to get value.
    margin: float = Field(0.8, gt=0.0, le=1.0)
    # Annual discount rate; converted to the models' period (month, week).
    annual_discount_rate: float = Field(0.10, gt=0.0, lt=1.0)
    # An sBG per segment within a unit only where the segment has this much data;
    # otherwise its accounts use the unit's fit.
    min_segment_accounts: int = Field(300, ge=10)
    min_segment_churn_events: int = Field(50, ge=5)
    # Expected remaining months are counted within this horizon (the sBG mean
    # lifetime is infinite when alpha <= 1).
    remaining_months_horizon: int = Field(120, ge=12)
    # Transactions (BG/NBD + Gamma-Gamma): the value horizon.
    horizon_weeks: int = Field(52, ge=1)


# The alignment test's settings are declared once, by the model itself.
AlignmentSettings = AlignmentConfig


class ScheduleSettings(_Strict):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(f"cron {v!r} must have five fields (minute hour day month weekday)")
        return v


class DuckDBSettings(_Strict):
    # e.g. "8GB"; None leaves DuckDB's default (80% of RAM).
    memory_limit: str | None = None
    threads: int | None = Field(None, ge=1)
    # DuckDB's limit while the model stages (alignment, SCI, CLV) run. They read one business
    # unit's rows at a time and fit them in Python, so DuckDB needs little there, and what
    # its cache does not hold is left to the fits. The smaller of the two applies there.
    # None: memory_limit.
    models_memory_limit: str | None = "2GB"

    _sizes = field_validator("memory_limit", "models_memory_limit")(_size_or_none)

    def for_models(self) -> DuckDBSettings:
        """The settings for the model stages: the smaller of the two limits."""
        limits = [v for v in (self.models_memory_limit, self.memory_limit) if v is not None]
        return self.model_copy(
            update={"memory_limit": min(limits, key=parse_size) if limits else None}
        )


class ModelsSettings(_Strict):
    # The model stages (alignment, SCI) fit business units side by side, one per core. With a
    # budget (e.g. "5GB"), a unit starts only when its estimated memory fits beside that of
    # the units already running; a unit larger than the budget runs alone. None: one per
    # core whatever their size. The estimate is per account-month, measured in bench/.
    memory_budget: str | None = None

    _sizes = field_validator("memory_budget")(_size_or_none)

    @property
    def memory_budget_bytes(self) -> int | None:
        return None if self.memory_budget is None else parse_size(self.memory_budget)


class PrivacySettings(_Strict):
    # Free text (the contracts' free_text columns, a file's columns beyond its contract, the
    # text of a malformed CSV record) has e-mail addresses and phone numbers replaced by
    # [email] and [phone] as it is loaded, before anything analysts can read: the text before
    # is not kept. false: loaded as written (only where the exports are scrubbed upstream).
    scrub: bool = True
    # More patterns to scrub: name -> regular expression (RE2, DuckDB's dialect); a match is
    # replaced by [name]. Applied before the built-in e-mail and phone patterns.
    patterns: dict[str, str] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, v: dict[str, str]) -> dict[str, str]:
        import duckdb

        con = duckdb.connect()
        try:
            for name, pattern in v.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or name in ("email", "phone"):
                    raise ValueError(
                        f"pattern name {name!r} must be lower case letters, digits and _, "
                        "and not email or phone (built in)"
                    )
                try:
                    empty = con.execute("select regexp_matches('', ?)", [pattern]).fetchone()[0]
                except duckdb.Error as exc:
                    raise ValueError(
                        f"pattern {name}: not a valid regular expression: {exc}"
                    ) from None
                if empty:  # it would put a placeholder between every two characters
                    raise ValueError(f"pattern {name}: matches the empty text")
        finally:
            con.close()
        return v


class _Channel(_Strict):
    # Seconds to wait for the endpoint before the delivery is reported as failed.
    timeout_seconds: float = Field(10.0, gt=0, le=120)


class _UrlChannel(_Channel):
    # The endpoint: `url` written here, or `url_env` naming the environment variable that holds
    # it (a Slack webhook URL is a secret: keep it out of the file).
    url: str | None = None
    url_env: str | None = None

    @model_validator(mode="after")
    def _one_url(self):
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, not {self.url[:12]!r}")
        return self


class WebhookChannel(_UrlChannel):
    # POSTs {"kind": ..., "summary": ..., "details": {...}} as JSON.
    type: Literal["webhook"]


class SlackChannel(_UrlChannel):
    # A Slack incoming webhook: POSTs {"text": ...}.
    type: Literal["slack"]


class EmailChannel(_Channel):
    type: Literal["email"]
    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    to: list[str] = Field(min_length=1)
    sender: str = "cxalign@localhost"
    # Log in with this user and the password in the environment variable password_env.
    username: str | None = None
    password_env: str | None = None
    starttls: bool = False


Channel = Annotated[WebhookChannel | SlackChannel | EmailChannel, Field(discriminator="type")]


class TypeChangeSettings(_Strict):
    # A unit's change of CX type is announced once the new type has held for
    # `established_nights` published nights in a row at established confidence, or for
    # `any_confidence_nights` in a row at any confidence (0: never on that ground). A change
    # to Inconclusive is not a type change. The defaults (at once when established; else once
    # the type survived the next month's refit) and their measured false-alarm rate and
    # detection delay: docs/runbook.md#alerts (bench/false_alarms.py).
    established_nights: int = Field(1, ge=1)
    any_confidence_nights: int = Field(32, ge=0)


class AlertsSettings(_Strict):
    channels: list[Channel] = Field(default_factory=list)
    type_change: TypeChangeSettings = TypeChangeSettings()
    # A source's quarantined share of rows tonight this many points (0.02 = 2 points) above
    # its median over the last `baseline_nights` published nights is announced.
    quarantine_jump: float = Field(0.02, gt=0.0, le=1.0)
    baseline_nights: int = Field(7, ge=1)


class Settings(_Strict):
    # Reporting currency (ISO-4217). Revenue rows in another currency are
    # quarantined: MRR in different currencies cannot be summed.
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    ingest: IngestSettings = IngestSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    clv: CLVSettings = CLVSettings()
    alignment: AlignmentSettings = AlignmentSettings()
    # What-if scenarios (models/whatif.py): bootstrap replicates, months projected, backtest.
    whatif: WhatifConfig = WhatifConfig()
    # The Support Contribution Index: weights and targets over sci-v1's defaults
    # (models/sci.py DEFAULTS); checked when the file is loaded.
    sci: dict = Field(default_factory=dict)
    sources: dict[str, SourceSettings] = Field(default_factory=dict)
    schedule: ScheduleSettings = ScheduleSettings()
    duckdb: DuckDBSettings = DuckDBSettings()
    models: ModelsSettings = ModelsSettings()
    privacy: PrivacySettings = PrivacySettings()
    alerts: AlertsSettings = AlertsSettings()

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, v: dict[str, SourceSettings]) -> dict[str, SourceSettings]:
        unknown = sorted(set(v) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r}; sources are {', '.join(SOURCES)}")
        return v

    @field_validator("sci")
    @classmethod
    def _valid_sci(cls, v: dict) -> dict:
        from models.sci import parse_config

        parse_config(v)  # raises SCIConfigError (a ValueError) naming the setting
        return v

    def source(self, name: str) -> SourceSettings:
        return self.sources.get(name, SourceSettings())

    def cadence(self, name: str) -> str:
        """The source's expected cadence: its setting, else its default."""
        return self.source(name).cadence or DEFAULT_CADENCE.get(name, "none")


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate a config file; None gives the defaults."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping of settings at the top level")
    try:
        return Settings.model_validate(_drop_nulls(data))
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = "unknown setting" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"  {where}: {msg}")
        raise ConfigError(f"config file {path}:\n" + "\n".join(lines)) from None


def _drop_nulls(data):
    """An empty section or a key left as null means "the default"."""
    if isinstance(data, dict):
        return {k: _drop_nulls(v) for k, v in data.items() if v is not None}
    return data
