"""Maximum likelihood with loud failures: shared by the CLV models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

LOG_BOUND = 12.0  # parameters are fitted on the log scale within exp(+-12)
# A stop counts as the optimum when the log-likelihood can gain less than this by moving
# there (the Newton decrement g'H^-1 g / 2): far below the unit that inference works in.
DECREMENT_TOL = 1e-6


class FitError(RuntimeError):
    """The optimiser did not converge, or an estimate sits on a bound."""

    def __init__(
        self, message: str, on_bound: tuple[str, ...] = (), estimate: dict[str, float] | None = None
    ):
        super().__init__(message)
        self.on_bound = on_bound
        # Where the optimiser stopped, for callers that can recognise a limiting case.
        self.estimate = estimate or {}


@dataclass(frozen=True)
class Fit:
    params: dict[str, float]
    std_errors: dict[str, float]
    loglik: float
    n_iter: int


def numerical_hessian(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central-difference Hessian of f at x (step scaled to each coordinate)."""
    x = np.asarray(x, dtype=float)
    k = len(x)
    h = 1e-4 * np.maximum(np.abs(x), 1e-2)
    hess = np.empty((k, k))
    for i in range(k):  # k is the number of parameters (2-4), not data
        for j in range(i, k):
            ei, ej = np.zeros(k), np.zeros(k)
            ei[i], ej[j] = h[i], h[j]
            value = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * h[i] * h[j]
            )
            hess[i, j] = hess[j, i] = value
    return hess


def gradient_hessian(gradient: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Hessian by central differences of an exact gradient (one order more precise than
    differencing the function twice)."""
    x = np.asarray(x, dtype=float)
    h = 1e-5 * np.maximum(np.abs(x), 1e-2)
    columns = [
        (gradient(x + step) - gradient(x - step)) / (2 * h[i])
        for i, step in enumerate(np.diag(h))  # one per parameter (2-4)
    ]
    hess = np.column_stack(columns)
    return (hess + hess.T) / 2


def newton_decrement(gradient: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> float:
    """g'H^-1 g / 2 at x: what a Newton step would gain in log-likelihood (inf where the
    Hessian is not positive definite, i.e. x is not near a maximum)."""
    g = gradient(x)
    try:
        np.linalg.cholesky(hess := gradient_hessian(gradient, x))
    except np.linalg.LinAlgError:
        return np.inf
    return float(g @ np.linalg.solve(hess, g) / 2)


def fit_mle(
    neg_loglik: Callable[[np.ndarray], float],
    names: tuple[str, ...],
    start: np.ndarray,
    model: str,
    gradient: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Fit:
    """Minimise a negative log-likelihood over positive parameters (fitted on the log scale).

    gradient: its exact gradient in the natural parameters, where the model has one; without
    it L-BFGS-B differences the function, which stalls on large samples. Standard errors
    come from the inverse Hessian of the negative log-likelihood in the natural parameters,
    at the optimum.
    """

    def on_log_scale(theta: np.ndarray) -> float:
        value = neg_loglik(np.exp(theta))
        return value if np.isfinite(value) else 1e300

    def gradient_on_log_scale(theta: np.ndarray) -> np.ndarray:
        params = np.exp(theta)
        g = gradient(params) * params  # chain rule: d/d(log p) = p d/dp
        return g if np.all(np.isfinite(g)) else np.zeros_like(g)

    res = minimize(
        on_log_scale,
        np.log(start),
        jac=gradient_on_log_scale if gradient else None,
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
        options={"maxiter": 10_000, "ftol": 1e-14, "gtol": 1e-9},
    )
    # L-BFGS-B's line search can stop at the optimum itself, where the gradient of a large
    # sample's log-likelihood is rounding noise; the Newton decrement tells that stop from
    # one on the way there.
    at_optimum = res.success or (
        gradient is not None and newton_decrement(gradient, np.exp(res.x)) < DECREMENT_TOL
    )
    if not at_optimum:
        # A flat ridge can stop the line search; polish with a derivative-free method.
        polished = minimize(
            on_log_scale,
            res.x,
            method="Nelder-Mead",
            bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
            options={"maxiter": 20_000, "xatol": 1e-8, "fatol": 1e-10},
        )
        if not polished.success:
            raise FitError(
                f"{model}: the optimiser did not converge ({res.message}; then {polished.message})",
                estimate=dict(zip(names, map(float, np.exp(polished.x)), strict=True)),
            )
        res = polished
    on_bound = [n for n, t in zip(names, res.x, strict=True) if LOG_BOUND - abs(t) < 1e-3]
    if on_bound:
        raise FitError(
            f"{model}: estimate of {', '.join(on_bound)} sits on its bound "
            f"(exp(+-{LOG_BOUND:g})): the data do not identify the model",
            on_bound=tuple(on_bound),
            estimate=dict(zip(names, map(float, np.exp(res.x)), strict=True)),
        )
    estimate = np.exp(res.x)
    hess = (
        gradient_hessian(gradient, estimate)
        if gradient
        else numerical_hessian(neg_loglik, estimate)
    )
    try:
        cov = np.linalg.inv(hess)
        se = np.sqrt(np.diag(cov))
    except np.linalg.LinAlgError:
        se = np.full(len(names), np.nan)
    if not np.all(np.isfinite(se)):
        raise FitError(
            f"{model}: the Hessian at the optimum is singular; standard errors undefined"
        )
    return Fit(
        params=dict(zip(names, map(float, estimate), strict=True)),
        std_errors=dict(zip(names, map(float, se), strict=True)),
        loglik=float(-neg_loglik(estimate)),
        n_iter=int(res.nit),
    )
