"""Fit business units side by side, one thread per core.

The per-unit model work is numpy, polars and scikit-learn, which release the GIL in their
heavy loops, so threads use both cores of a small machine without copying the panel into
worker processes. BLAS and OpenMP are held to one thread per worker meanwhile, so two workers do not
each start a BLAS or OpenMP pool on the same two cores. CXALIGN_THREADS overrides the worker count
(1: sequential). Each unit draws from its own random generator (unit_rng), so results do not
depend on the number of workers or on which other units are present.
"""

from __future__ import annotations

import os
import warnings
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import polars as pl

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    configured = os.environ.get("CXALIGN_THREADS")
    return max(1, int(configured)) if configured else (os.cpu_count() or 1)


def map_units(fn: Callable[[T], R], items: Sequence[T], quiet: bool = False) -> list[R]:
    """fn over items, results in the order of items. quiet: silence warnings (numerical
    chatter from the fits) for the whole map; warning filters are process-wide, so a
    catch_warnings inside the worker threads would race."""
    n = min(len(items), workers())
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        if n <= 1:
            return [fn(item) for item in items]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1), ThreadPoolExecutor(n) as pool:
            return list(pool.map(fn, items))


def units_of(data: pl.DataFrame) -> list[tuple[str, pl.DataFrame]]:
    """The panel split by business unit, each unit's rows by account and month (the order
    the fits and resamples rely on to repeat exactly), units in order of first appearance."""
    return [
        (unit, rows)
        for (unit,), rows in data.sort("account_code", "month").group_by(
            "business_unit", maintain_order=True
        )
    ]


def unit_rng(seed: int, unit: str, stream: str = "") -> np.random.Generator:
    """A generator of its own for one unit (and purpose), fixed by seed and name."""
    return np.random.default_rng([seed, zlib.crc32(f"{unit}\x00{stream}".encode())])
