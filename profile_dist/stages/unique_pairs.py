"""Refuse pairs that would be counted twice (a pairs dir given twice, a shard copied, two ingests of one
file), without the driver ever holding the corpus's pair ids.

The task that reads a pairs shard for the factor join (factor_join.route_edges) also hashes its pair ids
and routes (hash, shard, row) by hash into R buckets through the file shuffle (stages/shuffle.py):
``route_pair_ids``. Then a task per bucket finds the hashes seen more than once there
(``check_unique_pairs``). Buckets are contiguous hash ranges, so the smallest duplicated hash of all is the
smallest of the buckets' own, and the error names the same pair however many buckets there are.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import ray

from profile_dist import schema, storage
from profile_dist.analysis import stats
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.stages import shuffle
from profile_dist.stages.runtime import run_tasks

HASHES = pa.schema([("hash", pa.uint64()), ("shard", pa.int32()), ("row", pa.int64())])


def route_pair_ids(pair_ids: pa.Array | pa.ChunkedArray, ordinal: int, n_buckets: int, out: str) -> list[int]:
    """Map side, inside the task that has the shard's ``pair_ids`` (stored order): byte offsets of ``out``."""
    hashes = stats.id_hashes(pair_ids)
    table = pa.table([pa.array(hashes, pa.uint64()), pa.array(np.full(len(hashes), ordinal, np.int32)),
                      pa.array(np.arange(len(hashes), dtype=np.int64))], schema=HASHES)
    output = shuffle.MapOutput(HASHES, n_buckets)
    output.add(table, shuffle.bucket_of(hashes, n_buckets))
    return output.finish(out).tolist()


def bucket_duplicates(pieces: list[tuple[str, int, int]]) -> tuple[int, list[tuple[int, int]]]:
    """(rows beyond the first of every repeated hash, the (shard, row) places of the smallest repeated hash)."""
    table = shuffle.read_pieces(pieces, HASHES)
    hashes = table.column("hash").to_numpy()
    values, counts = np.unique(hashes, return_counts=True)
    repeated = values[counts > 1]
    if not len(repeated):
        return 0, []
    at = np.flatnonzero(hashes == repeated[0])
    places = sorted(zip(table.column("shard").to_numpy()[at].tolist(), table.column("row").to_numpy()[at].tolist()))
    return int((counts - 1).sum()), [(int(repeated[0]), 0), *places]


_duplicates = ray.remote(bucket_duplicates)


def check_distinct_shards(pairs_shards: list[str]) -> None:
    if len(set(pairs_shards)) != len(pairs_shards):
        raise ConfigError("the same pairs shard is given twice (is a --pairs directory repeated?); its pairs would be counted twice")


def check_unique_pairs(pairs_shards: list[str], files: list[str], offsets: list[list[int]], n_buckets: int, *,
                       progress: bool | None = None) -> None:
    """Raise a BadInputError naming a shard, row and pair id when any pair id appears twice. ``files`` and
    ``offsets``: what ``route_pair_ids`` wrote in ``n_buckets``; its ordinals index ``pairs_shards``."""
    offsets = [np.asarray(o) for o in offsets]
    found = run_tasks(_duplicates, [(shuffle.pieces_of_bucket(files, offsets, r),) for r in range(n_buckets)],
                      desc="reduce: duplicates", progress=progress)
    extra = sum(n for n, _ in found)
    if not extra:
        return
    places = min((p for _, p in found if p), key=lambda p: p[0][0])[1:]  # the smallest repeated hash's places
    (first_shard, first_row), (shard, row) = places[0], places[-1]
    pair_id = storage.read_parquet(pairs_shards[shard], schema.PAIRS).column("pair_id")[row].as_py()
    raise BadInputError(pairs_shards[shard], row, "pair_id", f"duplicate pair id {pair_id} (also in {pairs_shards[first_shard]}, "
                        f"row {first_row}); {extra} pair(s) would be counted twice")
