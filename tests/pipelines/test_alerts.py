"""Alerts: the rules on a verdict and ingestion history, and the channels against real local
endpoints (an HTTP server for the webhook and Slack, an SMTP server for e-mail)."""

import json
import socket
import threading
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import polars as pl
import pytest
from aiosmtpd.controller import Controller

from pipelines.alerts import (
    Alert,
    TypeChangeRule,
    announced_changes,
    failed_night_alerts,
    night_alerts,
    send,
)
from pipelines.cli import main
from pipelines.history import ensure_history_tables
from pipelines.settings import AlertsSettings, Settings

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


def _history(unit_types: list[tuple[str, str]], start=date(2026, 1, 1), unit="Alpha"):
    return pl.DataFrame(
        {
            "business_unit": unit,
            "as_of": [start + timedelta(days=i) for i in range(len(unit_types))],
            "quadrant": [q for q, _ in unit_types],
            "confidence": [c for _, c in unit_types],
        }
    )


E, P = "established", "provisional"


def test_a_flip_at_provisional_confidence_is_not_announced_until_it_holds():
    nights = [("Innovative", E)] * 3 + [("Inflicted", P)] * 2 + [("Innovative", E)] * 2
    rule = TypeChangeRule(established_nights=1, any_confidence_nights=3)
    assert announced_changes(_history(nights), rule).height == 0
    # held three nights at provisional confidence: announced on the third
    nights = [("Innovative", E)] * 3 + [("Inflicted", P)] * 3
    changes = announced_changes(_history(nights), rule)
    assert changes.select("as_of", "from_type", "to_type", "nights_held").rows() == [
        (date(2026, 1, 6), "Innovative", "Inflicted", 3)
    ]


def test_established_confidence_announces_at_once_and_inconclusive_is_not_a_type():
    nights = [("Ineffective", E)] * 2 + [("Inconclusive", P)] * 4 + [("Ineffective", P)]
    nights += [("Innovative", E)]
    rule = TypeChangeRule(established_nights=1, any_confidence_nights=0)
    changes = announced_changes(_history(nights), rule)
    assert changes.select("as_of", "from_type", "to_type").rows() == [
        (date(2026, 1, 8), "Ineffective", "Innovative")
    ]
    # two established nights needed: one is not enough
    strict = TypeChangeRule(established_nights=2, any_confidence_nights=0)
    assert announced_changes(_history(nights), strict).height == 0


def test_hysteresis_counts_consecutive_published_nights_not_rows():
    """Alpha is Inflicted on three of Beta's five nights in a row, missing on the two between:
    three rows, never three consecutive nights; so no change is announced."""
    rule = TypeChangeRule(established_nights=1, any_confidence_nights=3)
    alpha = _history([("Innovative", E)] * 3 + [("Inflicted", P)] * 3)
    alpha = alpha.with_columns(
        as_of=pl.Series([date(2026, 1, d) for d in (1, 2, 3, 4, 6, 8)])
    )
    beta = _history([("Inactive", E)] * 8, unit="Beta")
    assert announced_changes(pl.concat([alpha, beta]), rule).height == 0
    # on consecutive published nights it is announced, whatever the calendar days between
    # them (a night that failed publishes none: 5 and 7 are not nights here)
    spaced = alpha.with_columns(pl.col("as_of").dt.offset_by("1d"))
    assert announced_changes(spaced, rule).select("as_of", "nights_held").rows() == [
        (date(2026, 1, 9), 3)
    ]


def test_the_first_type_a_unit_gets_is_not_a_change():
    changes = announced_changes(
        _history([("Inconclusive", P)] * 2 + [("Inactive", E)] * 3), TypeChangeRule()
    )
    assert changes.height == 0


# --- the night's rules, on a working database's history tables ----------------------------


