"""The reduce's factor join (stages/factor_join.py): which value a pair gets when annotation files disagree.

The rule the reduce always had: the first value of a (response, factor) in the order the annotation
directories and their files are given, and within a file the first row. Checked here against tables
written to disagree on purpose, for several numbers of join buckets.
"""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pytest

from profile_dist import schema, storage
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.workflows.demo import write_demo_corpus

pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The demo corpus ingested, its lengths annotated, and a directory whose one file first gives every
    response minus its length and then, in a second row, its true length."""
    root = tmp_path_factory.mktemp("join")
    pairs, true = str(root / "pairs"), str(root / "true")
    ingest("pairs", [write_demo_corpus(str(root / "demo.jsonl"))], pairs, rows_per_shard=60, progress=False)
    annotate(pairs, true, factors=["length"], progress=False)
    values = pl.concat([pl.read_parquet(f) for f in storage.list_files(true)])
    negated = pl.concat([values.with_columns(-pl.col("value")), values])  # in this order, in one file
    storage.write_parquet_atomic(schema.conform(negated.to_arrow(), schema.ANNOTATIONS, where="test"),
                                 str(root / "negated" / "part-00000.parquet"))
    return root, pairs, true, str(root / "negated")


def _length(root, pairs, annotation_dirs, name, buckets) -> dict:
    out = root / name
    reduce([pairs], annotation_dirs, str(out), factors=["length"], n_bootstrap=0, progress=False, join_buckets=buckets)
    table = pl.read_parquet(out / "influence.parquet").filter(pl.col("factor") == "length").sort("labeler")
    return {r["labeler"]: (r["n_concordant"], r["n_discordant"]) for r in table.iter_rows(named=True)}


@pytest.mark.parametrize("buckets", [1, 4])
def test_the_first_directory_and_the_first_row_win(corpus, buckets):
    root, pairs, true, negated = corpus
    alone = _length(root, pairs, [true], f"alone-{buckets}", buckets)
    assert alone and all(c + d > 0 for c, d in alone.values())
    # true first: the negated file changes nothing
    assert _length(root, pairs, [true, negated], f"true-first-{buckets}", buckets) == alone
    # negated first: its first row (minus the length) wins over its own second row and over the true file,
    # so every concordant pair becomes discordant and back
    flipped = _length(root, pairs, [negated, true], f"negated-first-{buckets}", buckets)
    assert flipped == {labeler: (d, c) for labeler, (c, d) in alone.items()}


def test_default_buckets_follow_the_pairs_and_cpus_but_never_the_files_squared():
    from profile_dist.stages.factor_join import PAIRS_PER_BUCKET, default_buckets

    assert default_buckets(10, 10, 1_000_000, cpus=2) == 4  # every CPU busy twice over
    assert default_buckets(100, 100, 10_000_000, cpus=2) == 10_000_000 // PAIRS_PER_BUCKET
    assert default_buckets(1000, 1000, 100_000_000, cpus=2) == 200  # not 1,000: 5x fewer reads
    assert default_buckets(3, 1, 100_000_000, cpus=64) == 3  # no more than the files on the larger side
    assert default_buckets(1, 1, 0, cpus=2) == 1
