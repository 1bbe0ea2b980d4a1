"""The pipeline's data plane written with Ray Data, for issue 14's comparison (build point 4).

    python bench/raydata_pipeline.py CORPUS_DIR_OR_FILES... [--partitions N]

The same work our three commands do on a ``pairs`` corpus (bench/gen_corpus.py), in Ray Data's own
operators, streaming: ``read_parquet``; ``map_batches`` giving every response its content id
(``ids.response_ids``, the pipeline's id) and ``length`` (Python's ``str.split()`` words, the rule factor's
definition); responses de-duplicated by id with a hash ``groupby``; pairs joined with their two responses'
lengths by two hash ``join``s; oriented differences, then C and D per labeler by ``groupby``. It does not
compute intervals (our reduce also does a 200-replicate bootstrap and the Bradley-Terry fit), so it is the
lower bound of what the same data plane costs in Ray Data. Last line: key=value figures, with the taus
``pipeline_scale.py --raydata`` checks against the reduce's.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.peers import WORD_PATTERN, corpus_files  # noqa: E402


def _ids_and_lengths(batch: pa.Table) -> pa.Table:
    """Per pair: the ids of its prompt and two responses, each response's length, the label and labeler."""
    from profile_dist import ids

    empty = pa.nulls(batch.num_rows, pa.string())
    prompt_id = ids.prompt_ids(batch.column("prompt"), empty)
    columns = {"labeler": batch.column("labeler"), "label": batch.column("label")}
    for side in ("a", "b"):
        text = batch.column(f"response_{side}")
        columns[f"{side}_id"] = ids.response_ids(prompt_id, text)
        columns[f"{side}_len"] = pc.count_substring_regex(text, WORD_PATTERN).cast(pa.int64())
    return pa.table(columns)


def _responses(batch: pa.Table) -> pa.Table:
    return pa.table({"response_id": pa.concat_arrays([batch.column("a_id").combine_chunks(), batch.column("b_id").combine_chunks()]),
                     "length": pa.concat_arrays([batch.column("a_len").combine_chunks(), batch.column("b_len").combine_chunks()])})


def _oriented(batch: pa.Table) -> pa.Table:
    label = batch.column("label").to_numpy(zero_copy_only=False)
    a, b = batch.column("length_a").to_numpy(), batch.column("length_b").to_numpy()
    d = np.where(label == "a", a - b, b - a)
    return pa.table({"labeler": batch.column("labeler"), "c": (d > 0).astype(np.int64), "d": (d < 0).astype(np.int64)})


def tau_raydata(files: list[str], partitions: int) -> dict[str, tuple[int, int]]:
    import ray
    from ray.data.aggregate import Max, Sum

    pairs = (ray.data.read_parquet(files, columns=["prompt", "response_a", "response_b", "label", "labeler"])
             .filter(expr="label != 'tie'")
             .map_batches(_ids_and_lengths, batch_format="pyarrow"))
    pairs = pairs.materialize()  # both branches below read it; without this each would parse the corpus again
    lengths = (pairs.map_batches(_responses, batch_format="pyarrow")  # one row per response, shared by both joins
               .groupby("response_id", num_partitions=partitions).aggregate(Max("length", alias_name="length")).materialize())
    joined = pairs.select_columns(["labeler", "label", "a_id", "b_id"])
    for side in ("a", "b"):
        right = lengths.rename_columns({"response_id": f"{side}_id", "length": f"length_{side}"})
        joined = joined.join(right, join_type="inner", num_partitions=partitions, on=(f"{side}_id",))
    counts = (joined.map_batches(_oriented, batch_format="pyarrow")
              .groupby("labeler", num_partitions=partitions).aggregate(Sum("c", alias_name="c"), Sum("d", alias_name="d")).take_all())
    return {row["labeler"]: (int(row["c"]), int(row["d"])) for row in counts}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="+", help="Parquet files of the pairs format, or directories of them")
    p.add_argument("--partitions", type=int, default=16, help="hash partitions of the joins and groupbys")
    a = p.parse_args(argv)
    import ray

    t = time.perf_counter()
    ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    counts = tau_raydata(corpus_files(a.corpus), a.partitions)
    ray.shutdown()
    seconds = time.perf_counter() - t
    figures = {"engine": "raydata", "seconds": f"{seconds:.2f}"}
    for labeler, (c, d) in sorted(counts.items()):
        figures[f"tau_{labeler}"] = f"{(c - d) / (c + d):+.6f}" if c + d else "nan"
        figures[f"cd_{labeler}"] = c + d
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
