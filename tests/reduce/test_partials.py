"""The map + merge is exact: any sharding, any merge order, equals a single-process reference.

The reference computes C, D, T with plain comparisons and each replicate's weighted counts pair by
pair (weight of pair i in replicate b = w[b, bucket(i)]), without the bincount/matmul machinery.
"""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profile_dist import ids
from profile_dist.analysis import stats
from profile_dist.analysis.partials import DiffBatch, Partial, ReduceConfig, bucket_of, map_batch, replicate_counts, replicate_weights
from profile_dist.analysis.tables import result_tables

GROUPS = [("human", "human", "t"), ("m", "evaluation", "t"), ("m", "generation", "t")]
FACTORS = ("f0", "f1", "f2")


def batch_from_rows(rows: list[tuple], n_factors: int = 3) -> DiffBatch:
    """rows: (group index, pair number, diffs tuple with None for missing, length_matched)."""
    pair_ids = [ids.content_id("pair", r[1]) for r in rows]
    hashes = stats.id_hashes(pair_ids)
    diffs = np.array([[np.nan if v is None else v for v in r[2]] for r in rows], dtype=np.float64).reshape(len(rows), n_factors)
    return DiffBatch(
        list(GROUPS), np.array([r[0] for r in rows], dtype=np.int32), hashes, hashes, diffs,
        np.array([r[3] for r in rows], dtype=bool), Counter(),
    )


def reference(rows: list[tuple], config: ReduceConfig) -> dict:
    """Per group: totals (C, D, T, missing) and per-replicate (C, D) by brute force, pair by pair."""
    weights = replicate_weights(config)  # (B, M)
    out = {}
    for g, key in enumerate(GROUPS):
        mine = [r for r in rows if r[0] == g]
        if not mine:
            continue
        totals = np.zeros((len(FACTORS), 4), dtype=np.int64)
        reps = np.zeros((config.n_bootstrap, len(FACTORS), 2), dtype=np.int64)
        for r in mine:
            bucket = int(bucket_of(stats.id_hashes([ids.content_id("pair", r[1])]), config)[0])
            for f, v in enumerate(r[2]):
                if v is None:
                    totals[f, 3] += 1
                elif v > 0:
                    totals[f, 0] += 1
                    reps[:, f, 0] += weights[:, bucket].astype(np.int64)
                elif v < 0:
                    totals[f, 1] += 1
                    reps[:, f, 1] += weights[:, bucket].astype(np.int64)
                else:
                    totals[f, 2] += 1
        out[key] = (totals, reps)
    return out


row = st.tuples(
    st.integers(0, 2), st.integers(0, 400),
    st.tuples(*[st.one_of(st.none(), st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False))] * 3),
    st.booleans(),
)


def shard(rows: list, n_shards: int, rng: random.Random) -> list[list]:
    shards = [[] for _ in range(n_shards)]
    for r in rows:
        shards[rng.randrange(n_shards)].append(r)
    return [s for s in shards if s]


CONFIG = ReduceConfig(FACTORS, n_bootstrap=30, seed=3, n_buckets=64, sample_size=7)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=60), st.integers(1, 6), st.randoms(use_true_random=False))
def test_any_sharding_and_merge_order_equals_the_single_process_reference(rows, n_shards, rng):
    expected = reference(rows, CONFIG)
    single = map_batch(batch_from_rows(rows), CONFIG)
    parts = [map_batch(batch_from_rows(s), CONFIG) for s in shard(rows, n_shards, rng)]
    rng.shuffle(parts)
    merged = Partial(CONFIG)
    for p in parts:
        merged.add(p)
    weights = replicate_weights(CONFIG)
    assert set(merged.groups) == set(single.groups) == set(expected)
    for key, (totals, reps) in expected.items():
        for partial in (merged, single):
            group = partial.groups[key]
            assert np.array_equal(group.concordant, totals[:, 0])
            assert np.array_equal(group.discordant, totals[:, 1])
            assert np.array_equal(group.ties, totals[:, 2])
            assert np.array_equal(group.missing, totals[:, 3])
            counts = replicate_counts(group, weights)
            assert np.array_equal(counts[:, :, 0] + counts[:, :, 2], reps[:, :, 0])
            assert np.array_equal(counts[:, :, 1] + counts[:, :, 3], reps[:, :, 1])
        # the bottom-k model sample is the k smallest hashes, whatever the sharding
        assert np.array_equal(merged.groups[key].sample_hash, single.groups[key].sample_hash)
        assert np.array_equal(merged.groups[key].sample_diffs, single.groups[key].sample_diffs, equal_nan=True)
    assert merged.skipped == single.skipped


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=2, max_size=80), st.integers(2, 5), st.randoms(use_true_random=False))
def test_result_tables_are_bit_identical_for_any_sharding(rows, n_shards, rng):
    single = result_tables(map_batch(batch_from_rows(rows), CONFIG))
    merged = Partial(CONFIG)
    parts = [map_batch(batch_from_rows(s), CONFIG) for s in shard(rows, n_shards, rng)]
    rng.shuffle(parts)
    for p in parts:
        merged.add(p)
    sharded = result_tables(merged)
    for name, table in single.items():
        assert table.equals(sharded[name]), name


def test_length_matched_counts_are_the_subset_of_matched_pairs():
    rows = [(0, i, (float(i % 3 - 1), 1.0, None), i % 2 == 0) for i in range(50)]
    group = map_batch(batch_from_rows(rows), CONFIG).groups[GROUPS[0]]
    matched = [r for r in rows if r[3]]
    assert group.totals[0, 5] == sum(1 for r in matched if r[2][0] > 0)
    assert group.totals[0, 6] == sum(1 for r in matched if r[2][0] < 0)
    assert group.totals[0, 4] == sum(1 for r in matched if r[2][0] == 0)
    assert group.missing[2] == 50


def test_replicate_weights_are_poisson_one():
    config = ReduceConfig(FACTORS, n_bootstrap=200, n_buckets=1 << 12)
    weights = replicate_weights(config)
    assert weights.shape == (200, 4096)
    assert abs(weights.mean() - 1) < 0.01 and abs(weights.var() - 1) < 0.02
    # P(w = 0) = exp(-1)
    assert abs(np.mean(weights == 0) - np.exp(-1)) < 0.005


def test_id_hashes_fast_path_is_per_id_and_falls_back_to_blake2b():
    content = [ids.content_id("x", i) for i in range(100)]
    mixed = ["not-hex", *content[:3], "Z" * 32, content[3].upper()]
    together = stats.id_hashes(mixed)
    alone = np.concatenate([stats.id_hashes([m]) for m in mixed])
    assert np.array_equal(together, alone)
    assert np.array_equal(stats.id_hashes(pa.array(content)).astype(np.uint64), stats.id_hashes(content))
    assert together[0] == stats.hash64(["not-hex"])[0]
    assert together[4] == stats.hash64(["Z" * 32])[0]
    assert together[5] == stats.hash64([content[3].upper()])[0]  # only lower-case hex takes the fast path
    assert len(set(stats.id_hashes(content).tolist())) == 100
    sliced = pa.array(content).slice(10, 5)
    assert np.array_equal(stats.id_hashes(sliced), stats.id_hashes(content[10:15]))
