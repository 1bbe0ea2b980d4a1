"""Ingest: corpus files -> canonical prompts, responses, pairs and rejected tables (sharded Parquet).

One Ray task parses each input file; the driver deduplicates prompts and responses by content id and
writes everything to a staging directory first, so nothing reaches the final paths unless the whole
input was read (and, without --skip-bad-rows, was free of bad rows).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import ray

from profile_dist import ids, schema, storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.sources import RawPair, RowProblem, get_source
from profile_dist.stages.runtime import ensure_ray, run_tasks

TABLES = {"prompts": schema.PROMPTS, "responses": schema.RESPONSES, "pairs": schema.PAIRS, "rejected": schema.REJECTED}
DEFAULT_ROWS_PER_SHARD = 100_000


@dataclass
class IngestSummary:
    output: str
    n_pairs: int
    n_prompts: int
    n_responses: int
    rejected: dict[str, int] = field(default_factory=dict)  # "kind: field: reason" -> count
    notes: dict[str, int] = field(default_factory=dict)
    shards: int = 0

    def lines(self) -> list[str]:
        out = [f"ingested {self.n_pairs} pairs ({self.n_prompts} prompts, {self.n_responses} responses) into {self.output}"]
        out += [f"  {count} row(s) not used: {reason}" for reason, count in sorted(self.rejected.items())]
        out += [f"  {count} row(s): {note}" for note, count in sorted(self.notes.items())]
        return out


def parse_file(format_name: str, path: str, task: str | None, dataset: str | None, strict: bool) -> dict[str, Any]:
    """Parse one file into column lists of the four tables. Pure apart from reading ``path``."""
    source = get_source(format_name)
    dataset = dataset or source.dataset_name(path)
    file_name = storage.basename(path)
    prompts: dict[str, list] = {name: [] for name in schema.PROMPTS.names}
    responses: dict[str, list] = {name: [] for name in schema.RESPONSES.names}
    pairs: dict[str, list] = {name: [] for name in schema.PAIRS.names}
    rejected: dict[str, list] = {name: [] for name in schema.REJECTED.names}
    notes: Counter[str] = Counter()
    for record in source.records(path):
        if isinstance(record, RowProblem):
            if strict and record.kind == "invalid":
                raise BadInputError(path, record.source_row, record.field, record.reason + " (use --skip-bad-rows to write such rows to the rejected table and go on)")
            for name, value in zip(schema.REJECTED.names, (path, record.source_row, record.field, record.reason, record.kind)):
                rejected[name].append(value)
            continue
        assert isinstance(record, RawPair)
        pid = ids.prompt_id(record.prompt, record.source)
        prompts["prompt_id"].append(pid)
        prompts["text"].append(record.prompt)
        prompts["source"].append(record.source)
        a_id = ids.response_id(pid, record.response_a, record.source_a)
        b_id = ids.response_id(pid, record.response_b, record.source_b)
        for rid, text, own in ((a_id, record.response_a, record.source_a), (b_id, record.response_b, record.source_b)):
            responses["response_id"].append(rid)
            responses["prompt_id"].append(pid)
            responses["text"].append(text)
            responses["source"].append(own)
        row_task = record.task or task or source.default_task
        values = {
            "pair_id": ids.pair_id(dataset, record.labeler, record.setting, row_task, file_name, record.source_row, a_id, b_id),
            "task": row_task, "prompt_id": pid, "response_a_id": a_id, "response_b_id": b_id,
            "label": record.label, "labeler": record.labeler, "setting": record.setting,
            "dataset": dataset, "source_file": path, "source_row": record.source_row,
        }
        for name, value in values.items():
            pairs[name].append(value)
        notes.update(record.notes)
    # Arrow tables, not Python lists, cross the process boundary: a tenth of the driver's memory at 1M pairs.
    # Prompts and responses repeat within a file (a prompt per pair); one row per id is all the driver needs.
    return {
        "prompts": _dedupe_sorted(_table(prompts, schema.PROMPTS), "prompt_id"),
        "responses": _dedupe_sorted(_table(responses, schema.RESPONSES), "response_id"),
        "pairs": _table(pairs, schema.PAIRS), "rejected": _table(rejected, schema.REJECTED), "notes": dict(notes),
    }


_parse_file_remote = ray.remote(parse_file)


def _table(columns: dict[str, list], table_schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict(columns, schema=table_schema)


def _dedupe_sorted(table: pa.Table, key: str) -> pa.Table:
    """One row per id, ordered by id: deterministic whatever order the files were parsed in."""
    table = table.sort_by(key)
    if table.num_rows == 0:
        return table
    keys = table.column(key)
    keep = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    mask = pa.concat_arrays([pa.array([True]), keep.combine_chunks()])
    return table.filter(mask)


def ingest(
    format_name: str,
    inputs: list[str],
    output: str,
    *,
    task: str | None = None,
    dataset: str | None = None,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    skip_bad_rows: bool = False,
    address: str | None = None,
    progress: bool | None = None,
) -> IngestSummary:
    try:
        get_source(format_name)  # fail fast on an unknown format, before starting Ray
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if not inputs:
        raise ConfigError("ingest needs at least one --input file")
    if len(set(inputs)) != len(inputs):
        raise ConfigError("the same --input file is given twice; its pairs would be counted twice")
    for path in inputs:
        if not storage.exists(path):
            raise BadInputError(path, None, None, "file not found")
    ensure_ray(address)
    parsed = run_tasks(
        _parse_file_remote, [(format_name, p, task, dataset, not skip_bad_rows) for p in inputs], desc="ingest", progress=progress,
    )
    tables = {name: pa.concat_tables([part[name] for part in parsed]) for name in TABLES}
    tables["prompts"] = _dedupe_sorted(tables["prompts"], "prompt_id")
    tables["responses"] = _dedupe_sorted(tables["responses"], "response_id")
    duplicated = tables["pairs"].num_rows - pc.count_distinct(tables["pairs"].column("pair_id")).as_py()
    if duplicated:
        raise ConfigError(f"{duplicated} duplicate pair id(s) across the inputs: is the same corpus given twice?")
    if tables["pairs"].num_rows == 0:
        rejected = tables["rejected"].num_rows
        raise BadInputError(", ".join(inputs), None, None, f"no usable pairs ({rejected} row(s) rejected or skipped)")

    staging = storage.join(output, f".staging-{uuid.uuid4().hex}")
    shard_counts = {}
    for name, table in tables.items():
        shard_counts[name] = len(storage.write_shards(table, storage.join(staging, name), rows_per_shard))
    rejected_counts = Counter(
        f"{kind}: {field_name}: {reason}" for kind, field_name, reason in zip(
            tables["rejected"].column("kind").to_pylist(), tables["rejected"].column("field").to_pylist(),
            tables["rejected"].column("reason").to_pylist(),
        )
    )
    notes: Counter[str] = Counter()
    for part in parsed:
        notes.update(part["notes"])
    summary = IngestSummary(
        output=output, n_pairs=tables["pairs"].num_rows, n_prompts=tables["prompts"].num_rows,
        n_responses=tables["responses"].num_rows, rejected=dict(rejected_counts), notes=dict(notes),
        shards=shard_counts["pairs"],
    )
    manifest = {
        "stage": "ingest", "format": format_name, "inputs": inputs, "task": task, "dataset": dataset,
        "rows_per_shard": rows_per_shard, "skip_bad_rows": skip_bad_rows,
        "counts": {name: t.num_rows for name, t in tables.items()}, "shards": shard_counts,
        "rejected": summary.rejected, "notes": summary.notes,
    }
    storage.write_json_atomic(manifest, storage.join(staging, "_manifest.json"))
    for name in TABLES:
        storage.replace_dir(storage.join(staging, name), storage.join(output, name))
    storage.write_bytes_atomic(storage.read_bytes(storage.join(staging, "_manifest.json")), storage.join(output, "_manifest.json"))
    storage.remove_tree(staging)
    return summary
