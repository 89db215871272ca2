"""Design matrices kept compact: float columns in one column-major block, 0/1 indicator
columns one byte each, whole rows made a block at a time.

At a million accounts a business unit's hazard model has 5 M rows and about 24 columns, of
which 17 are indicators (segment, tenure band, calendar quarter). As float64 the matrix is
1 GB per unit, and every IRLS step reads all of it: the fits are bound by memory bandwidth,
not by the cores (two threads over the row blocks measured no faster). Kept as seven float
columns and 17 one-byte indicator columns it is 40% of that; each block of rows is written
out in full into a small scratch array that stays in cache while the block's share of the
normal equations is computed (models.alignment.weighted_gram, fit_cloglog).
"""

from __future__ import annotations

import numpy as np


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


def as_design(X: np.ndarray | Design) -> Design:
    """A Design as it is; a plain matrix as a Design of dense columns (no copy)."""
    return X if isinstance(X, Design) else Design(X)
