"""Splits and batches: how ingest cuts input files into tasks and how adapters hand over parsed rows.

A ``Split`` is the part of one file that one ingest task parses: a byte range of whole lines, a run of
Parquet row groups, or the whole file. Splits carry the row number of their first row, so row numbers (and
the pair ids built from them) are the same however a file is cut. An adapter turns a split into
``Batch``es: its usable rows as one Arrow table (schema.RAW_PAIRS) plus the rows it could not use.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.errors import BadInputError
from profile_dist.sources.records import RawPair, Record, RowProblem, parse_json_line, read_bytes

#: Target bytes per split: big enough that task overhead is small, small enough that a task's memory is bounded.
DEFAULT_SPLIT_BYTES = 32 << 20
#: Rows per batch when an adapter parses row by row.
RECORD_BATCH_ROWS = 8192
_BLOCK = 8 << 20


@dataclass(frozen=True)
class Split:
    path: str
    first_row: int = 0  # the row number (line, element or Parquet row index) of the split's first row
    rows: int = 0  # rows in the split; an upper bound for line formats (blank lines count)
    start: int = 0  # first byte (line formats) or first row group (Parquet)
    stop: int | None = None  # end, exclusive; None: the end of the file
    context: dict[str, Any] = field(default_factory=dict)  # what the adapter learnt about the whole file


@dataclass
class Batch:
    pairs: pa.Table  # schema.RAW_PAIRS
    problems: list[RowProblem] = field(default_factory=list)  # in row order
    notes: Counter = field(default_factory=Counter)


def raw_pairs_table(records: list[RawPair]) -> pa.Table:
    columns = {
        "source_row": [r.source_row for r in records], "prompt": [r.prompt for r in records],
        "response_a": [r.response_a for r in records], "response_b": [r.response_b for r in records],
        "label": [r.label for r in records], "labeler": [r.labeler for r in records],
        "task": [r.task or None for r in records], "source": [r.source for r in records],
        "source_a": [r.source_a for r in records], "source_b": [r.source_b for r in records],
        "setting": [r.setting for r in records],
    }
    return pa.Table.from_pydict(columns, schema=schema.RAW_PAIRS)


def batches_from_records(records: Iterable[Record], rows: int = RECORD_BATCH_ROWS) -> Iterator[Batch]:
    """Row-by-row adapters' records gathered into batches (for formats that need a Python loop per row)."""
    pairs: list[RawPair] = []
    batch = Batch(schema.RAW_PAIRS.empty_table())
    for record in records:
        if isinstance(record, RowProblem):
            batch.problems.append(record)
        else:
            pairs.append(record)
            batch.notes.update(record.notes)
        if len(pairs) + len(batch.problems) >= rows:
            batch.pairs = raw_pairs_table(pairs)
            yield batch
            pairs, batch = [], Batch(schema.RAW_PAIRS.empty_table())
    if pairs or batch.problems:
        batch.pairs = raw_pairs_table(pairs)
        yield batch


# --- line formats ----------------------------------------------------------------------------------


def iter_lines(data: bytes, first_row: int = 0) -> Iterator[tuple[int, bytes]]:
    """(row, line) for each line of ``data``, split at b"\\n" only, numbered from ``first_row``."""
    for offset, raw in enumerate(io.BytesIO(data)):
        yield first_row + offset, raw


def _unreadable(path: str, exc: Exception) -> BadInputError:
    if isinstance(exc, FileNotFoundError):
        return BadInputError(path, None, None, "file not found")
    return BadInputError(path, None, None, f"cannot read file: {exc}")


def read_split_bytes(split: Split) -> bytes:
    """The bytes of a line split: a ranged read, or the whole (decompressed) file for .gz."""
    if split.path.endswith(".gz") or (split.start == 0 and split.stop is None):
        return read_bytes(split.path)
    fs, path = storage.filesystem(split.path)
    try:
        with storage.arrow_errors(split.path), fs.open_input_file(path) as handle:
            return handle.read_at(split.stop - split.start, split.start)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(split.path, exc) from None


def count_lines(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def plan_lines(path: str, target_bytes: int = DEFAULT_SPLIT_BYTES, context: dict[str, Any] | None = None) -> list[Split]:
    """Splits of whole lines of about ``target_bytes`` each, with the row number each starts at.

    One pass that only counts newlines (C speed); a .gz file cannot be cut and is one split.
    """
    context = context or {}
    if path.endswith(".gz"):
        return [Split(path, 0, count_lines(read_bytes(path)), context=context)]
    fs, local = storage.filesystem(path)
    splits: list[Split] = []
    start = first_row = rows = position = 0
    last = b""
    try:
        with storage.arrow_errors(path), fs.open_input_stream(local) as stream:
            while block := stream.read(_BLOCK):
                scanned = 0  # newlines before this index of the block are counted in ``rows``
                while (reach := start + target_bytes - 1 - position) < len(block):
                    cut = block.find(b"\n", max(reach, scanned))  # the split ends with the line that reaches the target
                    if cut < 0:
                        break
                    rows += block.count(b"\n", scanned, cut + 1)
                    splits.append(Split(path, first_row, rows, start, position + cut + 1, context))
                    first_row, rows, start, scanned = first_row + rows, 0, position + cut + 1, cut + 1
                rows += block.count(b"\n", scanned)
                last = block[-1:]
                position += len(block)
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
    if position > start:
        rows += 0 if last == b"\n" else 1
        splits.append(Split(path, first_row, rows, start, position, context))
    return splits or [Split(path, 0, 0, 0, 0, context)]


def first_json_object(path: str) -> dict[str, Any] | None:
    """The first line of a JSON-lines file that is a JSON object (to learn the file's layout), or None."""
    if path.endswith(".gz"):
        for row, raw in iter_lines(read_bytes(path)):
            obj = parse_json_line(row, raw)
            if isinstance(obj, dict):
                return obj
        return None
    fs, local = storage.filesystem(path)
    pending = b""
    try:
        with storage.arrow_errors(path), fs.open_input_stream(local) as stream:
            while True:
                block = stream.read(1 << 20)
                lines = (pending + block).split(b"\n")
                pending = lines.pop() if block else b""
                for raw in lines:
                    obj = parse_json_line(0, raw)
                    if isinstance(obj, dict):
                        return obj
                if not block:
                    return None
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable(path, exc) from None
