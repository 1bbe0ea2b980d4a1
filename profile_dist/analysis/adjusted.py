"""Adjusted factor effects (PROFILE_METHOD.md section 6): a penalised logistic Bradley-Terry model.

tau is univariate: a factor that merely travels with length inherits length's influence. The model
P(r+ preferred over r-) = sigmoid(beta . z), with z the standardised factor differences
z_f = (f(r+) - f(r-)) / s_f (s_f = root mean square of the differences, so a coefficient is the
log-odds per typical difference), estimates each factor's effect with the others held fixed.

There is no intercept: swapping the two responses negates z and the outcome, so the model is symmetric
by construction. With every pair oriented preferred-first the likelihood is prod sigmoid(beta . z_i),
the same as the usual 0/1-outcome logistic regression on randomly oriented pairs.

The objective (statsmodels' GLM.fit_regularized convention, L2 only):
    -mean_i log sigmoid(beta . z_i) + penalty / 2 * |beta|^2
solved by Newton's method; intervals are Wald intervals from the penalised information
(n * Hessian of the objective), which equal the usual GLM standard errors when penalty = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, log_expit, ndtri  # ndtri: the normal quantile (scipy.stats' norm.ppf, minus its 0.5 s import)

DEFAULT_PENALTY = 1e-3


@dataclass
class BradleyTerryFit:
    coef: np.ndarray  # per column; log-odds per standardised difference
    se: np.ndarray
    n: int
    iterations: int
    converged: bool

    def interval(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        z = ndtri(0.5 + level / 2)
        return self.coef - z * self.se, self.coef + z * self.se


def standardise(diffs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, scale): each column divided by its root mean square; a column that never differs keeps scale 0 and z 0."""
    scale = np.sqrt(np.mean(np.square(diffs), axis=0)) if len(diffs) else np.zeros(diffs.shape[1])
    safe = np.where(scale > 0, scale, 1.0)
    return diffs / safe, scale


def fit_bradley_terry(
    z: np.ndarray, *, penalty: float = DEFAULT_PENALTY, max_iterations: int = 100, tolerance: float = 1e-10,
) -> BradleyTerryFit:
    """Penalised logistic fit of sigmoid(beta . z_i) = P(the first response of row i is preferred) = 1."""
    z = np.asarray(z, dtype=np.float64)
    n, p = z.shape
    if n == 0:
        return BradleyTerryFit(np.full(p, np.nan), np.full(p, np.nan), 0, 0, False)
    if penalty <= 0 and np.linalg.matrix_rank(z) < p:
        raise ValueError("unpenalised fit needs full-rank differences; use penalty > 0")
    beta = np.zeros(p)
    identity = np.eye(p)
    converged = False
    iteration = 0
    for iteration in range(1, max_iterations + 1):
        t = z @ beta
        gradient = -(z.T @ expit(-t)) / n + penalty * beta
        weight = expit(t) * expit(-t)
        hessian = (z.T * weight) @ z / n + penalty * identity
        step = np.linalg.solve(hessian, gradient)
        # Damped Newton: the objective is convex, halving keeps every step a descent step.
        objective = -np.mean(log_expit(t)) + penalty / 2 * beta @ beta
        scale = 1.0
        while scale > 1e-8:
            candidate = beta - scale * step
            value = -np.mean(log_expit(z @ candidate)) + penalty / 2 * candidate @ candidate
            if value <= objective + 1e-15:
                break
            scale /= 2
        beta = candidate
        if np.max(np.abs(scale * step)) < tolerance:
            converged = True
            break
    t = z @ beta
    weight = expit(t) * expit(-t)
    information = (z.T * weight) @ z + n * penalty * identity
    covariance = np.linalg.pinv(information)
    se = np.sqrt(np.clip(np.diag(covariance), 0, None))
    return BradleyTerryFit(beta, se, n, iteration, converged)


@dataclass
class AdjustedEffects:
    """Per factor: the standardised coefficient with a Wald interval, NaN where a factor never differs."""

    factors: list[str]
    coef: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    scale: np.ndarray
    n_pairs: int  # complete pairs used for the fit


def adjusted_effects(factors: list[str], diffs: np.ndarray, *, penalty: float = DEFAULT_PENALTY, level: float = 0.95) -> AdjustedEffects:
    """Fit on the pairs whose every factor difference is known; factors that never differ are left out."""
    diffs = np.asarray(diffs, dtype=np.float64)
    complete = diffs[~np.isnan(diffs).any(axis=1)] if len(diffs) else diffs
    z, scale = standardise(complete)
    used = scale > 0
    nan = np.full(len(factors), math.nan)
    coef, low, high = nan.copy(), nan.copy(), nan.copy()
    if used.any() and len(complete):
        fit = fit_bradley_terry(z[:, used], penalty=penalty)
        lo, hi = fit.interval(level)
        coef[used], low[used], high[used] = fit.coef, lo, hi
    return AdjustedEffects(list(factors), coef, low, high, scale, len(complete))
