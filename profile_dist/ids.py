"""Deterministic content ids: the same input always yields the same ids, on any machine."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_SEP = "\x1f"  # unit separator: cannot be confused with text that merely contains the parts


def content_id(*parts: str | int) -> str:
    """A 128-bit hex id of the parts (sha256, truncated; collisions are not a practical concern)."""
    digest = hashlib.sha256(_SEP.join(str(p) for p in parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def prompt_id(text: str, source: str | None) -> str:
    return content_id("prompt", text, source if source is not None else "")


def response_id(prompt_id_: str, text: str, source: str | None = None) -> str:
    """A response's own source (see schema.RESPONSES) is part of its identity; without one the id is what
    it always was."""
    if source is None:
        return content_id("response", prompt_id_, text)
    return content_id("response", prompt_id_, text, source)


def pair_id(
    dataset: str, labeler: str, setting: str, task: str, source_file_name: str, source_row: int,
    response_a_id: str, response_b_id: str,
) -> str:
    return content_id("pair", dataset, labeler, setting, task, source_file_name, source_row, response_a_id, response_b_id)


# --- the same ids for a whole batch at once (ingest) ---------------------------------------------------
# sha256 runs once per DISTINCT row: prompts recur in every pair they have and responses across labelers
# and pairs. Rows are told apart by their columns' dictionary codes (one hash pass over each column, in
# Arrow), so the joined "part\x1fpart..." strings are built only for distinct rows, never for every row: on
# bench/gen_corpus.py's batches this is about a third less CPU than joining every row and finding the
# distinct joined values (unique + index_in, two hash passes over a full copy of the texts).

#: Past this many possible code combinations the row key would not fit an int64: distinct joined values instead.
_MAX_KEY = 1 << 62


def content_ids(*parts: pa.Array | pa.ChunkedArray | str) -> pa.Array:
    """``content_id`` of each row of the given columns (strings, ints or a constant str), as a string array.

    Byte-identical to ``content_id(*row)``: integers are joined in decimal, null is not allowed.
    """
    columns: list[pa.Array | str] = []
    length = None
    for part in parts:
        if isinstance(part, str):
            columns.append(part)
            continue
        if isinstance(part, pa.ChunkedArray):
            part = part.combine_chunks() if part.num_chunks else pa.array([], part.type)
        if part.null_count:
            raise ValueError(f"content_ids: {part.null_count} null value(s)")
        columns.append(part)
        length = len(part)
    if length is None:
        raise ValueError("content_ids needs at least one column")
    key = np.zeros(length, dtype=np.int64)
    combinations = 1
    for column in columns:
        if isinstance(column, str):
            continue
        encoded = pc.dictionary_encode(column)
        size = max(1, len(encoded.dictionary))
        combinations *= size
        if combinations >= _MAX_KEY:
            return _content_ids_by_joined_value(columns)
        key = key * size + encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    distinct = pa.array(first)
    hashed = _hash_joined([c if isinstance(c, str) else c.take(distinct) for c in columns])
    return hashed.take(pa.array(inverse.reshape(-1)))


def _joined(columns: list[pa.Array | str]) -> pa.Array:
    """Each row's parts joined by the separator (a str part is the same in every row)."""
    parts = [pa.scalar(c, pa.large_string()) if isinstance(c, str) else c.cast(pa.large_string()) for c in columns]
    return pc.binary_join_element_wise(*parts, pa.scalar(_SEP, pa.large_string()))


def _sha(values: pa.Array) -> pa.Array:
    sha256 = hashlib.sha256
    return pa.array([sha256(value).hexdigest()[:32] for value in values.cast(pa.large_binary()).to_pylist()], pa.string())


def _hash_joined(columns: list[pa.Array | str]) -> pa.Array:
    """sha256 of every row's joined parts."""
    return _sha(_joined(columns))


def _content_ids_by_joined_value(columns: list[pa.Array | str]) -> pa.Array:
    joined = _joined(columns)
    distinct = pc.unique(joined)
    return _sha(distinct).take(pc.index_in(joined, distinct))


def prompt_ids(text: pa.Array, source: pa.Array) -> pa.Array:
    """``prompt_id`` per row; a null source counts as no source."""
    return content_ids("prompt", text, pc.fill_null(source.cast(pa.large_string()), ""))


def response_ids(prompt_ids_: pa.Array, text: pa.Array, source: pa.Array | None = None) -> pa.Array:
    """``response_id`` per row; a row's own source (null: none) is part of its id only where it has one."""
    plain = content_ids("response", prompt_ids_, text)
    if source is None or source.null_count == len(source):
        return plain
    if isinstance(source, pa.ChunkedArray):
        source = source.combine_chunks()
    own = pc.indices_nonzero(pc.is_valid(source))
    with_source = content_ids("response", pc.take(prompt_ids_, own), pc.take(text, own), pc.take(source, own))
    out = plain.to_pylist()
    for i, value in zip(own.to_pylist(), with_source.to_pylist()):
        out[i] = value
    return pa.array(out, pa.string())


def pair_ids(
    dataset: str, labeler: pa.Array, setting: pa.Array, task: pa.Array, source_file_name: str,
    source_row: pa.Array, response_a_ids: pa.Array, response_b_ids: pa.Array,
) -> pa.Array:
    return content_ids("pair", dataset, labeler, setting, task, source_file_name, source_row, response_a_ids, response_b_ids)
