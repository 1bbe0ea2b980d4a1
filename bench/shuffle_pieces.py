"""The fixed cost of one shuffle piece: Arrow's per-buffer IPC compression against one zstd frame per piece.

    python bench/shuffle_pieces.py [--rows 50,400,3200] [--repeat 2000]

A piece is one bucket's rows from one map task (stages/shuffle.py). Ingest at 100M pairs moves 1.5M of
them, ~200 pairs each, so a fixed cost per piece adds minutes. For pieces of N response-like rows (an id,
a prompt id, 10-100 words of text), this times writing and reading one piece both ways:
- ``ipc``: an IPC stream written with ``IpcWriteOptions(compression="zstd")`` (each column buffer
  compressed apart), read with ``open_stream().read_all()``: the format before 2026-12-01;
- ``frame``: ``shuffle.encode_piece`` / ``shuffle.decode_piece``, what the shuffle writes now.

Last line: key=value figures (ms per piece, bytes per piece).
"""

from __future__ import annotations

import argparse
import io
import os
import time

import numpy as np
import pyarrow as pa

from profile_dist.stages import shuffle


def rows_table(n: int, rng: np.random.Generator) -> pa.Table:
    words = np.array([f"w{i}" for i in range(4096)])
    texts = [" ".join(words[rng.integers(0, 4096, rng.integers(10, 100))]) for _ in range(n)]
    ids = pa.array([f"{x:016x}" for x in rng.integers(0, 2**62, n)], pa.large_string())
    return pa.table({"response_id": ids, "prompt_id": ids, "text": pa.array(texts, pa.large_string()),
                     "source": pa.nulls(n, pa.large_string())})


def ipc_piece(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_table(table, max_chunksize=table.num_rows)
    return sink.getvalue()


def per_call_ms(fn, repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - start) / repeat * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="50,400,3200")
    parser.add_argument("--repeat", type=int, default=2000, help="calls timed per case (fewer for big pieces)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    figures = {"loadavg": f"{os.getloadavg()[0]:.2f}"}
    for n in (int(r) for r in args.rows.split(",")):
        table = rows_table(n, rng)
        repeat = max(20, args.repeat * 400 // max(n, 400))
        old, new = ipc_piece(table), shuffle.encode_piece(table, table.schema)
        assert shuffle.decode_piece(new).equals(pa.ipc.open_stream(old).read_all())
        cases = {"ipc_write": lambda: ipc_piece(table), "frame_write": lambda: shuffle.encode_piece(table, table.schema),
                 "ipc_read": lambda: pa.ipc.open_stream(old).read_all(), "frame_read": lambda: shuffle.decode_piece(new)}
        for name, fn in cases.items():
            figures[f"rows{n}_{name}_ms"] = f"{per_call_ms(fn, repeat):.3f}"
        figures[f"rows{n}_ipc_bytes"], figures[f"rows{n}_frame_bytes"] = str(len(old)), str(len(new))
        print(f"{n} rows: " + " ".join(f"{k.split('_', 1)[1]}={v}" for k, v in figures.items() if k.startswith(f"rows{n}_")), flush=True)
    figures["loadavg_end"] = f"{os.getloadavg()[0]:.2f}"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
