"""Coverage of the reduce's 95% bootstrap intervals for tau, by simulation with a planted true tau.

Each simulated corpus has n pairs; a pair's factor difference is tied with probability p_tie, else
concordant with probability (1 + tau) / 2, so the true tau is known. The corpus goes through the real
map (``partials.map_batch``, with random 32-hex pair ids) and the real interval computation
(``stages.reduce.Results``); we count how often the interval covers the true tau.

Two regimes: n << M (buckets hold ~0-1 pair: the per-pair Poisson bootstrap) and n >> M (every
bucket holds many pairs: the random-groups regime of the bucketed scheme).

    python bench/reduce_coverage.py                # 400 corpora per regime
    python bench/reduce_coverage.py --corpora 100  # quicker

Last stdout line: key=value figures (coverage per regime, in percent).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from synth import hex_ids  # noqa: E402
from profile_dist.analysis import stats  # noqa: E402
from profile_dist.analysis.partials import DiffBatch, ReduceConfig, map_batch  # noqa: E402
from profile_dist.stages.reduce import Results  # noqa: E402

GROUP = ("sim", "human", "t")


def simulate(n_corpora: int, n_pairs: int, true_tau: float, p_tie: float, config: ReduceConfig, seed: int) -> tuple[float, float]:
    """(share of corpora whose interval covers true_tau, mean interval width)."""
    rng = np.random.default_rng(seed)
    covered, widths = 0, []
    for _ in range(n_corpora):
        hashes = stats.id_hashes(hex_ids(rng, n_pairs))
        tied = rng.random(n_pairs) < p_tie
        concordant = rng.random(n_pairs) < (1 + true_tau) / 2
        diffs = np.where(tied, 0.0, np.where(concordant, 1.0, -1.0))[:, None]
        batch = DiffBatch([GROUP], np.zeros(n_pairs, np.int32), hashes, hashes, diffs, np.zeros(n_pairs, bool), Counter())
        results = Results.from_partial(map_batch(batch, config), 0.95)
        low, high = results.interval(results.replicate_tau[GROUP][:, 0])
        covered += low <= true_tau <= high
        widths.append(high - low)
    return covered / n_corpora, float(np.mean(widths))


REGIMES = {
    # name: (pairs per corpus, buckets)
    "pairs_lt_buckets": (1_000, 1 << 14),
    "pairs_gt_buckets": (50_000, 1 << 10),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=int, default=400)
    parser.add_argument("--tau", type=float, default=0.3)
    parser.add_argument("--p-tie", type=float, default=0.2)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    figures = {}
    started = time.perf_counter()
    for i, (name, (n_pairs, n_buckets)) in enumerate(REGIMES.items()):
        config = ReduceConfig(("f",), n_bootstrap=args.bootstrap, seed=i, n_buckets=n_buckets, sample_size=0)
        coverage, width = simulate(args.corpora, n_pairs, args.tau, args.p_tie, config, seed=100 + i)
        print(f"{name}: n={n_pairs} buckets={n_buckets} corpora={args.corpora} coverage={100 * coverage:.1f}% mean_width={width:.4f}")
        figures[f"coverage_{name}"] = f"{100 * coverage:.1f}"
    figures["corpora"] = args.corpora
    figures["true_tau"] = args.tau
    figures["replicates"] = args.bootstrap
    figures["seconds"] = f"{time.perf_counter() - started:.0f}"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
