"""How often does a type-change alert fire when nothing changed, and how soon after a real change?

    nice .venv/bin/python bench/false_alarms.py simulate [--reps 20] [--jobs 2]
        [--out bench/results/false_alarm_verdicts.json]
    .venv/bin/python bench/false_alarms.py summarise [--verdicts FILE]
        [--out bench/results/false_alarms.json]

`simulate`: per replication, one company of eight units is simulated (models/simulation.py)
over 24 months of history plus a year. Six units' truth is fixed all year: the four types at
2,000 accounts, a borderline unit (1,500 accounts, execution and link near their lines) and a
small null unit (400 accounts). Two units change in the month the year starts:
`ShiftLink` (Ineffective -> Innovative: the link goes from none to log HR -0.5 per SD) and
`ShiftExec` (Innovative -> Inflicted: execution from +0.4 to -0.4 SD).

A night's verdict depends only on closed months (the alignment stage reads
analytics.account_month's complete months and keeps its results while they are unchanged;
docs/runbook.md "Rerunning a night"), so a year of nightly runs holds 13 distinct verdicts per
unit: the one the year starts with and one after each month closes; every other night repeats
its month's verdict. The bench therefore runs the whole alignment stage
(models.alignment.align_units with the production AlignmentConfig) 13 times per replication,
on the panel as it stands at each month's close, instead of 365 Dagster nights, and repeats
each verdict over its month's nights (calendar days). This skips the ingestion and warehouse
steps, which do not change a verdict.

`summarise`: replays the alert rule (pipelines.alerts.announced_changes, the function the
nightly run uses) over those nightly verdict histories for each hysteresis setting, and
reports false alarms per stable unit per year and the detection delay of the two planted
changes in nights, with Monte Carlo standard errors (replications are independent).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HISTORY_MONTHS = 24
YEAR_MONTHS = 12
FIRST_MONTH = date(2024, 1, 1)
CHANGE_AT = HISTORY_MONTHS + 1  # month index of the planted change: the month of the year's first night
STABLE = ("Innovative", "Inflicted", "Ineffective", "Inactive", "Borderline", "Small")
CHANGING = {"ShiftLink": "Innovative", "ShiftExec": "Inflicted"}  # unit -> its new true type
OLD_TYPE = {"ShiftLink": "Ineffective", "ShiftExec": "Innovative"}  # ... and its type before


def _month(k: int) -> date:
    return date(FIRST_MONTH.year + (FIRST_MONTH.month - 1 + k) // 12,
                (FIRST_MONTH.month - 1 + k) % 12 + 1, 1)  # fmt: skip


def units():
    from models.simulation import SimUnit

    return [
        SimUnit("Innovative", 2000, execution=0.4, link=-0.5),
        SimUnit("Inflicted", 2000, execution=-0.4, link=-0.5),
        SimUnit("Ineffective", 2000, execution=0.4, link=0.0),
        SimUnit("Inactive", 2000, execution=-0.4, link=0.0),
        SimUnit("Borderline", 1500, execution=0.15, link=-0.25),
        SimUnit("Small", 400, execution=0.0, link=0.0),
        SimUnit("ShiftLink", 2000, execution=0.4, link=0.0, change_month=CHANGE_AT,
                link_after=-0.5),
        SimUnit("ShiftExec", 2000, execution=0.4, link=-0.5, change_month=CHANGE_AT,
                execution_after=-0.4),
    ]  # fmt: skip


def replicate(seed: int, year_months: int = YEAR_MONTHS) -> dict:
    """The verdicts of one simulated year (or `year_months`), one per month closed and the
    one the year starts with: {unit: [{night, quadrant, confidence, ...}]}."""
    import polars as pl

    from models.alignment import AlignmentConfig, align_units
    from models.simulation import simulate_panel

    panel = simulate_panel(units(), months=HISTORY_MONTHS + year_months + 1, seed=seed,
                           first_month=FIRST_MONTH)  # fmt: skip
    config = AlignmentConfig(secondary_metrics=False, revenue_model=False)
    out: dict[str, list[dict]] = {}
    started = time.perf_counter()
    for m in range(year_months + 1):
        # Fit m reads the account-months before month H+m, whose outcome months (up to H+m)
        # have closed: the first night that sees them is the first day of month H+m+1.
        res = align_units(panel.filter(pl.col("month") < _month(HISTORY_MONTHS + m)), config)[0]
        night = _month(HISTORY_MONTHS + m + 1).isoformat()
        for r in res.select("business_unit", "quadrant", "confidence", "quadrant_probability",
                            "link_verdict", "execution_level").iter_rows(named=True):  # fmt: skip
            out.setdefault(r["business_unit"], []).append({"night": night, **{
                k: v for k, v in r.items() if k != "business_unit"}})  # fmt: skip
    return {"seed": seed, "seconds": round(time.perf_counter() - started, 1),
            "year_months": year_months, "units": out}  # fmt: skip


def simulate(args) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = json.loads(args.out.read_text()) if args.out.exists() else {"replications": []}
    done["year_months"] = args.year_months
    have = {r["seed"] for r in done["replications"]}
    seeds = [s for s in range(args.first_seed, args.first_seed + args.reps) if s not in have]
    started = time.perf_counter()
    with ProcessPoolExecutor(args.jobs) as pool:
        for rep in pool.map(replicate, seeds, [args.year_months] * len(seeds)):
            done["replications"].append(rep)
            # written after each replication: an interrupted bench keeps what it measured
            args.out.write_text(json.dumps(done, indent=None) + "\n")
            print(f"seed {rep['seed']}: {rep['seconds']}s "
                  f"({len(done['replications'])} replications in {args.out})", flush=True)  # fmt: skip
    print(f"{len(seeds)} replications in {time.perf_counter() - started:.0f}s")
    return 0


def nightly(rep_units: dict[str, list[dict]]):
    """Each unit's verdict on every night of the year (a month's verdict repeated until the
    next month closes), as the rows unit_alignment_history would hold."""
    import polars as pl

    rows = []
    for unit, fits in rep_units.items():
        for i, fit in enumerate(fits):
            start = date.fromisoformat(fit["night"])
            end = (date.fromisoformat(fits[i + 1]["night"]) if i + 1 < len(fits)
                   else start + timedelta(days=31))  # fmt: skip
            for d in range((end - start).days):
                rows.append({"business_unit": unit, "as_of": start + timedelta(days=d),
                             "quadrant": fit["quadrant"], "confidence": fit["confidence"]})  # fmt: skip
    return pl.DataFrame(rows)


def _mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    if n == 0:
        return math.nan, math.nan
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else math.nan
    return mean, math.sqrt(var / n)


def summarise(args) -> int:
    from pipelines.alerts import TypeChangeRule, announced_changes

    reps = [r for f in args.verdicts for r in json.loads(f.read_text())["replications"]]
    # The detection delay is measured on the longest runs only (a change a short run ends
    # before announcing is not a miss of the long run); false alarms on every run's first year.
    months = max(r.get("year_months", YEAR_MONTHS) for r in reps)
    change_night = _month(CHANGE_AT)
    rules = [TypeChangeRule(established_nights=e, any_confidence_nights=a)
             for e in (1, 32, 63) for a in (1, 32, 63, 94, 0) if a == 0 or a >= e]  # fmt: skip
    results = []
    for rule in rules:
        false_per_unit_year: list[float] = []  # per replication: alarms / stable units
        by_unit: dict[str, list[int]] = {u: [] for u in STABLE}
        delays: dict[str, list[int | None]] = {u: [] for u in CHANGING}
        # nights until the verdict first left the old type (to any other, Inconclusive too):
        # when the scorecards' last-nights strip first shows something moved
        moved: dict[str, list[int | None]] = {u: [] for u in CHANGING}
        for rep in reps:
            hist = nightly(rep["units"])
            changes = announced_changes(hist, rule)
            start = hist["as_of"].min()
            later = changes.filter(changes["as_of"] > start)
            # false alarms: the first year's nights only (a longer run counts the same year)
            year = later.filter(later["as_of"] < _month(HISTORY_MONTHS + 1 + YEAR_MONTHS))
            n = 0
            for unit in STABLE:
                k = year.filter(year["business_unit"] == unit).height
                by_unit[unit].append(k)
                n += k
            false_per_unit_year.append(n / len(STABLE))
            for unit, new_type in CHANGING.items():
                if rep.get("year_months", YEAR_MONTHS) < months:
                    continue
                hit = later.filter((later["business_unit"] == unit) & (later["to_type"] == new_type)
                                  & (later["as_of"] >= change_night))  # fmt: skip
                delays[unit].append((hit["as_of"].min() - change_night).days if hit.height else None)
                off = [date.fromisoformat(f["night"]) for f in rep["units"][unit]
                       if f["quadrant"] != OLD_TYPE[unit]
                       and date.fromisoformat(f["night"]) >= change_night]  # fmt: skip
                moved[unit].append((min(off) - change_night).days if off else None)
        fa, fa_se = _mean_se(false_per_unit_year)
        entry = {
            "established_nights": rule.established_nights,
            "any_confidence_nights": rule.any_confidence_nights,
            "replications": len(reps),
            "replications_for_delay": len(next(iter(delays.values()))),
            "false_alarms_per_unit_year": round(fa, 3), "mc_se": round(fa_se, 3),
            "false_alarms_per_unit_year_by_unit": {u: round(sum(v) / len(v), 3)
                                                   for u, v in by_unit.items()},
            "detection": {},
        }  # fmt: skip
        for unit, ds in delays.items():
            got = [d for d in ds if d is not None]
            mean, se = _mean_se([float(d) for d in got])
            share = len(got) / len(ds)
            entry["detection"][unit] = {
                "detected_in_run": round(share, 3),
                "detected_mc_se": round(math.sqrt(share * (1 - share) / len(ds)), 3),
                "mean_delay_nights": None if not got else round(mean, 1),
                "delay_mc_se": None if len(got) < 2 else round(se, 1),
                "median_delay_nights": None if not got else sorted(got)[len(got) // 2],
                "verdict_left_old_type_share": round(
                    sum(m is not None for m in moved[unit]) / max(len(moved[unit]), 1), 3),
                "verdict_left_old_type_mean_nights": (
                    round(_mean_se([float(m) for m in moved[unit] if m is not None])[0], 1)
                    if any(m is not None for m in moved[unit]) else None),
            }  # fmt: skip
        results.append(entry)
        det = "; ".join(f"{u} {v['detected_in_run']:.0%} in {v['mean_delay_nights']} ± "
                        f"{v['delay_mc_se']} nights"
                        for u, v in entry["detection"].items())  # fmt: skip
        print(f"established {rule.established_nights:>2} nights, any {rule.any_confidence_nights:>2}:"
              f" {fa:.2f} ± {fa_se:.2f} false alarms per unit-year; {det}")  # fmt: skip
    seconds = [r["seconds"] for r in reps]
    args.out.write_text(json.dumps({
        "replications": len(reps), "units_stable": list(STABLE), "units_changing": CHANGING,
        "history_months": HISTORY_MONTHS, "months_after_history": months,
        "change_night": change_night.isoformat(), "seconds_per_replication": _mean_se(seconds)[0],
        "rules": results}, indent=1) + "\n")  # fmt: skip
    print(f"wrote {args.out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sim = sub.add_parser("simulate")
    sim.add_argument("--reps", type=int, default=20)
    sim.add_argument("--first-seed", type=int, default=1)
    sim.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    sim.add_argument("--year-months", type=int, default=YEAR_MONTHS,
                     help="months simulated after the history (a longer run measures the "
                     "detection delay of changes the year does not see through)")  # fmt: skip
    sim.add_argument("--out", type=Path, default=ROOT / "bench/results/false_alarm_verdicts.json")
    summ = sub.add_parser("summarise")
    summ.add_argument("--verdicts", type=Path, nargs="+",
                      default=[ROOT / "bench/results/false_alarm_verdicts.json"],
                      help="one or more files of `simulate` (their replications pooled)")  # fmt: skip
    summ.add_argument("--out", type=Path, default=ROOT / "bench/results/false_alarms.json")
    args = parser.parse_args()
    return simulate(args) if args.command == "simulate" else summarise(args)


if __name__ == "__main__":
    raise SystemExit(main())
