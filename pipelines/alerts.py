"""The night's alerts: what deserves a message, and sending it to the configured channels.

Rules (each alert is `Alert(kind, summary, details)`):

* `type_change`      a unit's CX type changed, announced with hysteresis (announced_changes)
* `check_failed`     a blocking check (a data contract, conservation, bad-row share) failed
* `night_failed`     the night failed (nothing published), with the reasons
* `quarantine_jump`  the quarantined share of a source's rows in tonight's files jumped
                     above its median over recent nights
* `source_stale`     a source stopped arriving at its cadence (pipelines/freshness.py)
* `upload_abandoned` an upload in progress left untouched too long (the landing sensor's)

Channels (`alerts.channels` in cxalign.yml): a generic webhook (POST of the alert as JSON),
a Slack incoming webhook, e-mail over SMTP. Secrets (a Slack URL, an SMTP password) come from
environment variables named in the config, are read when a message is sent and never printed:
a delivery's failure is reported with the channel's label and in words that quote nothing of
the URL or password (_failure). A channel that fails, or takes longer than its deadline, is
reported and never fails the night.
"""

from __future__ import annotations

import hashlib
import json
import os
import smtplib
import threading
import unicodedata
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from email.message import EmailMessage
from urllib.parse import urlsplit

import duckdb
import polars as pl

from pipelines.freshness import stale_sentence
from pipelines.settings import (
    AlertsSettings,
    Channel,
    EmailChannel,
    TypeChangeSettings,
    WebhookChannel,
)

INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class Alert:
    kind: str
    summary: str
    details: dict = field(default_factory=dict)

    def payload(self) -> dict:
        return {"kind": self.kind, "summary": self.summary, "details": self.details}

    @property
    def subject(self) -> str:
        """What the alert is about, with its kind and as-of date its key in ops.alerts_sent:
        the unit and the type it moved to, the source, the check, or the night."""
        d = self.details
        if self.kind == "type_change":
            return f"{d.get('business_unit')} -> {d.get('to_type')}"
        if self.kind == "quarantine_jump" and d.get("quarantined_files_digest"):
            # which files it is about: a later run of the night that loads a new bad file is
            # a new alert; a rerun of the same files is the same one
            return f"{d.get('source')} (files {str(d['quarantined_files_digest'])[:16]})"
        return str(d.get("source") or d.get("check") or "night")


# --- type changes, with hysteresis -------------------------------------------------------

TypeChangeRule = TypeChangeSettings


def announced_changes(history: pl.DataFrame, rule: TypeChangeRule) -> pl.DataFrame:
    """The type changes the rule announces over a verdict history.

    `history`: one row per unit and published night (business_unit, as_of, quadrant,
    confidence), as analytics.unit_alignment_history holds it. A *run* is a stretch of
    consecutive published nights (as-of dates of the history, whichever unit they hold; a
    night that failed publishes none) of one unit with the same type: a published night
    without the unit ends it. A run qualifies on the night its type
    has held `rule.established_nights` nights in a row at established confidence, or
    `rule.any_confidence_nights` nights in a row at any confidence (0: never on that ground).
    Inconclusive never qualifies (a loss of evidence is not a change of type). The first
    qualifying run of a unit sets its announced type silently; each later qualifying run of a
    different type than the one announced before it is a change, announced on the night it
    qualifies. Returns business_unit, as_of, from_type, to_type, confidence, nights_held.
    """
    empty = pl.DataFrame(
        schema={"business_unit": pl.String, "as_of": pl.Date, "from_type": pl.String,
                "to_type": pl.String, "confidence": pl.String, "nights_held": pl.Int64}
    )  # fmt: skip
    if history.height == 0:
        return empty
    # Nights are the published nights (every as-of date in the history), in order: a unit
    # missing from one (no verdict that night) breaks its run, as a change of type does.
    nights = history.select(pl.col("as_of").unique().sort()).with_row_index("night")
    unit = "business_unit"
    h = (
        history.select("business_unit", "as_of", "quadrant", "confidence")
        .join(nights, on="as_of")
        .sort("business_unit", "as_of")
        .with_columns(
            gap=(pl.col("night").diff().over(unit).fill_null(1) != 1),
            est=(pl.col("confidence") == "established"),
        )
        .with_columns(
            run=(pl.col("gap") | (pl.col("quadrant") != pl.col("quadrant").shift(1).over(unit))
                 .fill_null(True)).cum_sum().over(unit),  # fmt: skip
        )
        .with_columns(
            # a stretch of established nights within a run
            est_run=pl.struct("run", "est").rle_id().over(unit),
        )
        .with_columns(
            held=pl.int_range(pl.len()).over("business_unit", "run") + 1,
            held_est=pl.int_range(pl.len()).over("business_unit", "est_run") + 1,
        )
    )
    e, a = rule.established_nights, rule.any_confidence_nights
    qualifies = (pl.col("est") & (pl.col("held_est") >= e)) | (
        pl.lit(a > 0) & (pl.col("held") >= max(a, 1))
    )
    first = (
        h.filter(qualifies & (pl.col("quadrant") != INCONCLUSIVE))
        .group_by("business_unit", "run")
        .agg(pl.all().sort_by("night").first())
        .sort("business_unit", "night")
    )
    # the announced type before each qualifying run is the previous qualifying run's type
    changes = first.with_columns(
        from_type=pl.col("quadrant").shift(1).over("business_unit")
    ).filter(pl.col("from_type").is_not_null() & (pl.col("from_type") != pl.col("quadrant")))
    if changes.height == 0:
        return empty
    return changes.select(
        "business_unit", "as_of", "from_type", pl.col("quadrant").alias("to_type"),
        "confidence", pl.col("held").cast(pl.Int64).alias("nights_held"),
    ).sort("as_of", "business_unit")  # fmt: skip