def _warehouse(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("set TimeZone = 'UTC'")
    ensure_history_tables(con)
    return con


def _insert_unit_night(con, as_of, unit, quadrant, confidence, probability=0.9):
    con.execute(
        "insert into analytics.unit_alignment_history by name select ?::date as as_of, "
        "? as business_unit, 'r' as run_id, now() as published_at, 'retention' as outcome_tested,"
        " ? as quadrant, ? as quadrant_probability, ? as confidence, 'strong' as link_verdict, "
        "'high' as execution_level, 'alignment-v2' as method_version",
        [as_of, unit, quadrant, probability, confidence],
    )


def _insert_source_night(con, as_of, source, share, stale=False, days=0):
    """A night of a source that loaded 1,000 rows, `share` of them quarantined."""
    con.execute(
        "insert into analytics.ingest_history by name select ?::date as as_of, ? as source, "
        "'r' as run_id, now() as published_at, 1000 as rows_read, ? as quarantine_share, "
        "'daily' as cadence, ? as stale, ? as days_since_arrival, 1000 as rows_loaded, "
        "round(? * 1000)::bigint as rows_loaded_quarantined, ? as loaded_quarantine_share",
        [as_of, source, share, stale, days, share, share],
    )


def test_night_alerts_announce_a_type_change_a_quarantine_jump_and_a_stale_source(tmp_path):
    con = _warehouse(tmp_path)
    tonight = date(2026, 11, 10)
    for k in range(8, 0, -1):
        night = tonight - timedelta(days=k)
        _insert_unit_night(con, night, "Alpha", "Innovative", E)
        _insert_unit_night(con, night, "Beta", "Inactive", E)
        _insert_source_night(con, night, "support_tickets", 0.010)
        _insert_source_night(con, night, "revenue", 0.004)
        _insert_source_night(con, night, "survey_responses", 0.0, stale=k == 1, days=3)
    _insert_unit_night(con, tonight, "Alpha", "Inflicted", E, probability=0.93)
    _insert_unit_night(con, tonight, "Beta", "Inactive", E)
    _insert_source_night(con, tonight, "support_tickets", 0.045)  # +3.5 points: a jump
    _insert_source_night(con, tonight, "revenue", 0.015)  # +1.1 points: not
    _insert_source_night(con, tonight, "survey_responses", 0.0, stale=True, days=4)  # still
    _insert_source_night(con, tonight, "accounts", 0.0, stale=True, days=9)  # newly stale
    alerts = night_alerts(con, tonight, AlertsSettings())
    by_kind = {a.kind: [x for x in alerts if x.kind == a.kind] for a in alerts}
    assert sorted(by_kind) == ["quarantine_jump", "source_stale", "type_change"]
    (change,) = by_kind["type_change"]
    assert change.details["business_unit"] == "Alpha"
    assert change.details["from_type"] == "Innovative" and change.details["to_type"] == "Inflicted"
    assert "Alpha: CX type changed from Innovative to Inflicted" in change.summary
    assert "93%" in change.summary
    (jump,) = by_kind["quarantine_jump"]
    assert jump.details["source"] == "support_tickets"
    assert jump.details["baseline_share"] == pytest.approx(0.010)
    (stale,) = by_kind["source_stale"]  # survey_responses was already stale last night
    assert stale.summary == "accounts last arrived 9 days ago (expected daily)"
    # the next night, nothing new: Alpha's change was announced once
    _insert_unit_night(con, tonight + timedelta(days=1), "Alpha", "Inflicted", E)
    assert not [a for a in night_alerts(con, tonight + timedelta(days=1), AlertsSettings())
                if a.kind == "type_change"]  # fmt: skip


def test_a_failed_night_gives_one_alert_per_failed_check_and_one_for_the_night():
    alerts = failed_night_alerts(
        "run-1", date(2026, 11, 1), ["revenue: 9% of rows broke the data contract"],
        ["revenue: 9% of rows broke the data contract", "staging/revenue: failed"],
    )  # fmt: skip
    assert [a.kind for a in alerts] == ["check_failed", "night_failed"]
    assert alerts[1].details["reasons"][1] == "staging/revenue: failed"
    assert "nothing was published" in alerts[1].summary


# --- channels, against real local endpoints ---------------------------------------------


class _Sink(BaseHTTPRequestHandler):
    received: list[tuple[str, dict]] = []
    fail_paths: set[str] = set()
    fail_kinds: set[str] = set()  # alerts of these kinds are refused (HTTP 500)

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        refused = self.path in self.fail_paths or body.get("kind") in self.fail_kinds
        self.send_response(500 if refused else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_sink():
    _Sink.received, _Sink.fail_paths, _Sink.fail_kinds = [], set(), set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Sink
    server.shutdown()
    server.server_close()


class _Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_sink():
    box = _Mailbox()
    with socket.socket() as probe:  # a free port (aiosmtpd checks it is up by connecting)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield "127.0.0.1", port, box
    controller.stop()


def _channels(url, smtp_host, smtp_port, **extra):
    return Settings.model_validate(
        {"alerts": {"channels": [
            {"type": "webhook", "url": f"{url}/cx"},
            {"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK"},
            {"type": "email", "smtp_host": smtp_host, "smtp_port": smtp_port,
             "to": ["cx-leads@example.com"], **extra},
        ]}}
    ).alerts.channels  # fmt: skip


def test_each_channel_delivers_the_alert(http_sink, smtp_sink, monkeypatch):
    url, sink = http_sink
    host, port, box = smtp_sink
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", url + SECRET_PATH)
    alert = Alert("type_change", "Alpha: CX type changed from Innovative to Inflicted",
                  {"business_unit": "Alpha", "to_type": "Inflicted"})  # fmt: skip
    deliveries = send([alert], _channels(url, host, port))
    assert [d.ok for d in deliveries] == [True, True, True], deliveries
    (hook_path, hook), (slack_path, slack) = sink.received
    assert hook_path == "/cx"
    assert hook == {"kind": "type_change", "summary": alert.summary,
                    "details": {"business_unit": "Alpha", "to_type": "Inflicted"}}  # fmt: skip
    assert slack_path == SECRET_PATH
    assert slack == {"text": f"*cxalign type change*: {alert.summary}"}
    ((rcpt, mail),) = box.messages
    assert rcpt == ["cx-leads@example.com"]
    assert mail["Subject"] == f"cxalign: {alert.summary}"
    assert '"to_type": "Inflicted"' in mail.get_payload()
    # no channel's label says the secret URL
    assert all("s3cr3t" not in d.channel for d in deliveries)


def test_a_failing_channel_is_reported_without_its_secret_and_the_others_still_deliver(
    http_sink, smtp_sink, monkeypatch
):
    url, sink = http_sink
    host, port, box = smtp_sink
    sink.fail_paths = {SECRET_PATH}
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", url + SECRET_PATH)
    deliveries = send([Alert("night_failed", "the night failed")], _channels(url, host, port))
    assert [d.ok for d in deliveries] == [True, False, True]
    assert "500" in deliveries[1].error
    assert "s3cr3t" not in deliveries[1].error + deliveries[1].channel
    assert deliveries[1].channel == "slack #2 ($CXALIGN_SLACK_WEBHOOK)"
    assert len(box.messages) == 1


def test_alerts_test_command_says_which_channels_worked(tmp_path, http_sink, smtp_sink,
                                                        monkeypatch, capsys):  # fmt: skip
    url, sink = http_sink
    host, port, box = smtp_sink
    monkeypatch.setenv("CXALIGN_SMTP_PASSWORD", "hunter2-secret")
    monkeypatch.delenv("CXALIGN_SLACK_WEBHOOK", raising=False)  # not set: that channel fails
    cfg = tmp_path / "cx.yml"
    cfg.write_text(
        "alerts:\n  channels:\n"
        f"    - {{type: webhook, url: \"{url}/cx\"}}\n"
        "    - {type: slack, url_env: CXALIGN_SLACK_WEBHOOK}\n"
        f"    - {{type: email, smtp_host: {host}, smtp_port: {port}, to: [\"cx-leads@example.com\"]}}\n"
    )
    assert main(["alerts", "test", "--config", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "webhook #1 (127.0.0.1:" in out and ": sent (1 message(s))" in out
    assert "slack #2 ($CXALIGN_SLACK_WEBHOOK): FAILED (environment variable " \
           "CXALIGN_SLACK_WEBHOOK is not set)" in out  # fmt: skip
    assert "2 of 3 channel(s) worked" in out
    assert sink.received[0][1]["kind"] == "test"
    assert box.messages[0][1]["Subject"] == "cxalign: cxalign test message: this channel works"
    assert "hunter2" not in out


def test_an_unreachable_endpoint_is_reported_not_raised():
    channels = Settings.model_validate(
        {"alerts": {"channels": [{"type": "webhook", "url": "http://127.0.0.1:9/x",
                                  "timeout_seconds": 2}]}}  # fmt: skip
    ).alerts.channels
    (d,) = send([Alert("test", "t")], channels)
    assert not d.ok and "refused" in d.error.lower()


def test_channel_settings_are_checked():
    with pytest.raises(ValueError, match="exactly one of url and url_env"):
        Settings.model_validate({"alerts": {"channels": [{"type": "slack"}]}})
    with pytest.raises(ValueError):
        Settings.model_validate({"alerts": {"channels": [{"type": "pager", "url": "http://x"}]}})


def test_the_example_config_has_the_issue_s_channel_shape():
    from pipelines.paths import PROJECT_ROOT
    from pipelines.settings import load_settings

    channels = load_settings(PROJECT_ROOT / "config" / "cxalign.example.yml").alerts.channels
    assert [c.type for c in channels] == ["webhook", "slack", "email"]
    assert channels[1].url_env == "CXALIGN_SLACK_WEBHOOK"
    assert channels[2].password_env == "CXALIGN_SMTP_PASSWORD"


def _raw_server(answer: bytes, drip: bool = False) -> tuple[str, threading.Event]:
    """A TCP server that answers each connection with `answer` (all at once, or a byte a
    second: a server that never finishes its reply)."""
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                for i in range(len(answer)) if drip else [None]:
                    if stop.is_set():
                        break
                    conn.sendall(answer if i is None else answer[i : i + 1])
                    if drip:
                        stop.wait(1)
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", stop


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n",  # not HTTP at all: http.client's BadStatusLine
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(120)) + b"\r\n",
        b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
    ],
)
def test_an_endpoint_that_answers_oddly_is_reported_not_raised_nor_sent(answer, monkeypatch):
    url, stop = _raw_server(answer)
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", url + SECRET_PATH)
    channels = Settings.model_validate(
        {"alerts": {"channels": [{"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK"}]}}
    ).alerts.channels
    try:
        (d,) = send([Alert("test", "t")], channels)
    finally:
        stop.set()
    assert not d.ok  # a redirect too: urllib would resend it as a GET without the alert
    assert "s3cr3t" not in d.error


def test_a_channel_that_never_finishes_answering_is_given_up_at_its_deadline():
    url, stop = _raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100,
                            drip=True)  # fmt: skip
    channels = Settings.model_validate(
        {"alerts": {"channels": [{"type": "webhook", "url": url, "timeout_seconds": 2}]}}
    ).alerts.channels
    started = time.monotonic()
    try:
        (d,) = send([Alert("test", "t")], channels)
    finally:
        stop.set()
    assert time.monotonic() - started < 4  # each read came within 2 s; the whole did not
    assert (d.ok, d.error) == (False, "no answer within 2 s")


