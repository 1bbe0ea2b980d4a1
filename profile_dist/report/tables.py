"""Reading results tables as rows, tolerant of files written before a column was added."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from profile_dist import schema, storage

#: Columns added after a table first shipped: results written before read as None there.
ADDED_LATER = {
    "alignment": ("factor_set", "factors", "pairs", "n_pairs", "n_dropped_x", "n_dropped_y", "dropped_x", "dropped_y"),
    "gap": ("factors", "evaluation_pairs"),
}


def read_rows(path: str, table_schema: pa.Schema, added_later: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The table's rows conformed to ``table_schema``; ``added_later`` columns an older file lacks read as None."""
    table = storage.read_parquet(path)
    absent = [c for c in added_later if c not in table.column_names]
    present = pa.schema([f for f in table_schema if f.name not in absent])
    return [{**row, **{c: None for c in absent}} for row in schema.conform(table, present, where=path).to_pylist()]