def _type_change_alerts(con: duckdb.DuckDBPyConnection, as_of: date, rule) -> list[Alert]:
    history = con.sql(
        "select business_unit, as_of, quadrant, confidence, quadrant_probability "
        "from analytics.unit_alignment_history where as_of <= ? order by business_unit, as_of",
        params=[as_of],
    ).pl()
    changes = announced_changes(history, rule).filter(pl.col("as_of") == as_of)
    tonight = history.filter(pl.col("as_of") == as_of)
    probability = dict(zip(tonight["business_unit"], tonight["quadrant_probability"], strict=True))
    alerts = []
    for c in changes.iter_rows(named=True):  # a handful of units at most
        p = probability.get(c["business_unit"])
        held = (
            f"held {c['nights_held']} night(s)"
            if c["confidence"] != "established"
            else "established confidence"
        )
        alerts.append(
            Alert(
                "type_change",
                f"{c['business_unit']}: CX type changed from {c['from_type']} to {c['to_type']}"
                f" ({held}" + (f", probability {p:.0%})" if p is not None else ")"),
                {"business_unit": c["business_unit"], "as_of": str(as_of),
                 "from_type": c["from_type"], "to_type": c["to_type"],
                 "confidence": c["confidence"], "nights_held": c["nights_held"],
                 "probability": p},
            )  # fmt: skip
        )
    return alerts


# --- the night's alerts ------------------------------------------------------------------


