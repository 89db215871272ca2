"""Numbers into plain sentences, by the language rules.

* Associational wording ("is associated with") unless the falsification checks passed;
  then "predicts", and the sentence says which checks.
* Every number comes with its interval or its n.
* An inconclusive unit is said plainly, with what would settle it.
"""

from __future__ import annotations

import math

from pipelines.scorecard.names import in_text


def pct(x: float | None, digits: int = 0) -> str:
    return (
        "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"
    )


def money(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    for unit, size in (("M", 1e6), ("k", 1e3)):
        if abs(x) >= size:
            return f"{x / size:,.1f}{unit}"
    return f"{x:,.0f}"


OUTCOME_WORDS = {
    "retention": ("monthly churn hazard", "lower", "higher"),
    "expansion": ("chance of expanding in a month", "higher", "lower"),
    "cost_to_serve": ("support hours needed", "lower", "higher"),
}


def link_sentence(u: dict) -> str:
    """The link, in words, with its interval."""
    if u["link_effect"] is None:
        return "There were too few events to estimate a link."
    what, good, bad = OUTCOME_WORDS[u["outcome_tested"]]
    effect = u["link_effect_shrunk"]
    lo, hi = u["link_shrunk_ci_low"], u["link_shrunk_ci_high"]
    change = math.exp(effect) - 1  # relative change per SD better CX
    ci = sorted([math.exp(lo) - 1, math.exp(hi) - 1])
    direction = good if (change < 0) == (good == "lower") else bad
    verb = "predicts" if u["falsification_passed"] else "is associated with"
    checks = (
        " (it held up when CX histories were shuffled among accounts"
        + (
            " and it does not predict failed-payment churn"
            if u["negative_control_p"] is not None
            else ""
        )
        + ")"
        if u["falsification_passed"]
        else ""
    )
    return (
        f"A one-SD better CX score {verb} a {abs(change):.0%} {direction} {what} "
        f"(95% interval {ci[0]:+.0%} to {ci[1]:+.0%}; {u['n_accounts']:,} accounts, "
        f"{u['n_events']:,} events){checks}."
    )


def nps_contrast(c: dict | None) -> str:
    if not c or not c["promoter_rate"] or not c["detractor_rate"] or not c["promoter_n"]:
        return ""
    ratio = c["detractor_rate"] / c["promoter_rate"]
    return (
        f"Accounts whose latest NPS answer was a detractor churned at {ratio:.1f}× the monthly rate "
        f"of promoters ({pct(c['detractor_rate'], 1)} of {c['detractor_n']:,} account-months against "
        f"{pct(c['promoter_rate'], 1)} of {c['promoter_n']:,})."
    )


def verdict_sentence(u: dict) -> str:
    unit = in_text(u["business_unit"])
    if u["quadrant"] == "Inconclusive":
        mde = u["mde"]
        need = (
            f" Detecting it would need about {u['accounts_needed']:,} accounts with this much history "
            "(or proportionally more months)."
            if u["accounts_needed"]
            else ""
        )
        threshold = 1 - math.exp(u["materiality_threshold"])
        smallest = (
            f" With today's data the smallest effect it could reliably detect is a "
            f"{1 - math.exp(-mde):.0%} change per SD, against the {threshold:.0%} that would matter."
            if mde is not None
            else f" Only {u['n_events']:,} events among {u['n_accounts']:,} accounts: too few to fit "
            "the model at all; more accounts or more months of history would settle it."
        )
        return (
            f"{unit}: the evidence is inconclusive. The data cannot yet tell whether CX moves "
            f"{u['outcome_description']} here.{smallest}{need}"
        )
    level = {"high": "above", "low": "below"}.get(u["execution_level"], "about level with")
    return (
        f"{unit} is {u['quadrant']} ({u['confidence']}, {pct(u['quadrant_probability'])} of "
        f"resamples agree): CX here runs {level} the company's level and its link to "
        f"{u['outcome_description']} is {u['link_verdict']}."
    )


def headline(units: list[dict], company: dict) -> str:
    n = len(units)
    strong = [in_text(u["business_unit"]) for u in units if u["link_verdict"] == "strong"]
    inconclusive = [
        in_text(u["business_unit"]) for u in units if u["link_verdict"] == "inconclusive"
    ]
    parts = [
        f"In {len(strong)} of {n} business units CX is clearly linked to the outcome that unit "
        f"cares about" + (f" ({', '.join(strong)})" if strong else "")
    ]
    inflicted = [in_text(u["business_unit"]) for u in units if u["quadrant"] == "Inflicted"]
    if inflicted:
        parts.append(
            f"in {', '.join(inflicted)}, where CX runs below the company's level, that link is "
            "costing customers"
        )
    sentence = "; ".join(parts) + "."
    if inconclusive:
        sentence += (
            f" {len(inconclusive)} unit(s) need more data before a call: {', '.join(inconclusive)}."
        )
    return sentence


def change_sentence(u: dict, prev: dict | None) -> str:
    if prev is None:
        return "First run: nothing to compare with."
    parts = []
    if prev["quadrant"] != u["quadrant"]:
        parts.append(f"type changed from {prev['quadrant']} to {u['quadrant']}")
    if prev["link_verdict"] != u["link_verdict"]:
        parts.append(f"link verdict changed from {prev['link_verdict']} to {u['link_verdict']}")
    if prev.get("link_effect_shrunk") is not None and u["link_effect_shrunk"] is not None:
        delta = u["link_effect_shrunk"] - prev["link_effect_shrunk"]
        if abs(delta) >= 0.02:
            parts.append(f"link effect moved by {delta:+.2f} (log hazard ratio per SD)")
    if prev.get("execution_score") is not None and u["execution_score"] is not None:
        delta = u["execution_score"] - prev["execution_score"]
        if abs(delta) >= 0.05:
            parts.append(f"execution moved by {delta:+.2f} SD")
    return (
        ("Since the last run: " + "; ".join(parts) + ".")
        if parts
        else "No material change since the last run."
    )


# ---------------------------------------------------------------------------------------
# What it could be worth (analytics.unit_whatif; docs/methods/whatif.md)

LEVER_WORDS = {
    "first_response": "first response time",
    "fcr": "first-contact resolution",
    "reopen": "the reopen rate",
    "csat": "CSAT",
    "ces": "CES",
    "detractor": "the detractor share",
    "all": "every lever together",
}


def lever_level(lever: str, value: float | None) -> str:
    """A lever's level as leaders read it."""
    if value is None:
        return "not measured"
    if lever == "first_response":
        return f"{value:,.0f} minutes"
    if lever in ("fcr", "reopen", "detractor"):
        return pct(value)
    return f"{value:.2f}"


def _ci_money(row: dict, column: str) -> str:
    return f"{money(row[column])} (95% interval {money(row[column + '_ci_low'])} to {money(row[column + '_ci_high'])})"


def whatif_mislead(u: dict) -> str | None:
    """Why a money figure would mislead for this unit, or None when its link supports one:
    only a strong retention link is valued."""
    if u["outcome_tested"] != "retention":
        return (
            f"This unit declares {u['outcome_tested'].replace('_', ' ')} as its outcome; a "
            "what-if values churn, which is not what the unit is judged on."
        )
    if u["link_verdict"] == "weak":
        return (
            "A what-if would mislead here: a material link between CX and churn was ruled out "
            "in this unit, so any money figure would promise what the data say is not there."
        )
    if u["link_verdict"] == "inconclusive":
        return (
            "A what-if would mislead here: whether CX moves churn in this unit is not settled "
            f"({u['link_reason']}), and a money figure would look precise where the evidence "
            "is not."
        )
    return None


def whatif_summary(u: dict, rows: list[dict]) -> dict:
    """The unit page's "What it could be worth": `mislead` (why no figure is shown), or the
    lead sentence on the lever with the largest value whose 95% interval lies above zero,
    the evidence in words, the levers already at the best quartile, and the backtest."""
    out = {"mislead": whatif_mislead(u), "lead": None, "evidence": None, "at_best": [], "unvalued": [],
           "rows": [], "backtest": whatif_backtest(rows[0] if rows else None)}  # fmt: skip
    valued = [r for r in rows if r["churn_avoided"] is not None]
    if out["mislead"] is None and not valued:
        out["mislead"] = "No what-if could be computed for this unit: " + (
            rows[0]["not_estimated_reason"] if rows else "its what-if model was not fitted"
        ) + "."
    if out["mislead"]:
        return out
    out["rows"] = valued
    out["unvalued"] = [f"{LEVER_WORDS[r['lever']]}: {r['not_estimated_reason']}"
                       for r in rows if r["churn_avoided"] is None]  # fmt: skip
    levers = [r for r in valued if r["lever"] != "all"]
    at_best = [r for r in levers if _same_level(r["baseline_level"], r["scenario_level"])]
    out["at_best"] = [LEVER_WORDS[r["lever"]] for r in at_best]
    backed = [r for r in levers if (r["mrr_retained_per_year_ci_low"] or 0) > 0]
    if levers and len(at_best) == len(levers):
        out["lead"] = (
            "This unit is at or beyond the company's best-quartile unit level on every CX lever: "
            "moving to it gains nothing here (the cxalign whatif command values any other change)."
        )
        return out
    if not backed:
        out["lead"] = (
            "No single lever moved to the company's best-quartile unit level has a value whose "
            "95% interval lies above zero here: the figures below could be nothing."
        )
        return out
    best = max(backed, key=lambda r: r["mrr_retained_per_year"])
    out["best"] = best
    out["lead"] = (
        f"Bringing {LEVER_WORDS[best['lever']]} from {lever_level(best['lever'], best['baseline_level'])} "
        f"to the company's best-quartile unit level ({lever_level(best['lever'], best['scenario_level'])}) "
        f"would be worth about {best['churn_avoided']:,.1f} fewer accounts leaving over the next "
        f"{best['months']} months (95% interval {best['churn_avoided_ci_low']:,.1f} to "
        f"{best['churn_avoided_ci_high']:,.1f}), {_ci_money(best, 'mrr_retained_per_year')} of MRR kept"
        + (f" and {_ci_money(best, 'clv_retained')} of lifetime value" if best["clv_retained"] is not None else "")
        + "."
    )  # fmt: skip
    out["evidence"] = best["evidence_note"]
    if best["evidence_grade"] == "within-account" and best["churn_avoided_within"] is not None:
        out["evidence"] += (
            f" Within the same accounts: {best['churn_avoided_within']:,.1f} accounts "
            f"(95% interval {best['churn_avoided_within_ci_low']:,.1f} to "
            f"{best['churn_avoided_within_ci_high']:,.1f})."
        )
    return out


def _same_level(a: float | None, b: float | None) -> bool:
    """The lever did not move (equal but for rounding: the two means are summed apart)."""
    return a is not None and b is not None and abs(a - b) <= 1e-9 * (1 + abs(a))


def whatif_backtest(row: dict | None) -> str:
    """The zero-change backtest in a sentence."""
    if not row or row.get("backtest_expected_churners") is None:
        return "Not enough months of history yet to check the projection against what happened."
    e, o, sd = row["backtest_expected_churners"], row["backtest_observed_churners"], row["backtest_expected_sd"]
    agree = abs(o - e) <= 2 * sd
    return (
        f"Checked against what happened: fitted without the {row['backtest_months']} months from "
        f"{row['backtest_from_month']:%B %Y} and run with no change, the projection expected "
        f"{e:,.1f} of those {row['backtest_accounts']:,} accounts to leave voluntarily; {o:,} did "
        + ("(within the range chance alone gives, ±" if agree else "(outside the range chance alone gives, ±")
        + f"{2 * sd:,.1f})."
    )  # fmt: skip


def whatif_ranking(units: list[dict], whatif: dict[str, list[dict]]) -> tuple[list[dict], list[dict]]:
    """The company page: units whose link supports a figure, ranked by the MRR every lever
    moved to the best quartile together would keep; and the others with why not."""
    ranked, others = [], []
    for u in units:
        rows = whatif.get(u["business_unit"], [])
        every = next((r for r in rows if r["lever"] == "all" and r["churn_avoided"] is not None), None)
        why = whatif_mislead(u)
        if why or every is None:
            short = (
                f"declares {u['outcome_tested'].replace('_', ' ')} as its outcome" if u["outcome_tested"] != "retention"
                else "a material link to churn was ruled out" if u["link_verdict"] == "weak"
                else "its link to churn is not settled" if u["link_verdict"] == "inconclusive"
                else "no what-if could be computed"
            )  # fmt: skip
            others.append({"business_unit": u["business_unit"], "why": short})
        else:
            ranked.append({"business_unit": u["business_unit"], **{k: every[k] for k in every if k != "business_unit"}})
    ranked.sort(key=lambda r: -(r["mrr_retained_per_year"] or 0))
    return ranked, others
