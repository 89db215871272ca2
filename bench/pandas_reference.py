"""A pandas reference for the warehouse's heaviest tables, as a competent analyst would write it.

Vectorised groupby and window work, no per-row apply. It computes the CX features of
analytics.account_month (six-month window ending before the month, events dated when they
became known) and the NPS and CSAT columns of analytics.unit_month_cx, from the same staged
tables, so the benchmark can time it against cxalign and the DuckDB floor and check that it
gives the same numbers.

    .venv/bin/python bench/pandas_reference.py WORK.duckdb [--check]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

WINDOW, LAG = 6, 1


def month_idx(s: pd.Series) -> pd.Series:
    s = pd.to_datetime(s, utc=True)
    return s.dt.year * 12 + s.dt.month - 1


def load(path: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "accounts": con.sql("select account_id, business_unit from staging.accounts").df(),
            "revenue": con.sql("select account_id, month from staging.revenue").df(),
            "tickets": con.sql(
                "select account_id, created_at, first_response_at, solved_at, "
                "first_contact_resolution, reopens, handle_minutes::double as handle_minutes "
                "from staging.support_tickets"
            ).df(),
            "surveys": con.sql(
                "select account_id, survey_type, score, responded_at from staging.survey_responses"
            ).df(),
        }
    finally:
        con.close()


def account_month_cx(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    spine = d["revenue"][["account_id"]].assign(month_idx=month_idx(d["revenue"]["month"]))
    t = d["tickets"]
    frt = (t["first_response_at"] - t["created_at"]).dt.total_seconds() / 60
    res = (t["solved_at"] - t["created_at"]).dt.total_seconds() / 60
    solved = t["solved_at"].notna()
    events = pd.concat(
        [
            pd.DataFrame({"account_id": t["account_id"], "m": month_idx(t["created_at"]), "tickets": 1.0}),
            pd.DataFrame({"account_id": t["account_id"], "m": month_idx(t["first_response_at"]),
                          "frt": frt})[t["first_response_at"].notna()],
            pd.DataFrame({"account_id": t["account_id"], "m": month_idx(t["solved_at"]), "res": res,
                          "fcr": t["first_contact_resolution"].astype("float"),
                          "reopened": (t["reopens"].fillna(0) > 0).astype(float),
                          "handle": t["handle_minutes"]})[solved],
        ],
        ignore_index=True,
    )  # fmt: skip
    s = d["surveys"]
    score = s["score"].astype(float)
    nps_cat = np.select([score >= 9, score >= 7], ["promoter", "passive"], "detractor")
    events = pd.concat(
        [
            events,
            pd.DataFrame({
                "account_id": s["account_id"], "m": month_idx(s["responded_at"]),
                "nps_cat": np.where(s["survey_type"] == "nps", nps_cat, None),
                "nps_at": s["responded_at"].where(s["survey_type"] == "nps"),
                "csat": score.where(s["survey_type"] == "csat"),
                "ces": score.where(s["survey_type"] == "ces"),
            }),
        ],
        ignore_index=True,
    )  # fmt: skip
    # Each event belongs to the windows of the months LAG .. LAG + WINDOW - 1 after it.
    offsets = np.arange(LAG, LAG + WINDOW)
    expanded = events.loc[events.index.repeat(len(offsets))].copy()
    expanded["month_idx"] = expanded["m"].to_numpy() + np.tile(offsets, len(events))
    expanded = expanded.merge(spine, on=["account_id", "month_idx"], how="inner")
    g = expanded.groupby(["account_id", "month_idx"])
    out = pd.DataFrame({
        "tickets": g["tickets"].sum(),
        "first_response_minutes_median": g["frt"].median(),
        "resolution_minutes_median": g["res"].median(),
        "fcr_rate": g["fcr"].mean(),
        "reopen_rate": g["reopened"].mean(),
        "handle_hours": g["handle"].sum() / 60,
        "nps_responses": g["nps_cat"].count(),
        "csat_mean": g["csat"].mean(),
        "csat_responses": g["csat"].count(),
        "ces_mean": g["ces"].mean(),
        "ces_responses": g["ces"].count(),
    })  # fmt: skip
    nps = (
        expanded.dropna(subset=["nps_at"])
        .sort_values("nps_at")
        .groupby(["account_id", "month_idx"])["nps_cat"]
        .last()
    )
    out["nps_category_latest"] = nps
    out = spine.merge(out.reset_index(), on=["account_id", "month_idx"], how="left")
    out["tickets"] = out["tickets"].fillna(0)
    out["handle_hours"] = out["handle_hours"].fillna(0)
    for c in ("nps_responses", "csat_responses", "ces_responses"):
        out[c] = out[c].fillna(0)
    out["nps_category_latest"] = out["nps_category_latest"].fillna("no_response")
    return out


def unit_month_nps(d: dict[str, pd.DataFrame]) -> pd.DataFrame:
    s = d["surveys"].merge(d["accounts"], on="account_id")
    s = s[s["survey_type"] == "nps"].assign(
        month=pd.to_datetime(s["responded_at"], utc=True).dt.strftime("%Y-%m")
    )
    s["p"] = (s["score"] >= 9).astype(float)
    s["d"] = (s["score"] <= 6).astype(float)
    g = s.groupby(["business_unit", "month"])
    out = pd.DataFrame({"n": g.size(), "p": g["p"].mean(), "d": g["d"].mean()})
    out["nps"] = 100 * (out["p"] - out["d"])
    out["nps_se"] = 100 * np.sqrt((out["p"] + out["d"] - (out["p"] - out["d"]) ** 2) / out["n"])
    return out.reset_index()


def run(path: Path) -> dict:
    started = time.perf_counter()
    d = load(path)
    loaded = time.perf_counter()
    am = account_month_cx(d)
    nps = unit_month_nps(d)
    done = time.perf_counter()
    return {"load_seconds": round(loaded - started, 2), "compute_seconds": round(done - loaded, 2),
            "total_seconds": round(done - started, 2), "account_months": len(am), "frames": (am, nps)}  # fmt: skip


def check(path: Path, am: pd.DataFrame, nps: pd.DataFrame) -> dict:
    """Compare with the warehouse's own tables; returns the largest differences."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        ref = con.sql(
            "select account_id, year(month) * 12 + month(month) - 1 as month_idx, tickets, "
            "first_response_minutes_median, resolution_minutes_median, fcr_rate, reopen_rate, "
            "handle_hours, nps_responses, nps_category_latest, csat_mean, ces_mean "
            "from analytics.account_month"
        ).df()
        ref_nps = con.sql(
            "select business_unit, strftime(month, '%Y-%m') as month, nps_n as n, nps, nps_se "
            "from analytics.unit_month_cx where level = 'unit' and nps_n > 0"
        ).df()
    finally:
        con.close()
    joined = ref.merge(am, on=["account_id", "month_idx"], suffixes=("", "_pd"))
    diffs = {"rows_warehouse": len(ref), "rows_pandas": len(am), "rows_joined": len(joined)}
    for c in ("tickets", "first_response_minutes_median", "resolution_minutes_median", "fcr_rate",
              "reopen_rate", "handle_hours", "nps_responses", "csat_mean", "ces_mean"):  # fmt: skip
        a, b = joined[c].astype(float), joined[f"{c}_pd"].astype(float)
        both_null = a.isna() & b.isna()
        diffs[c] = float((a - b).abs()[~both_null].fillna(np.inf).max())
    diffs["nps_category_mismatches"] = int(
        (joined["nps_category_latest"] != joined["nps_category_latest_pd"]).sum()
    )
    jn = ref_nps.merge(nps, on=["business_unit", "month"], suffixes=("", "_pd"))
    diffs["unit_nps"] = float((jn["nps"] - jn["nps_pd"]).abs().max())
    diffs["unit_nps_se"] = float((jn["nps_se"] - jn["nps_se_pd"]).abs().max())
    return diffs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work_db", type=Path)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    result = run(args.work_db)
    am, nps = result.pop("frames")
    if args.check:
        result["differences"] = check(args.work_db, am, nps)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
