"""The reduce's additive sufficient statistics: a batch of pre-joined pairs -> a Partial; Partials add.

A ``DiffBatch`` holds, per pair, the factor differences oriented as preferred minus other (NaN where a
value is unknown), which (labeler, setting, task) group it belongs to, two uint64 hashes (of its pair
id, and of its bootstrap unit: the pair or its prompt) and whether the two responses have matched
lengths. ``map_batch`` turns it into a ``Partial``; ``Partial.add`` merges two exactly (integer sums,
and a bottom-k sample by hash), so the merged result does not depend on how the corpus was sharded,
in which order the shards finished, or where they ran.

Bootstrap: bucketed Poisson bootstrap
-------------------------------------
A per-pair Poisson(1) weight for each of B replicates costs O(n * B) hash evaluations and gathers (we
measured ~2.5 us per pair at B = 200 in numpy: ~250 s of CPU for 1e8 pairs, before any I/O). Instead
each pair goes to one of M buckets (the top log2(M) bits of its unit hash) and a shard keeps, per
bucket and factor, the counts C, D (and the same for length-matched pairs): O(n * F) work, and a
Partial of fixed size G x M x F x 4 integers, whatever the shard size. At merge time replicate b gives
bucket j the weight w[j, b] ~ Poisson(1) (a pure function of j, b and the seed: ``stats.poisson_weights``
over ``bucket_keys``), and the replicate counts are the (B x M) @ (M x 4F) product: O(M * B * F) once.

Each pair still carries a Poisson(1) weight per replicate, derived from its hash; pairs that share a
bucket share it. Because buckets are random (hash) groups of exchangeable pairs, the bootstrap variance
of any linearised statistic is unbiased (a random-groups estimator): with n << M it is the per-pair
Poisson bootstrap up to rare collisions, and with n >> M its variance estimate has M degrees of
freedom (relative error sqrt(2 / M) ~ 1.1% at the default M = 16384, ~0.55% on a CI's width). The
coverage simulation in bench/reduce_coverage.py checks the resulting 95% intervals.

Bucketing by the prompt instead of the pair (``bootstrap_unit = "prompt"``, and ``"auto"``, the
default) resamples prompts, the honest unit when several pairs share a prompt (the generation
setting's C(K, 2) pairs per prompt), and pairs the replicates of every source that labels the same
prompts. When every prompt of a group has one pair, resampling prompts is resampling pairs.

Units: a bottom-k sketch
------------------------
Which unit a group's resampling effectively used, how many units there were and how large they are
(the design effect if all of a unit's pairs agreed, sum n_u^2 / sum n_u) come from the k smallest
distinct unit hashes of the group with their pair counts (``unit_sample_size``, default 65,536). The
sketch merges exactly (a unit's pairs in several shards add up; the k smallest of a union are among
the k smallest of each part), so it is sharding-independent too. Up to k units it is exact; beyond,
the unit count is the KMV estimate (k - 1) / U_(k) (relative error ~ 1 / sqrt(k) = 0.4%) and the
unit sizes are those of a uniform sample of units.
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from profile_dist.analysis import stats

GroupKey = tuple[str, str, str]  # labeler, setting, task

# Per (pair, factor) state code: sign state + 4 * length_matched.
TIE, CONCORDANT, DISCORDANT, MISSING = 0, 1, 2, 3
N_CODES = 8
# Bucket columns kept for the bootstrap: C and D outside / inside the length-matched subset.
BUCKET_CODES = (CONCORDANT, DISCORDANT, 4 + CONCORDANT, 4 + DISCORDANT)
_MAP_CHUNK_ROWS = 1 << 20  # bounds the (rows x factors) int32 index array to 40 MiB at 10 factors
_BUCKET_SALT = np.uint64(0x5851F42D4C957F2D)


@dataclass(frozen=True)
class ReduceConfig:
    """What a map task needs to know; identical for every shard of one reduce."""

    factors: tuple[str, ...]
    n_bootstrap: int = 200
    seed: int = 0
    n_buckets: int = 1 << 14
    sample_size: int = 50_000  # pairs per group kept (bottom-k by hash) for the adjusted model
    unit_sample_size: int = 1 << 16  # distinct bootstrap units per group kept (bottom-k by hash) to describe them

    def __post_init__(self) -> None:
        if self.n_buckets < 1 or self.n_buckets & (self.n_buckets - 1):
            raise ValueError(f"n_buckets must be a power of two, got {self.n_buckets}")
        if self.n_bootstrap < 0:
            raise ValueError("n_bootstrap must be 0 or more")
        if self.sample_size < 0:
            raise ValueError("sample_size must be 0 or more")
        if self.unit_sample_size < 2:
            raise ValueError("unit_sample_size must be 2 or more")

    @property
    def bucket_bits(self) -> int:
        return self.n_buckets.bit_length() - 1


@dataclass
class DiffBatch:
    """Pre-joined pairs: everything the reduce needs, and nothing else."""

    groups: list[GroupKey]  # distinct groups; group_index points into it
    group_index: np.ndarray  # int[n]
    pair_hash: np.ndarray  # uint64[n]: hash of pair_id (sample selection)
    unit_hash: np.ndarray  # uint64[n]: hash of the bootstrap unit (bucket)
    diffs: np.ndarray  # float64[n, F]: f(preferred) - f(other); NaN where unknown
    length_matched: np.ndarray  # bool[n]
    skipped: Counter = field(default_factory=Counter)  # (labeler, setting, task, factor or "", reason) -> n

    def __post_init__(self) -> None:
        n = len(self.group_index)
        for name in ("pair_hash", "unit_hash", "length_matched"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"DiffBatch.{name} has {len(getattr(self, name))} rows, group_index has {n}")
        if self.diffs.ndim != 2 or self.diffs.shape[0] != n:
            raise ValueError(f"DiffBatch.diffs must be (n, F) with n = {n}, got {self.diffs.shape}")


@dataclass
class GroupStats:
    """One group's sufficient statistics: exact totals, bucketed bootstrap counts, a model sample."""

    totals: np.ndarray  # int64[F, N_CODES]
    buckets: np.ndarray  # int64[M, F, 4]: BUCKET_CODES per bucket
    sample_hash: np.ndarray  # uint64[k], ascending
    sample_diffs: np.ndarray  # float64[k, F]
    sample_matched: np.ndarray  # bool[k]
    units: "UnitSketch"

    def add(self, other: "GroupStats", sample_size: int) -> "GroupStats":
        self.totals = self.totals + other.totals
        self.buckets = self.buckets + other.buckets
        self.units = self.units.merge(other.units)
        self.sample_hash, self.sample_diffs, self.sample_matched = _bottom_k(
            np.concatenate([self.sample_hash, other.sample_hash]),
            np.concatenate([self.sample_diffs, other.sample_diffs]),
            np.concatenate([self.sample_matched, other.sample_matched]),
            sample_size,
        )
        return self

    @property
    def concordant(self) -> np.ndarray:
        return self.totals[:, CONCORDANT] + self.totals[:, 4 + CONCORDANT]

    @property
    def discordant(self) -> np.ndarray:
        return self.totals[:, DISCORDANT] + self.totals[:, 4 + DISCORDANT]

    @property
    def ties(self) -> np.ndarray:
        return self.totals[:, TIE] + self.totals[:, 4 + TIE]

    @property
    def missing(self) -> np.ndarray:
        return self.totals[:, MISSING] + self.totals[:, 4 + MISSING]


