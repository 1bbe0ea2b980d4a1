"""The pure maths against independent references (scipy, brute force) on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp
from statsmodels.stats.proportion import proportion_confint

from profile_dist.analysis import stats

finite = st.floats(min_value=-1, max_value=1, allow_nan=False).map(lambda x: round(x, 2))
vectors = st.integers(min_value=2, max_value=12).flatmap(
    lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n), st.lists(finite, min_size=n, max_size=n))
)


def brute_counts(preferred, other):
    c = sum(1 for p, o in zip(preferred, other) if p > o)
    d = sum(1 for p, o in zip(preferred, other) if p < o)
    return c, d, len(preferred) - c - d


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), max_size=60))
def test_concordance_counts_match_brute_force(rows):
    preferred = [p for p, _ in rows]
    other = [o for _, o in rows]
    assert stats.concordance_counts(np.array(preferred), np.array(other)) == brute_counts(preferred, other)


def test_influence_summary_definitions():
    summary = stats.influence_summary(30, 10, 10)
    assert summary["tau"] == pytest.approx(0.5)
    assert summary["tau_a"] == pytest.approx(20 / 50)
    assert summary["relevance"] == pytest.approx(40 / 50)
    assert summary["p_preferred_more"] == pytest.approx(0.75)
    assert stats.influence_summary(0, 0, 5)["tau"] is None


def test_tau_from_counts_is_nan_without_decided_pairs():
    result = stats.tau_from_counts(np.array([3, 0]), np.array([1, 0]))
    assert result[0] == pytest.approx(0.5)
    assert math.isnan(result[1])


@given(vectors)
@settings(max_examples=200)
def test_kendall_tau_b_matches_scipy(xy):
    x, y = np.array(xy[0]), np.array(xy[1])
    expected = sp.kendalltau(x, y, variant="b").statistic
    got = stats.kendall_tau_b(x, y)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


@given(vectors)
@settings(max_examples=200)
def test_spearman_rho_matches_scipy(xy):
    x, y = np.array(xy[0]), np.array(xy[1])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(stats.spearman_rho(x, y))
        return
    assert stats.spearman_rho(x, y) == pytest.approx(sp.spearmanr(x, y).statistic, abs=1e-12)


@given(st.lists(finite, min_size=1, max_size=30))
def test_rankdata_matches_scipy(values):
    np.testing.assert_allclose(stats.rankdata_average(np.array(values)), sp.rankdata(values, method="average"))


def test_sign_top_k_and_mean_abs_diff():
    x = np.array([0.5, -0.2, 0.0, 0.9, 0.1])
    y = np.array([0.4, 0.3, 0.0, -0.8, 0.05])
    assert stats.sign_agreement(x, y) == pytest.approx(3 / 5)
    # top-3 by |tau|: x -> {3, 0, 1}; y -> {3, 0, 1}
    assert stats.top_k_overlap(x, y, 3) == pytest.approx(1.0)
    assert stats.top_k_overlap(x, np.array([0.0, 0.0, 0.9, 0.0, 0.8]), 2) == pytest.approx(0.0)
    assert stats.mean_abs_diff(x, y) == pytest.approx(np.mean(np.abs(x - y)))


def test_alignment_metrics_drop_undefined_factors():
    x = np.array([0.5, np.nan, 0.1, -0.3])
    y = np.array([0.4, 0.2, 0.0, -0.1])
    metrics = stats.alignment_metrics(x, y)
    kept = [0, 2, 3]
    assert metrics["kendall_tau_b"] == pytest.approx(sp.kendalltau(x[kept], y[kept]).statistic)
    assert metrics["mean_abs_diff"] == pytest.approx(np.mean(np.abs(x[kept] - y[kept])))


def test_poisson_weights_follow_poisson_one():
    hashes = stats.hash64([f"pair-{i}" for i in range(20_000)])
    weights = stats.poisson_weights(hashes, 50)
    observed = np.bincount(weights.ravel(), minlength=8)[:8] / weights.size
    expected = sp.poisson.pmf(np.arange(8), 1.0)
    np.testing.assert_allclose(observed, expected, atol=0.004)
    # Replicates are independent draws: weights of the same pair are uncorrelated across replicates.
    assert abs(np.corrcoef(weights[:, 0], weights[:, 1])[0, 1]) < 0.03


def test_poisson_weights_depend_only_on_the_pair_and_replicate():
    ids = [f"pair-{i}" for i in range(500)]
    whole = stats.poisson_weights(stats.hash64(ids), 20, seed=3)
    part = stats.poisson_weights(stats.hash64(ids[100:200][::-1]), 20, seed=3)
    np.testing.assert_array_equal(whole[100:200][::-1], part)
    assert not np.array_equal(whole, stats.poisson_weights(stats.hash64(ids), 20, seed=4))


def test_weighted_counts_is_exact_integer_sum():
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 5, size=(1000, 7)).astype(np.uint8)
    indicators = rng.integers(0, 2, size=(1000, 3)).astype(bool)
    expected = weights.T.astype(np.int64) @ indicators.astype(np.int64)
    np.testing.assert_array_equal(stats.weighted_counts(weights, indicators), expected)


def test_percentile_interval_matches_numpy_and_ignores_nan():
    samples = np.array([0.1, 0.5, np.nan, -0.2, 0.3, 0.9])
    low, high = stats.percentile_interval(samples, 0.9)
    finite_samples = samples[~np.isnan(samples)]
    assert low == pytest.approx(np.percentile(finite_samples, 5))
    assert high == pytest.approx(np.percentile(finite_samples, 95))
    assert stats.percentile_interval(np.array([np.nan])) == (None, None)


# --- the interval for tau: Wilson on C / (C + D), widened by a design effect ---------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 400), st.floats(1.0, 12.0), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_tau_interval_is_statsmodels_wilson_over_the_effective_pairs(c, d, deff, level):
    if c + d == 0:
        assert stats.tau_interval(c, d, deff, level) == (None, None)
        return
    low, high = stats.tau_interval(c, d, deff, level)
    p_low, p_high = proportion_confint(c / deff, (c + d) / deff, alpha=1 - level, method="wilson")
    assert low == pytest.approx(2 * p_low - 1, abs=1e-12) and high == pytest.approx(2 * p_high - 1, abs=1e-12)
    assert -1 <= low < high <= 1  # never of zero width, at the boundary too
    tau = (c - d) / (c + d)
    assert low <= tau <= high


def test_the_interval_keeps_its_width_when_no_discordant_pair_was_seen():
    # By hand: Wilson at p = 1 over n pairs has low end n / (n + z^2); tau = 2p - 1.
    z2 = 1.959963984540054**2
    for n in (5, 30, 758):
        low, high = stats.tau_interval(n, 0)
        assert high == 1.0 and low == pytest.approx(2 * n / (n + z2) - 1)
        assert stats.tau_interval(0, n) == (-1.0, pytest.approx(1 - 2 * n / (n + z2)))
    # Ten pairs per prompt moving together count as fewer pairs: the interval widens.
    assert stats.tau_interval(300, 0, deff=10)[0] == pytest.approx(2 * 30 / (30 + z2) - 1)


def test_design_effect_is_the_bootstrap_variance_over_the_binomial_within_its_bounds():
    rng = np.random.default_rng(1)
    c, d = 600, 400
    binomial = 0.6 * 0.4 / 1000
    replicate_p = 0.6 + rng.standard_normal(5000) * math.sqrt(2.5 * binomial)
    sample_ratio = np.var(replicate_p, ddof=1) / binomial
    assert stats.design_effect(c, d, replicate_p, max_effect=10) == pytest.approx(sample_ratio)
    assert stats.design_effect(c, d, replicate_p, max_effect=2) == 2.0  # bounded by the units' sizes
    assert stats.design_effect(c, d, replicate_p, max_effect=1) == 1.0  # one pair per unit: binomial
    narrow = 0.6 + rng.standard_normal(5000) * math.sqrt(0.5 * binomial)
    assert stats.design_effect(c, d, narrow, max_effect=10) == 1.0  # below 1 is noise
    assert stats.design_effect(c, d, np.append(replicate_p, np.nan), max_effect=10) == pytest.approx(sample_ratio)
    # At the boundary every replicate is 1: the data cannot tell, the bound is used.
    assert stats.design_effect(1000, 0, np.ones(200), max_effect=4.5) == 4.5
    with pytest.raises(ValueError):
        stats.design_effect(0, 0, np.ones(3))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.integers(0, 300), st.floats(1.0, 12.0), st.integers(1, 500))
def test_clustered_pairs_get_the_korn_graubard_interval(c, d, deff, df):
    # Korn & Graubard (1998): Clopper-Pearson (statsmodels "beta") over n* = n / deff * (t_{n-1} / t_df)^2
    if c + d == 0:
        return
    n = c + d
    n_star = n / deff * (sp.t.ppf(0.975, max(n - 1, 1)) / sp.t.ppf(0.975, df)) ** 2
    p_low, p_high = proportion_confint(c / n * n_star, n_star, alpha=0.05, method="beta")
    low, high = stats.tau_interval(c, d, deff, 0.95, df=df)
    assert low == pytest.approx(2 * p_low - 1, abs=1e-9) and high == pytest.approx(2 * p_high - 1, abs=1e-9)
    assert -1 <= low < high <= 1 and low <= (c - d) / n <= high
    # fewer prompts to estimate the variance from, or more pairs moving together: wider
    wider = stats.tau_interval(c, d, deff * 2, 0.95, df=df)
    assert wider[0] <= low and wider[1] >= high


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        stats.wilson_interval(3, 2)
    with pytest.raises(ValueError):
        stats.wilson_interval(0, 0)
    with pytest.raises(ValueError):
        stats.z_value(1.0)
    with pytest.raises(ValueError):
        stats.korn_graubard_interval(3, 5, 1.0, df=0)
