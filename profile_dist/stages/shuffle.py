"""Hash partitioning through files: map tasks write their rows by bucket, one task per bucket reads them back.

Bucket b of P holds the ids whose 64-bit hash (``stats.id_hashes``) h satisfies floor(h * P / 2^64) = b: a
contiguous range of hashes, so buckets of P and 2P nest (bucket b splits into 2b and 2b+1) and a row's
bucket depends only on its id and P, never on which task or file it came from.

A map task adds its rows batch by batch (:class:`MapOutput`), held uncompressed until it finishes; then each
bucket's rows become one piece: an Arrow IPC stream of one record batch, compressed whole as one zstd frame
behind its 8-byte uncompressed size. The pieces are written back to back as one file, in bucket order, and
the task returns the P + 1 byte offsets. Why so:
- one frame per piece: Arrow's own IPC compression compresses every column buffer apart, at a fixed ~0.1 ms
  per piece each way on top of the bytes (bench/shuffle_pieces.py); ingest moves 1.5M pieces at 100M
  pairs, and that cost made its time per pair grow with the corpus;
- one piece per bucket, written at the end: writing each added batch's slice of every bucket as it came
  made ~50-row record batches at P = 1,000 (111 MB per 200k-pair map file against 36 MB written whole,
  which filled the disk at 100M pairs).

From those offsets alone the driver tells each bucket task which byte range of which file to read: a
bucket task makes one ranged read per map file and parses no footer or index (a Parquet file with a row
group per bucket would make every bucket task read every map file's footer, which grows with P). The
files live beside the output (local disk or the object store), so map and bucket tasks may run on
different nodes.
"""

from __future__ import annotations

import struct

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from profile_dist import storage

MAX_BUCKETS = (1 << 31) - 1
_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT = np.uint64(32)
_CODEC = pa.Codec("zstd")
_SIZE = struct.Struct("<Q")


def bucket_of(hashes: np.ndarray, n_buckets: int) -> np.ndarray:
    """floor(h * P / 2^64) for each uint64 hash h, exactly, in uint64 arithmetic (P < 2^31)."""
    if not 1 <= n_buckets <= MAX_BUCKETS:
        raise ValueError(f"number of buckets must be in [1, {MAX_BUCKETS}], got {n_buckets}")
    h = np.asarray(hashes, dtype=np.uint64)
    p = np.uint64(n_buckets)
    # h*P = hi*P*2^32 + lo*P; both products stay below 2^63, and so does their sum after the shift.
    return (((h >> _SHIFT) * p + (((h & _LOW32) * p) >> _SHIFT)) >> _SHIFT).astype(np.int64)


class MapOutput:
    """One map task's rows of one table, by bucket: memory is the task's rows of this table, uncompressed."""

    def __init__(self, table_schema: pa.Schema, n_buckets: int):
        self.schema = table_schema
        self.n_buckets = n_buckets
        self.rows = np.zeros(n_buckets, dtype=np.int64)
        self._tables: list[pa.Table] = []
        self._buckets: list[np.ndarray] = []

    def add(self, table: pa.Table, buckets: np.ndarray) -> None:
        if table.num_rows == 0:
            return
        self._tables.append(table.cast(self.schema))
        self._buckets.append(np.asarray(buckets, dtype=np.int64))
        self.rows += np.bincount(self._buckets[-1], minlength=self.n_buckets)

    def finish(self, uri: str) -> np.ndarray:
        """Write the streams to ``uri`` (nothing when empty); bucket b is bytes offsets[b]:offsets[b + 1]."""
        sizes = np.zeros(self.n_buckets, dtype=np.int64)
        parts = []
        if self._tables:
            buckets = np.concatenate(self._buckets)
            order = np.argsort(buckets, kind="stable")
            ordered = pa.concat_tables(self._tables).combine_chunks().take(pa.array(order))
            self._tables.clear()
            self._buckets.clear()
            start = 0
            for bucket in np.flatnonzero(self.rows):
                n = int(self.rows[bucket])
                parts.append(encode_piece(ordered.slice(start, n), self.schema))
                sizes[bucket] = len(parts[-1])
                start += n
            del ordered
        offsets = np.zeros(self.n_buckets + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        if parts:
            storage.write_bytes_atomic(b"".join(parts), uri)
        return offsets


def encode_piece(table: pa.Table, table_schema: pa.Schema) -> bytes:
    """One piece: the 8-byte size of the IPC stream holding ``table`` as one record batch, then that stream
    as one zstd frame."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table_schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    stream = sink.getvalue()  # a pa.Buffer, not copied into bytes
    return b"".join((_SIZE.pack(stream.size), _CODEC.compress(stream)))  # one copy of the compressed frame


def decode_piece(data: bytes | pa.Buffer) -> pa.Table:
    """The table of one piece written by :func:`encode_piece`."""
    (size,) = _SIZE.unpack_from(memoryview(data)[:_SIZE.size])
    return pa.ipc.open_stream(_CODEC.decompress(memoryview(data)[_SIZE.size:], decompressed_size=size)).read_all()


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
        tables.append(decode_piece(data).cast(table_schema))
    return pa.concat_tables(tables)
