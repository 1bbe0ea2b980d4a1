"""The pure steps of discover: split, worst-explained pairs (against an independent scipy fit), merge, keep rule."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import log_expit

from profile_dist.workflows.discover import (PROPOSAL, VALIDATION, keep_decision, merge_proposals, nearest_factor,
                                             split_half, worst_explained)

RUBRIC = ["a", "b", "c", "d", "e"]


def test_split_is_seeded_by_prompt_and_balanced():
    ids = [f"p{i}" for i in range(2000)]
    halves = [split_half(p, 0) for p in ids]
    assert halves == [split_half(p, 0) for p in ids] and set(halves) == {PROPOSAL, VALIDATION}
    assert abs(halves.count(PROPOSAL) - 1000) < 100
    assert halves != [split_half(p, 1) for p in ids]


def test_worst_explained_ranks_by_an_independent_logistic_fit():
    rng = np.random.default_rng(0)
    diffs = rng.normal(size=(300, 3)) * [1.0, 5.0, 0.2]
    diffs[rng.random(300) < 0.3] *= -1  # some preferences against the factors
    z = diffs / np.sqrt(np.mean(diffs ** 2, axis=0))
    # Same objective (mean negative log-likelihood + 1e-3/2 |beta|^2), solved by scipy instead of Newton.
    beta = minimize(lambda b: -np.mean(log_expit(z @ b)) + 5e-4 * b @ b, np.zeros(3), method="BFGS").x
    expected = np.argsort(z @ beta, kind="stable")[:20]
    assert sorted(worst_explained(diffs, 20).tolist()) == sorted(expected.tolist())
    with_nan = diffs.copy()
    with_nan[0, 1] = np.nan
    assert 0 not in worst_explained(with_nan, 20).tolist()


def proposal(name, question, description="d", rubric=RUBRIC):
    return {"name": name, "description": description, "question": question, "rubric": rubric}


def test_merge_folds_same_name_and_near_identical_questions_and_caps_at_n():
    props = [proposal("detail", "How detailed is the response?"),
             proposal("Cites Source", "Does the response cite a named source for its claims?"),
             proposal("cites_source", "Another wording entirely about sources"),
             proposal("names_source", "Does the response cite a named source for the claims?"),
             proposal("length", "How long is it?"),
             proposal("no_rubric", "Is it polite?", rubric=["x"]),
             proposal("humour", "Is it funny?")]
    defs, merged, notes = merge_proposals(props, ["length"], "helpful", 2)
    assert [d.name for d in defs] == ["cites_source", "detail"]
    assert merged[0].times == 3 and merged[0].aliases == ["names_source"]
    assert all(d.tasks == ("helpful",) and d.version == "1" for d in defs)
    assert any("length" in n and "existing" in n for n in notes)
    assert any("humour" in n and "--candidates" in n for n in notes)
    defs, _, notes = merge_proposals(props, ["length"], "helpful", 5)
    assert "no_rubric" not in [d.name for d in defs] and any("no_rubric" in n and "rubric" in n for n in notes)


@pytest.mark.parametrize("tau, adj, kept, start", [
    ((0.1, 0.5), (0.2, 1.0), True, "tau and adjusted"),
    ((-0.5, -0.1), (-1.0, -0.2), True, "tau and adjusted"),
    ((-0.1, 0.5), (0.2, 1.0), False, "tau interval includes 0"),
    ((0.1, 0.5), (-0.2, 1.0), False, "explained by length"),
    ((0.1, 0.5), (None, None), False, "explained by length"),
])
def test_keep_rule_needs_both_intervals_to_exclude_zero(tau, adj, kept, start):
    assert keep_decision(tau, adj, ("length", 0.9))[0] is kept
    assert keep_decision(tau, adj, ("length", 0.9))[1].startswith(start)


def test_nearest_factor_by_absolute_correlation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    near = nearest_factor(x, {"a": rng.normal(size=200), "b": -x + 0.1 * rng.normal(size=200)})
    assert near[0] == "b" and -1.0 <= near[1] < -0.99
