"""Scorecards: the leaders' pages, built from the night's warehouse.

Written into a building directory beside the output directory; the publish asset swaps it
in together with the warehouse, so leaders never see a half-written scorecard or one from a
night that failed its checks.
"""

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.defs.models.alignment import KEYS as ALIGNMENT_KEYS
from pipelines.defs.models.clv import UNIT_CLV
from pipelines.defs.models.sci import SCI_BENEFITS, UNIT_MONTH_SCI
from pipelines.defs.models.whatif import UNIT_WHATIF
from pipelines.defs.resources import WAREHOUSE_POOL, CxalignResource, run_as_of
from pipelines.freshness import night_end, source_freshness
from pipelines.progress import report
from pipelines.scorecard import data as scorecard_data
from pipelines.scorecard import render
from pipelines.scorecard.charts import ChartCache
from pipelines.warehouse import building_dir

SCORECARDS = dg.AssetKey(["scorecards", "html"])


def load_charts(con) -> dict[str, tuple[str, str]]:
    """The charts the last night drew (see ChartCache)."""
    con.execute("create schema if not exists ops")
    con.execute(
        "create table if not exists ops.chart_cache (key varchar primary key, svg varchar, "
        "alt varchar)"
    )
    return {
        k: (svg, alt) for k, svg, alt in con.execute("select * from ops.chart_cache").fetchall()
    }


def keep_charts(con, cache: ChartCache) -> None:
    """Keep tonight's charts (only those: the table does not grow night after night)."""
    con.execute("delete from ops.chart_cache")
    if cache.used:
        con.executemany(
            "insert into ops.chart_cache values (?, ?, ?)",
            [[k, svg, alt] for k, (svg, alt) in cache.used.items()],
        )


@dg.asset(
    key=SCORECARDS,
    deps=[
        *ALIGNMENT_KEYS,
        UNIT_CLV,
        UNIT_MONTH_SCI,
        SCI_BENEFITS,
        UNIT_WHATIF,
        ["analytics", "unit_month_cx"],
        ["analytics", "unit_month_revenue"],
    ],  # fmt: skip
    group_name="scorecards",
    kinds={"html", "pdf"},
    pool=WAREHOUSE_POOL,
    description="index.html, units/<unit>.html, scorecard.md and scorecard.pdf for leaders.",
)
def scorecards(context: dg.AssetExecutionContext, cxalign: CxalignResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    building = building_dir(cxalign.out_dir)
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    with cxalign.connect() as con:
        fresh = source_freshness(con, cxalign.settings,
                                 night_end(run_as_of(context), datetime.now(UTC)))  # fmt: skip
        d = scorecard_data.load(
            con,
            as_of=run_as_of(context),
            run_id=context.run.run_id,
            settings_json=json.dumps(cxalign.settings.model_dump(), sort_keys=True, default=str),
            previous_warehouse=Path(cxalign.warehouse_path),
            strategy_declared=bool(cxalign.strategy_path),
            stale_sources=fresh.filter("stale").to_dicts(),
        )
        cache = ChartCache(load_charts(con))
        files = render.write(d, building, cache)
        keep_charts(con, cache)
    seconds = time.perf_counter() - started
    report(
        context,
        f"scorecards {len(files)} files ({len(d.units)} units, {cache.drawn} of "
        f"{len(cache.used)} charts drawn)  {seconds:5.1f}s",
    )
    return dg.MaterializeResult(
        metadata={
            "files": len(files),
            "units": len(d.units),
            "fingerprint": d.fingerprint[:16],
            "headline": render.language.headline(d.units, d.company),
        }  # fmt: skip
    )


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(assets=[scorecards])
