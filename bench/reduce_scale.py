"""Reduce benchmark: N synthetic pairs x 10 factors x 3 labelers (sources) x B replicates on local Ray.

Shards are generated inside the Ray tasks from (seed, shard index), so the corpus never exists whole;
each task generates its shard (ids, factor values, labels), hashes the ids, orients the differences and
maps them to a Partial; the driver merges as shards finish and then computes every result table
(influence, alignment, gap, adjusted, replicates).

Peak memory is the largest sum of RSS over the driver and every process it started (Ray's raylet, GCS,
workers), sampled every 0.2 s: shared pages are counted once per process, so this overstates.

    python bench/reduce_scale.py --pairs 1000000
    python bench/reduce_scale.py --pairs 100000000 --shard-pairs 2000000

Last stdout line: key=value figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time

import ray
import ray.cloudpickle

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth  # noqa: E402
from proc_tree import tree_rss  # noqa: E402
from profile_dist.analysis.partials import ReduceConfig  # noqa: E402
from profile_dist.analysis.tables import result_tables  # noqa: E402
from profile_dist.stages.reduce import map_reduce  # noqa: E402


class PeakRss:
    """Largest total RSS of this process and its descendants, sampled in a background thread."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> int:
        return tree_rss(os.getpid())

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=float, default=1e6)
    parser.add_argument("--shard-pairs", type=float, default=1e6)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_pairs, shard_pairs = int(args.pairs), int(args.shard_pairs)

    ray.cloudpickle.register_pickle_by_value(synth)  # workers need not import bench/
    with PeakRss() as memory:
        started = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
        ray_up = time.perf_counter()
        readers = synth.readers(n_pairs, shard_pairs, args.seed)
        config = ReduceConfig(synth.FACTORS, n_bootstrap=args.bootstrap, seed=args.seed)
        merged = map_reduce(readers, config, total=len(readers))
        mapped = time.perf_counter()
        tables = result_tables(merged)
        finished = time.perf_counter()
        ray.shutdown()
    influence = tables["influence"].to_pylist()
    n_reduced = sum(r["n_pairs"] for r in influence if r["factor"] == "length")
    assert n_reduced == n_pairs, (n_reduced, n_pairs)
    for r in influence:
        if r["factor"] in ("length", "facts"):
            print(f"{r['labeler']}/{r['setting']} {r['factor']}: tau={r['tau']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] C+D={r['n_concordant'] + r['n_discordant']}")
    reduce_s = finished - ray_up
    print(
        f"pairs={n_pairs} shards={len(readers)} factors={len(synth.FACTORS)} sources={len(synth.LABELERS)} "
        f"replicates={args.bootstrap} cpus={args.cpus} ray_init_s={ray_up - started:.1f} map_merge_s={mapped - ray_up:.1f} "
        f"tables_s={finished - mapped:.1f} reduce_s={reduce_s:.1f} wall_s={finished - started:.1f} "
        f"ns_per_pair={reduce_s / n_pairs * 1e9:.0f} peak_rss_gib={memory.peak / 2**30:.2f}"
    )


if __name__ == "__main__":
    main()
