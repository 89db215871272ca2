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
