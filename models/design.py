"""Design matrices kept compact: float columns in one column-major block, 0/1 indicator
columns as each row's cell (its combination of categorical levels), worked a block of rows
at a time.

At a million accounts a business unit's hazard model has 5 M rows and about 24 columns, of
which 17 are indicators (segment, tenure band, calendar quarter). As float64 the matrix is
1 GB per unit, and every IRLS step reads all of it: the fits are bound by memory bandwidth,
not by the cores (two threads over the row blocks measured no faster). Kept as seven float
columns and one cell code per row it is a third of that. A block's share of the normal
equations is the weighted dense columns' product plus their sums per cell (np.bincount over
a few hundred cells), from which the indicator rows and columns follow exactly; X @ b is
the dense part plus each cell's effect. At L this halved the hazard fits (one unit's eight
fits: 27 -> 15 s) against writing every indicator into each block and multiplying it out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import polars as pl

T = TypeVar("T")


class Design:
    """A (rows x columns) design matrix: `dense` (rows x d, float, column-major) first, then
    0/1 indicators (rows x m) kept as `cells` and `levels`: each row's cell (its combination
    of categorical levels, an integer code) and each cell's indicators (cells x m, uint8),
    so that the row's indicators are levels[cells]. A block's share of the normal
    equations then needs the weighted dense columns summed per cell (a few hundred cells)
    instead of a product with every indicator column, and X @ b one gather of the cells'
    effects. Without cells, the dense columns alone."""

    def __init__(
        self, dense: np.ndarray, cells: np.ndarray | None = None, levels: np.ndarray | None = None
    ) -> None:
        if (cells is None) != (levels is None):
            raise ValueError("cells and levels come together")
        self.dense = dense
        self.cells = cells
        self.levels = levels
        m = 0 if levels is None else levels.shape[1]
        self.shape = (dense.shape[0], dense.shape[1] + m)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop of the whole matrix, written out (to inspect it: the fits work
        through dot, gram_part and column, which never write the indicators out)."""
        if self.cells is None:
            return self.dense[start:stop]
        return np.hstack([self.dense[start:stop], self.levels[self.cells[start:stop]]])

    def column(self, j: int) -> np.ndarray:
        """Column j over every row (an indicator column is made float for the call)."""
        d = self.dense.shape[1]
        if j < d:
            return self.dense[:, j]
        return self.levels[:, j - d].astype(float)[self.cells]

    def dot(self, start: int, stop: int, b: np.ndarray) -> np.ndarray:
        """Rows start..stop of X @ b."""
        d = self.dense.shape[1]
        out = self.dense[start:stop] @ b[:d]
        if self.cells is not None:
            out += (self.levels @ b[d:])[self.cells[start:stop]]
        return out

    def gram_part(self, start: int, stop: int, w: np.ndarray, z: np.ndarray | None) -> tuple:
        """Rows start..stop's share of X' W X and X' W z (w, z: those rows' values), as
        parts that add up across blocks; gram_total() makes the matrices from them."""
        D = self.dense[start:stop]
        DtW = D.T * w
        if self.cells is None:
            return DtW @ D, None if z is None else DtW @ z, None
        cells, n_cells = self.cells[start:stop], self.levels.shape[0]
        # Per cell: the weight, each weighted dense column and the weighted z, summed.
        per_cell = np.empty((n_cells, DtW.shape[0] + 2))
        per_cell[:, 0] = np.bincount(cells, weights=w, minlength=n_cells)
        for j, col in enumerate(DtW, start=1):
            per_cell[:, j] = np.bincount(cells, weights=col, minlength=n_cells)
        if z is None:
            return DtW @ D, None, per_cell[:, :-1]
        per_cell[:, -1] = np.bincount(cells, weights=w * z, minlength=n_cells)
        return DtW @ D, DtW @ z, per_cell

    def gram_total(self, parts: list[tuple]) -> tuple[np.ndarray, np.ndarray | None]:
        """X' W X and X' W z from every block's gram_part(), added in block order."""
        k = self.shape[1]
        if not parts:
            return np.zeros((k, k)), None
        with_z = parts[0][1] is not None
        top = summed_in_order([p[0] for p in parts])
        g = summed_in_order([p[1] for p in parts]) if with_z else None
        if self.cells is None:
            return top, g
        d = top.shape[0]
        per_cell = summed_in_order([p[2] for p in parts])
        L = self.levels.astype(float)
        cross = L.T @ per_cell[:, 1 : d + 1]  # indicators x dense
        H = np.empty((k, k))
        H[:d, :d] = top
        H[d:, :d] = cross
        H[:d, d:] = cross.T
        H[d:, d:] = L.T @ (per_cell[:, :1] * L)
        return H, None if g is None else np.concatenate([g, L.T @ per_cell[:, -1]])


