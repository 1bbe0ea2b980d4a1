"""The pairs directory: what ``ingest`` writes and annotate, judge, generate and reduce read, and the one
writer for every stage or workflow that builds one from tables in memory (judge, generate, best-of-n picks,
the feedback loop's halves)."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.layout.published import MANIFEST

#: The shard directories of a pairs directory and their schemas.
PAIRS_DIR_TABLES = {"prompts": schema.PROMPTS, "responses": schema.RESPONSES, "pairs": schema.PAIRS,
                    "rejected": schema.REJECTED}


def write_ingest_shaped(output: str, tables: dict[str, pa.Table], extra: dict[str, pa.Table],
                        manifest: dict[str, Any], rows_per_shard: int) -> None:
    """prompts/responses/pairs/rejected shard directories (what reduce and annotate read) plus the stage's
    own tables as single Parquet files, staged first and certified by the manifest written last."""
    staging = storage.join(output, f".staging-{uuid.uuid4().hex}")
    for name, table_schema in PAIRS_DIR_TABLES.items():
        table = schema.conform(tables[name], table_schema, where=f"{output}: {name}")
        storage.write_shards(table, storage.join(staging, name), rows_per_shard)
    for name in PAIRS_DIR_TABLES:
        storage.replace_dir(storage.join(staging, name), storage.join(output, name))
    storage.remove_tree(staging)
    for name, table in extra.items():
        storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
    storage.write_json_atomic(manifest, storage.join(output, MANIFEST))


def slug(name: str) -> str:
    """A model or endpoint name as one path segment (jobs and the audit name output directories by it)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
