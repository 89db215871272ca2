"""One unit's what-if work, timed by phase, on a simulated unit of a given size: what the
nightly what-if stage spends per unit (it fits at most whatif.max_fit_accounts accounts of a
unit and projects all its active accounts, so its time grows with the number of units and
their active accounts, not with their history beyond the sample).

    nice .venv/bin/python -m bench.whatif_unit_time --accounts 20000 --months 36
"""

from __future__ import annotations

import argparse
import json
import resource
import time

from models import whatif as W
from models.simulation_whatif import WhatifSim, simulate, warehouse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--replicates", type=int, default=W.WhatifConfig().replicates)
    args = parser.parse_args()
    sim = WhatifSim(accounts=args.accounts, months=args.months, lever_effect=0.8)
    s = simulate(sim, seed=1)
    con = warehouse(s.panel)
    config = W.WhatifConfig(replicates=args.replicates)
    out = {"accounts": args.accounts, "months": args.months, "account_months": s.panel.height,
           "replicates": args.replicates, "max_fit_accounts": config.max_fit_accounts}  # fmt: skip
    t = time.perf_counter()
    rows = W.read_rows(con, sim.unit, config.max_fit_accounts, config.seed)
    out["read_rows_s"] = round(time.perf_counter() - t, 2)
    out["rows_read"] = rows.height
    t = time.perf_counter()
    models = W.fit_unit_models(sim.unit, rows, config, None)
    out["fit_and_bootstrap_s"] = round(time.perf_counter() - t, 2)
    out["active_accounts"] = models.book.n
    t = time.perf_counter()
    W.standard_rows(models, W.best_quartile(W.company_levels(con)), config.months)
    out["seven_scenarios_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    W.backtest(rows, config.backtest_months, config, sim.unit)
    out["backtest_s"] = round(time.perf_counter() - t, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
