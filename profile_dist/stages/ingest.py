"""Ingest: corpus files -> canonical prompts, responses, pairs and rejected tables, as a parallel map + hash shuffle.

1. **Plan** (a task per input file): the adapter cuts the file into splits (row groups, byte ranges of whole
   lines, or the whole file) and counts their rows, so one large file keeps every core busy. The number of
   buckets P is ceil(rows / rows_per_shard).
2. **Parse** (a task per split): the adapter parses the split batch by batch, column-wise where it can; ids
   are computed per batch (ids.py); each table's rows go to one shuffle file per task, by bucket
   (stages/shuffle.py): prompts by prompt_id, responses by response_id, pairs by pair_id.
3. **Merge** (a task per bucket): the bucket's rows from every parse task are de-duplicated (prompts,
   responses), checked (a pair id twice is refused), sorted by id and written as ``part-<bucket>.parquet``.
4. **Publish**: the staged tables move into place and the manifest, written last, lists every file
   (published.py). A claim on the output refuses a second job writing the same output meanwhile.

The driver holds file lists and counts only; a task holds one split or one bucket. The tables' content
does not depend on how files were split or on P: the same inputs give the same rows (sorted union), and
for the same P the same bytes.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from profile_dist import ids, schema, storage
from profile_dist.layout import published
from profile_dist.analysis import stats
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.sources import RowProblem, get_source
from profile_dist.sources.batches import DEFAULT_SPLIT_BYTES, Split
from profile_dist.stages import shuffle
from profile_dist.stages.runtime import ensure_ray, run_tasks

TABLES = {"prompts": schema.PROMPTS, "responses": schema.RESPONSES, "pairs": schema.PAIRS, "rejected": schema.REJECTED}
#: The id each table is bucketed by (rejected rows have no id: they are bucketed by file and row).
BUCKET_KEYS = {"prompts": "prompt_id", "responses": "response_id", "pairs": "pair_id"}
DEFAULT_ROWS_PER_SHARD = 100_000
STRICT_HINT = " (use --skip-bad-rows to write such rows to the rejected table and go on)"


@dataclass
class IngestSummary:
    output: str
    n_pairs: int
    n_prompts: int
    n_responses: int
    rejected: dict[str, int] = field(default_factory=dict)  # "kind: field: reason" -> count
    notes: dict[str, int] = field(default_factory=dict)
    shards: int = 0  # buckets: part-<b>.parquet of every table
    tasks: int = 0  # parse tasks (splits of the inputs)

    def lines(self) -> list[str]:
        out = [f"ingested {self.n_pairs} pairs ({self.n_prompts} prompts, {self.n_responses} responses) into {self.output}"]
        out += [f"  {count} row(s) not used: {reason}" for reason, count in sorted(self.rejected.items())]
        out += [f"  {count} row(s): {note}" for note, count in sorted(self.notes.items())]
        return out


# --- pure table functions ---------------------------------------------------------------------------------


def canonical_tables(raw: pa.Table, *, dataset: str, source_file: str, task: str) -> dict[str, pa.Table]:
    """Prompts, responses and pairs (with their content ids) of parsed rows (schema.RAW_PAIRS), column-wise.

    ``task`` fills rows whose adapter gave none. Prompts and responses are not yet de-duplicated.
    """
    prompt_id = ids.prompt_ids(raw.column("prompt"), raw.column("source"))
    a_id = ids.response_ids(prompt_id, raw.column("response_a"), raw.column("source_a"))
    b_id = ids.response_ids(prompt_id, raw.column("response_b"), raw.column("source_b"))
    row_task = pc.fill_null(raw.column("task"), task)
    pair_id = ids.pair_ids(dataset, raw.column("labeler"), raw.column("setting"), row_task, storage.basename(source_file),
                           raw.column("source_row"), a_id, b_id)
    n = raw.num_rows
    prompts = {"prompt_id": prompt_id, "text": raw.column("prompt"), "source": raw.column("source")}
    responses = {"response_id": pa.concat_arrays([a_id, b_id]), "prompt_id": pa.concat_arrays([prompt_id, prompt_id]),
                 "text": pa.chunked_array(raw.column("response_a").chunks + raw.column("response_b").chunks, pa.large_string()),
                 "source": pa.chunked_array(raw.column("source_a").chunks + raw.column("source_b").chunks, pa.large_string())}
    pairs = {
        "pair_id": pair_id, "task": row_task, "prompt_id": prompt_id, "response_a_id": a_id, "response_b_id": b_id,
        "label": raw.column("label"), "labeler": raw.column("labeler"), "setting": raw.column("setting"),
        "dataset": pa.array([dataset] * n, pa.string()), "source_file": pa.array([source_file] * n, pa.string()),
        "source_row": raw.column("source_row"),
    }
    return {"prompts": _typed(prompts, schema.PROMPTS), "responses": _typed(responses, schema.RESPONSES),
            "pairs": _typed(pairs, schema.PAIRS)}


def large_text(table_schema: pa.Schema) -> pa.Schema:
    """``table_schema`` with large_string for string: a parse task's texts may pass 2 GiB before they are sharded."""
    return pa.schema([pa.field(f.name, pa.large_string() if pa.types.is_string(f.type) else f.type, f.nullable) for f in table_schema])


