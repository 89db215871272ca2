"""Calibration of the alignment test (v2): does each verdict mean what it says, in the hard
cases, on two data-generating processes?

    .venv/bin/python bench/calibration.py [--reps 200] [--jobs 2] [--dgp simulation latent]
        [--scenario NAME ...] [--out bench/results/calibration.json]

Runs the whole alignment stage (models.alignment.align_units, the function the pipeline runs
per unit) on simulated panels with planted truth, `--reps` replications per scenario and
generator, and reports each rate with its Monte Carlo standard error and exact (Clopper-
Pearson) 95% interval. Generators: `simulation` (models/simulation.py: a lasting account CX
level with a short AR(1) wobble, churn per SD of the latent window mean) and `latent`
(models/simulation_latent.py, written for this harness: CX a latent quality moving month to
month, read with noise by surveys and tickets, informative NPS non-response, accounts joining
and leaving, churn running high where execution is low). Scenarios and the rate each must
reach (issue 18, deliverable 9):

  null             six null units (1,500 accounts), execution -0.6..+0.6: strong <= 5%
  small_null       a 300-account null unit beside four 2,000-account units at log HR -0.6:
                   the small unit strong <= 5%
  at_threshold     three units planted exactly at the materiality threshold on the measured
                   main measure (CSAT): weak <= 5%
  trend            a company-wide CX trend (0.02 SD a month) with units planted 0.3 SD above
                   and below the company: execution level right >= 95%
  region           null units whose CX and churn both follow region: strong <= 5%
  mixed_outcomes   four retention units at log HR -0.25 with and without two cost-to-serve
                   units in the run: the retention verdicts unchanged (100%)
  types            the four types planted at 2,500 accounts: each recovered >= 95%, never
                   wrong with confidence "established"
  coverage         churn planted on measured CSAT, main measure CSAT: the 95% interval of the
                   planted effect covers 93-97%

The small version of each runs in the test suite (tests/models/alignment/test_calibration.py).
The figures go into docs/methods/alignment.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

MATERIAL_LOG_HR = math.log(0.85)
FALSIFICATION_ALPHA = 0.05  # AlignmentConfig's default, which config() keeps


@dataclass(frozen=True)
class Unit:
    """A planted unit, in terms both generators take."""

    name: str
    accounts: int
    execution: float = 0.0
    link: float = 0.0
    region: float = 0.0  # confounding: CX and churn both follow region


def simulate(dgp: str, units: list[Unit], seed: int, **kw) -> pl.DataFrame:
    """The panel of `units` from one generator. kw: trend (SD a month), hazard_on_csat."""
    trend = kw.get("trend", 0.0)
    on_csat = kw.get("hazard_on_csat", False)
    if dgp == "simulation":
        from models.simulation import SimUnit, simulate_panel

        return simulate_panel(
            [SimUnit(u.name, u.accounts, u.execution, u.link, region_cx=u.region,
                     region_churn=-u.region) for u in units],
            months=24, seed=seed, trend=trend, hazard_on="csat" if on_csat else "latent",
        )  # fmt: skip
    from models.simulation_latent import LatentUnit, simulate_latent_panel

    return simulate_latent_panel(
        [LatentUnit(u.name, u.accounts, u.execution, u.link, region_cx=u.region,
                    region_churn=-0.6 if u.region else 0.0) for u in units],
        months=30, seed=seed, trend=trend, hazard_on="measured" if on_csat else "latent",
        measured_metric="csat",
    )  # fmt: skip


def config(**kw):
    from models.alignment import AlignmentConfig

    return AlignmentConfig(secondary_metrics=False, revenue_model=False, permutations=100,
                           bootstrap_replicates=200, **kw)  # fmt: skip


def run(panel: pl.DataFrame, **kw) -> pl.DataFrame:
    from models.alignment import align_units

    return align_units(panel, config(**kw))[0]


# --- scenarios: each returns counts for one replication ----------------------------------


def null(dgp: str, seed: int) -> dict:
    units = [Unit(f"U{i}", 1500, execution=0.24 * (i - 2.5)) for i in range(6)]
    res = run(simulate(dgp, units, seed))
    perm = res["permutation_p"].drop_nulls()
    return {"strong": int((res["link_verdict"] == "strong").sum()), "units": res.height,
            "permutation_rejects": int((perm <= FALSIFICATION_ALPHA).sum()),
            "permuted": perm.len()}  # fmt: skip


def small_null(dgp: str, seed: int) -> dict:
    units = [Unit(f"Big{i}", 2000, 0.3 * (-1) ** i, -0.6) for i in range(4)]
    units.append(Unit("Small", 300, 0.2, 0.0))
    res = run(simulate(dgp, units, seed)).filter(pl.col("business_unit") == "Small")
    return {"strong": int((res["link_verdict"] == "strong").sum()), "units": 1}


@functools.cache  # one pilot per generator and process, not one per replication
def _threshold_link(dgp: str) -> float:
    """The planted link whose effect per SD of the company's CSAT is the threshold."""
    if dgp == "simulation":  # planted per SD of the unit's observed CSAT: the same scale
        return MATERIAL_LOG_HR
    from models.simulation_latent import measured_estimand

    pilot = simulate(dgp, [Unit(f"U{i}", 1500) for i in range(3)], 999, hazard_on_csat=True)
    return MATERIAL_LOG_HR / measured_estimand(pilot, 1.0, "csat")


