"""Calibration of the alignment test: is "strong" earned, and how often is it found?

    .venv/bin/python bench/calibration.py [--reps 50] [--out bench/results/calibration.json]

Runs the whole alignment stage (models.alignment.align_units, the same function the
pipeline runs) on simulated panels (models.simulation) over many replications:

* null:      six units, no CX effect anywhere, execution levels differing: the share of
             units called "strong" (the false-strong rate), with its Monte Carlo error;
* power:     planted effects (log HR -0.5 and -0.25 per SD of latent CX) at unit sizes 250 to 4000
             accounts: the share called strong;
* coverage:  churn planted on observed CSAT (log HR -0.3 per SD), main measure CSAT: how
             often the link's 95% interval holds the truth (raw and shrunk);
* quadrants: the four planted types at 3000 accounts: how often each is recovered.

The figures go into docs/methods/alignment.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from models.alignment import AlignmentConfig, align_units
from models.simulation import SimUnit, simulate_panel

FAST = dict(
    secondary_metrics=False, revenue_model=False, permutations=100, bootstrap_replicates=200
)


def share(k: int, n: int) -> dict:
    """A rate with its Monte Carlo standard error and exact (Clopper-Pearson) 95% interval."""
    from scipy.stats import beta

    p = k / n
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return {
        "rate": p,
        "mc_se": math.sqrt(p * (1 - p) / n),
        "ci_low": lo,
        "ci_high": hi,
        "k": k,
        "n": n,
    }


def null_rate(reps: int) -> dict:
    strong = total = 0
    for r in range(reps):
        units = [SimUnit(f"U{i}", 1500, execution=0.25 * (i - 2.5), link=0.0) for i in range(6)]
        out, _, _ = align_units(simulate_panel(units, 24, seed=10_000 + r), AlignmentConfig(**FAST))
        strong += int((out["link_verdict"] == "strong").sum())
        total += out.height
    return share(strong, total)


def power(reps: int, sizes=(250, 500, 1000, 2000, 4000), link: float = -0.5) -> dict:
    out = {}
    for size in sizes:
        strong = inconclusive = total = 0
        for r in range(reps):
            # Two planted units of this size beside two null units, as a real company has.
            units = [SimUnit("P1", size, 0.4, link), SimUnit("P2", size, -0.4, link),
                     SimUnit("N1", 2000, 0.4, 0.0), SimUnit("N2", 2000, -0.4, 0.0)]  # fmt: skip
            res, _, _ = align_units(simulate_panel(units, 24, seed=20_000 + 97 * size + r),
                                    AlignmentConfig(**FAST))  # fmt: skip
            planted = res.filter(res["business_unit"].is_in(["P1", "P2"]))
            strong += int((planted["link_verdict"] == "strong").sum())
            inconclusive += int((planted["link_verdict"] == "inconclusive").sum())
            total += planted.height
        out[str(size)] = {
            "strong": share(strong, total),
            "inconclusive": share(inconclusive, total),
        }
    return out


def coverage(reps: int, link: float = -0.3) -> dict:
    raw = shrunk = total = 0
    for r in range(reps):
        units = [SimUnit(f"U{i}", 3000, 0.0, link) for i in range(3)]
        panel = simulate_panel(units, 24, seed=30_000 + r, hazard_on="csat")
        res, _, _ = align_units(panel, AlignmentConfig(main_measure="csat", **FAST))
        raw += int(((res["link_ci_low"] < link) & (res["link_ci_high"] > link)).sum())
        shrunk += int(
            ((res["link_shrunk_ci_low"] < link) & (res["link_shrunk_ci_high"] > link)).sum()
        )
        total += res.height
    return {"raw": share(raw, total), "shrunk": share(shrunk, total), "planted_log_hr": link}


def quadrants(reps: int) -> dict:
    planted = {"Innovative": (0.5, -0.5), "Inflicted": (-0.5, -0.5),
               "Ineffective": (0.5, 0.0), "Inactive": (-0.5, 0.0)}  # fmt: skip
    hits = {k: 0 for k in planted}
    established_hits = {k: 0 for k in planted}
    for r in range(reps):
        units = [SimUnit(k, 3000, e, link) for k, (e, link) in planted.items()]
        res, _, _ = align_units(simulate_panel(units, 24, seed=40_000 + r), AlignmentConfig(**FAST))
        for row in res.iter_rows(named=True):
            hits[row["business_unit"]] += row["quadrant"] == row["business_unit"]
            established_hits[row["business_unit"]] += (
                row["quadrant"] == row["business_unit"] and row["confidence"] == "established"
            )
    return {k: {"recovered": share(hits[k], reps), "recovered_established": share(established_hits[k], reps)}
            for k in planted}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=50)
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "calibration.json"
    )
    args = p.parse_args()
    started = time.perf_counter()
    result = {
        "reps": args.reps,
        "null_false_strong": null_rate(args.reps),
        "power_by_unit_size": {
            "log_hr_-0.5": power(max(args.reps // 2, 10), link=-0.5),
            "log_hr_-0.25": power(max(args.reps // 2, 10), link=-0.25),
        },
        "coverage": coverage(max(args.reps // 2, 10)),
        "quadrant_recovery": quadrants(max(args.reps // 2, 10)),
    }
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
