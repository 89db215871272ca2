"""Execution: against the company over the same months, with an account bootstrap."""

from __future__ import annotations

import numpy as np


def test_replicate_weights_drawn_in_blocks_are_one_draw():
    from models.alignment.execution import poisson_weighted_sums
    from models.parallel import REPLICATE_BLOCK

    values = np.random.default_rng(1).normal(size=(1000, 3))
    replicates = 2 * REPLICATE_BLOCK + 5  # a partial last block
    weights = np.random.default_rng(7).poisson(1.0, size=(replicates, 1000))
    got = poisson_weighted_sums(np.random.default_rng(7), replicates, values)
    np.testing.assert_allclose(got, weights @ values, rtol=1e-12)
