"""Generic pairs from CSV, JSON lines or Parquet.

Two layouts are recognised from the columns present:
- ``prompt, response_a, response_b, label`` (label a, b or tie), optional ``labeler``, ``task``,
  ``setting`` and ``source``;
- Feedback Forensics' ``text_a, text_b, preferred_text`` (``text_a``/``text_b``/``tie``), optional
  ``prompt`` and the same optional columns.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from profile_dist import schema, storage
from profile_dist.errors import BadInputError, ProfileDistError
from profile_dist.schema import LABELS, SETTINGS
from profile_dist.sources.base import (RawPair, Record, RowProblem, Source, iter_json_lines, parse_json_line, read_bytes,
                                       register_source)
from profile_dist.sources.batches import (Batch, Split, count_lines, first_json_object, iter_lines, plan_lines,
                                          raw_pairs_table, read_split_bytes)

CANONICAL = {"prompt": "prompt", "a": "response_a", "b": "response_b", "label": "label"}
FEEDBACK_FORENSICS = {"prompt": "prompt", "a": "text_a", "b": "text_b", "label": "preferred_text"}
LABEL_ALIASES = {
    "a": "a", "b": "b", "tie": "tie",
    "response_a": "a", "response_b": "b", "text_a": "a", "text_b": "b",
}
OPTIONAL = ("labeler", "task", "setting", "source")
LAYOUTS = {"canonical": CANONICAL, "feedback_forensics": FEEDBACK_FORENSICS}


def _layout(columns: set[str], path: str) -> dict[str, str]:
    if {"text_a", "text_b", "preferred_text"} <= columns:
        return FEEDBACK_FORENSICS
    needed = [CANONICAL[k] for k in ("prompt", "a", "b", "label")]
    missing = [c for c in needed if c not in columns]
    if missing:
        raise BadInputError(
            path, None, missing[0],
            f"missing column(s) {', '.join(missing)}; expected prompt, response_a, response_b, label "
            "(or Feedback Forensics' text_a, text_b, preferred_text)",
        )
    return CANONICAL


def _container(path: str) -> str:
    lower = path.lower().removesuffix(".gz")
    for suffix, kind in ((".parquet", "parquet"), (".csv", "csv"), (".jsonl", "jsonl"), (".json", "jsonl"), (".ndjson", "jsonl")):
        if lower.endswith(suffix):
            return kind
    raise BadInputError(path, None, None, "unknown file type; expected .csv, .jsonl, .json or .parquet (optionally .gz)")


def _rows(path: str) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    lower = path.lower().removesuffix(".gz")
    if lower.endswith(".parquet"):
        try:
            table = pq.read_table(io.BytesIO(read_bytes(path)))
        except BadInputError:
            raise
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise BadInputError(path, None, None, f"not a readable Parquet file: {exc}") from None
        yield from enumerate(table.to_pylist())
    elif lower.endswith(".csv"):
        try:
            text = read_bytes(path).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadInputError(path, None, None, f"not valid UTF-8 at byte {exc.start}") from None
        yield from enumerate(csv.DictReader(io.StringIO(text, newline="")))
    elif lower.endswith((".jsonl", ".json", ".ndjson")):
        yield from iter_json_lines(path)
    else:
        raise BadInputError(path, None, None, "unknown file type; expected .csv, .jsonl, .json or .parquet (optionally .gz)")


@register_source
class Pairs(Source):
    name = "pairs"
    description = "generic CSV/JSONL/Parquet: prompt, response_a, response_b, label [labeler, task, setting, source]; or text_a, text_b, preferred_text"
    default_task = "helpful"

    def records(self, path: str) -> Iterator[Record]:
        layout: dict[str, str] | None = None
        for row, obj in _rows(path):
            if isinstance(obj, RowProblem):
                yield obj
                continue
            if layout is None:
                layout = _layout(set(obj), path)
            yield self._record(row, obj, layout)

    # --- splits and column-wise parsing (ingest); ``records`` above stays the reference -----------------

    def plan(self, path: str, target_bytes: int) -> list[Split]:
        kind = _container(path)
        if kind == "parquet":
            return _plan_parquet(path, target_bytes)
        if kind == "jsonl":
            first = first_json_object(path)
            layout = None if first is None else _layout(set(first), path)
            name = next((n for n, known in LAYOUTS.items() if known is layout), None)
            return plan_lines(path, target_bytes, {"layout": name})
        return super().plan(path, target_bytes)  # CSV: quoted newlines make byte ranges unsafe; one split

    def batches(self, split: Split) -> Iterator[Batch]:
        kind = _container(split.path)
        if kind == "parquet":
            yield from self._parquet_batches(split)
        elif kind == "jsonl":
            yield from self._jsonl_batches(split)
        else:
            yield from super().batches(split)

    def _parquet_batches(self, split: Split) -> Iterator[Batch]:
        parquet = _open_parquet(split.path)
        names = set(parquet.schema_arrow.names)
        if parquet.metadata.num_rows == 0:
            return
        layout = _layout(names, split.path)
        wanted = [c for c in (*layout.values(), *OPTIONAL) if c in names]
        row = split.first_row
        try:
            for group in range(split.start, split.stop):
                meta = parquet.metadata.row_group(group)
                # Batches of about BATCH_BYTES uncompressed, however large the file's row groups are.
                rows = max(1, min(meta.num_rows, BATCH_BYTES * meta.num_rows // max(1, meta.total_byte_size)))
                for record_batch in parquet.iter_batches(batch_size=rows, row_groups=[group], columns=wanted, use_threads=False):
                    table = pa.Table.from_batches([record_batch])
                    yield self._columnar(table, row, layout, lambda i, t=table: {c: t.column(c)[i].as_py() for c in t.column_names})
                    row += table.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise BadInputError(split.path, None, None, f"not a readable Parquet file: {exc}") from None

    def _jsonl_batches(self, split: Split) -> Iterator[Batch]:
        layout = LAYOUTS[split.context["layout"]] if split.context.get("layout") else None
        data = read_split_bytes(split)
        row, position = split.first_row, 0
        while position < len(data):
            end = len(data)
            if end - position > JSONL_CHUNK_BYTES:  # cut after the last whole line that fits (or the first line)
                cut = data.rfind(b"\n", position, position + JSONL_CHUNK_BYTES)
                cut = cut if cut >= 0 else data.find(b"\n", position + JSONL_CHUNK_BYTES)
                end = cut + 1 if cut >= 0 else end
            chunk = data[position:end]
            yield self._jsonl_chunk(chunk, row, layout, split.path)
            row += count_lines(chunk)
            position = end

    def _jsonl_chunk(self, chunk: bytes, first_row: int, layout: dict[str, str] | None, path: str) -> Batch:
        """Arrow's JSON reader for a clean chunk; the line-by-line reference where it cannot be used."""
        table = None
        if layout is not None:
            try:
                chunk.decode("utf-8")  # Arrow would not say which line is not UTF-8
                table = pajson.read_json(io.BytesIO(chunk), read_options=pajson.ReadOptions(use_threads=False, block_size=len(chunk) + 1),
                                         parse_options=pajson.ParseOptions(explicit_schema=_json_schema(layout), unexpected_field_behavior="ignore"))
            except (UnicodeDecodeError, pa.ArrowException):
                table = None
        lines = None
        if table is not None:
            lines = [raw for _, raw in iter_lines(chunk)]
            if table.num_rows != len(lines):  # blank lines: Arrow skips them, row numbers would shift
                table = None
            elif b"\\u" not in chunk:  # no escaped key: an all-null column whose key appears nowhere is missing
                table = table.select([c for c in table.column_names                    # (FF's optional prompt)
                                      if table.column(c).null_count < table.num_rows or json.dumps(c).encode() in chunk])
        if table is None:
            return self._row_by_row(chunk, first_row, layout, path)
        return self._columnar(table, first_row, layout, lambda i: parse_json_line(first_row + i, lines[i]))

    def _row_by_row(self, chunk: bytes, first_row: int, layout: dict[str, str] | None, path: str) -> Batch:
        pairs, batch = [], Batch(schema.RAW_PAIRS.empty_table())
        for row, raw in iter_lines(chunk, first_row):
            obj = parse_json_line(row, raw)
            if obj is None:
                continue
            record = obj if isinstance(obj, RowProblem) else self._record(row, obj, layout or _layout(set(obj), path))
            if isinstance(record, RowProblem):
                batch.problems.append(record)
            else:
                pairs.append(record)
        batch.pairs = raw_pairs_table(pairs)
        return batch

    def _columnar(self, table: pa.Table, first_row: int, layout: dict[str, str],
                  row_object: Callable[[int], dict[str, Any] | RowProblem | None]) -> Batch:
        """Rows whose every field is clean, column-wise; any other row through ``_record`` (the reference)."""
        n = table.num_rows
        ok = np.ones(n, dtype=bool)
        texts = {}
        for key in ("prompt", "a", "b"):
            value, good = _text_column(table, layout[key], n, missing_is_empty=key == "prompt" and layout is FEEDBACK_FORENSICS)
            texts[key] = value
            ok &= good
        label, good = _label_column(table, layout["label"], n)
        ok &= good
        extra = {}
        for name in OPTIONAL:
            extra[name], good = _optional_column(table, name, n)
            ok &= good
        setting = pc.fill_null(extra["setting"], "human")
        ok &= pc.fill_null(pc.is_in(setting, value_set=pa.array(SETTINGS)), False).to_numpy(zero_copy_only=False)
        rows = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
        clean = pa.table({
            "source_row": rows, "prompt": texts["prompt"], "response_a": texts["a"], "response_b": texts["b"], "label": label,
            "labeler": pc.fill_null(extra["labeler"], self.default_labeler), "task": extra["task"], "source": extra["source"],
            "source_a": pa.nulls(n, pa.large_string()), "source_b": pa.nulls(n, pa.large_string()), "setting": setting,
        })
        batch = Batch(schema.conform(clean.filter(pa.array(ok)), schema.RAW_PAIRS, where="pairs"))
        if ok.all():
            return batch
        slow = []
        for i in np.flatnonzero(~ok):
            obj = row_object(int(i))
            record = obj if isinstance(obj, RowProblem) else self._record(first_row + int(i), obj, layout)
            if isinstance(record, RowProblem):
                batch.problems.append(record)
            else:
                slow.append(record)
        if slow:
            batch.pairs = pa.concat_tables([batch.pairs, raw_pairs_table(slow)])
        return batch

    def _record(self, row: int, obj: dict[str, Any], layout: dict[str, str]) -> Record:
        texts = {}
        for key in ("prompt", "a", "b"):
            column = layout[key]
            value = obj.get(column, "" if key == "prompt" and layout is FEEDBACK_FORENSICS else None)
            if not isinstance(value, str):
                got = "missing" if column not in obj else ("null" if value is None else type(value).__name__)
                return RowProblem(row, column, f"expected a string, got {got}")
            texts[key] = value
        raw_label = obj.get(layout["label"])
        label = LABEL_ALIASES.get(str(raw_label).strip().lower()) if raw_label is not None else None
        if label is None:
            allowed = "text_a, text_b, tie" if layout is FEEDBACK_FORENSICS else ", ".join(LABELS)
            return RowProblem(row, layout["label"], f"unknown label {raw_label!r}; expected one of {allowed}")
        extra = {}
        for name in OPTIONAL:
            value = obj.get(name)
            if value in (None, ""):
                continue
            if not isinstance(value, str):
                return RowProblem(row, name, f"expected a string, got {type(value).__name__}")
            extra[name] = value
        setting = extra.get("setting", "human")
        if setting not in SETTINGS:
            return RowProblem(row, "setting", f"unknown setting {setting!r}; expected one of {', '.join(SETTINGS)}")
        return RawPair(
            row, texts["prompt"], texts["a"], texts["b"], label,
            labeler=extra.get("labeler", self.default_labeler), task=extra.get("task"),
            source=extra.get("source"), setting=setting,
        )