def night_alerts(
    con: duckdb.DuckDBPyConnection, as_of: date, settings: AlertsSettings
) -> list[Alert]:
    """The alerts of a published night, from its warehouse (the history tables)."""
    alerts = _type_change_alerts(con, as_of, settings.type_change)
    # tonight's own files (loaded_quarantine_share): a source's share over all its files
    # hardly moves when a small new file is wholly bad
    jumps = con.execute(
        """
        with shares as (
            select source, as_of, loaded_quarantine_share as share, rows_loaded,
                   rows_loaded_quarantined, quarantined_files_digest
            from analytics.ingest_history
            where loaded_quarantine_share is not null
        ),
        tonight as (
            select * from shares where as_of = ?
        ),
        before as (
            select source, as_of, share,
                   row_number() over (partition by source order by as_of desc) as k
            from shares
            where as_of < ?
        ),
        baseline as (
            select source, median(share) as baseline_share, count(*) as nights
            from before where k <= ? group by source
        ),
        final as (
            select t.source, t.share, t.rows_loaded_quarantined, t.rows_loaded,
                   b.baseline_share, b.nights, t.quarantined_files_digest
            from tonight as t
            join baseline as b using (source)
            where t.share - b.baseline_share >= ?
        )
        select * from final order by source
        """,
        [as_of, as_of, settings.baseline_nights, settings.quarantine_jump],
    ).fetchall()
    for src, share, bad, loaded, base, nights, files_digest in jumps:
        alerts.append(
            Alert(
                "quarantine_jump",
                f"{src}: {share:.1%} of the rows in tonight's files quarantined ({bad:,} of "
                f"{loaded:,}), against a median of {base:.1%} over the last {nights} night(s) "
                "that loaded files",
                {"source": src, "as_of": str(as_of), "quarantine_share": share,
                 "rows_loaded": loaded, "rows_loaded_quarantined": bad,
                 "baseline_share": base, "baseline_nights": nights,
                 "threshold_points": settings.quarantine_jump,
                 "quarantined_files_digest": files_digest},
            )  # fmt: skip
        )
    # announced on the night a source becomes stale, not again every night it stays so
    stale = con.execute(
        """
        select t.source, t.days_since_arrival, t.cadence, t.last_arrived_at
        from analytics.ingest_history as t
        where t.as_of = ? and t.stale
          and not coalesce((
              select p.stale from analytics.ingest_history as p
              where p.source = t.source and p.as_of < t.as_of
              order by p.as_of desc limit 1
          ), false)
        order by t.source
        """,
        [as_of],
    ).fetchall()
    for src, days, cadence, last in stale:
        alerts.append(
            Alert(
                "source_stale",
                f"{stale_sentence(src, days)} (expected {cadence})",
                {"source": src, "as_of": str(as_of), "days_since_arrival": days,
                 "cadence": cadence, "last_arrived_at": str(last)},
            )  # fmt: skip
        )
    return alerts


def failed_night_alerts(
    run_id: str, as_of: date | str | None, failed_checks: list[str], reasons: list[str]
) -> list[Alert]:
    """A failed night: one alert per failed blocking check, and one for the night."""
    alerts = [
        Alert("check_failed", f"blocking check failed: {text}",
              {"run_id": run_id, "as_of": str(as_of), "check": text})  # fmt: skip
        for text in failed_checks
    ]
    alerts.append(
        Alert(
            "night_failed",
            f"the night as of {as_of} failed; nothing was published"
            + (f": {reasons[0]}" if reasons else ""),
            {"run_id": run_id, "as_of": str(as_of), "reasons": reasons[:20]},
        )
    )
    return alerts


def failure_reasons(events: Iterable) -> tuple[list[str], list[str]]:
    """(failed blocking checks, every reason) of a failed run from its Dagster events."""
    events = list(events)
    checks: list[str] = []
    for event in events:
        data = event.event_specific_data
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not data.passed:
            message = data.description or (
                data.metadata.get("message").value if data.metadata.get("message") else ""
            )
            checks.append(message or f"check {data.check_name} on {data.asset_key.to_user_string()}")
    lines = list(checks)
    for event in events:
        if event.event_type_value == "STEP_FAILURE":
            err = event.event_specific_data.error
            # Dagster wraps the asset's exception; show the asset's own.
            while err.cause is not None and err.cls_name.startswith("Dagster"):
                err = err.cause
            text = err.message.strip()
            if "blocking asset check" in text:
                continue  # already explained by the check itself
            lines.append(f"{event.step_key}: {text.splitlines()[0] if text else err.cls_name}")
    return checks, lines or ["the run failed; see the Dagster event log"]


# --- channels ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    channel: str  # the channel's label: never a secret
    ok: bool  # every alert it carried was delivered
    error: str = ""
    messages: int = 0
    carried: tuple[tuple[str, str], ...] = ()  # (kind, subject) of each alert it carried
    sent: tuple[tuple[str, str], ...] = ()  # of those, the ones it delivered
    channel_id: str = ""  # the channel's identity (channel_id): how ops.alerts_sent knows it


def _secret(name: str | None) -> str | None:
    """The value of the environment variable `name`, read when a message is sent and never
    kept (what dg.EnvVar does for a resource's field; here the field is in cxalign.yml, and
    this module stays importable without Dagster, as pipelines/*.py are)."""
    if not name:
        return None
    return os.environ.get(name)


