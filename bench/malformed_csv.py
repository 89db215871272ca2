"""Loading a CSV with malformed records: time to land it in raw, by size.

    .venv/bin/python bench/malformed_csv.py [--rows 200000 2000000] [--bad-share 0.02]
        [--timeout SECONDS] [--json FILE]

For each size it writes one churn_events CSV (in DuckDB, no Python loop over rows) in which
every 1/bad_share-th record has a field too many, then times `pipelines.landing.load_source`
into a fresh DuckDB file and checks that every record is accounted for (loaded + rejected =
rows). Each size runs in a child process, so a size that passes --timeout is recorded as
"more than" and the next one still runs.

To time another version of the landing code, run this script with that checkout first on the
path (e.g. a worktree of an older commit): `PYTHONPATH=/tmp/old python bench/malformed_csv.py`.
The script prints the path it imported `pipelines.landing` from.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import duckdb

HEADER = "account_id,churned_at,churn_type,reason"


def write_csv(path: Path, rows: int, bad_share: float) -> int:
    """rows data records, one in every round(1 / bad_share) with an extra field; returns the
    number of malformed records."""
    every = max(1, round(1 / bad_share))
    con = duckdb.connect()
    con.execute(
        f"""
        copy (
            select '{HEADER}' as line
            union all
            (select 'ACC-' || lpad(i::varchar, 7, '0') || ',2024-'
                    || lpad((1 + i % 12)::varchar, 2, '0') || '-01,voluntary,reason ' || i
                    || case when i % {every} = {every - 1} then ',extra' else '' end
             from range(?) t(i) order by i)
        ) to '{path}' (format csv, header false, quote '', escape '', delimiter '\x01')
        """,
        [rows],
    )
    con.close()
    return rows // every


def _time_load(landing: str, db: str, queue) -> None:
    from pipelines.contracts import source_contracts
    from pipelines.landing import load_source
    from pipelines.settings import SourceSettings

    con = duckdb.connect(db)
    con.execute("set enable_progress_bar = false")
    started = time.perf_counter()
    rep = load_source(con, Path(landing), source_contracts()["churn_events"], SourceSettings())
    queue.put((time.perf_counter() - started, rep.rows_loaded, rep.rows_rejected))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    p.add_argument("--bad-share", type=float, default=0.02)
    p.add_argument("--timeout", type=float, default=7200.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    import pipelines.landing

    origin = Path(pipelines.landing.__file__).resolve()
    commit = subprocess.run(
        ["git", "-C", str(origin.parent), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"pipelines.landing from {origin} (commit {commit})")
    results = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            landing = Path(tmp) / "landing"
            (landing / "churn_events").mkdir(parents=True)
            bad = write_csv(landing / "churn_events" / "churn.csv", rows, args.bad_share)
            queue = mp.get_context("spawn").Queue()
            child = mp.get_context("spawn").Process(
                target=_time_load, args=(str(landing), str(Path(tmp) / "w.duckdb"), queue)
            )
            started = time.perf_counter()
            child.start()
            child.join(args.timeout)
            if child.is_alive():
                child.kill()
                child.join()
                entry = {"rows": rows, "malformed": bad, "seconds": None,
                         "more_than_seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            else:
                seconds, loaded, rejected = queue.get()
                assert (loaded, rejected) == (rows - bad, bad), (loaded, rejected, rows, bad)
                entry = {"rows": rows, "malformed": bad, "seconds": round(seconds, 2)}
        results.append(entry)
        print(json.dumps(entry), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps({"commit": commit, "machine": platform.platform(), "bad_share": args.bad_share,
                        "results": results}, indent=2) + "\n"  # fmt: skip
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