@dataclass(frozen=True)
class UnitSketch:
    """The k smallest distinct bootstrap-unit hashes of a group with their pair counts (see the module doc)."""

    hashes: np.ndarray  # uint64[<= k], ascending, distinct
    pairs: np.ndarray  # int64[<= k]: the group's pairs in each unit (all of them, over every shard)
    truncated: bool  # more than k distinct units were seen
    k: int

    @classmethod
    def of(cls, unit_hash: np.ndarray, k: int) -> "UnitSketch":
        unit_hash = np.asarray(unit_hash, dtype=np.uint64)
        # Sorting a whole shard's hashes costs more than the rest of the map; the k smallest distinct
        # units are usually among the few * k smallest hashes: select those (O(n)), sort only them.
        for position in (2 * k, 32 * k):
            if position >= len(unit_hash) - 1:
                break
            threshold = np.partition(unit_hash, position)[position]
            hashes, counts = np.unique(unit_hash[unit_hash <= threshold], return_counts=True)
            if len(hashes) >= k:  # every hash above the threshold ranks after these k
                truncated = len(hashes) > k or bool(unit_hash.max() > threshold)
                return cls(hashes[:k], counts[:k].astype(np.int64), truncated, k)
        hashes, counts = np.unique(unit_hash, return_counts=True)
        return cls(hashes[:k], counts[:k].astype(np.int64), len(hashes) > k, k)

    def merge(self, other: "UnitSketch") -> "UnitSketch":
        hashes, inverse = np.unique(np.concatenate([self.hashes, other.hashes]), return_inverse=True)
        pairs = np.zeros(len(hashes), dtype=np.int64)
        np.add.at(pairs, inverse, np.concatenate([self.pairs, other.pairs]))
        return UnitSketch(hashes[:self.k], pairs[:self.k], self.truncated or other.truncated or len(hashes) > self.k, self.k)

    def summary(self) -> "UnitSummary":
        if not len(self.hashes):
            return UnitSummary(0, True, 1.0, False)
        pairs = self.pairs.astype(np.float64)
        max_effect = float(np.sum(pairs * pairs) / np.sum(pairs))
        if self.truncated:  # KMV: the k-th smallest of n uniform hashes is ~ k / n
            kth = (float(self.hashes[-1]) + 1.0) / 2.0**64
            n_units = int(round((len(self.hashes) - 1) / kth))
        else:
            n_units = len(self.hashes)
        return UnitSummary(n_units, not self.truncated, max_effect, bool(self.pairs.max() > 1))