def at_threshold(dgp: str, seed: int, link: float | None = None) -> dict:
    link = _threshold_link(dgp) if link is None else link
    units = [Unit(f"U{i}", 1500, 0.0, link) for i in range(3)]
    res = run(simulate(dgp, units, seed, hazard_on_csat=True), main_measure="csat")
    return {"weak": int((res["link_verdict"] == "weak").sum()), "units": res.height,
            "strong": int((res["link_verdict"] == "strong").sum())}  # fmt: skip


def trend(dgp: str, seed: int) -> dict:
    units = [Unit("Above", 2000, 0.3), Unit("Level", 2000, 0.0), Unit("Below", 2000, -0.3)]
    res = run(simulate(dgp, units, seed, trend=0.02))
    got = dict(zip(res["business_unit"], res["execution_level"], strict=True))
    return {"right": int(got["Above"] == "high") + int(got["Below"] == "low"), "units": 2}


def region(dgp: str, seed: int) -> dict:
    units = [Unit(f"R{i}", 2500, 0.2 * (-1) ** i, 0.0, region=0.5) for i in range(2)]
    res = run(simulate(dgp, units, seed))
    return {"strong": int((res["link_verdict"] == "strong").sum()), "units": res.height}


def mixed_outcomes(dgp: str, seed: int) -> dict:
    from models.alignment import UnitStrategy, align_units, prepare

    units = [Unit(f"R{i}", 2000, 0.3 * (-1) ** i, -0.25) for i in range(4)]
    units += [Unit(f"C{i}", 2000, 0.0, 0.0) for i in range(2)]
    data = prepare(simulate(dgp, units, seed))  # one company scale for both runs
    cost = {f"C{i}": UnitStrategy("cost_to_serve") for i in range(2)}
    retention_only = data.filter(pl.col("business_unit").str.starts_with("R"))
    alone = align_units(data, config(), data=retention_only)[0]
    mixed = align_units(data, config(), cost, data=data)[0]
    mixed = mixed.filter(pl.col("outcome_tested") == "retention")
    same = (alone["link_verdict"] == mixed["link_verdict"]).sum()
    return {"unchanged": int(same), "units": alone.height,
            "strong": int((alone["link_verdict"] == "strong").sum())}  # fmt: skip


TYPES = {"Innovative": (0.5, -0.5), "Inflicted": (-0.5, -0.5), "Ineffective": (0.5, 0.0),
         "Inactive": (-0.5, 0.0)}  # fmt: skip


# A Wald test this far past the line is "overwhelming" (issue 18, deliverable 0): the
# permutation check must then pass in >= 95% of units.
OVERWHELMING_P = 1e-4


def types(dgp: str, seed: int) -> dict:
    res = run(simulate(dgp, [Unit(k, 2500, e, link) for k, (e, link) in TYPES.items()], seed))
    linked = res.filter(pl.col("business_unit").is_in(["Innovative", "Inflicted"]))
    overwhelming = linked.filter(pl.col("p_value") < OVERWHELMING_P)
    out = {
        "overwhelming": overwhelming.height,
        "overwhelming_permutation_pass": int(
            (overwhelming["permutation_p"] <= FALSIFICATION_ALPHA).sum()
        ),
        "linked": linked.height,
        "negative_control_failed": int(
            (linked["negative_control_p"].is_not_null() & ~linked["falsification_passed"]
             & (linked["permutation_p"] <= FALSIFICATION_ALPHA)).sum()
        ),
    }  # fmt: skip
    for row in res.iter_rows(named=True):
        k = row["business_unit"]
        out[f"{k}_right"] = int(row["quadrant"] == k)
        out[f"{k}_wrong_established"] = int(
            row["quadrant"] not in (k, "Inconclusive") and row["confidence"] == "established"
        )
        out[f"{k}_inconclusive"] = int(row["quadrant"] == "Inconclusive")
    return out


def coverage(dgp: str, seed: int) -> dict:
    planted = -0.3
    units = [Unit(f"U{i}", 2500, 0.0, planted) for i in range(3)]
    panel = simulate(dgp, units, seed, hazard_on_csat=True)
    truth = planted
    if dgp == "latent":
        from models.simulation_latent import measured_estimand

        truth = measured_estimand(panel, planted, "csat")
    res = run(panel, main_measure="csat")
    covered = ((res["link_ci_low"] < truth) & (res["link_ci_high"] > truth)).sum()
    return {"covered": int(covered), "units": res.height, "truth": truth,
            "bias": float((res["link_effect"] - truth).mean())}  # fmt: skip