def _typed(columns: dict[str, Any], table_schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pydict({name: columns[name] for name in table_schema.names}, schema=large_text(table_schema))


def rejected_table(problems: list[RowProblem], source_file: str) -> pa.Table:
    return pa.Table.from_pydict({
        "source_file": [source_file] * len(problems), "source_row": [p.source_row for p in problems],
        "field": [p.field for p in problems], "reason": [p.reason for p in problems], "kind": [p.kind for p in problems],
    }, schema=schema.REJECTED)


def first_of_each(table: pa.Table, key: str) -> pa.Table:
    """One row per id, in first-seen order: no sort of the texts (the merge sorts each bucket once)."""
    if table.num_rows == 0:
        return table
    return table.filter(pl.Series(table.column(key)).is_first_distinct().to_arrow())


def dedupe_sorted(table: pa.Table, key: str) -> pa.Table:
    """One row per id, ordered by id (rows with one id are identical: the id is a hash of their content)."""
    table = table.sort_by(key)
    if table.num_rows == 0:
        return table
    keys = table.column(key)
    keep = pc.not_equal(keys.slice(1), keys.slice(0, len(keys) - 1))
    return table.filter(pa.concat_arrays([pa.array([True]), keep.combine_chunks()]))


#: Each merge task reads one piece from every parse task's file (~0.15 ms each), so pieces = splits x buckets
#: per table grows with the corpus squared (2,000 splits x 1,000 buckets at 100M pairs). Past this many
#: per table, adjacent splits of a file are parsed by one task (``coalesce_splits``).
PIECES_PER_TABLE = 250_000
#: ...but no parse task takes more than this many rows (its shuffle output is held until it finishes) or,
#: where a split knows its bytes (line formats), more than this many bytes.
MAX_COALESCED_ROWS = 400_000
MAX_COALESCED_BYTES = 4 * DEFAULT_SPLIT_BYTES


def coalesce_splits(splits: list[Split], per_task: int, max_rows: int = MAX_COALESCED_ROWS,
                    max_bytes: int = MAX_COALESCED_BYTES) -> list[Split]:
    """Runs of up to ``per_task`` adjacent splits of one file as one split each (the same rows, numbered the
    same). A split's range is bytes (line formats) or row groups (Parquet, never near ``max_bytes``)."""
    out: list[Split] = []
    run = 0
    for split in splits:
        last = out[-1] if out else None
        if (last is not None and run < per_task and last.path == split.path and last.context == split.context
                and last.stop is not None and last.stop == split.start and split.stop is not None
                and last.rows + split.rows <= max_rows and split.stop - last.start <= max_bytes):
            out[-1] = Split(last.path, last.first_row, last.rows + split.rows, last.start, split.stop, last.context)
            run += 1
        else:
            out.append(split)
            run = 1
    return out


def bucket_hashes(name: str, table: pa.Table) -> np.ndarray:
    if name == "rejected":
        keys = [f"{f}\x1f{r}" for f, r in zip(table.column("source_file").to_pylist(), table.column("source_row").to_pylist())]
        return stats.hash64(keys)
    return stats.id_hashes(table.column(BUCKET_KEYS[name]))


# --- tasks --------------------------------------------------------------------------------------------------


def plan_file(format_name: str, path: str, split_bytes: int) -> list[Split]:
    return get_source(format_name).plan(path, split_bytes)


def parse_split(format_name: str, split: Split, dataset: str | None, task: str | None, strict: bool,
                n_buckets: int, shuffle_dir: str, index: int) -> dict[str, Any]:
    """Parse one split batch by batch, give its rows ids and add them to the shuffle by bucket.

    Returns each table's shuffle file, its per-bucket byte offsets and rows, and the split's notes and
    rejected reasons. Memory: one batch, plus the split's rows compressed.
    """
    source = get_source(format_name)
    dataset = dataset or source.dataset_name(split.path)
    outputs = {name: shuffle.MapOutput(large_text(table_schema), n_buckets) for name, table_schema in TABLES.items()}
    notes: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for batch in source.batches(split):
        for problem in batch.problems:
            if strict and problem.kind == "invalid":
                raise BadInputError(split.path, problem.source_row, problem.field, problem.reason + STRICT_HINT)
            rejected[f"{problem.kind}: {problem.field}: {problem.reason}"] += 1
        tables = canonical_tables(batch.pairs, dataset=dataset, source_file=split.path, task=task or source.default_task)
        tables["rejected"] = rejected_table(batch.problems, split.path)
        for name, table in tables.items():
            if name in ("prompts", "responses"):  # repeats within a batch need not cross the shuffle
                table = first_of_each(table, BUCKET_KEYS[name])
            outputs[name].add(table, shuffle.bucket_of(bucket_hashes(name, table), n_buckets))
        notes.update(batch.notes)
    result: dict[str, Any] = {"files": {}, "offsets": {}, "rows": {}, "notes": dict(notes), "rejected": dict(rejected)}
    for name, output in outputs.items():
        uri = storage.join(shuffle_dir, name, f"map-{index:06d}.arrows")
        result["files"][name] = uri
        result["offsets"][name] = output.finish(uri)
        result["rows"][name] = int(output.rows.sum())
    pa.default_memory_pool().release_unused()  # an idle worker should not keep this task's peak
    return result


def merge_bucket(bucket: int, pieces: dict[str, list[tuple[str, int, int]]], staging: str) -> dict[str, Any]:
    """The final ``part-<bucket>.parquet`` of every table: de-duplicated, sorted, conformed to its schema."""
    written: dict[str, Any] = {"files": {}, "duplicate_pairs": 0}
    for name, table_schema in TABLES.items():
        table = shuffle.read_pieces(pieces[name], large_text(table_schema))
        if name in ("prompts", "responses"):
            table = dedupe_sorted(table, BUCKET_KEYS[name])
        elif name == "pairs":
            table = table.sort_by("pair_id")
            written["duplicate_pairs"] = table.num_rows - pc.count_distinct(table.column("pair_id")).as_py()
        else:
            table = table.sort_by([("source_file", "ascending"), ("source_row", "ascending")])
            if table.num_rows == 0 and bucket:  # rejected rows are rare: only non-empty buckets (and bucket 0)
                continue
        table = schema.conform(table, table_schema, where=f"ingest bucket {bucket}: {name}")
        file_name = storage.SHARD_PATTERN.format(index=bucket)
        data = _parquet_bytes(table)
        storage.write_bytes_atomic(data, storage.join(staging, name, file_name))
        written["files"][name] = {"name": file_name, "bytes": len(data), "rows": table.num_rows}
    pa.default_memory_pool().release_unused()
    return written


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


_plan_file_remote = ray.remote(plan_file)
_parse_split_remote = ray.remote(parse_split)
_merge_bucket_remote = ray.remote(merge_bucket)


# --- the stage -------------------------------------------------------------------------------------------


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
    buckets: int | None = None,
    split_bytes: int = DEFAULT_SPLIT_BYTES,
) -> IngestSummary:
    """Ingest ``inputs`` into ``output``. ``buckets`` (default: ceil(rows / rows_per_shard)) and
    ``split_bytes`` change how the work is cut, never the rows written."""
    try:
        get_source(format_name)  # fail fast on an unknown format, before starting Ray
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    if not inputs:
        raise ConfigError("ingest needs at least one --input file")
    inputs = storage.expand_inputs(inputs)  # directories and patterns -> their data files
    # Tasks run elsewhere: relative paths would be resolved against their working directory (storage.absolute).
    inputs, output = [storage.absolute(p) for p in inputs], storage.absolute(output)
    if len(set(inputs)) != len(inputs):
        raise ConfigError("the same --input file is given twice; its pairs would be counted twice")
    if rows_per_shard <= 0:
        raise ConfigError("--rows-per-shard must be positive")
    if buckets is not None and not 1 <= buckets <= shuffle.MAX_BUCKETS:
        raise ConfigError(f"buckets must be in [1, {shuffle.MAX_BUCKETS}], got {buckets}")
    for path in inputs:
        if not storage.exists(path):
            raise BadInputError(path, None, None, "file not found")
    ensure_ray(address)
    with published.claimed(output, "ingest") as claim:
        staging = claim.staging()
        # Holding the claim, this run is the only writer: staging areas here are leftovers of ended runs
        # (e.g. files a cancelled task finished writing after its run had cleaned up).
        for name in storage.list_dirs(output):
            if name.startswith(".staging-"):
                storage.remove_tree(storage.join(output, name))
        try:
            return _run(format_name, inputs, output, claim, task=task, dataset=dataset, rows_per_shard=rows_per_shard,
                        skip_bad_rows=skip_bad_rows, progress=progress, buckets=buckets, split_bytes=split_bytes)
        finally:
            storage.remove_tree(staging)


