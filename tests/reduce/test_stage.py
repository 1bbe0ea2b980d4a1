"""The reduce on Ray: streaming merge with a bounded number of tasks in flight, gaps (coverage: test_intervals.py)."""

from __future__ import annotations

import random
import sys
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import ray.cloudpickle

from profile_dist import ids
from profile_dist.analysis import stats
from profile_dist.errors import ConfigError
from profile_dist.analysis.partials import DiffBatch, Partial, ReduceConfig, map_batch
from profile_dist.analysis.tables import result_tables
from profile_dist.stages.reduce import map_reduce

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import test modules
FACTORS = ("length", "facts", "clarity", "formality")
GROUPS = [("human", "human", "t"), ("m", "evaluation", "t"), ("m", "generation", "t")]
# Log-odds weights per source: the model judges like humans but generates long, fact-heavy text.
WEIGHTS = {0: [-0.5, 1.0, 0.8, 0.2], 1: [-0.3, 0.9, 0.7, 0.3], 2: [1.2, 0.6, -0.5, -0.4]}


@dataclass(frozen=True)
class GeneratedShard:
    """A ShardReader (the same protocol as the pipeline's) that builds its rows from a seed."""

    name: str
    seed: int
    n_pairs: int

    def read(self, factors: tuple[str, ...]) -> DiffBatch:
        rng = np.random.default_rng(self.seed)
        group = rng.integers(0, 3, self.n_pairs).astype(np.int32)
        x = rng.integers(-3, 4, (self.n_pairs, len(factors))).astype(np.float64)
        margin = np.einsum("nf,nf->n", x, np.array([WEIGHTS[g] for g in group]))
        a_preferred = rng.random(self.n_pairs) < 1 / (1 + np.exp(-margin))
        diffs = np.where(a_preferred[:, None], x, -x)
        pair_ids = [ids.content_id("pair", self.seed, i) for i in range(self.n_pairs)]
        hashes = stats.id_hashes(pair_ids)
        return DiffBatch(list(GROUPS), group, hashes, hashes, diffs, np.abs(x[:, 0]) <= 1, Counter({("human", "human", "t", "", "tie label (no preference)"): 1}))


CONFIG = ReduceConfig(FACTORS, n_bootstrap=100, seed=1, n_buckets=1 << 10, sample_size=500)


def test_ray_map_reduce_streams_and_equals_the_local_merge(ray_session):
    readers = [GeneratedShard(f"gen-{i}", i, 300 + 50 * i) for i in range(9)]
    local = Partial(CONFIG)
    for reader in readers:
        local.add(map_batch(reader.read(FACTORS), CONFIG))
    shuffled = readers[:]
    random.Random(5).shuffle(shuffled)
    on_ray = map_reduce(iter(shuffled), CONFIG, max_in_flight=2, progress=False)
    expected, got = result_tables(local), result_tables(on_ray)
    for name in expected:
        assert expected[name].equals(got[name]), name
    assert on_ray.skipped[("human", "human", "t", "", "tie label (no preference)")] == 9


def test_a_failing_shard_raises_the_users_error(ray_session):
    @dataclass(frozen=True)
    class Broken:
        name: str = "broken-shard"

        def read(self, factors):
            raise ConfigError(f"{self.name}: row 3, field 'label': 'maybe'")

    with pytest.raises(ConfigError, match="broken-shard: row 3"):
        map_reduce([GeneratedShard("ok", 0, 50), Broken()], CONFIG, progress=False)


def test_gap_rows_are_evaluation_minus_generation_with_intervals_from_shared_replicates():
    merged = Partial(CONFIG)
    for i in range(3):
        merged.add(map_batch(GeneratedShard(f"g{i}", 10 + i, 3000).read(FACTORS), CONFIG))
    tables = result_tables(merged)
    gap = {r["metric"]: r for r in tables["gap"].to_pylist()}
    alignment = {(r["source_x"], r["source_y"], r["metric"]): r for r in tables["alignment"].to_pylist()}
    row = gap["mean_abs_diff"]
    assert (row["reference"], row["model"]) == ("human/human", "m")
    assert row["evaluation"] == alignment[("human/human", "m/evaluation", "mean_abs_diff")]["value"]
    assert row["generation"] == alignment[("human/human", "m/generation", "mean_abs_diff")]["value"]
    assert row["gap"] == pytest.approx(row["evaluation"] - row["generation"])
    # the model judges like humans but generates differently: the gap in |tau| distance is clearly negative
    assert row["ci_high"] < 0 and row["ci_low"] <= row["gap"] <= row["ci_high"]
    adjusted = {(r["labeler"], r["setting"], r["factor"]): r for r in tables["adjusted"].to_pylist()}
    assert adjusted[("m", "generation", "length")]["bt_coef_ci_low"] > 0
    assert adjusted[("human", "human", "length")]["bt_coef_ci_high"] < 0
