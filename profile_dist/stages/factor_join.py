"""The reduce's join of pairs with their responses' factor values, co-partitioned on response id.

A pair needs the factor values of its two responses, which live in whichever annotation file holds each
response's bucket. Filtering every annotation file for every pairs shard costs O(shards^2) reads, so
the join is a hash shuffle through files (``stages/shuffle.py``, as ingest's) in three task kinds:

1. **values** (a task per annotation file): the wanted factors' values, by bucket of response id, each
   with its precedence ``rank`` = (file ordinal, row): the first value of a (response, factor) in the
   order the annotation files are given wins, as a filter over all of them in that order would keep.
2. **edges** (a task per source: a pairs shard or a judged-pairs file): each decided row's two
   (row, side, response id) half-edges, by bucket of response id. Having read the shard, the same task
   routes its pair ids for the duplicate-pair check (unique_pairs.py), so the check costs no read of its own.
3. **buckets** (a task per bucket): one bucket's values and edges joined, written by source.

Then each source's reader (:class:`JoinedReader`, run inside the reduce's map task) reads its rows'
values from every bucket file and hands the same ``DiffBatch`` as before to the partials. No task reads
more than one annotation file or one bucket's worth of edges, and the driver holds byte offsets only.
The values a row receives do not depend on the number of buckets, so neither do the results.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray

from profile_dist import schema, storage
from profile_dist.analysis import stats
from profile_dist.analysis.partials import DiffBatch, GroupKey
from profile_dist.stages import shuffle, unique_pairs
from profile_dist.stages.runtime import run_tasks

SIDES = ("a", "b")
VALUES = pa.schema([("response_id", pa.string()), ("factor", pa.string()), ("value", pa.float64()), ("rank", pa.int64())])
EDGES = pa.schema([("row", pa.int64()), ("side", pa.int8()), ("response_id", pa.string())])
_ROW_BITS = 40  # rank = file ordinal << 40 | row: a file of up to 2^40 rows, 2^23 files


@dataclass(frozen=True)
class Oriented:
    """One source's decided rows, ready for their factor values.

    ``frame`` has labeler, setting, task (the group), label ("a" or "b": the preferred side), response_a_id,
    response_b_id, and pair_key / unit_key (the ids hashed for the sample and the bootstrap bucket).
    """

    frame: pl.DataFrame
    skipped: Counter
    pair_ids: pa.Array | pa.ChunkedArray | None = None  # every row's pair id, ties included, in stored order (pairs shards)


class Source(Protocol):
    """A picklable description of one pairs shard or judged-pairs file; ``rows`` runs inside Ray tasks."""

    name: str

    def rows(self) -> Oriented: ...


def group_codes(frame: pl.DataFrame) -> tuple[list[GroupKey], np.ndarray]:
    """Distinct (labeler, setting, task) in first-seen order, and each row's index into them."""
    keyed = frame.select("labeler", "setting", "task").with_row_index("_row")
    groups: list[GroupKey] = []
    index = np.empty(frame.height, dtype=np.int32)
    for key, rows in keyed.group_by(["labeler", "setting", "task"], maintain_order=True):
        index[rows["_row"].to_numpy()] = len(groups)
        groups.append(tuple(key))
    return groups, index


def diff_batch(oriented: Oriented, a_vals: np.ndarray, b_vals: np.ndarray, wanted: Sequence[str], n_factors: int,
               length_factor: str, length_tolerance: float) -> DiffBatch:
    """Per decided row: f(preferred) - f(other) for the first ``n_factors`` of ``wanted`` (NaN where a value is
    unknown), and whether the two responses are length-matched by ``length_factor``."""
    frame = oriented.frame
    a_pref = (frame["label"] == "a").to_numpy()[:, None]
    diffs = np.where(a_pref, a_vals - b_vals, b_vals - a_vals)[:, :n_factors]
    at = list(wanted).index(length_factor)
    length_a, length_b = a_vals[:, at], b_vals[:, at]
    with np.errstate(invalid="ignore"):
        matched = np.abs(length_a - length_b) <= length_tolerance * np.maximum(length_a, length_b)
    matched &= ~np.isnan(length_a - length_b)
    groups, index = group_codes(frame)
    pair_hash = stats.id_hashes(frame["pair_key"].to_arrow())
    unit_hash = stats.id_hashes(frame["unit_key"].to_arrow())
    return DiffBatch(groups, index, pair_hash, unit_hash, np.ascontiguousarray(diffs), matched, oriented.skipped)


# --- the three task kinds -----------------------------------------------------------------------------