def _run(format_name: str, inputs: list[str], output: str, claim: published.Claim, *, task: str | None,
         dataset: str | None, rows_per_shard: int, skip_bad_rows: bool, progress: bool | None, buckets: int | None,
         split_bytes: int) -> IngestSummary:
    staging = claim.staging()
    shuffle_dir = storage.join(staging, "shuffle")
    plans = run_tasks(_plan_file_remote, [(format_name, p, split_bytes) for p in inputs], desc="ingest: plan", progress=progress)
    splits = [s for plan in plans for s in plan]
    n_buckets = buckets or max(1, math.ceil(sum(s.rows for s in splits) / rows_per_shard))
    wanted_tasks = max(4 * int(ray.cluster_resources().get("CPU", 1)), PIECES_PER_TABLE // n_buckets)
    if len(splits) > wanted_tasks:
        splits = coalesce_splits(splits, math.ceil(len(splits) / wanted_tasks))
    parsed = run_tasks(_parse_split_remote, [
        (format_name, s, dataset, task, not skip_bad_rows, n_buckets, shuffle_dir, i) for i, s in enumerate(splits)
    ], desc="ingest: parse", progress=progress)
    n_pairs = sum(p["rows"]["pairs"] for p in parsed)
    rejected: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for part in parsed:
        rejected.update(part["rejected"])
        notes.update(part["notes"])
    if n_pairs == 0:
        raise BadInputError(", ".join(inputs), None, None, f"no usable pairs ({sum(rejected.values())} row(s) rejected or skipped)")
    map_files = {name: [p["files"][name] for p in parsed] for name in TABLES}
    map_offsets = {name: [p["offsets"][name] for p in parsed] for name in TABLES}
    del parsed  # only the files and offsets are needed
    # Generated as tasks are submitted: all buckets' piece lists at once would be splits x buckets tuples.
    merge_calls = ((bucket, {name: shuffle.pieces_of_bucket(map_files[name], map_offsets[name], bucket) for name in TABLES}, staging)
                   for bucket in range(n_buckets))
    merged = run_tasks(_merge_bucket_remote, merge_calls, desc="ingest: merge", progress=progress, total=n_buckets)
    duplicated = sum(m["duplicate_pairs"] for m in merged)
    if duplicated:
        raise ConfigError(f"{duplicated} duplicate pair id(s) across the inputs: is the same corpus given twice?")
    storage.remove_tree(shuffle_dir)
    files = {name: [m["files"][name] for m in merged if name in m["files"]] for name in TABLES}
    counts = {name: sum(f["rows"] for f in entries) for name, entries in files.items()}
    summary = IngestSummary(
        output=output, n_pairs=counts["pairs"], n_prompts=counts["prompts"], n_responses=counts["responses"],
        rejected=dict(rejected), notes=dict(notes), shards=n_buckets, tasks=len(splits),
    )
    manifest = {
        "stage": "ingest", "format": format_name, "inputs": inputs, "task": task, "dataset": dataset,
        "rows_per_shard": rows_per_shard, "skip_bad_rows": skip_bad_rows,
        "counts": counts, "shards": {name: len(entries) for name, entries in files.items()},
        "buckets": n_buckets, "partitioning": {**BUCKET_KEYS, "rejected": "source_file, source_row",
                                               "hash": "stats.id_hashes (rejected: stats.hash64)", "bucket": "floor(hash * buckets / 2^64)"},
        "tasks": len(splits), "rejected": summary.rejected, "notes": summary.notes, "files": files,
    }
    published.publish(output, claim, list(TABLES), manifest)
    return summary