@pytest.mark.parametrize(
    "secret_url",
    [
        "https://hooks.slack.com/services/T0AAA/B0BBB/s3cr3t Token123",  # a space in it
        "https://cx:s3cr3tPassw0rd@hooks.example.com/cx",  # a password in it
        "file:///etc/hostname",  # not http(s)
    ],
)
def test_a_malformed_secret_url_fails_its_channel_without_saying_it(secret_url, monkeypatch):
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", secret_url)
    channels = Settings.model_validate(
        {"alerts": {"channels": [{"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK",
                                  "timeout_seconds": 2}]}}  # fmt: skip
    ).alerts.channels
    (d,) = send([Alert("test", "t")], channels)
    assert not d.ok
    assert "s3cr3t" not in d.error and "hostname" not in d.error


def test_a_channel_s_label_never_shows_a_user_or_password():
    from pipelines.alerts import label

    (channel,) = Settings.model_validate(
        {"alerts": {"channels": [{"type": "webhook", "url": "https://cx:pw@hooks.example.com:8443/x"}]}}
    ).alerts.channels
    assert label(channel, 1) == "webhook #1 (hooks.example.com:8443)"


# --- a rerun does not send again what was delivered: ops.alerts_sent ----------------------


def _night_with_alerts(con, tonight):
    for k in range(3, 0, -1):
        _insert_unit_night(con, tonight - timedelta(days=k), "Alpha", "Innovative", E)
        _insert_source_night(con, tonight - timedelta(days=k), "accounts", 0.0)
    _insert_unit_night(con, tonight, "Alpha", "Inflicted", E)
    _insert_source_night(con, tonight, "accounts", 0.0, stale=True, days=9)


