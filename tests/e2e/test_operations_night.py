"""Nightly operations end to end: the verdict and ingestion history across nights (a rerun
replaces its night), a stale source in the summary, on the scorecards and as an alert, and the
alerts `cxalign run` sends, a failed night's included, to a real local webhook."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb
import pytest

from pipelines.warehouse import work_path
from tests.conftest import run_cli, write_config

pytestmark = pytest.mark.slow


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook():
    _Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cx", _Hook.received
    server.shutdown()
    server.server_close()


def _rows(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_history_freshness_and_alerts_across_nights(demo_copy, tmp_path, hook, capsys):
    url, received = hook
    config = write_config(
        tmp_path / "cx.yml",
        "alerts:\n  channels:\n"
        f"    - {{type: webhook, url: \"{url}\"}}\n"
        "    - {type: webhook, url: \"http://127.0.0.1:9/down\", timeout_seconds: 2}\n",
    )
    wh = tmp_path / "warehouse.duckdb"
    assert run_cli(demo_copy, tmp_path, "2026-11-01", config) == 0
    assert run_cli(demo_copy, tmp_path, "2026-11-01", config) == 0  # a rerun of the night
    units = _rows(wh, "select count(*) from analytics.unit_alignment")[0][0]
    # the rerun replaced its night's rows: one per unit and per source, not two
    assert _rows(wh, "select as_of::varchar, count(*) from analytics.unit_alignment_history "
                     "group by all") == [("2026-11-01", units)]  # fmt: skip
    assert _rows(wh, "select count(*), count(distinct source), bool_or(stale) "
                     "from analytics.ingest_history") == [(7, 7, False)]  # fmt: skip
    capsys.readouterr()

    # Tickets stop arriving: their files were last loaded 9 days before the end of the night
    # as of the 2nd (staleness is measured at the night's as-of date, not the wall clock).
    con = duckdb.connect(str(work_path(wh)))
    con.execute("update raw._files set loaded_at = '2026-11-03 00:00:00+00'::timestamptz "
                "- interval 9 day where source = 'support_tickets'")  # fmt: skip
    con.close()
    assert run_cli(demo_copy, tmp_path, "2026-11-02", config) == 0
    out = capsys.readouterr().out
    assert "stale: support_tickets last arrived 9 days ago (expected daily)" in out
    assert "STALE (expected daily)" in out
    # the alert went to the working channel; the one that is down is reported, the night stands
    assert [a["kind"] for a in received] == ["source_stale"]
    assert received[0]["summary"] == "support_tickets last arrived 9 days ago (expected daily)"
    assert received[0]["details"]["days_since_arrival"] == 9
    assert "webhook #1 (127.0.0.1:" in out and ": sent (1 message(s))" in out
    assert "webhook #2 (127.0.0.1:9): FAILED" in out
    # A rerun of the night: the alert the first webhook delivered is held, said so; the one
    # that was down is tried again
    assert run_cli(demo_copy, tmp_path, "2026-11-02", config) == 0
    out = capsys.readouterr().out
    assert len(received) == 1
    assert ("[source_stale] support_tickets last arrived 9 days ago (expected daily)  (held on 1 "
            "of 2 channels: already sent for this night)") in out  # fmt: skip
    assert "webhook #2 (127.0.0.1:9): FAILED" in out and "webhook #1" not in out
    assert _rows(wh, "select kind, subject, delivered from ops.alerts_sent "
                     "where as_of = '2026-11-02'") == [("source_stale", "support_tickets", False)]  # fmt: skip

    assert _rows(wh, "select as_of::varchar, count(*) from analytics.unit_alignment_history "
                     "group by all order by 1") == [("2026-11-01", units), ("2026-11-02", units)]  # fmt: skip
    assert _rows(wh, "select source, days_since_arrival from analytics.ingest_history "
                     "where as_of = '2026-11-02' and stale") == [("support_tickets", 9)]  # fmt: skip
    # the scorecards: a banner, and each unit's type over its nights
    index = (tmp_path / "scorecards" / "index.html").read_text()
    assert "Data not arriving:" in index
    assert "support_tickets last arrived 9 days ago (expected daily)" in index
    assert "support_tickets last arrived 9 days ago" in (
        tmp_path / "scorecards" / "scorecard.md").read_text()  # fmt: skip
    pdftotext = shutil.which("pdftotext")
    if pdftotext:  # poppler-utils, as the scorecards' PDF test uses
        text = subprocess.run([pdftotext, "-l", "1", str(tmp_path / "scorecards" / "scorecard.pdf"),
                               "-"], capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert "support_tickets last arrived 9 days ago" in " ".join(text.split())
    page = next((tmp_path / "scorecards" / "units").glob("*.html")).read_text()
    assert 'data-field="type_history"' in page
    assert page.count('title="2026-11-0') == 2  # last night and tonight
    assert "First run" not in page  # "since last night" read the history

    # A failed night (a blocking check: no quarantined row allowed now): its alerts go out,
    # the exit code is the night's.
    strict = write_config(tmp_path / "strict.yml",
                          config.read_text() + "ingest:\n  max_bad_share: 0.0\n")  # fmt: skip
    received.clear()
    assert run_cli(demo_copy, tmp_path, "2026-11-03", strict) == 1
    kinds = [a["kind"] for a in received]
    assert kinds[-1] == "night_failed" and "check_failed" in kinds
    failed = next(a for a in received if a["kind"] == "check_failed")
    assert "support_tickets" in failed["summary"] and "quarantine" in failed["summary"].lower() \
        or "broke the data contract" in failed["summary"]  # fmt: skip
    assert received[-1]["details"]["as_of"] == "2026-11-03"
    assert "nothing was published" in received[-1]["summary"]
    # nothing published: the history still ends on the 2nd
    assert _rows(wh, "select max(as_of)::varchar from analytics.unit_alignment_history") == [
        ("2026-11-02",)
    ]
