"""Scale benchmarks: a night of cxalign at 10k, 100k and 1M accounts, and what it is measured against.

    .venv/bin/python bench/run_bench.py --preset S|M|L [--incremental] [--no-pandas]
    .venv/bin/python bench/run_bench.py --accounts 100000 --months 24      # any size
    .venv/bin/python bench/run_bench.py --preset M --vendor-exports         # the night on vendor exports

For the chosen size it:
1. writes the landing zone with the real demo generator (Parquet);
2. runs the real `cxalign run` in a child process, recording wall time per stage (from the
   Dagster event log, `--timings`) and the peak memory of the process tree, for the night and
   for each stage (the readings taken while the stage's steps ran);
3. runs the DuckDB floor (the same sql/ files in one DuckDB process, no orchestration) and
   the pandas reference (bench/pandas_reference.py), checking that it gives the same numbers;
4. with --incremental, adds one new day of tickets and survey answers and runs the next night,
   to time a quiet night against the full one.

Results go to bench/results/<label>.json; docs/BENCHMARKS.md records them with the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import duckdb
import psutil

from pipelines.demo_data import add_one_day

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"S": (10_000, 24), "M": (100_000, 36), "L": (1_000_000, 36)}
AS_OF = date(2026, 11, 1)


def run_measured(
    cmd: list[str], env: dict | None = None, samples: list | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall seconds and peak RSS (MB) of the process and its children; `samples`, if given,
    receives every reading as (epoch seconds, MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = 0
    stop = threading.Event()

    def poll():
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                rss = p.memory_info().rss + sum(
                    c.memory_info().rss for c in p.children(recursive=True)
                )
                peak = max(peak, rss)
                if samples is not None:
                    samples.append((time.time(), rss / 1e6))
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    stop.set()
    watcher.join()
    done = subprocess.CompletedProcess(cmd, proc.returncode, out, "")
    if proc.returncode != 0:
        print(out[-4000:], file=sys.stderr)
        raise RunFailed(
            f"failed (exit {proc.returncode}): {' '.join(cmd)}",
            time.perf_counter() - started, peak / 1e6, out,
        )  # fmt: skip
    return time.perf_counter() - started, peak / 1e6, done


class RunFailed(SystemExit):
    """A measured command failed; keeps what was measured up to then."""

    def __init__(self, message: str, seconds: float, peak_mb: float, output: str):
        super().__init__(message)
        self.seconds, self.peak_mb, self.output = seconds, peak_mb, output


def stage_of(step: str) -> str:
    head, _, tail = step.partition("__")
    if head == "raw" or (head == "staging" and not tail.startswith("stg_")):
        return "ingest"
    if head in ("staging", "intermediate", "analytics"):
        return "warehouse"
    return {"clv": "clv", "sci": "sci", "alignment": "alignment", "scorecards": "scorecards",
            "warehouse": "publish"}.get(head, head)  # fmt: skip


def stages(timings: Path) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for step, seconds in json.loads(timings.read_text())["steps"].items():
        out[stage_of(step)] += seconds
    return {k: round(v, 1) for k, v in out.items()}


def stage_peaks(timings: Path, samples: list[tuple[float, float]]) -> dict[str, int]:
    """Peak memory (MB) of each stage: the largest reading taken while one of its steps ran
    (readings every 0.2 s, so a stage shorter than that may have none)."""
    peaks: dict[str, float] = {}
    windows = json.loads(timings.read_text()).get("step_windows", {})
    for step, (start, end) in windows.items():
        inside = [mb for t, mb in samples if start <= t <= end]
        if inside:
            stage = stage_of(step)
            peaks[stage] = max(peaks.get(stage, 0.0), max(inside))
    return {k: round(v) for k, v in peaks.items()}


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "duckdb": duckdb.__version__}  # fmt: skip


def _save(result: dict, label: str) -> None:
    result.setdefault("machine", _machine())
    out = ROOT / "bench" / "results" / f"{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(result, indent=2, default=str))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--accounts", type=int)
    p.add_argument("--months", type=int, default=24)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--format", choices=("mixed", "csv", "parquet"), default="parquet")
    p.add_argument("--workdir", type=Path, default=ROOT / "bench" / "work")
    p.add_argument("--incremental", action="store_true", help="also time one new day on top")
    p.add_argument("--no-pandas", action="store_true", help="skip the pandas reference")
    p.add_argument("--no-floor", action="store_true", help="skip the DuckDB floor (to compare "
                   "settings of the night only)")  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the generated data and warehouse")
    p.add_argument("--vendor-exports", action="store_true", help="the same company written as "
                   "its vendors' exports (demo-data --vendor-exports) and read with their "
                   "profiles; results as <label>_vendor")  # fmt: skip
    p.add_argument("--duckdb-memory-limit", help="DuckDB's memory_limit for the run, e.g. 4GB "
                   "(default: DuckDB's own, 80%% of RAM, which its buffer cache may fill)")
    p.add_argument("--models-memory-budget", help="models.memory_budget for the run, e.g. 5GB: "
                   "alignment and SCI run units side by side only while they fit in it")  # fmt: skip
    args = p.parse_args()
    accounts, months = (
        PRESETS[args.preset] if args.preset else (args.accounts or 100_000, args.months)
    )
    if args.vendor_exports and args.incremental:
        p.error("--incremental adds canonical files: not with --vendor-exports")
    label = args.preset or f"{accounts // 1000}k_{months}m_{args.format}"
    label += "_vendor" if args.vendor_exports else ""
    work = args.workdir / label
    shutil.rmtree(work, ignore_errors=True)
    landing = work / "landing"
    cxalign = str(Path(sys.executable).with_name("cxalign"))
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    result: dict = {"label": label, "accounts": accounts, "months": months,
                    "format": "vendor exports" if args.vendor_exports else args.format}  # fmt: skip

    seconds, peak, _ = run_measured(
        [cxalign, "demo-data", "--out", str(landing), "--accounts", str(accounts), "--months",
         str(months), "--seed", str(args.seed), "--format", args.format,
         "--end-month", "2026-10-01", *(["--vendor-exports"] if args.vendor_exports else [])]
    )  # fmt: skip
    result["generate"] = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak)}
    result["landing_mb"] = round(
        sum(f.stat().st_size for f in landing.rglob("*") if f.is_file()) / 1e6, 1
    )

    timings = work / "timings.json"
    run_cmd = [cxalign, "run", "--landing", str(landing), "--warehouse", str(work / "warehouse.duckdb"),
               "--out", str(work / "scorecards"), "--as-of", AS_OF.isoformat(), "--timings", str(timings)]  # fmt: skip
    # The vendor exports' config (their profiles and options), the settings below added to it.
    settings = (landing / "cxalign.vendor.yml").read_text() if args.vendor_exports else ""
    if args.duckdb_memory_limit:
        settings += f"duckdb:\n  memory_limit: {args.duckdb_memory_limit}\n"
        result["duckdb_memory_limit"] = args.duckdb_memory_limit
    if args.models_memory_budget:
        settings += f"models:\n  memory_budget: {args.models_memory_budget}\n"
        result["models_memory_budget"] = args.models_memory_budget
    if os.environ.get("CXALIGN_THREADS"):
        result["cxalign_threads"] = int(os.environ["CXALIGN_THREADS"])
    if settings:
        config = work / "bench_config.yml"
        config.write_text(settings)
        run_cmd[2:2] = ["--config", str(config)]
    samples: list[tuple[float, float]] = []

    def keep_samples() -> None:
        """With --keep, the night's memory readings beside its timings (rss.csv: epoch
        seconds, MB), to see where inside a stage the peak falls."""
        if args.keep:
            (work / "rss.csv").write_text(
                "t,rss_mb\n" + "".join(f"{t:.2f},{mb:.0f}\n" for t, mb in samples)
            )

    try:
        seconds, peak, _ = run_measured(run_cmd, env, samples)
        keep_samples()
    except RunFailed as exc:
        keep_samples()
        # Out of memory or a failed check is a finding: record how far the night got.
        result["run"] = {
            "failed": str(exc), "exit": "killed (SIGKILL: out of memory?)"
            if "exit -9" in str(exc) else "error",
            "seconds": round(exc.seconds, 1), "peak_rss_mb": round(exc.peak_mb),
            "progress": [ln for ln in exc.output.splitlines() if ln[:2].isdigit()][-40:],
        }  # fmt: skip
        _save(result, label)
        return 1
    result["run"] = {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(peak),
        "stages": stages(timings),
        "stage_peak_rss_mb": stage_peaks(timings, samples),
    }
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    result["rows"] = dict(con.execute(
        "select 'input_rows', sum(rows_read) from analytics.ingest_runs where run_id = "
        "(select any_value(run_id) from analytics.warehouse_version) union all "
        "select 'account_months', count(*) from analytics.account_month").fetchall())  # fmt: skip
    result["units"] = con.execute("select count(*) from analytics.unit_alignment").fetchone()[0]
    con.close()
    ingest = result["run"]["stages"].get("ingest", 0)
    result["ingest_rows_per_second"] = (
        round(result["rows"]["input_rows"] / ingest) if ingest else None
    )
    alignment = result["run"]["stages"].get("alignment", 0)
    result["alignment_seconds_per_unit"] = round(alignment / max(result["units"], 1), 1)

    work_db = work / ".cxalign" / "warehouse.work.duckdb"
    if not args.no_floor:
        # The floor gets the night's memory limit: without one DuckDB may take 80% of RAM
        # and spill nothing, which the night, held to it, cannot.
        limit = ["--memory-limit", args.duckdb_memory_limit] if args.duckdb_memory_limit else []
        floor_s, floor_peak, floor = run_measured(
            [sys.executable, str(ROOT / "bench" / "warehouse_floor.py"), str(work_db), *limit]
        )
        result["floor"] = {
            **json.loads(floor.stdout.strip().splitlines()[-1]),
            "peak_rss_mb": round(floor_peak),
        }
        result["warehouse_over_floor"] = round(
            result["run"]["stages"]["warehouse"] / result["floor"]["floor_seconds"], 2
        )

    if not args.no_pandas:
        try:
            _, pd_peak, pd_out = run_measured(
                [
                    sys.executable,
                    "-W",
                    "ignore",
                    str(ROOT / "bench" / "pandas_reference.py"),
                    str(work_db),
                    "--check",
                ]
            )
            result["pandas"] = {
                **json.loads(pd_out.stdout.strip().splitlines()[-1]),
                "peak_rss_mb": round(pd_peak),
            }
            result["pandas_over_cxalign_warehouse"] = round(
                result["pandas"]["total_seconds"] / result["run"]["stages"]["warehouse"], 2
            )
        except SystemExit as exc:  # out of memory or killed: that is the finding
            result["pandas"] = {"failed": str(exc)}

    if args.incremental:
        added = add_one_day(landing, AS_OF)
        next_timings = work / "timings_next.json"
        cmd = [
            *run_cmd[:-4],
            "--as-of",
            (AS_OF + timedelta(days=1)).isoformat(),
            "--timings",
            str(next_timings),
        ]
        samples = []
        seconds, peak, _ = run_measured(cmd, env, samples)
        result["incremental"] = {
            "rows_added": added, "seconds": round(seconds, 1), "peak_rss_mb": round(peak),
            "stages": stages(next_timings),
            "stage_peak_rss_mb": stage_peaks(next_timings, samples),
            "share_of_full_run": round(seconds / result["run"]["seconds"], 3),
        }  # fmt: skip

    result["machine"] = _machine()
    _save(result, label)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
