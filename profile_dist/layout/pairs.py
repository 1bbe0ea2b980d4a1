"""The pairs directory: what ``ingest`` writes and annotate, judge, generate and reduce read, and the one
writer for every stage or workflow that builds one from tables in memory (judge, generate, best-of-n picks,
the feedback loop's halves)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.layout import published

#: The shard directories of a pairs directory and their schemas.
PAIRS_DIR_TABLES = {"prompts": schema.PROMPTS, "responses": schema.RESPONSES, "pairs": schema.PAIRS,
                    "rejected": schema.REJECTED}


def write_ingest_shaped(output: str, tables: dict[str, pa.Table], extra: dict[str, pa.Table],
                        manifest: dict[str, Any], rows_per_shard: int) -> None:
    """prompts/responses/pairs/rejected shard directories (what reduce and annotate read) plus the stage's
    own tables as single Parquet files, as ingest publishes its output (published.py): claimed while
    written, staged first, the old manifest withdrawn before any table is replaced, and a new manifest
    listing every shard written last."""
    with published.claimed(output, str(manifest.get("stage", "write"))) as claim:
        staging = claim.staging()
        files: dict[str, list[dict[str, Any]]] = {}
        for name, table_schema in PAIRS_DIR_TABLES.items():
            table = schema.conform(tables[name], table_schema, where=f"{output}: {name}")
            files[name] = []
            for index, start in enumerate(range(0, max(table.num_rows, 1), rows_per_shard)):
                shard = table.slice(start, rows_per_shard)
                file_name = storage.SHARD_PATTERN.format(index=index)
                storage.write_parquet_atomic(shard, storage.join(staging, name, file_name))
                files[name].append({"name": file_name, "rows": shard.num_rows})
        published.withdraw(output, claim)
        for name in PAIRS_DIR_TABLES:
            storage.replace_dir(storage.join(staging, name), storage.join(output, name))
        storage.remove_tree(staging)
        for name, table in extra.items():
            storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
        published.certify(output, {**manifest, "files": files})


def slug(name: str) -> str:
    """A model or endpoint name as one path segment (jobs and the audit name output directories by it)."""
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in name)