def route_values(annotation_file: str, ordinal: int, wanted: list[str], n_buckets: int, out: str) -> list[int]:
    """The wanted factors' values of one annotation file, by bucket of response id; returns byte offsets."""
    fs, path = storage.filesystem(annotation_file)
    with storage.arrow_errors(annotation_file):  # the filter keeps the file's row order: ranks stay in it
        table = pads.dataset(path, filesystem=fs, format="parquet", schema=schema.ANNOTATIONS).to_table(
            columns=["response_id", "factor", "value"], filter=pads.field("factor").isin(pa.array(wanted, pa.string())))
    rank = np.arange(table.num_rows, dtype=np.int64) + (np.int64(ordinal) << np.int64(_ROW_BITS))
    table = table.append_column("rank", pa.array(rank))
    output = shuffle.MapOutput(VALUES, n_buckets)
    output.add(table.cast(VALUES), shuffle.bucket_of(stats.id_hashes(table.column("response_id")), n_buckets))
    return output.finish(out).tolist()


def route_edges(source: Source, n_buckets: int, out: str, ordinal: int, ids_out: str) -> tuple[list[int], list[int] | None]:
    """The two half-edges of each decided row of ``source``, by bucket of response id: byte offsets of ``out``.
    A source with pair ids also routes them (as source ``ordinal``) to ``ids_out`` for the duplicate check:
    their offsets, else None."""
    oriented = source.rows()
    frame = oriented.frame
    rows = pa.array(np.arange(frame.height, dtype=np.int64))
    output = shuffle.MapOutput(EDGES, n_buckets)
    for side, column in enumerate(("response_a_id", "response_b_id")):
        ids = frame[column].to_arrow().cast(pa.string())
        edges = pa.table([rows, pa.array(np.full(frame.height, side, np.int8)), ids], schema=EDGES)
        output.add(edges, shuffle.bucket_of(stats.id_hashes(ids), n_buckets))
    routed = None if oriented.pair_ids is None else unique_pairs.route_pair_ids(oriented.pair_ids, ordinal, n_buckets, ids_out)
    return output.finish(out).tolist(), routed


def joined_schema(wanted: Sequence[str]) -> pa.Schema:
    return pa.schema([("row", pa.int64()), ("side", pa.int8()), *[(f"v{i}", pa.float64()) for i in range(len(wanted))]])


def join_bucket(value_pieces: list[tuple[str, int, int]], edge_pieces: list[list[tuple[str, int, int]]],
                wanted: list[str], out: str) -> list[int]:
    """One bucket: each (response, factor)'s first value joined to the half-edges of every source; the
    result is written by source (bucket i of the output file = source i); returns byte offsets."""
    values = pl.from_arrow(shuffle.read_pieces(value_pieces, VALUES))
    wide = (values.sort("rank").unique(["response_id", "factor"], keep="first", maintain_order=True)
            .pivot(on="factor", index="response_id", values="value")
            if values.height else pl.DataFrame(schema={"response_id": pl.String}))
    for name in wanted:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    wide = wide.select("response_id", *[pl.col(f).cast(pl.Float64).alias(f"v{i}") for i, f in enumerate(wanted)])
    # Every source's half-edges in one join (a join per source was sources x buckets joins in all: ~10 min
    # of the reduce at 100M pairs, 1,000 shards).
    tables, owners = [EDGES.empty_table()], [np.zeros(0, np.int64)]
    for source, pieces in enumerate(edge_pieces):
        if pieces:
            tables.append(shuffle.read_pieces(pieces, EDGES))
            owners.append(np.full(tables[-1].num_rows, source, np.int64))
    edges = pl.from_arrow(pa.concat_tables(tables)).with_columns(_source=pl.Series(np.concatenate(owners)))
    joined = edges.join(wide, on="response_id", how="left")
    output = shuffle.MapOutput(joined_schema(wanted), len(edge_pieces))
    output.add(joined.select(joined_schema(wanted).names).to_arrow(), joined["_source"].to_numpy())
    return output.finish(out).tolist()


_route_values = ray.remote(route_values)
_route_edges = ray.remote(route_edges)
_join_bucket = ray.remote(join_bucket)


