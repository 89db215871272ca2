"""The verdict rules (alignment-v2, docs/methods/alignment.md): the link verdict from the
unit's own estimate, the CX type from execution and link, its probability and confidence.

strong        BH q <= fdr_q (one-sided, expected direction, across the units testing the
              same outcome) and the unit's own one-sided p <= unit_alpha, the unit's own estimate at or beyond the materiality threshold
              in the expected direction, and the falsification checks passed;
weak          a material effect is ruled out: the unit's own one-sided 95% bound in the
              expected direction falls short of the threshold (an equivalence test, TOST);
inconclusive  otherwise, with the reason in words.
Shrinkage never enters a verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.special import ndtr, ndtri

from models.alignment.config import AlignmentConfig
from models.alignment.execution import Execution
from models.alignment.link import LinkFit, NoFit, one_sided_bound

POWER_Z = float(ndtri(0.975) + ndtri(0.8))  # MDE at 80% power, two-sided 5%


@dataclass(frozen=True)
class LinkVerdict:
    verdict: str  # strong | weak | inconclusive
    reason: str
    accounts_needed: int | None  # where more data would settle it


def link_verdict(fit: LinkFit | NoFit, q: float | None, falsification_failed: list[str],
                 config: AlignmentConfig, sign: int, n_accounts: int) -> LinkVerdict:  # fmt: skip
    """falsification_failed: the names of the checks that failed (empty: passed or not run)."""
    if isinstance(fit, NoFit):
        return LinkVerdict("inconclusive", fit.words, None)
    if not fit.converged:
        return LinkVerdict("inconclusive", "the model's fit did not converge", None)
    m = config.materiality_log
    if sign * fit.effect <= -m and fit.p_expected_direction >= 1 - config.falsification_alpha:
        # Significantly and materially the other way (better CX, more churn): not "weak" (CX
        # does go with the outcome here), and not a link the framework's types describe. A
        # small reversed estimate stays weak: a material effect the expected way is ruled out.
        return LinkVerdict(
            "inconclusive", "associated in the opposite direction from the expected one "
            f"(one-sided p = {1 - fit.p_expected_direction:.2g} the other way): check how the "
            "measure and the outcome are recorded before acting on it", None,
        )  # fmt: skip
    material = sign * fit.effect >= m
    significant = (
        q is not None and q <= config.fdr_q and fit.p_expected_direction <= config.unit_alpha
        and sign * fit.effect > 0
    )  # fmt: skip
    bound = one_sided_bound(fit, sign)
    if significant and material:
        if falsification_failed:
            return LinkVerdict(
                "inconclusive",
                "significant and material, but the falsification check failed: "
                + " and ".join(falsification_failed), None,
            )  # fmt: skip
        return LinkVerdict(
            "strong", "significant (BH), material on the unit's own estimate, falsification "
            "checks passed", None,
        )  # fmt: skip
    if bound < m:
        if fit.n_events:  # a hazard: in hazard ratios, as the threshold is declared
            reached = f"hazard ratio {math.exp(sign * bound):.2f}"
            threshold = f"{config.materiality_hr:.2f}" if sign < 0 else f"{1 / config.materiality_hr:.2f}"
        else:
            reached, threshold = f"{bound:.3f} per SD in the expected direction", f"{m:.3f}"
        return LinkVerdict(
            "weak", f"a material effect is ruled out: the one-sided 95% bound ({reached}) "
            f"falls short of the threshold ({threshold})", None,
        )  # fmt: skip
    # Neither: say which way the evidence leans, and what would settle it. The bound reaches
    # below the threshold once 1.645 SE fits between the estimate and it; more accounts
    # shrink SE with their square root.
    needed = _accounts_needed(fit, sign, m, n_accounts)
    if significant:
        reason = ("significant but not shown to be material: the estimate falls short of "
                  "the threshold and a material effect is not ruled out")  # fmt: skip
    elif fit.mde > m:
        reason = ("a material effect is not ruled out and could not be detected: not enough "
                  "data (MDE above the threshold)")  # fmt: skip
    else:
        reason = ("a material effect is not ruled out (the one-sided 95% bound reaches past "
                  "the threshold), and none is shown")  # fmt: skip
    if needed is not None:
        reason += f"; about {needed:,} accounts would settle it"
    return LinkVerdict("inconclusive", reason, needed)


def _accounts_needed(fit: LinkFit, sign: int, m: float, n_accounts: int) -> int | None:
    """Accounts at which the evidence would settle at the current estimate (SE shrinking with
    the square root of the accounts), at 80% power and one-sided 5%: for a material estimate,
    to be significant (all "strong" still lacks); for one short of the threshold, for its
    bound to fall short of the threshold (what "weak" needs)."""
    b = sign * fit.effect
    gap = b if b >= m else m - b
    if gap < 1e-9:
        return None
    target_se = gap / (ndtri(0.95) + ndtri(0.8))
    if target_se >= fit.se:
        return None
    return int(math.ceil(n_accounts * (fit.se / target_se) ** 2))


def quadrant(execution: Execution, link: str) -> str:
    # A score of exactly 0 is the company itself (a one-unit company): no side to be on.
    if link == "inconclusive" or not math.isfinite(execution.score) or execution.score == 0:
        return "Inconclusive"
    side = "high" if execution.score > 0 else "low"
    return {
        ("high", "strong"): "Innovative",
        ("low", "strong"): "Inflicted",
        ("high", "weak"): "Ineffective",
        ("low", "weak"): "Inactive",
    }[(side, link)]


def link_probability(fit: LinkFit, sign: int, m: float, verdict: str) -> float:
    """P(the true effect lies on the verdict's side of the threshold), from the normal
    approximation to the unit's own estimate (flat prior): for strong, P(sign x beta >= m);
    for weak, P(sign x beta < m)."""
    beyond = float(ndtr((sign * fit.effect - m) / fit.se))
    return beyond if verdict == "strong" else 1 - beyond


def type_probability(execution: Execution, fit: LinkFit | NoFit, sign: int, m: float,
                     verdict: str) -> float | None:  # fmt: skip
    """The probability of the unit's CX type: the execution side's share of the account
    bootstrap times the link side's normal probability (the two are estimated from
    different sources of error and multiply)."""
    if verdict == "inconclusive" or execution.p_side is None or not isinstance(fit, LinkFit):
        return None
    return execution.p_side * link_probability(fit, sign, m, verdict)


def confidence(probability: float | None, execution: Execution, threshold: float) -> str:
    """established: probability at least `threshold` and execution not indeterminate."""
    if probability is not None and probability >= threshold and execution.level != "indeterminate":
        return "established"
    return "provisional"
