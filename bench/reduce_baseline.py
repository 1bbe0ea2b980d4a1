"""profile-dist's reduce vs a straightforward pandas + scipy implementation of the same statistics.

Both get the same synthetic pairs (bench/synth.py; 10 factors, 3 sources) and compute, per source and
factor, C, D, T, tau with a 95% Poisson-bootstrap interval (B replicates), the length-matched tau with
its interval, and the alignment metrics between sources (scipy.stats.kendalltau / spearmanr) with
intervals. The baseline loads the corpus into one DataFrame and draws numpy Poisson(1) weights per pair
and replicate; ours is ``map_reduce`` on local Ray (which also fits the Bradley-Terry model, not
counted in the baseline). Both timings include generating the data.

    python bench/reduce_baseline.py --pairs 1e6
    python bench/reduce_baseline.py --pairs 1e7

Last stdout line: key=value figures; ratio = baseline seconds / ours.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

import numpy as np
import pandas as pd
import ray
import ray.cloudpickle
from scipy import stats as sps

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import synth  # noqa: E402
from profile_dist.analysis.partials import ReduceConfig  # noqa: E402
from profile_dist.analysis.tables import result_tables  # noqa: E402
from profile_dist.stages.reduce import map_reduce  # noqa: E402


def baseline_frame(n_pairs: int, shard_pairs: int, seed: int) -> pd.DataFrame:
    frames = []
    for reader in synth.readers(n_pairs, shard_pairs, seed):
        shard = synth.synth_shard(reader.seed, reader.index, reader.n_pairs)
        frame = pd.DataFrame(shard["a"], columns=[f"a_{f}" for f in synth.FACTORS])
        frame[[f"b_{f}" for f in synth.FACTORS]] = shard["b"]
        frame["pair_id"] = shard["pair_id"].to_pylist()
        frame["labeler"] = shard["labeler"]
        frame["a_preferred"] = shard["a_preferred"]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def baseline_statistics(frame: pd.DataFrame, n_bootstrap: int, seed: int) -> dict:
    a = frame[[f"a_{f}" for f in synth.FACTORS]].to_numpy()
    b = frame[[f"b_{f}" for f in synth.FACTORS]].to_numpy()
    diffs = pd.DataFrame(np.where(frame["a_preferred"].to_numpy()[:, None], a - b, b - a), columns=list(synth.FACTORS))
    matched = (frame["a_length"] - frame["b_length"]).abs() <= 0.1 * np.maximum(frame["a_length"], frame["b_length"])
    conc, disc, tie = (diffs > 0).astype(int), (diffs < 0).astype(int), (diffs == 0).astype(int)
    labeler = frame["labeler"]

    def taus(weights):
        c = conc.mul(weights, axis=0).groupby(labeler).sum()
        d = disc.mul(weights, axis=0).groupby(labeler).sum()
        cm = conc[matched].mul(weights[matched], axis=0).groupby(labeler[matched]).sum()
        dm = disc[matched].mul(weights[matched], axis=0).groupby(labeler[matched]).sum()
        return (c - d) / (c + d), (cm - dm) / (cm + dm)

    def alignment(tau):
        out = {}
        for x, y in itertools.combinations(tau.index, 2):
            out[(x, y, "kendall")] = sps.kendalltau(tau.loc[x], tau.loc[y]).statistic
            out[(x, y, "spearman")] = sps.spearmanr(tau.loc[x], tau.loc[y]).statistic
        return out

    ones = pd.Series(1, index=frame.index)
    point, point_matched = taus(ones)
    counts = {"C": conc.groupby(labeler).sum(), "D": disc.groupby(labeler).sum(), "T": tie.groupby(labeler).sum()}
    rng = np.random.default_rng(seed)
    replicate_tau, replicate_matched, replicate_alignment = [], [], []
    for _ in range(n_bootstrap):
        weights = pd.Series(rng.poisson(1.0, len(frame)), index=frame.index)
        tau, tau_matched = taus(weights)
        replicate_tau.append(tau.to_numpy())
        replicate_matched.append(tau_matched.to_numpy())
        replicate_alignment.append(alignment(tau))
    ci = np.nanpercentile(np.stack(replicate_tau), [2.5, 97.5], axis=0)
    ci_matched = np.nanpercentile(np.stack(replicate_matched), [2.5, 97.5], axis=0)
    alignment_ci = {k: np.nanpercentile([r[k] for r in replicate_alignment], [2.5, 97.5]) for k in replicate_alignment[0]}
    return {"tau": point, "counts": counts, "ci": ci, "ci_matched": ci_matched, "alignment": alignment(point), "alignment_ci": alignment_ci}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=float, default=1e6)
    parser.add_argument("--shard-pairs", type=float, default=1e6)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n_pairs, shard_pairs = int(args.pairs), int(args.shard_pairs)

    ray.cloudpickle.register_pickle_by_value(synth)
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING")
    ray.get([ray.remote(lambda: None).remote() for _ in range(args.cpus)])  # workers up: not part of either timing
    started = time.perf_counter()
    merged = map_reduce(synth.readers(n_pairs, shard_pairs, args.seed), ReduceConfig(synth.FACTORS, n_bootstrap=args.bootstrap, seed=args.seed))
    tables = result_tables(merged)
    ours_s = time.perf_counter() - started
    ray.shutdown()

    started = time.perf_counter()
    frame = baseline_frame(n_pairs, shard_pairs, args.seed)
    generated = time.perf_counter()
    result = baseline_statistics(frame, args.bootstrap, args.seed)
    baseline_s = time.perf_counter() - started

    # Same data, same point estimates: the C, D, T of the two implementations agree exactly.
    influence = {(r["labeler"], r["setting"], r["factor"]): r for r in tables["influence"].to_pylist()}
    for index, (labeler, setting) in enumerate(synth.LABELERS):
        for factor in synth.FACTORS:
            ours = influence[(labeler, setting, factor)]
            assert ours["n_concordant"] == result["counts"]["C"].loc[index, factor]
            assert ours["n_discordant"] == result["counts"]["D"].loc[index, factor]
            assert ours["n_ties"] == result["counts"]["T"].loc[index, factor]
    print(
        f"pairs={n_pairs} replicates={args.bootstrap} cpus={args.cpus} ours_s={ours_s:.1f} "
        f"baseline_s={baseline_s:.1f} baseline_generate_s={generated - started:.1f} ratio={baseline_s / ours_s:.1f}"
    )


if __name__ == "__main__":
    main()
