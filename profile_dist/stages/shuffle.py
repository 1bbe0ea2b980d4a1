"""Hash partitioning through files: map tasks write their rows by bucket, one task per bucket reads them back.

Bucket b of P holds the ids whose 64-bit hash (``stats.id_hashes``) h satisfies floor(h * P / 2^64) = b: a
contiguous range of hashes, so buckets of P and 2P nest (bucket b splits into 2b and 2b+1) and a row's
bucket depends only on its id and P, never on which task or file it came from.

A map task writes one Parquet file per table, its rows ordered by bucket with one row group per non-empty
bucket, and returns its per-bucket row counts. From those counts alone the driver tells each bucket task
which row group of which file to read, so a bucket task reads only its own rows, and no process reads
more than one map task's or one bucket's rows at a time. The files live beside the output (local disk or
the object store), so map and bucket tasks may run on different nodes.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from profile_dist import storage

MAX_BUCKETS = (1 << 31) - 1
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)


def bucket_of(hashes: np.ndarray, n_buckets: int) -> np.ndarray:
    """floor(h * P / 2^64) for each uint64 hash h, exactly, in uint64 arithmetic (P < 2^31)."""
    if not 1 <= n_buckets <= MAX_BUCKETS:
        raise ValueError(f"number of buckets must be in [1, {MAX_BUCKETS}], got {n_buckets}")
    h = np.asarray(hashes, dtype=np.uint64)
    p = np.uint64(n_buckets)
    # h*P = hi*P*2^32 + lo*P; both products stay below 2^63, and so does their sum after the shift.
    return (((h >> _SHIFT) * p + (((h & _LOW32) * p) >> _SHIFT)) >> _SHIFT).astype(np.int64)


def write_partitioned(table: pa.Table, buckets: np.ndarray, n_buckets: int, uri: str) -> np.ndarray:
    """Write ``table`` to ``uri`` ordered by bucket, one row group per non-empty bucket; the rows per bucket.

    Nothing is written for an empty table (every count is 0, so no bucket task asks for the file).
    """
    counts = np.bincount(buckets, minlength=n_buckets).astype(np.int64)
    if table.num_rows == 0:
        return counts
    ordered = table.take(pa.array(np.argsort(buckets, kind="stable")))
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, table.schema, compression="lz4") as writer:
        start = 0
        for count in counts[counts > 0]:
            writer.write_table(ordered.slice(start, int(count)), row_group_size=int(count))
            start += int(count)
    storage.write_bytes_atomic(sink.getvalue(), uri)
    return counts


def pieces_of_bucket(files: list[str], counts: list[np.ndarray], bucket: int) -> list[tuple[str, int]]:
    """(file, row group) of every map file holding rows of ``bucket``, from the map tasks' counts."""
    found = []
    for uri, per_bucket in zip(files, counts):
        if per_bucket[bucket]:
            found.append((uri, int(np.count_nonzero(per_bucket[:bucket]))))
    return found


def read_pieces(pieces: list[tuple[str, int]], table_schema: pa.Schema) -> pa.Table:
    """The rows of one bucket from the map files (one row group each), concatenated."""
    tables = [table_schema.empty_table()]
    for uri, group in pieces:
        fs, path = storage.filesystem(uri)
        with storage.arrow_errors(uri), fs.open_input_file(path) as handle:
            tables.append(pq.ParquetFile(handle).read_row_group(group, use_threads=False).cast(table_schema))
    return pa.concat_tables(tables)
