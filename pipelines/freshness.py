"""Is each source arriving as often as it should? One definition for the night's summary, the
scorecards' banner, analytics.ingest_history, the alerts and Dagster's freshness policies.

A source's cadence (sources.<source>.cadence: daily, weekly, monthly; settings.DEFAULT_CADENCE)
is how often its exports are expected. It last *arrived* when the newest of its files was first
loaded with its content (raw._files.loaded_at). It is *stale* when that is longer ago than its
cadence plus a day's grace (a daily export is stale on its third day without a file). A source
that never had a file, or whose cadence is "none", is never stale. It is measured at the end of
the night's as-of date (night_end), not at the wall clock: a backfill of an old night says
how stale each source was then, and a file loaded after that moment counts as arrived on time
(the ledger keeps a file's last load only).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import duckdb
import polars as pl

from pipelines.settings import CADENCES, SOURCES, Settings

GRACE_DAYS = 1


def stale_after(cadence: str) -> timedelta | None:
    """How long after its last arrival a source of this cadence is stale (None: never)."""
    days = CADENCES.get(cadence)
    return None if days is None else timedelta(days=days + GRACE_DAYS)


def night_end(as_of: date, now: datetime) -> datetime:
    """The moment a night's freshness is measured at: the end of its as-of date (UTC), or now
    if that is earlier (a night run as of today)."""
    end = datetime.combine(as_of + timedelta(days=1), time(), tzinfo=UTC)
    return min(now, end)


def source_freshness(
    con: duckdb.DuckDBPyConnection, settings: Settings, now: datetime
) -> pl.DataFrame:
    """Per source: cadence, last_arrived_at, days_since_arrival (whole days, 0 for a file
    loaded after `now`), stale; `now` is the moment measured at (night_end)."""
    cadences = [settings.cadence(s) for s in SOURCES]
    has_files = con.execute(
        "select count(*) from information_schema.tables "
        "where table_schema = 'raw' and table_name = '_files'"
    ).fetchone()[0]
    arrived = (
        "select source, max(loaded_at) as last_arrived_at from raw._files group by source"
        if has_files
        else "select null::varchar as source, null::timestamptz as last_arrived_at where false"
    )
    return con.execute(
        f"""
        with expected as (
            select unnest(?::varchar[]) as source,
                   unnest(?::varchar[]) as cadence,
                   unnest(?::integer[]) as cadence_days
        ),
        arrived as ({arrived}),
        final as (
            select e.source,
                   e.cadence,
                   a.last_arrived_at,
                   -- (greatest would turn a source that never arrived, NULL, into 0)
                   case when a.last_arrived_at is not null then greatest(
                       floor(epoch(?::timestamptz - a.last_arrived_at) / 86400), 0
                   ) end::integer as days_since_arrival,
                   coalesce(
                       e.cadence_days is not null
                       and ?::timestamptz - a.last_arrived_at
                           > to_days(e.cadence_days + {GRACE_DAYS}),
                       false
                   ) as stale,
            from expected as e
            left join arrived as a using (source)
        )
        select * from final order by source
        """,
        [list(SOURCES), cadences, [CADENCES.get(c) for c in cadences], now, now],
    ).pl()


def stale_sentence(source: str, days: int) -> str:
    """'support_tickets last arrived 9 days ago' (the banner and the alert)."""
    when = "today" if days <= 0 else "yesterday" if days == 1 else f"{days} days ago"
    return f"{source} last arrived {when}"
