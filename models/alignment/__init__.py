"""The alignment test: does CX predict the outcome in each business unit, and how well is CX
delivered there? Method: docs/methods/alignment.md (and DOMAIN §3). A model family in the
shape of linearmodels' packages, one role per module:

config        the settings (AlignmentConfig), metrics, outcomes, a unit's strategy
features      the panel: at-risk rows, metrics on the company's scale, the composite, what
              was not measured, the size control
link          the link fit: cloglog hazard (or OLS), clustered by account; LinkFit / NoFit
falsification block permutation (studentised) and the negative-control outcome
pooling       Benjamini-Hochberg and random-effects pooling, per outcome, for display
execution     execution against the company over the same months (or targets), bootstrap
verdict       the v2 rules: strong / weak (equivalence) / inconclusive, type, probability
result        the typed, frozen result of one unit's fit
stage         fit_unit, summarise_units, align_units: the tables

numpy/polars/scipy/statsmodels, and DuckDB for standardising; no Dagster.
"""

from models.alignment.config import (
    ACTIONS,
    COMPOSITE,
    LAGGED_FEATURES,
    METHOD_VERSION,
    METRICS,
    OUTCOMES,
    AlignmentConfig,
    FeatureLeakError,
    Outcome,
    UnitStrategy,
    target_problem,
)
from models.alignment.execution import poisson_weighted_sums
from models.alignment.features import (
    AT_RISK_SQL,
    PANEL_COLUMNS,
    company_scale,
    outcome_rows,
    prepare,
    prepared,
)
from models.alignment.link import LinkFit, NoFit, design, fit_cloglog, fit_hazard
from models.alignment.pooling import benjamini_hochberg, random_effects
from models.alignment.stage import align_units, fit_unit, recent_start, summarise_units

__all__ = [
    "ACTIONS", "AT_RISK_SQL", "COMPOSITE", "LAGGED_FEATURES", "METHOD_VERSION", "METRICS",
    "OUTCOMES", "PANEL_COLUMNS", "AlignmentConfig", "FeatureLeakError", "LinkFit", "NoFit",
    "Outcome", "UnitStrategy", "align_units", "benjamini_hochberg", "company_scale", "design",
    "fit_cloglog", "fit_hazard", "fit_unit", "outcome_rows", "poisson_weighted_sums",
    "prepare", "prepared", "random_effects", "recent_start", "summarise_units",
    "target_problem",
]  # fmt: skip