#: Uncompressed bytes a task parses at a time (its memory is a few times this).
BATCH_BYTES = 8 << 20
JSONL_CHUNK_BYTES = BATCH_BYTES
_ALIASES = pa.array(list(LABEL_ALIASES), pa.large_string())
_ALIAS_LABELS = pa.array(list(LABEL_ALIASES.values()), pa.string())


def _json_schema(layout: dict[str, str]) -> pa.Schema:
    return pa.schema([(name, pa.large_string()) for name in dict.fromkeys([*layout.values(), *OPTIONAL])])


def _open_parquet(path: str) -> pq.ParquetFile:
    try:
        if path.endswith(".gz"):
            return pq.ParquetFile(io.BytesIO(read_bytes(path)))
        fs, local = storage.filesystem(path)
        with storage.arrow_errors(path):
            return pq.ParquetFile(fs.open_input_file(local))
    except ProfileDistError:
        raise
    except FileNotFoundError:
        raise BadInputError(path, None, None, "file not found") from None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise BadInputError(path, None, None, f"not a readable Parquet file: {exc}") from None


def _plan_parquet(path: str, target_bytes: int) -> list[Split]:
    """Runs of whole row groups of about ``target_bytes`` (uncompressed) each."""
    metadata = _open_parquet(path).metadata
    if metadata.num_rows and metadata.num_row_groups:
        _layout(set(metadata.schema.to_arrow_schema().names), path)  # a missing column fails the file at once
    groups = metadata.num_row_groups
    if path.endswith(".gz") or groups == 0:  # a compressed file is read whole anyway: one split
        return [Split(path, 0, metadata.num_rows, 0, groups)]
    splits: list[Split] = []
    first_group = first_row = rows = size = 0
    for group in range(groups):
        if size >= target_bytes:
            splits.append(Split(path, first_row, rows, first_group, group))
            first_group, first_row, rows, size = group, first_row + rows, 0, 0
        rows += metadata.row_group(group).num_rows
        size += metadata.row_group(group).total_byte_size
    splits.append(Split(path, first_row, rows, first_group, groups))
    return splits


