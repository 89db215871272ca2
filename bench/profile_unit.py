"""Memory of one business unit's model work, phase by phase: what the memory budget's
per-account-month estimates (models.memory_budget) are calibrated from.

    .venv/bin/python bench/profile_unit.py WAREHOUSE.duckdb [--unit NAME] [--model alignment|sci]

WAREHOUSE: a built warehouse (the working copy a night leaves in .cxalign/, or the published
one). Runs the nightly asset's own per-unit work for the unit with the most account-months
(or --unit), one phase at a time, as a night runs a unit alone, sampling this process's resident
memory every 10 ms. Prints one JSON line: for each phase its seconds, the peak above the
memory held when the phase started, and that peak per account-month; and the whole unit's
peak above the start, which is what a unit adds to the process while it runs.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from contextlib import contextmanager
from datetime import date

from models.parallel import map_units
from pipelines.settings import DuckDBSettings
from pipelines.warehouse import connect

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


class Sampler:
    """The highest resident memory seen since reset(), read every 10 ms by a thread."""

    def __init__(self) -> None:
        self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, rss())

    def reset(self) -> int:
        now = rss()
        self.peak = now
        return now

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("warehouse")
    p.add_argument("--unit", help="business unit (default: the one with most account-months)")
    p.add_argument("--model", choices=("alignment", "sci"), default="alignment")
    p.add_argument(
        "--as-of",
        type=date.fromisoformat,
        default=date(2026, 11, 1),
        help="the night's date (SCI reads complete months before it)",
    )
    p.add_argument("--duckdb-memory-limit", default=DuckDBSettings().models_memory_limit)
    args = p.parse_args()

    con = connect(args.warehouse, DuckDBSettings(memory_limit=args.duckdb_memory_limit),
                  read_only=True)  # fmt: skip
    sampler = Sampler()
    phases: dict[str, dict] = {}
    unit = {"peak": 0}  # and "start": the memory held when the unit's first phase starts

    @contextmanager
    def phase(name: str):
        base = sampler.reset()
        unit.setdefault("start", base)
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
        peak = max(sampler.peak, rss())
        unit["peak"] = max(unit["peak"], peak)
        phases[name] = {
            "seconds": round(seconds, 2),
            "peak_above_start_mb": round((peak - base) / 1e6),
            # what the phase leaves held (its result, and what the allocators keep)
            "held_after_mb": round((rss() - unit["start"]) / 1e6),
        }  # fmt: skip

    # Through map_units, as a night runs a unit alone (on the calling thread, with the
    # fits' numerical warnings silenced).
    work = (
        (lambda _: _alignment(con, args.unit, phase))
        if args.model == "alignment"
        else (lambda _: _sci(con, args.unit, phase, args.as_of))
    )
    [(name, account_months)] = map_units(work, [None], quiet=True)
    sampler.stop()
    for v in phases.values():
        v["bytes_per_account_month"] = round(v["peak_above_start_mb"] * 1e6 / account_months)
    above = unit["peak"] - unit["start"]
    print(json.dumps({
        "model": args.model, "unit": name, "account_months": account_months, "phases": phases,
        "unit_peak_above_start_mb": round(above / 1e6),
        "unit_bytes_per_account_month": round(above / account_months),
    }))  # fmt: skip
    return 0


def _largest(listing, unit: str | None):
    import polars as pl

    if unit is None:
        return listing.sort("account_months", descending=True).row(0, named=True)
    return listing.filter(pl.col("business_unit") == unit).row(0, named=True)


def _alignment(con, unit: str | None, phase):
    from models.alignment import AlignmentConfig, company_scale, fit_unit, prepared, recent_start
    from models.drivers import unit_drivers
    from models.predictive import unit_check
    from pipelines.defs.models.alignment import UNITS_SQL, panel_sql

    config = AlignmentConfig()
    scale = company_scale(con, "analytics.account_month")
    listing = con.sql(UNITS_SQL).pl()
    row = _largest(listing, unit)
    recent_from = recent_start(listing["last_month"].max(), config)
    with phase("read"):
        rows = prepared(con, f"({panel_sql(config)})", scale, {"unit": row["business_unit"]})
    with phase("fit_unit"):
        fit_unit(row["business_unit"], rows, config, None, recent_from)
    with phase("drivers"):
        unit_drivers(row["business_unit"], rows, seed=config.seed)
    with phase("predictive_check"):
        unit_check(row["business_unit"], rows, seed=config.seed)
    return row["business_unit"], row["account_months"]


def _sci(con, unit: str | None, phase, as_of: date):
    import polars as pl

    from models.sci import parse_config, unit_sci
    from pipelines.defs.models.sci import MARTS_SQL, UNIT_INPUTS, UNIT_SIZES_SQL
    from pipelines.settings import Settings
    from pipelines.sqlparams import for_units, used_params

    config = parse_config(Settings().sci)
    listing = con.sql(UNIT_SIZES_SQL).pl().rename({"count_star()": "account_months"})
    row = _largest(listing, unit)
    bind = {"as_of": as_of, "unit": row["business_unit"]}
    marts = con.execute(MARTS_SQL, used_params(MARTS_SQL, bind)).pl()
    marts = marts.filter(pl.col("business_unit") == row["business_unit"])
    with phase("read"):
        tickets, responses, panel = (
            con.execute(q, used_params(q, bind)).pl()
            for q in (for_units(q, one_unit=True) for q in UNIT_INPUTS)
        )
    with phase("fit"):
        unit_sci(row["business_unit"], marts, tickets, responses, panel, config)
    return row["business_unit"], row["account_months"]


if __name__ == "__main__":
    raise SystemExit(main())
