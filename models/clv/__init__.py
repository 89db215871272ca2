"""Customer lifetime value: contractual (sBG + DERL) and non-contractual (BG/NBD + Gamma-Gamma).

Pure Python (numpy/scipy/polars); no Dagster. Reference results these reproduce are in
tests/models/test_clv.py and docs/methods/clv.md.
"""

from models.clv._optim import FitError
from models.clv.bgnbd import (
    BGNBDFit,
    GammaGammaFit,
    GammaGammaMeanUndefined,
    TransactionInputError,
    discounted_expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    rfm_summary,
)
from models.clv.sbg import SBGFit, SBGInputError, fit_sbg, fit_survivors, lifetimes_from_survivors

__all__ = [
    "BGNBDFit", "FitError", "GammaGammaFit", "GammaGammaMeanUndefined", "SBGFit",
    "SBGInputError", "TransactionInputError", "discounted_expected_purchases", "fit_bgnbd",
    "fit_gamma_gamma", "fit_sbg", "fit_survivors", "lifetimes_from_survivors", "rfm_summary",
]  # fmt: skip
