"""The pure maths against independent references (scipy, brute force) on the same inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp
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
