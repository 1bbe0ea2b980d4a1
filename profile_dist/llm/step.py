"""What the judge and generate stages share: endpoints, cost records, and writing an ingest-shaped output."""

from __future__ import annotations

import uuid
from typing import Any, Iterable

import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.llm.budget import Projection
from profile_dist.llm.endpoints import get_endpoint

#: The engine counts a stage manifest keeps per model (and results.json shows under "cost").
COST_KEYS = ("requests", "duplicates", "cached", "sent", "done", "failed", "http_calls", "input_tokens",
             "output_tokens", "spend")


def resolve_endpoint(name: str, endpoints: str | None) -> Any:
    return get_endpoint(name, endpoints)


def cache_dir_for(output: str, cache_dir: str | None) -> str:
    """The reply cache: ``cache_dir``, else beside the output. It must be a filesystem directory (the cache
    appends and fsyncs), so an object-store output needs an explicit local or shared one."""
    cache = cache_dir or storage.join(output, "_llm_cache")
    if storage.is_remote(cache):
        raise ConfigError(f"the LLM reply cache must be a local or shared-filesystem directory, not {cache}; "
                          f"pass --cache-dir (jobs: llm_cache) when the output is on an object store")
    return cache


def project_chunks(engine: Any, chunks: Iterable[list[Any]]) -> Any:
    """The engine's projection over requests made chunk by chunk (never all in memory at once); a request
    repeated in a later chunk counts once, as the run will send it once (the earlier chunk caches it)."""
    total = None
    seen: set[str] = set()
    n_requests = 0
    for requests in chunks:
        n_requests += len(requests)
        fresh = []
        for request in requests:
            key = request.cache_key(engine.endpoint)
            if key not in seen:
                seen.add(key)
                fresh.append(request)
        part = engine.dry_run(fresh)
        if total is None:
            total = part
            continue
        total = Projection(requests=0, unique=total.unique + part.unique, cached=total.cached + part.cached,
                           to_send=total.to_send + part.to_send, input_tokens=total.input_tokens + part.input_tokens,
                           output_tokens=total.output_tokens + part.output_tokens, cost=total.cost + part.cost,
                           minutes_at_limit=total.minutes_at_limit + part.minutes_at_limit, basis=total.basis)
    if total is None:
        return engine.dry_run([])
    total.requests = n_requests
    return total


def cost_record(stage: str, role: str, endpoint: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """One stage's spend through one endpoint, as kept in the stage manifest (``simulated``: the report
    labels what a simulated endpoint produced)."""
    return {"stage": stage, "role": role, "endpoint": endpoint.name, "model": endpoint.model,
            "simulated": bool(getattr(endpoint, "simulated", False)), **{k: summary.get(k, 0) for k in COST_KEYS}}


def projection_record(stage: str, role: str, endpoint: Any, projection: Any) -> dict[str, Any]:
    return {"stage": stage, "role": role, "endpoint": endpoint.name, "model": endpoint.model,
            **projection.as_dict()}


def projection_line(record: dict[str, Any]) -> str:
    return (f"dry run ({record['stage']}, {record['role']}: {record['endpoint']} = {record['model']}): "
            f"{record['requests']} requests, {record['unique']} unique, {record['cached']} cached, "
            f"{record['to_send']} to send, ~{record['input_tokens']} prompt + ~{record['output_tokens']} completion "
            f"tokens, ~${record['cost']:.4f} (basis: {record['basis']})")


def write_ingest_shaped(output: str, tables: dict[str, pa.Table], extra: dict[str, pa.Table],
                        manifest: dict[str, Any], rows_per_shard: int) -> None:
    """prompts/responses/pairs/rejected shard directories (what reduce and annotate read) plus the stage's
    own tables as single Parquet files, staged first and certified by the manifest written last."""
    staging = storage.join(output, f".staging-{uuid.uuid4().hex}")
    layout = {"prompts": schema.PROMPTS, "responses": schema.RESPONSES, "pairs": schema.PAIRS,
              "rejected": schema.REJECTED}
    for name, table_schema in layout.items():
        table = schema.conform(tables[name], table_schema, where=f"{output}: {name}")
        storage.write_shards(table, storage.join(staging, name), rows_per_shard)
    for name in layout:
        storage.replace_dir(storage.join(staging, name), storage.join(output, name))
    storage.remove_tree(staging)
    for name, table in extra.items():
        storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
    storage.write_json_atomic(manifest, storage.join(output, "_manifest.json"))
