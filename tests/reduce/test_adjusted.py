"""The penalised Bradley-Terry fit against statsmodels on the same inputs."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from profile_dist.analysis.adjusted import adjusted_effects, fit_bradley_terry, standardise


def preference_data(n: int, beta: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, oriented): x = features of a minus b, y = 1 if a preferred; oriented = preferred minus other."""
    rng = np.random.default_rng(seed)
    length = rng.normal(size=n)
    facts = 0.8 * length + 0.6 * rng.normal(size=n)  # facts travel with length
    x = np.column_stack([length, facts, rng.normal(size=(n, len(beta) - 2))])
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ beta))).astype(float)
    oriented = np.where(y[:, None] == 1, x, -x)
    return x, y, oriented


BETA = np.array([1.0, -0.5, 0.3, 0.0])


def test_unpenalised_fit_matches_statsmodels_glm_coefficients_and_standard_errors():
    x, y, oriented = preference_data(3000, BETA, seed=1)
    ours = fit_bradley_terry(oriented, penalty=0.0)
    glm = sm.GLM(y, x, family=sm.families.Binomial()).fit()
    assert ours.converged
    np.testing.assert_allclose(ours.coef, glm.params, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.se, glm.bse, rtol=1e-6)
    low, high = ours.interval(0.95)
    np.testing.assert_allclose(np.column_stack([low, high]), glm.conf_int(0.05), rtol=1e-6)


@pytest.mark.parametrize("penalty", [1e-3, 0.05])
def test_penalised_fit_matches_statsmodels_fit_regularized(penalty):
    x, y, oriented = preference_data(2000, BETA, seed=2)
    ours = fit_bradley_terry(oriented, penalty=penalty)
    reference = sm.GLM(y, x, family=sm.families.Binomial()).fit_regularized(
        alpha=penalty, L1_wt=0.0, cnvrg_tol=1e-12, maxiter=1000,
    )
    # statsmodels' coordinate descent stops a little short (~1e-4 relative): same optimum to its
    # precision, and ours is at least as low on the very objective statsmodels documents.
    np.testing.assert_allclose(ours.coef, reference.params, rtol=1e-3, atol=1e-5)

    def objective(beta):
        return -sm.GLM(y, x, family=sm.families.Binomial()).loglike(beta) / len(y) + penalty / 2 * beta @ beta

    assert objective(ours.coef) <= objective(reference.params) + 1e-12
    # the penalty shrinks towards zero
    assert np.linalg.norm(ours.coef) < np.linalg.norm(fit_bradley_terry(oriented, penalty=0.0).coef)


def test_adjusted_effect_separates_a_factor_that_only_travels_with_length():
    # Preference depends on length only; facts correlate with length, so its plain effect is positive
    _, _, oriented = preference_data(4000, np.array([1.5, 0.0, 0.0, 0.0]), seed=3)
    concordance = np.mean(oriented[:, 1] > 0)
    assert concordance > 0.6  # the univariate view credits facts
    effects = adjusted_effects(["length", "facts", "a", "b"], oriented)
    assert effects.ci_low[0] > 0
    assert effects.ci_low[1] <= 0 <= effects.ci_high[1]  # holding length fixed, facts do nothing


def test_standardise_and_missing_rows_and_constant_factors():
    diffs = np.array([[1.0, 0.0, 2.0], [-3.0, 0.0, np.nan], [2.0, 0.0, -1.0], [1.0, 0.0, 1.0]])
    z, scale = standardise(diffs[[0, 2, 3]])
    np.testing.assert_allclose(scale, [np.sqrt(2), 0.0, np.sqrt(2)])
    np.testing.assert_allclose(np.sqrt(np.mean(z[:, [0, 2]] ** 2, axis=0)), [1.0, 1.0])
    effects = adjusted_effects(["a", "b", "c"], diffs)
    assert effects.n_pairs == 3  # the row with a missing value is left out
    assert np.isnan(effects.coef[1])  # a factor that never differs has no effect to estimate
    assert np.isfinite(effects.coef[[0, 2]]).all()
