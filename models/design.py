"""Design matrices kept compact: float columns in one column-major block, 0/1 indicator
columns one byte each, whole rows made a block at a time.

At a million accounts a business unit's hazard model has 5 M rows and about 24 columns, of
which 17 are indicators (segment, tenure band, calendar quarter). As float64 the matrix is
1 GB per unit, and every IRLS step reads all of it: the fits are bound by memory bandwidth,
not by the cores (two threads over the row blocks measured no faster). Kept as seven float
columns and 17 one-byte indicator columns it is 40% of that; each block of rows is written
out in full into a small scratch array that stays in cache while the block's share of the
normal equations is computed (weighted_gram below; models.alignment.fit_cloglog).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


class Design:
    """A (rows x columns) design matrix: `dense` (rows x d, float, column-major) first, then
    the 0/1 `indicators` (rows x m, uint8, column-major)."""

    def __init__(self, dense: np.ndarray, indicators: np.ndarray | None = None) -> None:
        self.dense = dense
        self.indicators = (
            np.empty((dense.shape[0], 0), dtype=np.uint8) if indicators is None else indicators
        )
        self.shape = (dense.shape[0], dense.shape[1] + self.indicators.shape[1])
        self._scratch: np.ndarray | None = None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of the whole matrix. Without indicators a view of `dense`;
        otherwise written into a scratch array that the next call reuses."""
        if not self.indicators.shape[1]:
            return self.dense[start:stop]
        n = stop - start
        if self._scratch is None or self._scratch.shape[0] < n:
            self._scratch = np.empty((n, self.shape[1]), order="F")
        out = self._scratch[:n]
        d = self.dense.shape[1]
        out[:, :d] = self.dense[start:stop]
        out[:, d:] = self.indicators[start:stop]
        return out

    def column(self, j: int) -> np.ndarray:
        """Column j over every row (an indicator column is made float for the call)."""
        d = self.dense.shape[1]
        return self.dense[:, j] if j < d else self.indicators[:, j - d].astype(float)


def dummies_of(
    codes: np.ndarray, names: list[str], prefix: str
) -> list[tuple[str, np.ndarray, int]]:
    """One indicator per level present, as polars' to_dummies(drop_first=True) makes them
    from the level names: the first row's level is the reference, the others in order of
    name. codes: each row's level, an index into names. Returns (column name, codes, level)."""
    if not len(codes):
        return []
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    kept = sorted((names[c], int(c)) for c in present if c != codes[0])
    return [(f"{prefix}_{name}", codes, c) for name, c in kept]


def indicator_matrix(dummies: list[tuple[str, np.ndarray, int]], n_rows: int) -> np.ndarray:
    """The 0/1 columns of dummies_of(...) results, one byte each, column-major: the
    `indicators` of a Design. (Each varies: its level is present, and the first row's level
    is the reference.)"""
    out = np.empty((n_rows, len(dummies)), dtype=np.uint8, order="F")
    for j, (_, codes, code) in enumerate(dummies):
        out[:, j] = codes == code
    return out


def as_design(X: np.ndarray | Design) -> Design:
    """A Design as it is; a plain matrix as a Design of dense columns (no copy)."""
    return X if isinstance(X, Design) else Design(X)


GRAM_BLOCK = 1 << 13  # rows per block: its (block x columns) scratch, 1.5 MB, stays in cache


def map_blocks(fn: Callable[[int, int], T], n_rows: int) -> list[T]:
    """fn(start, stop) over consecutive blocks of GRAM_BLOCK rows, in order, with BLAS held to
    one thread: a block's products are too small to share out (with BLAS free to start its
    threads, a unit's fits took 66 s instead of 41 s at L). Sharing the blocks themselves
    between two threads measured no faster either: these loops are bound by memory
    bandwidth, not by the cores (docs/BENCHMARKS.md)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return [
            fn(start, min(start + GRAM_BLOCK, n_rows)) for start in range(0, n_rows, GRAM_BLOCK)
        ]


def summed_in_order(parts: list[np.ndarray]) -> np.ndarray:
    """Partial sums added in block order."""
    total = np.zeros_like(parts[0])
    for part in parts:
        total += part
    return total


def weighted_gram(
    X: np.ndarray | Design, w: np.ndarray, z: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """X' W X and X' W z (W = diag(w)), summed over blocks of rows: the same normal equations
    without a (rows x columns) weighted copy of X, which at a million accounts is gigabytes
    per fit."""
    X = as_design(X)

    def block(start: int, stop: int):
        Xb = X.rows(start, stop)
        XtW = Xb.T * w[start:stop]
        return XtW @ Xb, None if z is None else XtW @ z[start:stop]

    parts = map_blocks(block, X.shape[0])
    if not parts:
        k = X.shape[1]
        return np.zeros((k, k)), None if z is None else np.zeros(k)
    H = summed_in_order([h for h, _ in parts])
    return H, None if z is None else summed_in_order([g for _, g in parts])


def matvec(X: np.ndarray | Design, b: np.ndarray) -> np.ndarray:
    """X @ b, a block of rows at a time."""
    X = as_design(X)
    parts = map_blocks(lambda start, stop: X.rows(start, stop) @ b, X.shape[0])
    return np.concatenate(parts) if parts else np.empty(0)
