"""Cluster-robust (CR1) pieces shared by the OLS and hazard fits, and the OLS fit itself.

Both need the score contributions summed within each cluster (account). Summing with one
`np.bincount` per column is linear in rows; `np.add.at` (unbuffered) and `np.unique` over
string ids were the slow parts of the SCI and alignment stages at 100k accounts.
"""

from __future__ import annotations

import numpy as np

from models.design import Design, as_design, matvec, weighted_gram


def cluster_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    """Dense codes 0..G-1 for the cluster ids, and G."""
    groups = np.asarray(groups)
    if groups.dtype.kind in "iu" and len(groups):
        lo, hi = int(groups.min()), int(groups.max())
        if hi - lo < 4 * len(groups) + 1024:  # dense enough: a lookup table, no sort
            present = np.zeros(hi - lo + 1, dtype=bool)
            present[groups - lo] = True
            lookup = np.cumsum(present) - 1
            return lookup[groups - lo], int(present.sum())
    _, inverse = np.unique(groups, return_inverse=True)
    return inverse.reshape(-1), int(inverse.max()) + 1 if len(inverse) else 0


def cluster_scores(
    X: np.ndarray | Design, resid: np.ndarray, codes: np.ndarray, n_clusters: int
) -> np.ndarray:
    """Score contributions X[:, j] * resid summed within clusters: (n_clusters x k), one
    column at a time, so no (rows x k) temporary is made (a unit at a million accounts has
    millions of rows)."""
    X = as_design(X)
    return np.column_stack(
        [
            np.bincount(codes, weights=X.column(j) * resid, minlength=n_clusters)
            for j in range(X.shape[1])
        ]
    )


def cr1_covariance(
    bread: np.ndarray, X: np.ndarray | Design, resid: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """bread @ meat @ bread, the meat from the score contributions X * resid summed within
    clusters, with the CR1 small-sample factor G/(G-1) (n-1)/(n-k)."""
    n, k = X.shape
    codes, G = cluster_codes(groups)
    scores = cluster_scores(X, resid, codes, G)
    correction = G / (G - 1) * (n - 1) / (n - k)
    return correction * bread @ (scores.T @ scores) @ bread


def ols_cluster(
    y: np.ndarray, X: np.ndarray | Design, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """OLS coefficients with CR1 cluster-robust standard errors (as statsmodels' cluster),
    from normal equations summed a block of rows at a time (X: a matrix or a compact Design)."""
    XtX, Xty = weighted_gram(X, np.ones(len(y)), y)
    XtX_inv = np.linalg.pinv(XtX)
    beta = XtX_inv @ Xty
    resid = y - matvec(X, beta)
    cov = cr1_covariance(XtX_inv, X, resid, groups)
    return beta, np.sqrt(np.diag(cov))
