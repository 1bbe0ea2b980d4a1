"""Agreement maths of the two model settings: pure functions over plain sequences.

- judge vs humans: accuracy and Cohen's kappa over every judged pair (an order-inconsistent pair is a
  tie), and over the position-consistent pairs only;
- judge vs itself: position consistency (both orders give the same label);
- manipulation check: Kendall tau-b between the target level and an independent rating.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Hashable, Sequence

import numpy as np

from profile_dist.analysis import stats


def _check_lengths(x: Sequence, y: Sequence) -> None:
    if len(x) != len(y):
        raise ValueError(f"sequences differ in length: {len(x)} vs {len(y)}")


def accuracy(x: Sequence[Hashable], y: Sequence[Hashable]) -> float | None:
    """Share of positions where the labels are equal (None for no positions)."""
    _check_lengths(x, y)
    if not x:
        return None
    return sum(a == b for a, b in zip(x, y)) / len(x)


def cohen_kappa(x: Sequence[Hashable], y: Sequence[Hashable]) -> float | None:
    """(p_o - p_e) / (1 - p_e), p_e from the two raters' marginal label shares.

    None for no positions; 1.0 when both raters use one and the same label throughout (p_e = 1 and
    perfect agreement), 0.0 when p_e = 1 without agreement cannot happen, so that is the only
    degenerate case.
    """
    _check_lengths(x, y)
    n = len(x)
    if n == 0:
        return None
    p_o = sum(a == b for a, b in zip(x, y)) / n
    cx, cy = Counter(x), Counter(y)
    p_e = sum(cx[k] * cy[k] for k in cx) / (n * n)
    if p_e == 1.0:
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)


def position_consistency(first: Sequence[Hashable | None], second: Sequence[Hashable | None]) -> float | None:
    """Share of pairs whose two orders (already mapped back to A/B) give the same vote; pairs where either
    order has no vote (a failed request) are left out."""
    _check_lengths(first, second)
    both = [(a, b) for a, b in zip(first, second) if a is not None and b is not None]
    if not both:
        return None
    return sum(a == b for a, b in both) / len(both)


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall's tau-b (ties corrected): ``stats.kendall_tau_b`` with None where it gives NaN (either
    variable constant, or fewer than 2 points), the convention of the tables this module fills."""
    _check_lengths(x, y)
    value = stats.kendall_tau_b(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    return None if math.isnan(value) else value


def verdict(first: Hashable | None, second: Hashable | None) -> Hashable | None:
    """The judge's verdict on a pair from its two (mapped-back) votes: the vote when both orders agree,
    "tie" when they disagree (a judge that flips with the order has no preference), None when either
    request failed (no verdict at all)."""
    if first is None or second is None:
        return None
    return first if first == second else "tie"


def verdict_agreement(first: Sequence[Hashable | None], second: Sequence[Hashable | None],
                      reference: Sequence[Hashable]) -> dict[str, float | int | None]:
    """Accuracy and Cohen's kappa of the judge against a reference labeler, twice:

    - over every pair with a verdict (``verdict``: an inconsistent pair counts as a tie), the headline;
    - over the position-consistent pairs only (``*_consistent_only``), which leaves out exactly the
      pairs the judge could not decide and so overstates agreement; shown beside it, labelled.
    """
    _check_lengths(first, second)
    _check_lengths(first, reference)
    every = [(verdict(a, b), r) for a, b, r in zip(first, second, reference) if verdict(a, b) is not None]
    consistent = [(a, r) for a, b, r in zip(first, second, reference) if a is not None and a == b]
    out: dict[str, float | int | None] = {}
    for suffix, rows in (("", every), ("_consistent_only", consistent)):
        x, y = [j for j, _ in rows], [h for _, h in rows]
        out[f"n_compared{suffix}"] = len(rows)
        out[f"accuracy{suffix}"] = accuracy(x, y)
        out[f"cohen_kappa{suffix}"] = cohen_kappa(x, y)
    return out
