"""Hash partitioning through files: map tasks write their rows by bucket, one task per bucket reads them back.

Bucket b of P holds the ids whose 64-bit hash (``stats.id_hashes``) h satisfies floor(h * P / 2^64) = b: a
contiguous range of hashes, so buckets of P and 2P nest (bucket b splits into 2b and 2b+1) and a row's
bucket depends only on its id and P, never on which task or file it came from.

A map task adds its rows batch by batch (:class:`MapOutput`); each bucket's rows become one Arrow IPC stream
(lz4-compressed) held in memory in compressed form, and at the end the streams are written back to back as
one file, in bucket order, and the task returns the P + 1 byte offsets. From those offsets alone the driver
tells each bucket task which byte range of which file to read: a bucket task makes one ranged read per map
file and parses no footer or index (a Parquet file with a row group per bucket would make every bucket task
read every map file's footer, which grows with P). The files live beside the output (local disk or the
object store), so map and bucket tasks may run on different nodes.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.ipc

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


class MapOutput:
    """One map task's rows of one table, by bucket: memory is one batch plus the compressed streams."""

    def __init__(self, table_schema: pa.Schema, n_buckets: int):
        self.schema = table_schema
        self.n_buckets = n_buckets
        self.rows = np.zeros(n_buckets, dtype=np.int64)
        self._sinks: dict[int, tuple[io.BytesIO, pa.ipc.RecordBatchStreamWriter]] = {}

    def add(self, table: pa.Table, buckets: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        order = np.argsort(buckets, kind="stable")
        counts = np.bincount(buckets, minlength=self.n_buckets)
        ordered = table.cast(self.schema).take(pa.array(order))
        start = 0
        for bucket in np.flatnonzero(counts):
            n = int(counts[bucket])
            self._writer(int(bucket)).write_table(ordered.slice(start, n))
            start += n
        self.rows += counts

    def _writer(self, bucket: int) -> pa.ipc.RecordBatchStreamWriter:
        if bucket not in self._sinks:
            sink = io.BytesIO()
            options = pa.ipc.IpcWriteOptions(compression="lz4")
            self._sinks[bucket] = (sink, pa.ipc.new_stream(sink, self.schema, options=options))
        return self._sinks[bucket][1]

    def finish(self, uri: str) -> np.ndarray:
        """Write the streams to ``uri`` (nothing when empty); bucket b is bytes offsets[b]:offsets[b + 1]."""
        sizes = np.zeros(self.n_buckets, dtype=np.int64)
        parts = []
        for bucket in sorted(self._sinks):
            sink, writer = self._sinks[bucket]
            writer.close()
            parts.append(sink.getvalue())
            sizes[bucket] = len(parts[-1])
        self._sinks.clear()
        offsets = np.zeros(self.n_buckets + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        if parts:
            storage.write_bytes_atomic(b"".join(parts), uri)
        return offsets


def pieces_of_bucket(files: list[str], offsets: list[np.ndarray], bucket: int) -> list[tuple[str, int, int]]:
    """(file, start, stop) of every map file holding rows of ``bucket``, from the map tasks' offsets."""
    return [(uri, int(o[bucket]), int(o[bucket + 1])) for uri, o in zip(files, offsets) if o[bucket + 1] > o[bucket]]


def read_pieces(pieces: list[tuple[str, int, int]], table_schema: pa.Schema) -> pa.Table:
    """The rows of one bucket from the map files (one ranged read each), concatenated."""
    tables = [table_schema.empty_table()]
    for uri, start, stop in pieces:
        fs, path = storage.filesystem(uri)
        with storage.arrow_errors(uri), fs.open_input_file(path) as handle:
            data = handle.read_at(stop - start, start)
        tables.append(pa.ipc.open_stream(data).read_all().cast(table_schema))
    return pa.concat_tables(tables)
