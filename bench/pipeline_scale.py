"""The data path at corpus scale: gen -> ingest -> annotate(length) -> reduce for N pairs, and the peers.

    python bench/pipeline_scale.py --pairs 1000000 [--workdir /tmp/pipeline_scale] [--files F] [--run] [--raydata]

Each stage is the real command line in its own process (``profile-dist ingest|annotate|reduce``, as a user
runs them one after another; with ``--run``, also ``profile-dist run`` of the same job), so every stage
starts its own Ray. Timed per stage: wall time and the peak RSS of the whole process tree of the command
(CLI driver, GCS, raylet, workers), sampled every 0.1 s (psutil when installed, else /proc). Shared pages
are counted once per process that maps them, so the figure is an upper bound. Then the peers of
bench/peers.py (pandas, polars; ``--peers``) compute the same tau(length) per labeler on the same corpus,
and with ``--raydata`` bench/raydata_pipeline.py runs the same data plane in Ray Data; the script checks
that every tau agrees with the reduce's.

The corpus (bench/gen_corpus.py) is generated first and reported but not counted in the pipeline. Run it
alone on an otherwise idle machine; the load average is printed. Last stdout line: key=value figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from proc_tree import tree_rss  # noqa: E402

REPO = HERE.parent


def timed(command: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Run ``command``; its wall time, the peak RSS of its process tree, and its last stdout line."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(process.pid))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if process.returncode:
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{err[-4000:]}")
    lines = [line for line in out.splitlines() if line.strip()]
    return seconds, peak[0], lines[-1] if lines else ""


def key_values(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split() if "=" in part)


def reduce_taus(results: str) -> dict[str, str]:
    import polars as pl

    rows = pl.read_parquet(os.path.join(results, "influence.parquet")).filter(pl.col("factor") == "length").to_dicts()
    return {f"tau_{r['labeler']}": f"{r['tau']:+.6f}" for r in rows}


def write_job(path: str, inputs: list[str], output: str, rows_per_shard: int, bootstrap: int) -> None:
    import yaml

    job = {"output": output, "rows_per_shard": rows_per_shard,
           "ingest": [{"name": "corpus", "format": "pairs", "input": inputs}],
           "annotate": {"factors": ["length"]}, "reduce": {"bootstrap": bootstrap}}
    with open(path, "w") as handle:
        yaml.safe_dump(job, handle)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, required=True)
    p.add_argument("--files", type=int, default=None, help="corpus files (default: one per 200,000 pairs)")
    p.add_argument("--rows-per-shard", type=int, default=100_000)
    p.add_argument("--bootstrap", type=int, default=200)
    p.add_argument("--workdir", default="/tmp/pipeline_scale")
    p.add_argument("--corpus", default=None, help="an existing corpus directory (skips generation)")
    p.add_argument("--run", action="store_true", help="also time `profile-dist run` of the same job (one command)")
    p.add_argument("--no-peers", action="store_true", help="skip the pandas and polars peers")
    p.add_argument("--peers", default="pandas,polars", help="which peers to run (comma-separated: pandas, polars)")
    p.add_argument("--raydata", action="store_true", help="also time bench/raydata_pipeline.py (the data plane in Ray Data)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--stages", default="ingest,annotate,reduce",
                   help="which commands to time (comma-separated); with --keep, a later stage alone reuses the "
                        "earlier stages' outputs in --workdir, e.g. --keep --stages reduce after a change to the reduce")
    a = p.parse_args(argv)
    chosen = a.stages.split(",")
    unknown = [name for name in chosen if name not in ("ingest", "annotate", "reduce")]
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; expected some of ingest, annotate, reduce")

    python = sys.executable
    env = {**os.environ, "PROFILE_DIST_PROGRESS": "0", "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    work = Path(a.workdir)
    if work.exists() and not a.keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {"pairs": a.pairs, "cpus": os.cpu_count(), "load_before": f"{os.getloadavg()[0]:.2f}"}

    corpus = a.corpus or str(work / "corpus")
    if a.corpus is None:
        gen = [python, str(HERE / "gen_corpus.py"), "--pairs", str(a.pairs), "--out", corpus]
        seconds, peak, line = timed(gen + (["--files", str(a.files)] if a.files else []), env)
        figures.update(gen_s=f"{seconds:.1f}", gen_peak_gib=f"{peak / 2**30:.2f}")
        print(f"gen: {seconds:.1f} s, peak {peak / 2**30:.2f} GiB: {line}", flush=True)
    inputs = sorted(str(x) for x in Path(corpus).glob("*.parquet"))
    figures.update(files=len(inputs), corpus_mib=f"{sum(os.path.getsize(x) for x in inputs) / 2**20:.0f}")

    cli = [python, "-m", "profile_dist.cli"]
    pairs, annotations, results = (str(work / x) for x in ("pairs", "annotations", "results"))
    stages = {
        "ingest": cli + ["ingest", "--format", "pairs", "--input", *inputs, "--output", pairs, "--rows-per-shard", str(a.rows_per_shard)],
        "annotate": cli + ["annotate", "--pairs", pairs, "--output", annotations, "--factors", "length"],
        "reduce": cli + ["reduce", "--pairs", pairs, "--annotations", annotations, "--output", results, "--bootstrap", str(a.bootstrap)],
    }
    total, peak_all = 0.0, 0
    for name, command in stages.items():
        if name not in chosen:
            continue
        output = {"ingest": pairs, "annotate": annotations, "reduce": results}[name]
        shutil.rmtree(output, ignore_errors=True)  # a kept work directory's earlier output of this stage
        seconds, peak, _ = timed(command, env)
        total, peak_all = total + seconds, max(peak_all, peak)
        figures.update({f"{name}_s": f"{seconds:.1f}", f"{name}_peak_gib": f"{peak / 2**30:.2f}"})
        print(f"{name}: {seconds:.1f} s, peak tree RSS {peak / 2**30:.2f} GiB", flush=True)
    figures.update(pipeline_s=f"{total:.1f}", pipeline_peak_gib=f"{peak_all / 2**30:.2f}")
    taus = reduce_taus(results)

    if a.run:
        job = str(work / "job.yaml")
        write_job(job, inputs, str(work / "run"), a.rows_per_shard, a.bootstrap)
        seconds, peak, _ = timed(cli + ["run", job], env)
        figures.update(run_s=f"{seconds:.1f}", run_peak_gib=f"{peak / 2**30:.2f}")
        print(f"run: {seconds:.1f} s, peak tree RSS {peak / 2**30:.2f} GiB", flush=True)

    agree = True
    peers = {engine: [python, str(HERE / "peers.py"), "--engine", engine, corpus]
             for engine in ([] if a.no_peers else a.peers.split(","))}
    if a.raydata:
        peers["raydata"] = [python, str(HERE / "raydata_pipeline.py"), corpus]
    for engine, command in peers.items():
        seconds, peak, line = timed(command, env)
        peer = {k: v for k, v in key_values(line).items() if k.startswith("tau_")}
        agree &= peer == taus
        figures.update({f"{engine}_s": f"{seconds:.1f}", f"{engine}_peak_gib": f"{peak / 2**30:.2f}"})
        print(f"{engine}: {seconds:.1f} s, peak tree RSS {peak / 2**30:.2f} GiB: {line}", flush=True)
    figures.update(taus)
    figures.update(taus_agree=str(agree).lower(), load_after=f"{os.getloadavg()[0]:.2f}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
