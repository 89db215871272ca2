"""Time `cxalign run` end to end and per stage, with peak memory, on generated data.

    .venv/bin/python bench/run_bench.py --accounts 100000 --months 24 [--format parquet]

Generates a demo landing zone with the real generator, runs the real
`cxalign run` in a child process (so its peak RSS is measured alone), and prints
per-stage wall time, ingest throughput and peak memory. Results go to
bench/results/<label>.json; docs/BENCHMARKS.md records them with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--months", type=int, default=24)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=("mixed", "csv", "parquet"), default="mixed")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work")
    p.add_argument("--label", default=None)
    p.add_argument("--keep", action="store_true", help="keep the generated data and warehouse")
    args = p.parse_args()
    label = args.label or f"{args.accounts // 1000}k_{args.months}m_{args.format}"
    work = args.workdir / label
    shutil.rmtree(work, ignore_errors=True)
    landing = work / "landing"

    cxalign = str(Path(sys.executable).with_name("cxalign"))
    t0 = time.perf_counter()
    subprocess.run(
        [cxalign, "demo-data", "--out", str(landing), "--accounts", str(args.accounts),
         "--months", str(args.months), "--seed", str(args.seed), "--format", args.format],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    generate_s = time.perf_counter() - t0
    landing_mb = sum(f.stat().st_size for f in landing.rglob("*") if f.is_file()) / 1e6

    timings = work / "timings.json"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    t0 = time.perf_counter()
    subprocess.run(
        [cxalign, "run", "--landing", str(landing), "--warehouse", str(work / "warehouse.duckdb"),
         "--out", str(work / "scorecards"), "--as-of", "2026-11-01", "--timings", str(timings)],
        check=True, env=env,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB

    steps = json.loads(timings.read_text())["steps"]
    stages: dict[str, float] = defaultdict(float)
    for step, seconds in steps.items():
        prefix = step.split("__")[0]
        if prefix == "staging" and step.split("__")[1].startswith("stg_"):
            prefix = "warehouse"  # the sql/staging views
        stage = {
            "raw": "ingest: read",
            "staging": "ingest: validate",
            "intermediate": "warehouse",
            "analytics": "warehouse",
        }.get(prefix, prefix)
        stages[stage] += seconds

    floor = json.loads(
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "warehouse_floor.py"),
             str(work / ".cxalign" / "warehouse.work.duckdb")],
            check=True, capture_output=True, text=True,
        ).stdout
    )["floor_seconds"]  # fmt: skip
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rows_read = con.execute(
        "select sum(rows_read) from analytics.ingest_runs "
        "where run_id = (select run_id from analytics.ingest_runs order by finished_at desc limit 1)"
    ).fetchone()[0]
    con.close()
    ingest_s = stages["ingest: read"] + stages["ingest: validate"]
    result = {
        "label": label,
        "accounts": args.accounts,
        "months": args.months,
        "format": args.format,
        "landing_mb": round(landing_mb, 1),
        "rows_read": int(rows_read),
        "generate_seconds": round(generate_s, 1),
        "run_wall_seconds": round(wall, 1),
        "stage_seconds": {k: round(v, 1) for k, v in stages.items()},
        "ingest_rows_per_second": round(rows_read / ingest_s) if ingest_s else None,
        "warehouse_floor_seconds": floor,
        "warehouse_over_floor": round(stages["warehouse"] / floor, 2) if floor else None,
        "peak_rss_mb": round(peak_mb),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
    }  # fmt: skip
    out = ROOT / "bench" / "results" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
