"""One unit's what-if work, timed by phase: what the nightly what-if stage spends per unit
(it fits at most whatif.max_fit_accounts accounts of a unit and projects all its active
accounts, so its time grows with the number of units and their active accounts, not with
their history beyond the sample).

On a simulated unit of a given size, or on every unit of a warehouse a night left
(`bench/run_bench.py --keep` leaves bench/work/<preset>/warehouse.duckdb):

    nice .venv/bin/python -m bench.whatif_unit_time --accounts 20000 --months 36
    nice .venv/bin/python -m bench.whatif_unit_time --warehouse bench/work/M/warehouse.duckdb
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import duckdb

from models import whatif as W
from models.simulation_whatif import WhatifSim, simulate, warehouse


def phases(con: duckdb.DuckDBPyConnection, unit: str, config: W.WhatifConfig,
           clv: dict | None, targets: dict) -> dict:  # fmt: skip
    """The unit's phases' seconds: rows read, fits and bootstrap, the seven standard
    scenarios, the backtest."""
    out: dict = {"unit": unit}
    t = time.perf_counter()
    rows = W.read_rows(con, unit, config.max_fit_accounts, config.seed)
    out["read_rows_s"] = round(time.perf_counter() - t, 2)
    out["rows_read"] = rows.height
    t = time.perf_counter()
    models = W.fit_unit_models(unit, rows, config, clv)
    out["fit_and_bootstrap_s"] = round(time.perf_counter() - t, 2)
    out["active_accounts"] = models.book.n if models.book is not None else 0
    if models.association is not None:
        t = time.perf_counter()
        W.standard_rows(models, targets, config.months)
        out["seven_scenarios_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    W.backtest(rows, config.backtest_months, config, unit)
    out["backtest_s"] = round(time.perf_counter() - t, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--replicates", type=int, default=W.WhatifConfig().replicates)
    parser.add_argument("--warehouse", type=Path, help="time every unit of this warehouse")
    args = parser.parse_args()
    config = W.WhatifConfig(replicates=args.replicates)
    if args.warehouse:
        con = duckdb.connect(str(args.warehouse), read_only=True)
        clv = {r["business_unit"]: r for r in con.execute(
            "select * from analytics.unit_clv where segment = 'All segments'").pl().iter_rows(named=True)}  # fmt: skip
        targets = W.best_quartile(W.company_levels(con))
        for unit in W.read_rows_units(con):
            print(json.dumps(phases(con, unit, config, clv.get(unit), targets)), flush=True)
        return
    sim = WhatifSim(accounts=args.accounts, months=args.months, lever_effect=0.8)
    s = simulate(sim, seed=1)
    con = warehouse(s.panel)
    out = {"accounts": args.accounts, "months": args.months, "account_months": s.panel.height,
           "replicates": args.replicates, "max_fit_accounts": config.max_fit_accounts}  # fmt: skip
    out.update(phases(con, sim.unit, config, None, W.best_quartile(W.company_levels(con))))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
