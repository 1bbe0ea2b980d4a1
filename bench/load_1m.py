"""Load: N pairs (default 1,000,000) through ingest, rule annotation and reduce on this machine, with the
wall time and the peak RSS of the whole process tree (driver + Ray's GCS, raylet, workers) per stage.

    /work/venv/bin/python bench/load_1m.py [--pairs 1000000] [--files 10] [--workdir /tmp/load_1m]

The corpus is generated first (not timed): ``--files`` Parquet files in the ``pairs`` format, one prompt
per 4 pairs, responses of 8-60 words, some with markdown bold or list items, labels a/b/tie. Peak RSS is
sampled every 0.2 s from /proc and sums every process of the tree, so shared pages (Ray's object store) are
counted once per process that maps them: an upper bound. Last stdout line: key=value figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reduce_scale import PeakRss, tree_rss  # noqa: E402

from profile_dist.stages.annotate import annotate  # noqa: E402
from profile_dist.stages.ingest import ingest  # noqa: E402
from profile_dist.stages.reduce import reduce  # noqa: E402

WORDS = np.array(("the", "a", "model", "answer", "because", "water", "light", "energy", "simple", "check", "first",
                  "then", "result", "value", "list", "error", "data", "user", "question", "clear", "short", "long",
                  "reason", "example", "code", "return", "none", "safe", "help", "time"))


def _texts(rng: np.random.Generator, n: int, lo: int, hi: int, tag: str) -> list[str]:
    lengths = rng.integers(lo, hi + 1, size=n)
    words = WORDS[rng.integers(0, len(WORDS), size=int(lengths.sum()))]
    ends = np.cumsum(lengths)
    style = rng.random(n)
    out = []
    start = 0
    for i, end in enumerate(ends):
        text = " ".join(words[start:end]) + f" {tag}{i}."
        if style[i] < 0.1:
            text = f"**{words[start]}** {text}"
        elif style[i] < 0.2:
            text = f"{text}\n- {words[start]}\n- {words[end - 1]}"
        out.append(text)
        start = end
    return out


def write_corpus(directory: str, n_pairs: int, n_files: int, seed: int = 0) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    paths = []
    per_file = -(-n_pairs // n_files)
    for f in range(n_files):
        n = min(per_file, n_pairs - f * per_file)
        if n <= 0:
            break
        rng = np.random.default_rng([seed, f])
        prompts = _texts(rng, -(-n // 4), 5, 15, f"p{f}-")
        table = pa.table({
            "prompt": pa.array([prompts[i // 4] for i in range(n)]),
            "response_a": pa.array(_texts(rng, n, 8, 60, f"a{f}-")),
            "response_b": pa.array(_texts(rng, n, 8, 60, f"b{f}-")),
            "label": pa.array(np.array(["a", "b", "tie"])[rng.choice(3, size=n, p=[0.45, 0.45, 0.10])]),
            "labeler": pa.array(np.array(["human", "judge-x"])[rng.integers(0, 2, size=n)]),
        })
        path = os.path.join(directory, f"corpus-{f:03d}.parquet")
        pq.write_table(table, path)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=1_000_000)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--rows-per-shard", type=int, default=100_000)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--workdir", default="/tmp/load_1m")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    a = p.parse_args()
    shutil.rmtree(a.workdir, ignore_errors=True)
    t = time.perf_counter()
    inputs = write_corpus(os.path.join(a.workdir, "corpus"), a.pairs, a.files)
    corpus_bytes = sum(os.path.getsize(x) for x in inputs)
    print(f"corpus: {a.pairs} pairs in {len(inputs)} files, {corpus_bytes / 2**20:.0f} MiB, "
          f"generated in {time.perf_counter() - t:.0f} s", flush=True)
    ray.init(include_dashboard=False, log_to_driver=False)
    figures: dict[str, str] = {"pairs": str(a.pairs), "cpus": str(os.cpu_count())}
    time.sleep(2)  # let Ray's idle workers settle: the baseline every stage's peak sits on
    figures["idle_tree_rss_gib"] = f"{tree_rss(os.getpid()) / 2**30:.2f}"
    pairs, ann, res = (os.path.join(a.workdir, x) for x in ("pairs", "annotations", "results"))
    stages = {
        "ingest": lambda: ingest("pairs", inputs, pairs, rows_per_shard=a.rows_per_shard, progress=False),
        "annotate": lambda: annotate(pairs, ann, progress=False),
        "reduce": lambda: reduce([pairs], [ann], res, n_bootstrap=a.bootstrap, progress=False),
    }
    for name, run in stages.items():
        with PeakRss() as peak:
            t = time.perf_counter()
            summary = run()
            seconds = time.perf_counter() - t
        print(f"{name}: {seconds:.1f} s, peak tree RSS {peak.peak / 2**30:.2f} GiB; "
              + "; ".join(summary.lines()).replace("\n", " "), flush=True)
        figures[f"{name}_s"] = f"{seconds:.1f}"
        figures[f"{name}_peak_rss_gib"] = f"{peak.peak / 2**30:.2f}"
    ray.shutdown()
    if not a.keep:
        shutil.rmtree(a.workdir, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