@dataclass(frozen=True)
class UnitSummary:
    """What a group's bootstrap resampled: how many units, how large, and whether any holds several pairs."""

    n_units: int  # exact when ``exact``, else the KMV estimate
    exact: bool
    max_design_effect: float  # sum n_u^2 / sum n_u: the variance inflation if every unit's pairs agreed
    clustered: bool  # some unit holds more than one of the group's pairs

    @property
    def unit(self) -> str:
        """The unit resampling effectively used: a prompt whose pairs are resampled together, or a lone pair."""
        return "prompt" if self.clustered else "pair"


@dataclass
class Partial:
    """Additive statistics of one or more shards; ``add`` is exact, commutative and associative."""

    config: ReduceConfig
    groups: dict[GroupKey, GroupStats] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: "Partial") -> "Partial":
        if other.config != self.config:
            raise ValueError("cannot merge partials computed with different reduce configs")
        for key, group in other.groups.items():
            if key in self.groups:
                self.groups[key].add(group, self.config.sample_size)
            else:
                self.groups[key] = group
        self.skipped.update(other.skipped)
        return self


def _bottom_k(hashes: np.ndarray, diffs: np.ndarray, matched: np.ndarray, k: int):
    """The k rows with the smallest hashes: a mergeable, order-free uniform sample.

    Rows are returned in a canonical order (hash, then content), so equal hashes (a pair id seen twice)
    cannot make the result depend on the order rows arrived in.
    """
    if len(hashes) > k:
        if k == 0:
            return hashes[:0], diffs[:0], matched[:0]
        threshold = np.partition(hashes, k - 1)[k - 1]
        candidates = np.flatnonzero(hashes <= threshold)  # ties at the threshold all stay candidates
        hashes, diffs, matched = hashes[candidates], diffs[candidates], matched[candidates]
    keys = [matched, *diffs.T[::-1], hashes]  # np.lexsort: the last key is the primary one
    order = np.lexsort(keys)[:k]
    return hashes[order], diffs[order], matched[order]


def bucket_of(unit_hash: np.ndarray, config: ReduceConfig) -> np.ndarray:
    if config.bucket_bits == 0:
        return np.zeros(len(unit_hash), dtype=np.int64)
    return (np.asarray(unit_hash, dtype=np.uint64) >> np.uint64(64 - config.bucket_bits)).astype(np.int64)


def state_codes(diffs: np.ndarray, length_matched: np.ndarray) -> np.ndarray:
    """int8[n, F] code per (pair, factor): TIE/CONCORDANT/DISCORDANT/MISSING, + 4 if length-matched."""
    # Boolean arrays viewed as int8 are 0/1 without a copy; every step stays in int8.
    codes = (diffs > 0).view(np.int8)
    codes |= (diffs < 0).view(np.int8) << 1
    codes |= np.isnan(diffs).view(np.int8) * np.int8(MISSING)
    codes |= (np.asarray(length_matched, dtype=bool).view(np.int8) << 2)[:, None]
    return codes


