"""Agreement maths of the two model settings: pure functions over plain sequences.

- judge vs humans: accuracy and Cohen's kappa over the pairs both labelled;
- judge vs itself: position consistency (both orders give the same label);
- manipulation check: Kendall tau-b between the target level and an independent rating.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np


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
    """Kendall's tau-b (ties corrected), O(n^2) over pairs: the manipulation check has at most a few
    thousand generations per model. None when either variable is constant or fewer than 2 points."""
    _check_lengths(x, y)
    a = np.asarray(x, dtype=float)
    b = np.asarray(y, dtype=float)
    if a.size < 2:
        return None
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(a.size, k=1)
    sa, sb = da[upper], db[upper]
    n_a = np.count_nonzero(sa)  # pairs untied in x
    n_b = np.count_nonzero(sb)
    if n_a == 0 or n_b == 0:
        return None
    return float(np.sum(sa * sb) / np.sqrt(float(n_a) * float(n_b)))