@dataclass(frozen=True)
class JoinedReader:
    """A source with its rows' factor values waiting in the bucket files: the reduce's shard reader."""

    source: Any  # a Source
    pieces: tuple[tuple[str, int, int], ...]  # this source's part of every bucket file
    wanted: tuple[str, ...]
    length_factor: str
    length_tolerance: float

    @property
    def name(self) -> str:
        return self.source.name

    def read(self, factors: tuple[str, ...]) -> DiffBatch:
        oriented = self.source.rows()
        n = oriented.frame.height
        values = {side: np.full((n, len(self.wanted)), np.nan) for side in range(len(SIDES))}
        joined = shuffle.read_pieces(list(self.pieces), joined_schema(self.wanted))
        if joined.num_rows:
            rows = joined.column("row").to_numpy()
            sides = joined.column("side").to_numpy()
            matrix = np.column_stack([pc.fill_null(joined.column(f"v{i}"), np.nan).to_numpy() for i in range(len(self.wanted))])
            for side in range(len(SIDES)):
                here = sides == side
                values[side][rows[here]] = matrix[here]
        return diff_batch(oriented, values[0], values[1], self.wanted, len(factors), self.length_factor, self.length_tolerance)


#: Pairs per join bucket the default bucket count aims at: a bucket task holds its pairs' half-edges and
#: their responses' values (~0.2 GB at this size).
PAIRS_PER_BUCKET = 500_000


def default_buckets(n_sources: int, n_annotation_files: int, n_pairs: int, cpus: int) -> int:
    """Enough buckets to keep each at about PAIRS_PER_BUCKET pairs and every CPU busy (two tasks each), and
    no more than there are files on the larger side. Each bucket reads one piece from every map file and
    each source one piece from every bucket, so buckets x files, not the data, set the number of reads:
    one bucket per file was ~4 million reads at 100M pairs."""
    wanted = max(2 * cpus, -(-n_pairs // PAIRS_PER_BUCKET))
    return max(1, min(wanted, max(n_sources, n_annotation_files)))


def co_partition(sources: Sequence[Source], annotation_files: Sequence[str], factors: tuple[str, ...], scratch: str, *,
                 length_factor: str, length_tolerance: float, n_buckets: int | None = None, n_pairs: int | None = None,
                 progress: bool | None = None) -> list[JoinedReader]:
    """Route ``sources`` and ``annotation_files`` into ``n_buckets`` (default: ``default_buckets`` for
    ``n_pairs`` pairs, or one per file on the larger side when that is not known) under ``scratch`` and join
    them; one reader per source, in order. Raises (unique_pairs) when a pair id appears twice across the
    sources that carry pair ids. The caller removes ``scratch`` once the readers have been read."""
    wanted = list(dict.fromkeys([*factors, length_factor]))
    if n_buckets is None:
        n_buckets = (max(1, len(sources), len(annotation_files)) if n_pairs is None else
                     default_buckets(len(sources), len(annotation_files), n_pairs, int(ray.cluster_resources().get("CPU", 1))))
    run = uuid.uuid4().hex[:8]
    value_files = [storage.join(scratch, f"values-{run}", f"map-{j:06d}.arrows") for j in range(len(annotation_files))]
    value_offsets = run_tasks(_route_values, [(f, j, wanted, n_buckets, out) for j, (f, out) in
                                              enumerate(zip(annotation_files, value_files))], desc="reduce: values", progress=progress)
    edge_files = [storage.join(scratch, f"edges-{run}", f"map-{i:06d}.arrows") for i in range(len(sources))]
    id_files = [storage.join(scratch, f"pair-ids-{run}", f"map-{i:06d}.arrows") for i in range(len(sources))]
    routed = run_tasks(_route_edges, [(s, n_buckets, edge_files[i], i, id_files[i]) for i, s in enumerate(sources)],
                       desc="reduce: pairs", progress=progress)
    with_ids = [i for i, (_, ids) in enumerate(routed) if ids is not None]
    unique_pairs.check_unique_pairs([s.name for s in sources], [id_files[i] for i in with_ids],
                                    [routed[i][1] for i in with_ids], n_buckets, progress=progress)
    value_offsets = [np.asarray(o) for o in value_offsets]
    edge_offsets = [np.asarray(edges) for edges, _ in routed]
    bucket_files = [storage.join(scratch, f"joined-{run}", f"bucket-{r:06d}.arrows") for r in range(n_buckets)]
    bucket_offsets = run_tasks(_join_bucket, (  # generated as submitted: all at once would be sources x buckets pieces
        (shuffle.pieces_of_bucket(value_files, value_offsets, r),
         [shuffle.pieces_of_bucket([edge_files[i]], [edge_offsets[i]], r) for i in range(len(sources))],
         wanted, bucket_files[r])
        for r in range(n_buckets)
    ), desc="reduce: join", progress=progress, total=n_buckets)
    bucket_offsets = [np.asarray(o) for o in bucket_offsets]
    return [JoinedReader(source, tuple(shuffle.pieces_of_bucket(bucket_files, bucket_offsets, i)), tuple(wanted),
                         length_factor, length_tolerance) for i, source in enumerate(sources)]