def map_batch(batch: DiffBatch, config: ReduceConfig) -> Partial:
    """One batch's Partial: O(n * F) integer work (one bincount), whatever the number of replicates."""
    n_groups, n_factors = len(batch.groups), len(config.factors)
    if batch.diffs.shape[1] != n_factors:
        raise ValueError(f"batch has {batch.diffs.shape[1]} factor columns, config names {n_factors}")
    m = config.n_buckets
    cells = np.zeros(n_groups * m * n_factors * N_CODES, dtype=np.int64)
    # int32 flat indices halve the memory traffic; the widest index, G * M * F * 8, must fit.
    index_type = np.int32 if cells.size < 2**31 else np.int64
    factor_offset = (np.arange(n_factors, dtype=index_type) * N_CODES)[None, :]
    for start in range(0, len(batch.group_index), _MAP_CHUNK_ROWS):
        rows = slice(start, start + _MAP_CHUNK_ROWS)
        group = batch.group_index[rows].astype(index_type)
        bucket = bucket_of(batch.unit_hash[rows], config).astype(index_type)
        base = ((group * m + bucket) * (n_factors * N_CODES))[:, None] + factor_offset  # (rows, F)
        base += state_codes(batch.diffs[rows], batch.length_matched[rows])
        cells += np.bincount(base.ravel(), minlength=cells.size)
    cells = cells.reshape(n_groups, m, n_factors, N_CODES)
    totals = cells.sum(axis=1)
    buckets = cells[:, :, :, list(BUCKET_CODES)]
    partial = Partial(config, skipped=Counter(batch.skipped))
    for g, key in enumerate(batch.groups):
        mask = batch.group_index == g
        if not mask.any():
            continue
        sample = _bottom_k(batch.pair_hash[mask], batch.diffs[mask], batch.length_matched[mask], config.sample_size)
        units = UnitSketch.of(batch.unit_hash[mask], config.unit_sample_size)
        partial.groups[key] = GroupStats(totals[g], buckets[g], *sample, units)
        missing = totals[g][:, MISSING] + totals[g][:, 4 + MISSING]
        for f, name in enumerate(config.factors):
            if missing[f]:
                partial.skipped[(*key, name, "factor value missing or failed for a response")] += int(missing[f])
    return partial


# --- from merged statistics to replicates --------------------------------------------------------


def bucket_keys(n_buckets: int) -> np.ndarray:
    """The hash each bucket's replicate weights derive from (fixed: the same for every group)."""
    return stats.splitmix64(np.arange(n_buckets, dtype=np.uint64) ^ _BUCKET_SALT)


@functools.lru_cache(maxsize=1)  # the bench and tests rebuild Results with one config many times
def _replicate_weights(n_buckets: int, n_bootstrap: int, seed: int) -> np.ndarray:
    weights = stats.poisson_weights(bucket_keys(n_buckets), n_bootstrap, seed).T.astype(np.float64)
    weights.setflags(write=False)  # shared by every caller with the same draws
    return weights


def replicate_weights(config: ReduceConfig) -> np.ndarray:
    """float64[B, M]: Poisson(1) weight of bucket j in replicate b (a pure function of j, b, seed)."""
    return _replicate_weights(config.n_buckets, config.n_bootstrap, config.seed)


def replicate_counts(group: GroupStats, weights: np.ndarray) -> np.ndarray:
    """int64[B, F, 4]: the group's Poisson-weighted C, D, C_matched_only, D_matched_only per replicate."""
    m, n_factors, _ = group.buckets.shape
    # Float64 BLAS is exact here: every product and partial sum is an integer far below 2**53.
    product = weights @ group.buckets.reshape(m, n_factors * 4).astype(np.float64)
    return np.rint(product).astype(np.int64).reshape(len(weights), n_factors, 4)


def replicate_taus(group: GroupStats, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(tau[B, F] over all pairs, tau[B, F] over length-matched pairs) per replicate."""
    counts = replicate_counts(group, weights)
    c_all = counts[:, :, 0] + counts[:, :, 2]
    d_all = counts[:, :, 1] + counts[:, :, 3]
    return stats.tau_from_counts(c_all, d_all), stats.tau_from_counts(counts[:, :, 2], counts[:, :, 3])
