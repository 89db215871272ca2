"""An analyst in another process: opens the published warehouse read-only in a loop.

    python reader.py WAREHOUSE STOPFILE RESULT.json

Each read checks that it sees one complete version: every analytics table has
the row count analytics.warehouse_version recorded for it at publication.
"""

import json
import os
import sys
import time

import duckdb


def main() -> None:
    path, stop, out = sys.argv[1:4]
    reads, errors, versions = 0, [], []
    while not os.path.exists(stop):
        if not os.path.exists(path):
            time.sleep(0.02)
            continue
        try:
            con = duckdb.connect(path, read_only=True)
            try:
                rows = con.execute(
                    "select run_id, table_name, row_count from analytics.warehouse_version"
                ).fetchall()
                run_ids = {r[0] for r in rows}
                if len(run_ids) != 1:
                    errors.append(f"mixed versions {run_ids}")
                for _, table, n in rows:
                    got = con.execute(f'select count(*) from analytics."{table}"').fetchone()[0]
                    if got != n:
                        errors.append(f"{table}: {got} rows, version says {n}")
                con.execute(
                    "select business_unit, sum(mrr) from analytics.account_month group by 1"
                ).fetchall()
                if not versions or versions[-1] != next(iter(run_ids)):
                    versions.append(next(iter(run_ids)))
                reads += 1
            finally:
                con.close()
        except Exception as exc:  # noqa: BLE001 - every failure is a finding
            errors.append(f"{type(exc).__name__}: {exc}")
    with open(out, "w") as f:
        json.dump({"reads": reads, "errors": errors, "versions": versions}, f)


if __name__ == "__main__":
    main()