def test_a_rerun_holds_the_alerts_already_delivered_and_retries_a_failed_channel(
    tmp_path, http_sink, smtp_sink, monkeypatch
):
    from pipelines.cli import _notify_once

    url, sink = http_sink
    host, port, box = smtp_sink
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", url + SECRET_PATH)
    sink.fail_paths = {SECRET_PATH}  # Slack is down on the first attempt
    settings = Settings.model_validate(
        {"alerts": {"channels": [
            {"type": "webhook", "url": f"{url}/cx"},
            {"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK"},
            {"type": "email", "smtp_host": host, "smtp_port": port, "to": ["cx@example.com"]},
        ]}}
    )  # fmt: skip
    tonight = date(2026, 11, 10)
    con = _warehouse(tmp_path)
    _night_with_alerts(con, tonight)
    alerts = night_alerts(con, tonight, settings.alerts)
    con.close()
    assert sorted(a.kind for a in alerts) == ["source_stale", "type_change"]
    work = tmp_path / "w.duckdb"  # (the working database: cxalign run holds its lock)
    lines: list[str] = []
    _notify_once(work, tonight, "run-1", alerts, settings, lines.append)
    assert len([p for p, _ in sink.received if p == "/cx"]) == 2 and len(box.messages) == 1
    assert any("slack #2" in line and "FAILED (HTTP 500)" in line for line in lines)

    # the rerun of the night: Slack is back; only it gets the alerts, the others hold them
    sink.received.clear()
    sink.fail_paths = set()
    lines.clear()
    _notify_once(work, tonight, "run-2", alerts, settings, lines.append)
    assert sorted(p for p, _ in sink.received) == [SECRET_PATH, SECRET_PATH]
    assert len(box.messages) == 1
    assert not any("webhook #1" in line or "email #3" in line for line in lines)

    # a third run: every channel delivered them; held, and said so; nothing sent
    sink.received.clear()
    lines.clear()
    _notify_once(work, tonight, "run-3", alerts, settings, lines.append)
    assert sink.received == [] and len(box.messages) == 1
    assert sum("(held: already sent for this night)" in line for line in lines) == 2

    con = duckdb.connect(str(work), read_only=True)
    rows = con.execute(
        "select kind, subject, run_id, delivered, channels from ops.alerts_sent order by kind"
    ).fetchall()
    con.close()
    assert [(k, s, r, d) for k, s, r, d, _ in rows] == [
        ("source_stale", "accounts", "run-2", True),
        ("type_change", "Alpha -> Inflicted", "run-2", True),
    ]
    channels = json.loads(rows[0][4])
    assert [c["channel"] for c in channels] == [
        f"webhook #1 (127.0.0.1:{url.rsplit(':', 1)[1]})",
        f"email #3 ({host}:{port}, 1 recipient(s))",
        "slack #2 ($CXALIGN_SLACK_WEBHOOK)",
    ]
    assert all(c["delivered"] for c in channels)
    assert "s3cr3t" not in rows[0][4] + rows[1][4]
    # another night's alerts are not held by this one's
    con = duckdb.connect(str(work))
    from pipelines.alerts import delivered_before

    assert delivered_before(con, tonight + timedelta(days=1)) == frozenset()
    con.close()