def channel_id(channel: Channel) -> str:
    """A channel's identity, stable whatever its place in the config and free of secrets: its
    type and a digest of the settings that say where messages go (the URL or the name of the
    variable holding it; the SMTP host, port and recipients). ops.alerts_sent knows channels
    by it, so reordering, adding or removing channels neither sends again what one delivered
    nor forgets what one failed to deliver."""
    if isinstance(channel, EmailChannel):
        where = [channel.smtp_host, channel.smtp_port, sorted(channel.to)]
    else:
        where = ["url", channel.url] if channel.url else ["url_env", channel.url_env]
    digest = hashlib.sha256(json.dumps([channel.type, *where]).encode()).hexdigest()
    return f"{channel.type}:{digest[:16]}"


def label(channel: Channel, index: int) -> str:
    """How a channel is named in output (its place in the config, for a reader; records use
    channel_id): no URL path, no user or password, no secret."""
    if isinstance(channel, EmailChannel):
        return f"email #{index} ({channel.smtp_host}:{channel.smtp_port}, {len(channel.to)} recipient(s))"
    if channel.url_env:
        where = f"${channel.url_env}"
    else:
        parts = urlsplit(channel.url)
        where = (parts.hostname or "?") + (f":{parts.port}" if parts.port else "")
    return f"{channel.type} #{index} ({where})"


