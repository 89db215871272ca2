"""Fit business units side by side, one thread per core.

The per-unit model work is numpy, polars and scikit-learn, which release the GIL in their
heavy loops, so threads use both cores of a small machine without copying the panel into
worker processes. BLAS and OpenMP are held to one thread per worker meanwhile, so two workers
do not each start a BLAS or OpenMP pool on the same two cores. CXALIGN_THREADS overrides the
worker count (1: sequential); a memory budget (`models.memory_budget`) lets a unit start only
when its estimated memory fits beside that of the units in flight. Each unit draws from its
own random generator (unit_rng), so results do not depend on the number of workers or on which
other units are present.
"""

from __future__ import annotations

import os
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import polars as pl

T = TypeVar("T")
R = TypeVar("R")


def workers() -> int:
    configured = os.environ.get("CXALIGN_THREADS")
    return max(1, int(configured)) if configured else (os.cpu_count() or 1)


def map_units(
    fn: Callable[[T], R],
    items: Sequence[T],
    quiet: bool = False,
    sizes: Sequence[float] | None = None,
    budget: float | None = None,
    on_done: Callable[[T], None] | None = None,
) -> list[R]:
    """fn over items, results in the order of items. quiet: silence warnings (numerical
    chatter from the fits) for the whole map; warning filters are process-wide, so a
    catch_warnings inside the worker threads would race.

    sizes and budget (bytes): an item starts only when its size and the sizes of the items
    still running fit within the budget; an item larger than the budget runs alone. Items
    start in order, so the results (and each item's random stream) do not depend on it.
    When no two items fit together, they run one after another on the calling thread, as
    with one worker: threads taking turns would each keep memory their allocator holds.

    on_done: told of each item as its fn returns (from the worker's thread), for progress."""
    if sizes is not None and len(sizes) != len(items):
        raise ValueError(f"{len(sizes)} sizes for {len(items)} items")
    if on_done is not None:
        fn = _telling(fn, on_done)
    n = min(len(items), workers())
    if budget is not None and sizes is not None and not _two_fit(sizes, budget):
        n = 1
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        if n <= 1:
            return [fn(item) for item in items]
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1), ThreadPoolExecutor(n) as pool:
            if budget is None or sizes is None:
                return list(pool.map(fn, items))
            return list(pool.map(_within(fn, items, sizes, budget), range(len(items))))


def _telling(fn: Callable[[T], R], on_done: Callable[[T], None]) -> Callable[[T], R]:
    def run(item: T) -> R:
        result = fn(item)
        on_done(item)
        return result

    return run


def _two_fit(sizes: Sequence[float], budget: float) -> bool:
    """Whether any two of the sizes fit within the budget together."""
    smallest = sorted(sizes)[:2]
    return len(smallest) == 2 and sum(smallest) <= budget


def _within(
    fn: Callable[[T], R], items: Sequence[T], sizes: Sequence[float], budget: float
) -> Callable[[int], R]:
    """fn of the i-th item, made to wait until the item fits within the budget beside the
    items running."""
    room = threading.Condition()
    running = {"bytes": 0.0, "items": 0}

    def run(i: int) -> R:
        size = sizes[i]
        with room:
            room.wait_for(lambda: not running["items"] or running["bytes"] + size <= budget)
            running["bytes"] += size
            running["items"] += 1
        try:
            return fn(items[i])
        finally:
            with room:
                running["bytes"] -= size
                running["items"] -= 1
                room.notify_all()

    return run


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


REPLICATE_BLOCK = 16  # replicates drawn at a time: a (block x accounts) array of a few MB


def poisson_blocks(
    rng: np.random.Generator, replicates: int, n: int
) -> Iterator[tuple[int, int, np.ndarray]]:
    """The account bootstrap's Poisson(1) counts for n accounts, a block of replicates at a
    time: (start, stop, counts of replicates start..stop, (stop - start) x n). The same
    draws, in the same order, as one (replicates x n) draw, whose int64 array (and the
    copies made of it) is gigabytes at a million accounts."""
    for start in range(0, replicates, REPLICATE_BLOCK):
        stop = min(start + REPLICATE_BLOCK, replicates)
        yield start, stop, rng.poisson(1.0, size=(stop - start, n))