SCENARIOS: dict[str, Callable[[str, int], dict]] = {
    "null": null, "small_null": small_null, "at_threshold": at_threshold, "trend": trend,
    "region": region, "mixed_outcomes": mixed_outcomes, "types": types, "coverage": coverage,
}  # fmt: skip
# Each scenario's seeds start here, apart from every other's.
SEED_BASE = {name: 100_000 * (i + 1) for i, name in enumerate(SCENARIOS)}


def share(k: int, n: int) -> dict:
    """A rate with its Monte Carlo standard error and exact (Clopper-Pearson) 95% interval."""
    from scipy.stats import beta

    p = k / n if n else math.nan
    lo = 0.0 if k == 0 else float(beta.ppf(0.025, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(0.975, k + 1, n - k))
    return {"rate": p, "mc_se": math.sqrt(p * (1 - p) / n) if n else math.nan,
            "ci_low": lo, "ci_high": hi, "k": k, "n": n}  # fmt: skip


def summarise(name: str, results: list[dict]) -> dict:
    """The scenario's rates from its replications' counts."""
    total = {k: sum(r[k] for r in results) for k in results[0] if k not in ("truth", "bias")}
    if name == "null":
        return {"strong": share(total["strong"], total["units"]),
                "permutation_size": share(total["permutation_rejects"], total["permuted"])}
    if name in ("small_null", "region"):
        return {"strong": share(total["strong"], total["units"])}
    if name == "at_threshold":
        return {"weak": share(total["weak"], total["units"]),
                "strong": share(total["strong"], total["units"])}  # fmt: skip
    if name == "trend":
        return {"execution_level_right": share(total["right"], total["units"])}
    if name == "mixed_outcomes":
        return {"unchanged": share(total["unchanged"], total["units"]),
                "strong_alone": share(total["strong"], total["units"])}  # fmt: skip
    if name == "types":
        n = len(results)
        falsification = {
            "overwhelming_permutation_pass": share(total["overwhelming_permutation_pass"],
                                                   total["overwhelming"]),
            "negative_control_false_failure": share(total["negative_control_failed"],
                                                    total["linked"]),
        }  # fmt: skip
        return {"falsification": falsification} | {k: {"recovered": share(total[f"{k}_right"], n),
                    "inconclusive": share(total[f"{k}_inconclusive"], n),
                    "wrong_established": share(total[f"{k}_wrong_established"], n)}
                for k in TYPES}  # fmt: skip
    if name == "coverage":
        out = {"covered": share(total["covered"], total["units"])}
        out["planted"] = float(np.mean([r["truth"] for r in results]))
        out["mean_bias"] = float(np.mean([r["bias"] for r in results]))
        return out
    raise KeyError(name)


def replicate(task: tuple[str, str, int]) -> tuple[str, str, dict]:
    name, dgp, rep = task
    np.seterr(all="ignore")
    return name, dgp, SCENARIOS[name](dgp, SEED_BASE[name] + rep)


def _commit() -> str | None:
    """The code's commit, with "+changes" when the work tree differs from it."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], capture_output=True, text=True,
                              cwd=Path(__file__).parent.parent).stdout.strip()  # fmt: skip

    sha = git("rev-parse", "--short", "HEAD")
    if not sha:
        return None
    return sha + ("+changes" if git("status", "--porcelain", "--", "models", "bench") else "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--dgp", nargs="+", default=["simulation", "latent"])
    p.add_argument("--scenario", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "calibration.json"
    )
    args = p.parse_args()
    os.environ["CXALIGN_THREADS"] = "1"  # one process per core instead of threads per unit
    started = time.perf_counter()
    commit = _commit()  # the code the workers import now, not what the tree holds at the end
    tasks = [(s, d, r) for s in args.scenario for d in args.dgp for r in range(args.reps)]
    collected: dict[tuple[str, str], list[dict]] = {}
    with ProcessPoolExecutor(args.jobs) as pool:
        for name, dgp, counts in pool.map(replicate, tasks, chunksize=4):
            collected.setdefault((name, dgp), []).append(counts)
    seconds = round(time.perf_counter() - started, 1)
    command = (f"bench/calibration.py --reps {args.reps} --dgp {' '.join(args.dgp)} "
               f"--scenario {' '.join(args.scenario)}")  # fmt: skip
    # Each run replaces its own scenarios' figures in the file and keeps the others', each
    # figure stamped with its replications and the code it came from.
    result = json.loads(args.out.read_text()) if args.out.exists() else {}
    result.setdefault("scenarios", {})
    for (name, dgp), results in collected.items():
        result["scenarios"].setdefault(name, {})[dgp] = summarise(name, results) | {
            "reps": len(results), "commit": commit, "command": command}
    result.setdefault("runs", []).append({"command": command, "seconds": seconds,
                                          "jobs": args.jobs, "commit": commit})  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