class ChannelError(Exception):
    """A channel's failure in cxalign's own words, which hold no secret (what an exception
    from urllib, http.client or smtplib says may quote the URL, its token or its password)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: urllib follows a 302 with a GET without the body, and the alert
    would be lost while reported sent."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _post_json(url: str, body: dict, timeout: float) -> None:
    if urlsplit(url).scheme not in ("http", "https"):
        raise ChannelError("its URL is not an http(s) URL")
    req = urllib.request.Request(
        url,
        data=json.dumps(body, default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "cxalign"},
        method="POST",
    )
    with _OPENER.open(req, timeout=timeout) as resp:
        if not 200 <= resp.status < 300:
            raise ChannelError(f"HTTP {resp.status}")


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn escaping: `&`, `<` and `>` are control characters (`<!channel>` would
    notify the whole channel, `<http://x|y>` is a link); Slack asks for exactly these three
    to be replaced by their HTML entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_text(alert: Alert) -> str:
    return f"*cxalign {alert.kind.replace('_', ' ')}*: {_slack_escape(alert.summary)}"


def _one_line(text: str) -> str:
    """A header's value on one line: CR, LF and the other line breaks (a unit name or a check
    message may hold them) would end the header, or make the SMTP library refuse the message;
    the other control characters (Unicode category Cc: NUL, ESC, ...) have no place in a
    subject either (a NUL truncates it in some clients, an ESC drives a terminal)."""
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(text.split())


def _email(channel: EmailChannel, alerts: list[Alert]) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = channel.sender
    msg["To"] = ", ".join(channel.to)
    msg["Subject"] = _one_line(
        f"cxalign: {alerts[0].summary}" if len(alerts) == 1 else f"cxalign: {len(alerts)} alerts"
    )[:180]
    body = []
    for a in alerts:
        body += [f"[{a.kind}] {a.summary}", json.dumps(a.details, indent=1, default=str), ""]
    msg.set_content("\n".join(body))
    return msg


def _send_one(channel: Channel, alerts: list[Alert], sent: list[tuple[str, str]]) -> int:
    """Send the alerts; each one delivered is appended to `sent` as it is (a webhook or Slack
    gets one message per alert, and may take one and refuse the next: the others are still
    tried, and the first failure is raised at the end)."""
    if isinstance(channel, EmailChannel):
        password = _secret(channel.password_env)
        if channel.password_env and password is None:
            raise ChannelError(f"environment variable {channel.password_env} is not set")
        with smtplib.SMTP(channel.smtp_host, channel.smtp_port, timeout=channel.timeout_seconds) as smtp:
            if channel.starttls:
                smtp.starttls()
            if password is not None:
                smtp.login(channel.username or channel.sender, password)
            smtp.send_message(_email(channel, alerts))
        sent.extend((a.kind, a.subject) for a in alerts)
        return 1
    url = channel.url or _secret(channel.url_env)
    if not url:
        raise ChannelError(f"environment variable {channel.url_env} is not set")
    failure: Exception | None = None
    for alert in alerts:
        body = alert.payload() if isinstance(channel, WebhookChannel) else {"text": _slack_text(alert)}
        try:
            _post_json(url, body, channel.timeout_seconds)
        except Exception as exc:  # noqa: BLE001 (the next alert may still go through)
            failure = failure or exc
            continue
        sent.append((alert.kind, alert.subject))
    if failure is not None:
        raise failure
    return len(alerts)


def _failure(exc: BaseException) -> str:
    """What a delivery's failure is, in words that quote nothing of the URL or the password:
    cxalign's own message, an HTTP status or SMTP reply code, else the exception's kind."""
    if isinstance(exc, ChannelError):
        return str(exc)
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"  # (its reason phrase may repeat the URL's path)
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code} ({type(exc).__name__})"
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
        exc = exc.reason  # the socket's error: refused, not found, timed out
    return type(exc).__name__


def _deadline(channel: Channel, alerts: list[Alert]) -> float:
    """How long a channel may take in all: timeout_seconds for each message it sends (a
    socket's timeout bounds each read, not the whole: a server answering a byte a second
    would hold the night)."""
    messages = 1 if isinstance(channel, EmailChannel) else len(alerts)
    return channel.timeout_seconds * messages


def send(
    alerts: list[Alert], channels: list[Channel], delivered: frozenset = frozenset()
) -> list[Delivery]:
    """Send the alerts to every channel; a failing channel is reported, never raised, and
    none takes longer than its deadline (the send goes on in a daemon thread, abandoned).
    `delivered`: (kind, subject, channel_id) of the alerts a channel already delivered
    for this night (ops.alerts_sent), not sent to it again; a channel with nothing left to
    send is not contacted. Each Delivery says which alerts the channel delivered (`sent`)."""
    if not alerts:
        return []
    deliveries = []
    for i, channel in enumerate(channels, start=1):
        name, ident = label(channel, i), channel_id(channel)
        todo = [a for a in alerts if (a.kind, a.subject, ident) not in delivered]
        if not todo:
            continue
        carried = tuple((a.kind, a.subject) for a in todo)
        outcome: dict = {}
        sent: list[tuple[str, str]] = []

        def attempt(channel=channel, outcome=outcome, todo=todo, sent=sent) -> None:
            try:
                outcome["messages"] = _send_one(channel, todo, sent)
            except Exception as exc:  # noqa: BLE001 (a channel never fails the night)
                outcome["error"] = _failure(exc)

        worker = threading.Thread(target=attempt, name=f"cxalign-alert-{i}", daemon=True)
        worker.start()
        deadline = _deadline(channel, todo)
        worker.join(deadline)
        done = tuple(sent)  # (the worker abandoned at the deadline may still append)
        if worker.is_alive():
            error = f"no answer within {deadline:g} s"
        else:
            error = outcome.get("error", "")
        deliveries.append(
            Delivery(name, not error and len(done) == len(carried), error,
                     messages=outcome.get("messages", len(done)), carried=carried, sent=done,
                     channel_id=ident)  # fmt: skip
        )
    return deliveries


def describe(deliveries: list[Delivery]) -> list[str]:
    return [
        f"{d.channel}: sent ({d.messages} message(s))" if d.ok
        else f"{d.channel}: FAILED ({d.error})"
        + (f"; {len(d.sent)} of {len(d.carried)} alert(s) delivered" if d.sent else "")
        for d in deliveries
    ]  # fmt: skip


def test_alert() -> Alert:
    return Alert("test", "cxalign test message: this channel works", {"test": True})


def notify(
    alerts: list[Alert], settings: AlertsSettings, log: Callable[[str], None],
    delivered: frozenset = frozenset(),
) -> list[Delivery]:  # fmt: skip
    """Send the alerts and say what happened, one line per alert and per channel. An alert
    every channel already delivered for this night (`delivered`, see send) is held: said,
    not sent again."""
    if not alerts:
        return []
    names = [channel_id(c) for c in settings.channels]
    for a in alerts:
        held = sum((a.kind, a.subject, n) in delivered for n in names)
        note = (
            "" if not held
            else "  (held: already sent for this night)" if held == len(names)
            else f"  (held on {held} of {len(names)} channels: already sent for this night)"
        )  # fmt: skip
        log(f"alert    [{a.kind}] {a.summary}{note}")
    if not settings.channels:
        log("alert    no channel configured (alerts.channels): not sent")
        return []
    deliveries = send(alerts, settings.channels, delivered)
    for line in describe(deliveries):
        log(f"alert    {line}")
    return deliveries


# --- what was sent: ops.alerts_sent ------------------------------------------------------

# The published night's alerts: what they say follows from the published history of their
# as-of date, so a rerun or backfill of the night would say it again. A failed night's alerts
# are about its run: a rerun that fails again is news, and is sent.
HELD_KINDS = ("type_change", "quarantine_jump", "source_stale")


def ensure_sent_table(con: duckdb.DuckDBPyConnection) -> None:
    """ops.alerts_sent: one row per alert and night (kind, subject, as_of), with each
    channel's outcome. Channels are known by channel_id and named by their label (no URL, no
    password); the alert's summary and details are not kept."""
    con.execute("create schema if not exists ops")
    con.execute(
        """
        create table if not exists ops.alerts_sent (
            as_of date not null,
            kind varchar not null,
            subject varchar not null,
            run_id varchar,
            delivered boolean not null,
            channels json not null,
            first_sent_at timestamptz not null,
            last_sent_at timestamptz not null,
            primary key (as_of, kind, subject)
        )
        """
    )