def _is_text(array: pa.Array) -> bool:
    kind = array.type.value_type if pa.types.is_dictionary(array.type) else array.type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    column = table.column(name)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _text_column(table: pa.Table, name: str, n: int, *, missing_is_empty: bool) -> tuple[pa.Array, np.ndarray]:
    """The column as text and which rows hold a string (null, missing or another type: the reference decides)."""
    column = _column(table, name)
    if column is None or not _is_text(column):
        empty = pa.array([""] * n, pa.large_string())
        return empty, np.full(n, column is None and missing_is_empty)
    column = column.cast(pa.large_string())
    return pc.fill_null(column, ""), column.is_valid().to_numpy(zero_copy_only=False)


def _label_column(table: pa.Table, name: str, n: int) -> tuple[pa.Array, np.ndarray]:
    """a/b/tie for string labels that are an alias once ASCII whitespace is trimmed and ASCII letters lowered.

    Python's ``str.strip().lower()`` agrees on every such value; anything else (other whitespace, other
    letters, other types) goes to the reference, which may still accept it.
    """
    column = _column(table, name)
    if column is None or not _is_text(column):
        return pa.array([""] * n, pa.string()), np.zeros(n, dtype=bool)
    normal = pc.ascii_lower(pc.ascii_trim_whitespace(column.cast(pa.large_string())))
    label = _ALIAS_LABELS.take(pc.index_in(normal, value_set=_ALIASES))
    return pc.fill_null(label, ""), label.is_valid().to_numpy(zero_copy_only=False)


def _optional_column(table: pa.Table, name: str, n: int) -> tuple[pa.Array, np.ndarray]:
    """The value, null where absent or empty; rows with a non-string value go to the reference."""
    target = pa.large_string() if name == "source" else pa.string()
    column = _column(table, name)
    if column is None or pa.types.is_null(column.type):
        return pa.nulls(n, target), np.ones(n, dtype=bool)
    if not _is_text(column):
        return pa.nulls(n, target), column.is_null().to_numpy(zero_copy_only=False)
    column = column.cast(target)
    value = pc.if_else(pc.equal(column, ""), pa.scalar(None, target), column)
    return value, np.ones(n, dtype=bool)
