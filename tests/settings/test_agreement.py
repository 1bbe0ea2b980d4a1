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
