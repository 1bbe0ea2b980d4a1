"""The manipulation check of the generation setting: do the target quality levels mean anything?

Kendall's tau-b between target level and an independent rating is computed **within each prompt** (the K
generations of one prompt), then averaged over prompts. Pooling all generations would mix prompts: a prompt
whose answers are all long rates high at every level, so the pooled tau measures between-prompt spread as
much as the level effect. The interval is a percentile bootstrap over prompts (prompts are the independent
units; ``N_BOOTSTRAP`` draws, seeded, so the figure is reproducible). A prompt whose tau-b is undefined (fewer
than two rated generations, or every rating equal) is left out of the mean and counted in
``n_prompts_undefined``; when every prompt has the same tau the interval is that single value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

import numpy as np
from profile_dist.analysis import agreement

N_BOOTSTRAP = 2000
CONFIDENCE = 0.95
SEED = 0


def within_prompt_taus(rated: Iterable[tuple[str, float, float]]) -> tuple[list[float], int]:
    """(prompt_id, level, rating) rows -> (tau-b of each prompt where defined, in prompt_id order; the number of
    prompts where it is not)."""
    by_prompt: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for prompt_id, level, rating in rated:
        levels, ratings = by_prompt[prompt_id]
        levels.append(level)
        ratings.append(rating)
    taus, undefined = [], 0
    for prompt_id in sorted(by_prompt):
        tau = agreement.kendall_tau_b(*by_prompt[prompt_id])
        if tau is None:
            undefined += 1
        else:
            taus.append(tau)
    return taus, undefined


def mean_interval(values: list[float], n_bootstrap: int = N_BOOTSTRAP, confidence: float = CONFIDENCE,
                  seed: int = SEED) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): the percentile bootstrap interval of the mean, resampling the values (the prompts)
    with replacement. No interval from fewer than two values."""
    if not values:
        return None, None, None
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if x.size < 2:
        return mean, None, None
    draws = np.random.default_rng(seed).integers(0, x.size, size=(n_bootstrap, x.size))
    means = x[draws].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return mean, float(low), float(high)


def check_row(rated: list[tuple[str, float, float]]) -> dict[str, Any]:
    """The MANIPULATION_CHECK figures of one generator, rater and task from its rated generations."""
    taus, undefined = within_prompt_taus(rated)
    mean, low, high = mean_interval(taus)
    pooled = agreement.kendall_tau_b([lv for _, lv, _ in rated], [r for _, _, r in rated])
    return {"n_rated": len(rated), "n_prompts": len(taus), "n_prompts_undefined": undefined, "kendall_tau": mean,
            "ci_low": low, "ci_high": high, "n_bootstrap": N_BOOTSTRAP if low is not None else 0,
            "pooled_kendall_tau": pooled}
