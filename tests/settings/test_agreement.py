"""Agreement maths against independent references: sklearn's Cohen's kappa and accuracy, scipy's Kendall tau-b."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau
from sklearn.metrics import accuracy_score, cohen_kappa_score
from profile_dist.analysis import agreement

labels = st.sampled_from(["a", "b", "tie"])


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn: kappa undefined (nan) for a single shared label
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(labels, labels), min_size=1, max_size=60))
def test_kappa_and_accuracy_equal_sklearn(pairs):
    x, y = [p[0] for p in pairs], [p[1] for p in pairs]
    assert agreement.accuracy(x, y) == pytest.approx(accuracy_score(x, y))
    reference = cohen_kappa_score(x, y)
    if math.isnan(reference):  # sklearn: 0/0 when both raters use one and the same label
        assert len(set(x) | set(y)) == 1 and agreement.cohen_kappa(x, y) == 1.0
    else:
        assert agreement.cohen_kappa(x, y) == pytest.approx(reference, abs=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's nan for a constant variable
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(1, 10)), min_size=2, max_size=80))
def test_kendall_tau_b_equals_scipy(points):
    x, y = [p[0] for p in points], [p[1] for p in points]
    reference = kendalltau(x, y).statistic
    ours = agreement.kendall_tau_b(x, y)
    if math.isnan(reference):
        assert ours is None
    else:
        assert ours == pytest.approx(reference, abs=1e-12)


def test_position_consistency_leaves_out_failed_votes():
    assert agreement.position_consistency(["a", "b", None, "tie"], ["a", "a", "b", "tie"]) == pytest.approx(2 / 3)
    assert agreement.position_consistency([None], ["a"]) is None
    with pytest.raises(ValueError, match="differ in length"):
        agreement.cohen_kappa(["a"], [])


def test_agreement_over_all_judged_pairs_counts_an_inconsistent_verdict_as_a_tie():
    # Eight judged pairs: two orders' votes (mapped back to A/B) and the human label. Pair 3 flips with the
    # order, pair 6 flips too, pair 7 failed in one order.
    first = ["a", "b", "a", "a", "tie", "b", "a", None]
    second = ["a", "b", "b", "a", "tie", "b", "b", "a"]
    human = ["a", "a", "tie", "a", "b", "b", "a", "b"]
    got = agreement.verdict_agreement(first, second, human)
    verdicts = ["a", "b", "tie", "a", "tie", "b", "tie"]  # inconsistent -> tie; the failed pair has no verdict
    assert got["n_compared"] == 7
    assert got["accuracy"] == pytest.approx(accuracy_score(human[:7], verdicts)) == pytest.approx(4 / 7)
    assert got["cohen_kappa"] == pytest.approx(cohen_kappa_score(human[:7], verdicts), abs=1e-12)
    consistent = [0, 1, 3, 4, 5]
    assert got["n_compared_consistent_only"] == 5
    assert got["accuracy_consistent_only"] == pytest.approx(accuracy_score([human[i] for i in consistent], [first[i] for i in consistent]))
    assert got["cohen_kappa_consistent_only"] == pytest.approx(
        cohen_kappa_score([human[i] for i in consistent], [first[i] for i in consistent]), abs=1e-12)
    # Leaving the judge's undecided pairs out reads higher here: the overstatement the headline avoids.
    assert got["accuracy_consistent_only"] > got["accuracy"]


def test_kendall_tau_b_is_the_stats_one_with_none_for_undefined():
    x, y = [1, 2, 2, 3, 5], [2, 1, 4, 4, 9]
    from profile_dist.analysis import stats

    assert agreement.kendall_tau_b(x, y) == stats.kendall_tau_b(x, y) == pytest.approx(kendalltau(x, y).statistic)
    assert agreement.kendall_tau_b([1, 1], [2, 3]) is None and math.isnan(stats.kendall_tau_b([1, 1], [2, 3]))