def test_a_failed_night_s_alerts_are_sent_again_on_a_rerun_that_fails_again(tmp_path, http_sink):
    from pipelines.cli import _notify_once

    url, sink = http_sink
    settings = Settings.model_validate({"alerts": {"channels": [{"type": "webhook", "url": url}]}})
    work = tmp_path / "work.duckdb"
    duckdb.connect(str(work)).close()
    for run in ("run-1", "run-2"):
        _notify_once(work, date(2026, 11, 3), run,
                     failed_night_alerts(run, date(2026, 11, 3), [], ["boom"]), settings,
                     lambda line: None)  # fmt: skip
    assert [b["kind"] for _, b in sink.received] == ["night_failed", "night_failed"]


# --- hostile text in an alert --------------------------------------------------------------


def test_a_summary_with_line_breaks_is_mailed_with_a_one_line_subject(smtp_sink):
    host, port, box = smtp_sink
    (channel,) = Settings.model_validate(
        {"alerts": {"channels": [{"type": "email", "smtp_host": host, "smtp_port": port,
                                  "to": ["cx@example.com"]}]}}  # fmt: skip
    ).alerts.channels
    alert = Alert("type_change", "North\r\nBcc: evil@example.com\r\n: CX type changed", {})
    (d,) = send([alert], [channel])
    assert d.ok, d
    ((rcpt, mail),) = box.messages
    assert rcpt == ["cx@example.com"] and mail["Bcc"] is None
    assert mail["Subject"] == "cxalign: North Bcc: evil@example.com : CX type changed"


def test_control_characters_are_taken_out_of_an_e_mail_subject():
    """NUL, ESC, DEL and the C1 controls (category Cc) are not kept in a subject: a NUL cut it
    short in some mail clients, an ESC starts a terminal escape sequence."""
    from pipelines.alerts import _email
    from pipelines.settings import EmailChannel

    channel = EmailChannel(type="email", smtp_host="h", smtp_port=25, to=["cx@example.com"])
    mail = _email(channel, [Alert("type_change", "North\x00Bcc\x1b[31m red\x7f\x85x", {})])
    assert mail["Subject"] == "cxalign: North Bcc [31m red x"


