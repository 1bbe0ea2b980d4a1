"""The maths of PROFILE, as pure functions over numpy arrays: no I/O, no Ray.

- factor influence: concordant/discordant/tied counts and tau = (C - D) / (C + D);
- a Poisson bootstrap whose weights are a pure function of (pair id, replicate), so any sharding of
  the pairs draws the same weights and partial counts add up exactly;
- the interval for tau: Wilson score on p = C / (C + D) for independent pairs, Korn-Graubard over an
  effective number of pairs for pairs clustered in prompts (design effect from the bootstrap);
- alignment between two sources' tau vectors (Kendall tau_b, Spearman rho, sign agreement, top-k
  overlap, mean absolute difference).
"""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist
from typing import Sequence

import numpy as np

# --- factor influence ----------------------------------------------------------------------------


def concordance_counts(preferred: np.ndarray, other: np.ndarray) -> tuple[int, int, int]:
    """(C, D, T): pairs where the preferred response has more, less, or the same of the factor."""
    preferred = np.asarray(preferred, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    return int(np.sum(preferred > other)), int(np.sum(preferred < other)), int(np.sum(preferred == other))


def tau_from_counts(concordant, discordant):
    """(C - D) / (C + D), elementwise; NaN where C + D == 0 (no pair tells the factor apart)."""
    c = np.asarray(concordant, dtype=np.float64)
    d = np.asarray(discordant, dtype=np.float64)
    total = c + d
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(total > 0, (c - d) / np.where(total > 0, total, 1.0), np.nan)
    return float(result) if result.ndim == 0 else result


def influence_summary(concordant: int, discordant: int, ties: int) -> dict[str, float | None]:
    """tau, tau_a, relevance and P(preferred has more f) from the counts; None where undefined."""
    decided = concordant + discordant
    total = decided + ties
    tau = (concordant - discordant) / decided if decided else None
    return {
        "tau": tau,
        "tau_a": (concordant - discordant) / total if total else None,
        "relevance": decided / total if total else None,
        "p_preferred_more": (1 + tau) / 2 if tau is not None else None,
    }


# --- bootstrap -----------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
# CDF of Poisson(1) at k = 0..19; P(K > 19) < 1e-18, below the resolution of a 53-bit uniform.
_POISSON1_CDF = np.cumsum([math.exp(-1) / math.factorial(k) for k in range(20)])


def hash64(ids: Sequence[str]) -> np.ndarray:
    """A well-mixed uint64 per id string (blake2b), identical on every machine and Python version."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids),
        dtype=np.uint64, count=len(ids),
    )


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z ^ (z >> np.uint64(30))
        z = z * _MIX_1
        z = z ^ (z >> np.uint64(27))
        z = z * _MIX_2
        return z ^ (z >> np.uint64(31))


splitmix64 = _splitmix64  # public name: a bijective 64-bit mixer (Steele et al., SplitMix64 finaliser)

_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_c] = _i
_HEX_ID_CHARS = 32
_LOW_HALF_KEY = np.uint64(0xD6E8FEB86659FD93)


def id_hashes(ids) -> np.ndarray:
    """A well-mixed uint64 per id string, vectorised for the project's 32-hex-digit content ids.

    A 32-hex-digit id (``ids.content_id``, or any 128-bit hex id) is decoded into two uint64 halves
    and mixed with SplitMix64: O(1) numpy passes, ~20 ns per id. Any other string falls back to
    ``hash64`` (blake2b). The choice is made per string, so an id always gets the same hash whatever
    batch it arrives in, on every machine.
    """
    import pyarrow as pa

    array = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], pa.string())
    array = array.cast(pa.large_string())
    n = len(array)
    out = np.empty(n, dtype=np.uint64)
    if n == 0:
        return out
    if array.null_count:
        raise ValueError(f"id_hashes: {array.null_count} null id(s)")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset:array.offset + n + 1]
    lengths = np.diff(offsets)
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] is not None else np.empty(0, np.uint8)
    fast = np.flatnonzero(lengths == _HEX_ID_CHARS)
    if fast.size:
        if fast.size == n and offsets[-1] - offsets[0] == n * _HEX_ID_CHARS:  # the usual case: one block
            chars = data[offsets[0]:offsets[-1]].reshape(n, _HEX_ID_CHARS)
        else:
            chars = data[offsets[fast][:, None] + np.arange(_HEX_ID_CHARS)[None, :]]
        nibbles = _HEX_VALUE[chars]
        valid = (nibbles != 255).all(axis=1)
        halves = ((nibbles[:, 0::2] << 4) | nibbles[:, 1::2]).view(">u8").astype(np.uint64)
        out[fast] = _splitmix64(halves[:, 0] ^ _splitmix64(halves[:, 1] ^ _LOW_HALF_KEY))
        fast = fast[valid]
    slow = np.ones(n, dtype=bool)
    slow[fast] = False
    if slow.any():
        rest = np.flatnonzero(slow)
        out[rest] = hash64(array.take(pa.array(rest)).to_pylist())
    return out


def poisson_weights(hashes: np.ndarray, n_replicates: int, seed: int = 0) -> np.ndarray:
    """Poisson(1) bootstrap weights, shape (len(hashes), n_replicates), as a pure function of the inputs.

    Weight (i, b) depends only on hashes[i], b and seed, so a pair gets the same weight in every
    shard layout: partial weighted counts from any sharding add up to the same totals.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    replicate = np.arange(1, n_replicates + 1, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 32)
    with np.errstate(over="ignore"):
        z = _splitmix64(hashes[:, None] ^ _splitmix64(replicate * _GOLDEN)[None, :])
    uniform = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    return np.searchsorted(_POISSON1_CDF, uniform, side="right").astype(np.uint8)


def weighted_counts(weights: np.ndarray, indicators: np.ndarray) -> np.ndarray:
    """Per replicate, the weighted count of each indicator column: (n, B) x (n, K) -> (B, K) int64."""
    if weights.shape[0] == 0:
        return np.zeros((weights.shape[1], indicators.shape[1]), dtype=np.int64)
    # Float64 matmul uses BLAS and is exact here: every partial sum is an integer far below 2**53.
    product = weights.T.astype(np.float64) @ indicators.astype(np.float64)
    return np.rint(product).astype(np.int64)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval, ignoring undefined (NaN) replicates; None when none is defined."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None, None
    alpha = (1 - level) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


# --- the interval for tau ------------------------------------------------------------------------
#
# tau = 2p - 1 with p = C / (C + D), so an interval for the proportion p maps to one for tau.
# - Independent pairs (each prompt has one pair): the Wilson score interval (Wilson 1927; Brown, Cai &
#   DasGupta 2001), near nominal down to small n and at the boundary: at D = 0 it is [n / (n + z^2), 1]
#   for p, never of zero width, where a percentile bootstrap collapses to [1, 1] (every replicate has
#   D* = 0).
# - Pairs that share a prompt: the variance of p-hat is deff * p(1 - p) / n. The Korn-Graubard
#   interval (Korn & Graubard 1998; R survey's svyciprop(method = "beta")): Clopper-Pearson over the
#   effective number of pairs n* = n / deff, shrunk by (t_{n-1} / t_df)^2 for a variance estimated from
#   df + 1 prompts. It keeps coverage near the boundary, where the few prompts that carry the minority
#   pairs make the sampling distribution skewed (Wilson over n / deff covered 92% there, see
#   docs/benchmarks.md). deff is the bootstrap variance over the binomial variance.


def z_value(level: float) -> float:
    """The standard normal quantile of a two-sided interval at ``level`` (1.96 at 0.95)."""
    if not 0 < level < 1:
        raise ValueError(f"confidence level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def _check_counts(successes: float, n: float) -> None:
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"a proportion's interval needs 0 <= successes <= n and n > 0, got {successes} of {n}")


def wilson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; counts may be non-integer (effective counts)."""
    _check_counts(successes, n)
    z = z_value(level)
    p = successes / n
    shrink = 1 + z * z / n
    center = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # At p = 0 (p = 1) the low (high) end is exactly 0 (1); rounding would leave 1e-16 of it.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def clopper_pearson_interval(successes: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (beta quantile) interval for a proportion; counts may be non-integer."""
    # scipy.special, not scipy.stats: the same quantile function (scipy.stats.beta.ppf calls it), without the
    # 0.5 s import of scipy.stats that every command and worker paid. Imported here: map tasks never need it.
    from scipy.special import betaincinv

    _check_counts(successes, n)
    alpha = 1 - level
    low = 0.0 if successes == 0 else float(betaincinv(successes, n - successes + 1, alpha / 2))
    high = 1.0 if successes == n else float(betaincinv(successes + 1, n - successes, 1 - alpha / 2))
    return low, high


def korn_graubard_interval(successes: float, n: float, deff: float, df: int, level: float = 0.95) -> tuple[float, float]:
    """Korn-Graubard interval: Clopper-Pearson over n* = n / deff * (t_{n-1} / t_df)^2 pairs, same proportion."""
    from scipy.special import stdtrit  # Student's t quantile, as scipy.stats.t.ppf computes it

    _check_counts(successes, n)
    if df < 1:
        raise ValueError(f"degrees of freedom must be 1 or more, got {df}")
    q = 1 - (1 - level) / 2
    n_star = n / deff * (float(stdtrit(max(n - 1, 1), q)) / float(stdtrit(df, q))) ** 2
    return clopper_pearson_interval(successes / n * n_star, n_star, level)


def design_effect(concordant: int, discordant: int, replicate_p: np.ndarray, max_effect: float = 1.0) -> float:
    """Variance of p = C / (C + D) over its binomial variance, from bootstrap replicates of p, in [1, max_effect].

    ``max_effect`` is sum n_u^2 / sum n_u over the resampling units (the design effect if every pair of
    a unit agreed; 1 when each unit is one pair), which bounds the true design effect. Where p is 0 or 1
    every replicate agrees and the data say nothing about clustering: the bound is used (conservative).
    Below 1 is sampling noise of the bootstrap variance (pairs of one prompt do not make p less variable
    in expectation), so it is floored at 1.
    """
    n = concordant + discordant
    if n <= 0:
        raise ValueError("design_effect needs C + D > 0")
    max_effect = max(1.0, float(max_effect))
    if concordant == 0 or discordant == 0:
        return max_effect
    replicate_p = np.asarray(replicate_p, dtype=np.float64)
    replicate_p = replicate_p[~np.isnan(replicate_p)]
    if replicate_p.size < 2:
        return max_effect
    p = concordant / n
    ratio = float(np.var(replicate_p, ddof=1)) / (p * (1 - p) / n)
    return min(max_effect, max(1.0, ratio))


def tau_interval(concordant: int, discordant: int, deff: float = 1.0, level: float = 0.95,
                 df: int | None = None) -> tuple[float | None, float | None]:
    """Interval for tau = (C - D) / (C + D), as 2p - 1 of an interval for p = C / (C + D).

    ``df`` None: independent pairs, Wilson over (C + D) / deff pairs. ``df`` given (pairs clustered in
    df + 1 prompts): Korn-Graubard with design effect ``deff``.
    """
    n = concordant + discordant
    if n <= 0:
        return None, None
    if deff < 1:
        raise ValueError(f"design effect must be 1 or more, got {deff}")
    if df is None:
        low, high = wilson_interval(concordant / deff, n / deff, level)
    else:
        low, high = korn_graubard_interval(concordant, n, deff, df, level)
    return 2 * low - 1, 2 * high - 1


# --- alignment between two tau vectors -------------------------------------------------------------


def rankdata_average(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as scipy.stats.rankdata(method='average'))."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    start = 0
    n = len(values)
    while start < n:
        end = start
        while end + 1 < n and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau_b (tie-corrected); NaN when either vector is constant or shorter than 2."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2:
        return math.nan
    i, j = np.triu_indices(len(x), k=1)
    dx = np.sign(x[i] - x[j])
    dy = np.sign(y[i] - y[j])
    n_x = np.count_nonzero(dx)
    n_y = np.count_nonzero(dy)
    if n_x == 0 or n_y == 0:
        return math.nan
    return float(np.sum(dx * dy) / math.sqrt(n_x * n_y))


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of average ranks; NaN when either vector is constant."""
    if len(x) < 2:
        return math.nan
    rx = rankdata_average(x)
    ry = rankdata_average(y)
    rx -= rx.mean()
    ry -= ry.mean()
    denominator = math.sqrt(float(np.sum(rx * rx)) * float(np.sum(ry * ry)))
    if denominator == 0:
        return math.nan
    return float(np.sum(rx * ry) / denominator)


def sign_agreement(x: np.ndarray, y: np.ndarray) -> float:
    """Share of factors whose influence has the same sign (-, 0, +) in both sources."""
    if len(x) == 0:
        return math.nan
    return float(np.mean(np.sign(x) == np.sign(y)))


def top_k_overlap(x: np.ndarray, y: np.ndarray, k: int = 3) -> float:
    """|top-k(x) & top-k(y)| / k by |tau|; ties at the cut broken by position, so the result is stable."""
    k = min(k, len(x))
    if k == 0:
        return math.nan
    top_x = set(np.lexsort((np.arange(len(x)), -np.abs(x)))[:k].tolist())
    top_y = set(np.lexsort((np.arange(len(y)), -np.abs(y)))[:k].tolist())
    return len(top_x & top_y) / k


def mean_abs_diff(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) == 0:
        return math.nan
    return float(np.mean(np.abs(np.asarray(x) - np.asarray(y))))


def alignment_metrics(x: np.ndarray, y: np.ndarray, k: int = 3) -> dict[str, float]:
    """Every alignment metric over the factors where both tau values are defined."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    defined = ~(np.isnan(x) | np.isnan(y))
    x, y = x[defined], y[defined]
    return {
        "kendall_tau_b": kendall_tau_b(x, y),
        "spearman_rho": spearman_rho(x, y),
        "sign_agreement": sign_agreement(x, y),
        "top_k_overlap": top_k_overlap(x, y, k),
        "mean_abs_diff": mean_abs_diff(x, y),
    }
