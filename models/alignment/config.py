"""What the alignment test is configured by, declared once: the CX metrics, the outcomes a
unit can declare, a unit's strategy, and `AlignmentConfig` (the `alignment:` section of the
cxalign configuration file is this model: pipelines/settings.py uses it as it is).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

METHOD_VERSION = "alignment-v2"

# Features measured over a window that ends before the row's month (analytics.account_month).
# Only these can enter a link model; anything else is refused.
LAGGED_FEATURES = {
    "nps_category_latest", "nps_responses", "csat_mean", "csat_responses", "ces_mean",
    "ces_responses", "tickets", "first_response_minutes_median", "resolution_minutes_median",
    "fcr_rate", "reopen_rate", "handle_hours",
}  # fmt: skip
# The CX metrics and how each becomes a number where higher is better.
METRICS = {
    "nps": "NPS category (promoter 1, passive 0, detractor -1)",
    "csat": "mean CSAT",
    "ces": "mean CES",
    "first_response": "median first response (log minutes, inverted)",
    "fcr": "first-contact resolution rate",
}
COMPOSITE = "cx_composite"
# Which way is better, per metric, in its own units (first response: fewer minutes).
LOWER_IS_BETTER = {"first_response"}

ACTIONS = {
    "Innovative": "Double down: keep measuring impact, reward innovation, keep CX tied to the "
    "unit's changing priorities.",
    "Inflicted": "Act decisively: CX drives retention here and the unit is failing it; get "
    "executive sponsorship and invest in fixing the experience.",
    "Ineffective": "Recalibrate: good scores, outcomes unmoved; audit CX activities and tie them "
    "to the outcomes this unit needs.",
    "Inactive": "Start now: minimal, reactive service with no measurable link; build a "
    "proactive post-sale strategy and measure it.",
    "Inconclusive": "Keep measuring: the evidence cannot yet tell a real link from noise; see "
    "what would settle it.",
}


@dataclass(frozen=True)
class Outcome:
    name: str
    column: str  # in the prepared panel
    kind: str  # event (discrete-time cloglog hazard) | continuous (OLS)
    expected_sign: int  # +1: better CX should raise it; -1: lower it
    label: str


# What a unit's strategy can declare as its primary outcome (strategy.yaml).
OUTCOMES = {
    "retention": Outcome("retention", "churned_next_month_voluntary", "event", -1,
                         "voluntary churn next month"),
    "expansion": Outcome("expansion", "expanded_next_month", "event", +1,
                         "expansion (higher MRR) next month, among accounts that stay"),
    "cost_to_serve": Outcome("cost_to_serve", "log_handle_hours_next", "continuous", -1,
                             "log(1 + support hours next month), among accounts that stay"),
}  # fmt: skip


@dataclass(frozen=True)
class UnitStrategy:
    """A unit's declared strategy: the outcome its CX should move, and its CX targets."""

    primary_outcome: str = "retention"
    # metric -> (floor, target) in the metric's own units (NPS points, CSAT 1-5, CES 1-7,
    # first response minutes, FCR share); execution is then measured against these.
    targets: dict[str, tuple[float, float]] = field(default_factory=dict)


class FeatureLeakError(Exception):
    """A feature not known to be measured before the outcome month was offered to a model.
    (Not a ValueError, so that pydantic passes it through as itself instead of folding it
    into a ValidationError: a leak is a modelling mistake, not a typo.)"""


def target_problem(metric: str, floor: float, target: float) -> str | None:
    """Why a (floor, target) pair is unusable for a metric, or None."""
    if metric not in METRICS:
        return f"unknown metric {metric!r} (one of {', '.join(METRICS)})"
    lower = metric in LOWER_IS_BETTER
    if (lower and not target < floor) or (not lower and not target > floor):
        better = "below" if lower else "above"
        return f"{metric} target {target:g} must be {better} its floor {floor:g}: the range is the wrong way round"
    if metric == "first_response" and min(floor, target) <= 0:
        return "first_response minutes must be positive"
    return None


class AlignmentConfig(BaseModel):
    """The alignment test's settings. Every field has its default here and only here; the
    configuration file's `alignment:` section is validated by this model (an unknown key is
    an error naming it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The main CX measure: cx_composite (standardised mean of NPS, CSAT, CES, first
    # response (inverted) and FCR) or one of nps, csat, ces, first_response, fcr.
    main_measure: str = COMPOSITE
    # A hazard ratio per SD of the main measure at or beyond this is material.
    materiality_hr: float = Field(0.85, gt=0.0, lt=1.0)
    fdr_q: float = Field(0.10, gt=0.0, lt=1.0)
    # ... and the unit's own one-sided test at this level: BH bounds the share of false
    # discoveries among the strong calls, not a null unit's own chance (beside four real
    # links, a null unit passes BH at its raw p <= fdr_q).
    unit_alpha: float = Field(0.05, gt=0.0, lt=0.5)
    permutations: int = Field(200, ge=20)
    falsification_alpha: float = Field(0.05, gt=0.0, lt=0.5)
    min_negative_control_events: int = Field(20, ge=5)
    # Execution is measured on the most recent months.
    execution_months: int = Field(12, ge=1)
    # Optional targets for every unit without its own in strategy.yaml, instead of the
    # company benchmark: metric -> [floor, target] in the metric's units.
    execution_targets: dict[str, tuple[float, float]] | None = None
    bootstrap_replicates: int = Field(400, ge=50)
    established_probability: float = Field(0.8, gt=0.5, lt=1.0)
    seed: int = 20261122
    # Lagged features of analytics.account_month added to every link model as controls.
    extra_features: tuple[str, ...] = ()
    # The exploratory per-metric fits and the revenue model (the calibration harness, which
    # only needs the verdicts, turns them off to run faster).
    secondary_metrics: bool = True
    revenue_model: bool = True

    @field_validator("main_measure")
    @classmethod
    def _known_measure(cls, v: str) -> str:
        if v != COMPOSITE and v not in METRICS:
            raise ValueError(f"main_measure {v!r}: one of {COMPOSITE}, " + ", ".join(METRICS))
        return v

    @field_validator("execution_targets")
    @classmethod
    def _valid_targets(cls, v):
        for metric, (floor, target) in (v or {}).items():
            problem = target_problem(metric, floor, target)
            if problem:
                raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _lagged_only(self):
        leaked = [f for f in self.extra_features if f not in LAGGED_FEATURES]
        if leaked:
            raise FeatureLeakError(
                f"feature(s) {', '.join(leaked)} are not measured before the outcome month "
                f"(allowed: {', '.join(sorted(LAGGED_FEATURES))}); a feature from the outcome "
                "month or later would manufacture a link"
            )
        return self

    @property
    def materiality_log(self) -> float:
        """|log materiality_hr|: the size an effect must reach in the expected direction."""
        return abs(math.log(self.materiality_hr))

    @property
    def measure(self) -> str:
        """The prepared panel's column of the main measure."""
        return COMPOSITE if self.main_measure == COMPOSITE else f"z_{self.main_measure}"
