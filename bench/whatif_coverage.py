"""Coverage of the what-if intervals: does the 95% interval of churn avoided hold the planted
value 95% of the time?

Each replication simulates one unit where first response truly drives churn
(models/simulation_whatif.py: log HR `--effect` per log minute, nothing hidden), runs the
whole chain (both hazard models, the account bootstrap refitting them, the projection of a
20% faster first response over 12 months) and records whether each model's interval holds
the planted expected churn avoided among the unit's active accounts. One line of JSON per
replication is appended to --out as it finishes (a long run can be read while it goes);
--summary prints the coverage with its Monte Carlo standard error and exact 95% interval.

    nice .venv/bin/python bench/whatif_coverage.py --reps 200 --out bench/results/whatif_coverage_v2.jsonl
    .venv/bin/python bench/whatif_coverage.py --summary bench/results/whatif_coverage_v2.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from scipy.stats import beta as beta_dist

from models import whatif as W
from models.simulation_whatif import WhatifSim, simulate, warehouse

# The data-generating processes the intervals are checked under (models/simulation_whatif.py
# parameters; `effect` is the lever's planted log HR per log minute, from --effect):
SCENARIOS = {
    # first response drives churn, nothing hidden: both intervals should cover the truth
    "causal": lambda effect: {"lever_effect": effect},
    # the same at about three times the churn (base hazard 6% a month): short histories
    "high-churn": lambda effect: {"lever_effect": effect, "base": math.log(0.06)},
    # the lever drives churn and a hidden trait both slows responses and raises churn: the
    # association overstates; the within-account interval should still cover the truth
    "confounded": lambda effect: {"lever_effect": effect, "hidden_effect": 0.8, "symptom": 0.5},
    # the lever is only a symptom (truth 0): the within-account interval should cover 0
    "symptom": lambda effect: {"hidden_effect": 0.8, "symptom": 0.5},
}


def replication(seed: int, accounts: int, effect: float, replicates: int,
                scenario: str = "causal", refit_steps: int = 0) -> dict:  # fmt: skip
    started = time.perf_counter()
    sim = WhatifSim(accounts=accounts, **SCENARIOS[scenario](effect))
    s = simulate(sim, seed)
    rows = W.read_rows(warehouse(s.panel), sim.unit)
    config = W.WhatifConfig(replicates=replicates, replicate_refit_steps=refit_steps)
    models = W.fit_unit_models(sim.unit, rows, config, None)
    row = W.run_scenario(models, [W.parse_change("first_response=-20%")], None, 12).row()
    truth = s.truth(-0.2)
    return {
        "seed": seed, "scenario": scenario, "refit_steps": refit_steps,
        "accounts": accounts, "effect": effect, "replicates": row["replicates"],
        "truth": truth, "estimate": row["churn_avoided"],
        "low": row["churn_avoided_ci_low"], "high": row["churn_avoided_ci_high"],
        "within": row["churn_avoided_within"], "within_low": row["churn_avoided_within_ci_low"],
        "within_high": row["churn_avoided_within_ci_high"], "grade": row["evidence_grade"],
        "seconds": time.perf_counter() - started,
    }  # fmt: skip


def exact_interval(k: int, n: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of a binomial proportion."""
    low = beta_dist.ppf(0.025, k, n - k + 1) if k > 0 else 0.0
    high = beta_dist.ppf(0.975, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def summary(path: Path) -> str:
    """The coverage per data-generating process and bootstrap (score draws or k-step
    refits) in a results file."""
    everything = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    groups: dict[tuple, list[dict]] = {}
    for x in everything:
        groups.setdefault((x.get("scenario", "causal"), x.get("refit_steps", 3)), []).append(x)
    return "\n\n".join(_summary(key, lines) for key, lines in sorted(groups.items()))


def _summary(key: tuple, lines: list[dict]) -> str:
    n = len(lines)
    scenario, steps = key
    draws = "one-step score draws" if steps == 0 else f"refits of {steps} IRLS steps"
    planted = ", ".join(f"{k} {v:g}" for k, v in SCENARIOS[scenario](lines[0]["effect"]).items())
    out = [f"{scenario}: {n} replications ({lines[0]['accounts']} accounts; {planted}; "
           f"{lines[0]['replicates']} bootstrap replicates, {draws})"]  # fmt: skip
    for name, lo, hi, est in (("association", "low", "high", "estimate"),
                              ("within-account", "within_low", "within_high", "within")):  # fmt: skip
        fitted = [x for x in lines if x[lo] is not None]
        n = len(fitted)
        if n == 0:
            out.append(f"{name}: no interval computed")
            continue
        k = sum(1 for x in fitted if x[lo] <= x["truth"] <= x[hi])
        p = k / n
        mc = math.sqrt(p * (1 - p) / n)
        a, b = exact_interval(k, n)
        bias = sum(x[est] - x["truth"] for x in fitted) / n
        below = sum(1 for x in fitted if x["truth"] < x[lo])
        out.append(f"{name}: covers {100 * p:.1f}% ± {100 * mc:.1f} ({k}/{n}; exact 95% "
                   f"{100 * a:.1f}-{100 * b:.1f}%); truth below the interval {below}, above "
                   f"{n - k - below}; mean bias {bias:+.2f} accounts (mean truth "
                   f"{sum(x['truth'] for x in fitted) / n:.1f})")  # fmt: skip
    out.append(f"mean {sum(x['seconds'] for x in lines) / len(lines):.1f} s per replication")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=1500)
    parser.add_argument("--effect", type=float, default=0.8)
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="causal",
                        help="the data-generating process (SCENARIOS)")
    parser.add_argument("--refit-steps", type=int, default=0,
                        help="0: one-step score draws (the default); k: refit each replicate "
                        "by k IRLS steps")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("bench/results/whatif_coverage_v2.jsonl"))
    parser.add_argument("--summary", type=Path, help="print the summary of a results file")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.exists():  # a run resumes where it stopped
        done = {(x["seed"], x.get("scenario", "causal"), x.get("refit_steps", 3))
                for x in map(json.loads, args.out.read_text().splitlines()) if x}  # fmt: skip
    for seed in range(args.first_seed, args.first_seed + args.reps):
        if (seed, args.scenario, args.refit_steps) in done:
            continue
        result = replication(seed, args.accounts, args.effect, args.replicates, args.scenario,
                             args.refit_steps)  # fmt: skip
        with args.out.open("a") as f:
            f.write(json.dumps(result) + "\n")
    print(summary(args.out))


if __name__ == "__main__":
    main()