def test_slack_control_characters_in_a_unit_name_are_escaped(http_sink, monkeypatch):
    url, sink = http_sink
    monkeypatch.setenv("CXALIGN_SLACK_WEBHOOK", url + SECRET_PATH)
    (channel,) = Settings.model_validate(
        {"alerts": {"channels": [{"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK"}]}}
    ).alerts.channels
    alert = Alert("type_change", "<!channel> R&D <http://evil|click>: CX type changed", {})
    (d,) = send([alert], [channel])
    assert d.ok, d
    ((_, body),) = sink.received
    assert body["text"] == ("*cxalign type change*: &lt;!channel&gt; R&amp;D "
                            "&lt;http://evil|click&gt;: CX type changed")  # fmt: skip


def _attempt(con, paths: list[str], url: str, sink, as_of=date(2026, 11, 10)) -> list[tuple]:
    """One run's sending of two alerts to webhooks at `paths`, recorded in ops.alerts_sent as
    cxalign run does; (path, kind) of each message delivered."""
    from pipelines.alerts import delivered_before, notify, record_sent

    settings = Settings.model_validate(
        {"alerts": {"channels": [{"type": "webhook", "url": url + p} for p in paths]}}
    ).alerts
    alerts = [Alert("type_change", "Alpha changed", {"business_unit": "Alpha", "to_type": "Inflicted"}),
              Alert("source_stale", "accounts stale", {"source": "accounts"})]  # fmt: skip
    sink.received.clear()
    deliveries = notify(alerts, settings, lambda line: None, delivered_before(con, as_of))
    record_sent(con, as_of, "run", alerts, deliveries, datetime.now(UTC))
    return sorted((p, b["kind"]) for p, b in sink.received
                  if p not in sink.fail_paths and b["kind"] not in sink.fail_kinds)  # fmt: skip


def test_a_channel_that_took_one_alert_and_refused_another_is_sent_only_that_one_again(
    tmp_path, http_sink
):
    """A webhook that accepts type_change and refuses source_stale: recorded per alert, so the
    rerun sends it source_stale alone (the whole channel was marked failed, and type_change
    was delivered twice)."""
    url, sink = http_sink
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    sink.fail_kinds = {"source_stale"}
    assert _attempt(con, ["/a"], url, sink) == [("/a", "type_change")]
    assert con.execute("select kind, delivered from ops.alerts_sent order by kind").fetchall() == [
        ("source_stale", False), ("type_change", True)]  # fmt: skip
    sink.fail_kinds = set()
    assert _attempt(con, ["/a"], url, sink) == [("/a", "source_stale")]


def test_a_channel_is_known_by_where_it_sends_not_by_its_place_in_the_config(tmp_path, http_sink):
    """Channels reordered, added or removed between a night and its rerun: each is sent what
    it has not delivered (it was known as 'webhook #<n> (host:port)', so /b, listed first
    after failing second, inherited /a's deliveries and never got the alerts)."""
    url, sink = http_sink
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    sink.fail_paths = {"/b"}
    assert _attempt(con, ["/a", "/b"], url, sink) == [("/a", "source_stale"), ("/a", "type_change")]
    sink.fail_paths = set()
    both = [("/b", "source_stale"), ("/b", "type_change")]
    assert _attempt(con, ["/b", "/a"], url, sink) == both  # reordered
    assert _attempt(con, ["/new", "/a", "/b"], url, sink) == [
        ("/new", "source_stale"), ("/new", "type_change")]  # one added in front  # fmt: skip
    assert _attempt(con, ["/b"], url, sink) == []  # one removed
    con = duckdb.connect(str(tmp_path / "w2.duckdb"))
    sink.fail_paths = {"/b"}
    _attempt(con, ["/a", "/b"], url, sink)
    sink.fail_paths = set()
    assert _attempt(con, ["/b"], url, sink) == both  # /a removed: /b was never #1's


def test_a_channel_s_identity_holds_no_secret():
    from pipelines.alerts import channel_id

    a, b = Settings.model_validate(
        {"alerts": {"channels": [{"type": "slack", "url": "https://hooks.slack.com/T/B/s3cr3t"},
                                 {"type": "slack", "url_env": "CXALIGN_SLACK_WEBHOOK"}]}}
    ).alerts.channels  # fmt: skip
    assert channel_id(a).startswith("slack:") and "s3cr3t" not in channel_id(a)
    assert channel_id(a) != channel_id(b)