def delivered_before(con: duckdb.DuckDBPyConnection, as_of: date | str) -> frozenset:
    """(kind, subject, channel_id) of this night's alerts a channel delivered, as
    ops.alerts_sent records them (none when the table is not there: an older warehouse; a
    record from before channels had an id holds nothing, and is sent once more)."""
    held = con.execute(
        "select count(*) from duckdb_tables() where database_name = current_database() "
        "and schema_name = 'ops' and table_name = 'alerts_sent'"
    ).fetchone()[0]
    if not held:
        return frozenset()
    rows = con.execute(
        """
        select a.kind, a.subject, c.channel_id
        from ops.alerts_sent as a,
             unnest(from_json(a.channels,
                              '[{"channel_id": "VARCHAR", "delivered": "BOOLEAN"}]')) as u(c)
        where a.as_of = ?::date and list_contains(?, a.kind) and c.delivered
          and c.channel_id is not null
        """,
        [str(as_of), list(HELD_KINDS)],
    ).fetchall()
    return frozenset(rows)


def record_sent(
    con: duckdb.DuckDBPyConnection, as_of: date | str, run_id: str, alerts: list[Alert],
    deliveries: list[Delivery], now: datetime,
) -> int:  # fmt: skip
    """Add this attempt's outcomes to ops.alerts_sent, per alert and channel (a channel's new
    outcome for an alert replaces its earlier one; one that delivered before and was not tried
    again stays delivered; a channel that delivered one alert and failed another has each
    recorded as it went). Returns the alerts recorded."""
    if not alerts or not deliveries:
        return 0
    ensure_sent_table(con)
    previous = {
        (kind, subject): (json.loads(channels), first)
        for kind, subject, channels, first in con.execute(
            "select kind, subject, channels, first_sent_at from ops.alerts_sent "
            "where as_of = ?::date",
            [str(as_of)],
        ).fetchall()
    }
    rows = []
    for a in {(a.kind, a.subject): a for a in alerts}.values():  # a handful of alerts
        key = (a.kind, a.subject)
        before, first = previous.get(key, ([], now))
        tried: dict[str, dict] = {}
        for d in deliveries:
            if key not in d.carried:
                continue
            ok = key in d.sent or tried.get(d.channel_id, {}).get("delivered", False)
            tried[d.channel_id] = {"channel_id": d.channel_id, "channel": d.channel,
                                   "delivered": ok, "outcome": "sent" if ok else d.error,
                                   "at": now.isoformat()}  # fmt: skip
        if not tried:
            continue
        channels = [c for c in before if c.get("channel_id") not in tried] + list(tried.values())
        rows.append((str(as_of), a.kind, a.subject, run_id,
                     all(c["delivered"] for c in channels), json.dumps(channels), first, now))  # fmt: skip
    if rows:
        con.executemany(
            "insert or replace into ops.alerts_sent values (?::date, ?, ?, ?, ?, ?, ?, ?)", rows
        )
    return len(rows)