def level_codes(values: pl.Series) -> tuple[np.ndarray, list[str]]:
    """Each row's level as an index into the level names, sorted by name (a missing value is
    the level "null"), and the names."""
    text = values.cast(pl.Utf8).fill_null("null")
    names = text.unique().sort().to_list()
    return text.cast(pl.Enum(names)).to_physical().to_numpy().astype(np.int16), names


TENURE_EDGES = (6, 12, 24)  # tenure bands: under 6, 12 and 24 months, and older


def tenure_band_codes(tenure_months: pl.Series) -> np.ndarray:
    """Each row's tenure band, 0..3 (TENURE_EDGES); a missing tenure falls in the last band,
    as `when ... otherwise` put it."""
    months = tenure_months.cast(pl.Float64).to_numpy()
    return np.searchsorted(TENURE_EDGES, months, "right").astype(np.int16)


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


def with_categories(
    dense: np.ndarray, categories: list[tuple[np.ndarray, list[str], str]]
) -> tuple[Design, list[str]]:
    """A Design of the dense columns and the dummies of each categorical (codes: each row's
    level, an index into names; columns named prefix_level, as dummies_of makes them), kept
    as cells: each row's combination of levels. Returns it and the dummies' names."""
    sizes = [len(names) for _, names, _ in categories]
    cells = np.zeros(dense.shape[0], dtype=np.int64)
    for codes, names, _ in categories:
        cells = cells * len(names) + codes
    # each cell's level of each categorical, in the same mixed radix as the codes above
    grid = np.indices(sizes).reshape(len(sizes), -1)
    dummies = [
        (i, name, level)
        for i, (codes, names, prefix) in enumerate(categories)
        for name, _, level in dummies_of(codes, names, prefix)
    ]
    levels = np.empty((grid.shape[1], len(dummies)), dtype=np.uint8)
    for j, (i, _, level) in enumerate(dummies):
        levels[:, j] = grid[i] == level
    return Design(dense, cells=cells, levels=levels), [name for _, name, _ in dummies]


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
    with blas_controller().limit(limits=1, user_api="blas"):
        return [
            fn(start, min(start + GRAM_BLOCK, n_rows)) for start in range(0, n_rows, GRAM_BLOCK)
        ]


@functools.cache
def blas_controller():
    """threadpoolctl's view of the loaded BLAS and OpenMP libraries, found once. Finding them
    reads the process's memory map, and threadpool_limits() did that on every call: 6 ms a
    call once scikit-learn, scipy and polars are loaded, a third of a small unit's fits
    (bench/calibration.py). The libraries a limit needs (numpy's BLAS) are loaded before the
    first fit."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


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
    parts = map_blocks(
        lambda start, stop: X.gram_part(
            start, stop, w[start:stop], None if z is None else z[start:stop]
        ),
        X.shape[0],
    )
    if not parts:
        k = X.shape[1]
        return np.zeros((k, k)), None if z is None else np.zeros(k)
    return X.gram_total(parts)


def matvec(X: np.ndarray | Design, b: np.ndarray) -> np.ndarray:
    """X @ b, a block of rows at a time."""
    X = as_design(X)
    parts = map_blocks(lambda start, stop: X.dot(start, stop, b), X.shape[0])
    return np.concatenate(parts) if parts else np.empty(0)
