"""Maximum likelihood with loud failures: shared by the CLV models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

LOG_BOUND = 12.0  # parameters are fitted on the log scale within exp(+-12)


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


def fit_mle(
    neg_loglik: Callable[[np.ndarray], float],
    names: tuple[str, ...],
    start: np.ndarray,
    model: str,
) -> Fit:
    """Minimise a negative log-likelihood over positive parameters (fitted on the log scale).

    Standard errors come from the inverse Hessian of the negative log-likelihood in the
    natural parameters, at the optimum.
    """

    def on_log_scale(theta: np.ndarray) -> float:
        value = neg_loglik(np.exp(theta))
        return value if np.isfinite(value) else 1e300

    res = minimize(
        on_log_scale,
        np.log(start),
        method="L-BFGS-B",
        bounds=[(-LOG_BOUND, LOG_BOUND)] * len(names),
        options={"maxiter": 10_000, "ftol": 1e-14, "gtol": 1e-9},
    )
    if not res.success:
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
    hess = numerical_hessian(neg_loglik, estimate)
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
