"""Shared settings for the alignment tests (imported as `helpers` from this folder)."""

from models.alignment import AlignmentConfig

# The verdicts only: no per-metric fits or revenue model, fewer resamples.
FAST = AlignmentConfig(secondary_metrics=False, revenue_model=False, permutations=100,
                       bootstrap_replicates=200)  # fmt: skip
