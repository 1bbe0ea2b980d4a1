"""tau(length) per labeler from a ``pairs`` corpus with Ray Data: the candidate data plane of issue 14.

    python bench/raydata_pipeline.py [--partitions P] [--batch-rows R] CORPUS_DIR_OR_FILES...

The same work as our three commands (issue 14.4's comparison), in Ray Data's operators and streaming
executor. It computes no intervals (our reduce also runs a 200-replicate bootstrap and the Bradley-Terry
fit), so it is a lower bound of what the data plane costs in Ray Data. The corpus is read twice (a
Dataset used twice runs twice; materializing the pairs instead would hold them all). Last line: key=value
figures, with the taus ``pipeline_scale.py --raydata`` checks against the reduce's.

    lengths: read_parquet().select_columns(prompt, response_a, response_b)
             -> map_batches: the pipeline's content ids (profile_dist.ids), one row (id, text) per response
             -> groupby(id).aggregate(Max(text)): one row per distinct response, i.e. ingest's dedup of texts
             -> map_batches: length, by the rule factor's own polars expression (annotate)
             -> materialize()
    pairs:   read_parquet().select_columns(prompt, response_a, response_b, label, labeler)
             -> map_batches: drop ties; a_id, b_id, sign (+1: a preferred, -1: b preferred)
             -> join(lengths) on a_id -> join(lengths) on b_id (hash joins: the reduce's join)
             -> map_batches: d = sign * (length_a - length_b); concordant d > 0, discordant d < 0
             -> groupby(labeler, num_partitions=1).aggregate(Sum, Sum) -> tau = (C - D) / (C + D)
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import corpus_files, print_figures  # noqa: E402

#: Pairs per hash partition of the shuffles (groupby, join): bounds what one reduce task holds in memory.
PAIRS_PER_PARTITION = 50_000


def response_rows(batch: pa.Table) -> pa.Table:
    """(id, text) for both responses of every pair, ids as ingest computes them (one source-less corpus)."""
    from profile_dist.ids import prompt_ids, response_ids

    prompts = prompt_ids(batch["prompt"], pa.nulls(batch.num_rows, pa.large_string()))
    ids = pa.concat_arrays([response_ids(prompts, batch["response_a"]), response_ids(prompts, batch["response_b"])])
    texts = pa.concat_arrays([batch["response_a"].combine_chunks().cast(pa.large_string()),
                              batch["response_b"].combine_chunks().cast(pa.large_string())])
    return pa.table({"id": ids, "text": texts})


def lengths(batch: pa.Table) -> pa.Table:
    """(id, length) of distinct responses: annotate's ``length`` factor, the very expression it evaluates."""
    import polars as pl

    from profile_dist.factors import get_factor

    frame = pl.from_arrow(batch.rename_columns(["id", "text"]))
    return frame.select("id", get_factor("length").expr().cast(pl.Int64).alias("length")).to_arrow()


def decided_pairs(batch: pa.Table) -> pa.Table:
    """Pairs with a preference (ties carry none, as in the reduce): the ids of their responses and the sign."""
    from profile_dist.ids import prompt_ids, response_ids

    batch = batch.filter(pc.not_equal(batch["label"], "tie"))
    prompts = prompt_ids(batch["prompt"], pa.nulls(batch.num_rows, pa.large_string()))
    sign = pc.if_else(pc.equal(batch["label"], "a"), pa.scalar(1, pa.int64()), pa.scalar(-1, pa.int64()))
    return pa.table({"a_id": response_ids(prompts, batch["response_a"]), "b_id": response_ids(prompts, batch["response_b"]),
                     "sign": sign, "labeler": batch["labeler"]})


def concordance(batch: pa.Table) -> pa.Table:
    """Per pair: is the preferred response the longer one (concordant) or the shorter (discordant)?"""
    d = pc.multiply(batch["sign"], pc.subtract(batch["length_a"], batch["length_b"]))
    return pa.table({"labeler": batch["labeler"], "c": pc.cast(pc.greater(d, 0), pa.int64()),
                     "d": pc.cast(pc.less(d, 0), pa.int64())})


def tau_raydata(files: list[str], partitions: int, batch_rows: int) -> dict[str, tuple[int, int]]:
    import ray
    from ray.data.aggregate import Max, Sum

    def read(columns: list[str]) -> ray.data.Dataset:
        return ray.data.read_parquet(files).select_columns(columns)  # the projection is pushed into the read

    length_table = (
        read(["prompt", "response_a", "response_b"])
        .map_batches(response_rows, batch_format="pyarrow", batch_size=batch_rows)
        .groupby("id", num_partitions=partitions).aggregate(Max("text", alias_name="text", zero_factory=lambda: ""))
        .map_batches(lengths, batch_format="pyarrow", batch_size=batch_rows)
        .materialize()
    )

    def with_length(pairs: ray.data.Dataset, key: str, name: str) -> ray.data.Dataset:
        # The inner join keeps the left key (a_id / b_id) and drops the right one (id).
        return pairs.join(length_table, "inner", partitions, on=(key,), right_on=("id",)).rename_columns({"length": name})

    pairs = read(["prompt", "response_a", "response_b", "label", "labeler"]).map_batches(
        decided_pairs, batch_format="pyarrow", batch_size=batch_rows)
    joined = with_length(with_length(pairs, "a_id", "length_a"), "b_id", "length_b")
    counts = (
        joined.map_batches(concordance, batch_format="pyarrow", batch_size=batch_rows)
        .groupby("labeler", num_partitions=1).aggregate(Sum("c", alias_name="c"), Sum("d", alias_name="d"))
        .take_all()
    )
    return {row["labeler"]: (int(row["c"]), int(row["d"])) for row in counts}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="+", help="Parquet files of the pairs format, or directories of them")
    p.add_argument("--partitions", type=int, default=None,
                   help=f"hash partitions of the groupby and joins (default: one per {PAIRS_PER_PARTITION:,} pairs, at least 2 per CPU)")
    p.add_argument("--batch-rows", type=int, default=8192, help="rows per map_batches batch")
    a = p.parse_args(argv)
    files = corpus_files(a.corpus)
    n_pairs = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    partitions = a.partitions or max(2 * (os.cpu_count() or 1), math.ceil(n_pairs / PAIRS_PER_PARTITION))

    t = time.perf_counter()
    import ray

    # A runtime of its own, as the pipeline's commands start one (profile_dist.stages.runtime.ensure_ray).
    ray.init(address="local", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    counts = tau_raydata(files, partitions, a.batch_rows)
    ray.shutdown()
    seconds = time.perf_counter() - t
    print_figures({"engine": "raydata", "seconds": f"{seconds:.2f}", "partitions": partitions}, counts)


if __name__ == "__main__":
    main()
