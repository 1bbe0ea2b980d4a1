"""Annotate: responses -> long-format factor values (one annotations shard per responses shard).

Rule factors are polars expressions evaluated over a whole shard at once. Each output shard is
written atomically with a manifest naming its input shard and factor versions, so a rerun skips
finished shards without reading them and recomputes only shards whose inputs or factors changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.factors import Factor, get_factor
from profile_dist.factors.rules import RULE_FACTORS
from profile_dist.stages.runtime import ensure_ray, run_tasks

MANIFEST_DIR = "_manifests"


@dataclass
class AnnotateSummary:
    output: str
    factors: list[str]
    shards_done: int
    shards_skipped: int
    n_annotations: int

    def lines(self) -> list[str]:
        return [
            f"annotated {self.shards_done} shard(s) ({self.n_annotations} values; {self.shards_skipped} shard(s) already done) "
            f"with {', '.join(self.factors)} into {self.output}"
        ]


def resolve_factors(names: list[str] | None) -> list[Factor]:
    names = list(names) if names else list(RULE_FACTORS)
    factors = []
    for name in names:
        try:
            factor = get_factor(name)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        if factor.kind != "rule":
            raise ConfigError(f"factor {name!r} is an LLM factor ({factor.kind}); it needs an LLM endpoint (--llm)")
        factors.append(factor)
    return factors


def shard_with_sources(responses: pa.Table, prompts_dir: str) -> pl.DataFrame:
    """The shard's responses with ``source_text``: the prompt's source document, else its text."""
    wanted = pa.array(sorted(set(responses.column("prompt_id").to_pylist())), pa.string())
    prompt_files = storage.list_files(prompts_dir)
    fs, _ = storage.filesystem(prompts_dir)
    paths = [storage.filesystem(p)[1] for p in prompt_files]
    prompts = pads.dataset(paths, filesystem=fs, schema=schema.PROMPTS, format="parquet").to_table(
        filter=pads.field("prompt_id").isin(wanted)
    )
    prompts_df = pl.from_arrow(prompts).select(
        "prompt_id", pl.coalesce("source", "text").alias("source_text")
    )
    return pl.from_arrow(responses).join(prompts_df, on="prompt_id", how="left")


def rule_annotations(frame: pl.DataFrame, factors: list[Factor]) -> pa.Table:
    """Long-format annotations for ``frame`` (response_id, text, source_text)."""
    wide = frame.select("response_id", *(f.expr().alias(f.name) for f in factors))
    versions = pl.DataFrame({"factor": [f.name for f in factors], "prompt_version": [f"rule-v{f.version}" for f in factors]})
    long = (
        wide.unpivot(index="response_id", variable_name="factor", value_name="value")
        .join(versions, on="factor", how="left", maintain_order="left")
        .with_columns(annotator=pl.lit("rule"), error=pl.lit(None, dtype=pl.String))
    )
    return schema.conform(long.to_arrow(), schema.ANNOTATIONS, where="annotations")


def _manifest_for(input_shard: str, factors: list[Factor]) -> dict:
    # Content ids make a shard's bytes a function of its rows, so name + size identify the input
    # without reading it.
    return {
        "input_shard": storage.basename(input_shard),
        "input_bytes": storage.size(input_shard),
        "factors": {f.name: f"rule-v{f.version}" for f in factors},
    }


def annotate_shard(input_shard: str, prompts_dir: str, output_shard: str, manifest_path: str, factor_names: list[str]) -> int:
    factors = [get_factor(n) for n in factor_names]
    responses = storage.read_parquet(input_shard, schema.RESPONSES)
    frame = shard_with_sources(responses, prompts_dir)
    table = rule_annotations(frame, factors)
    storage.write_parquet_atomic(table, output_shard)
    # The manifest is written last: its presence certifies the shard beside it is complete.
    storage.write_json_atomic(_manifest_for(input_shard, factors), manifest_path)
    return table.num_rows


_annotate_shard_remote = ray.remote(annotate_shard)


def _is_done(input_shard: str, manifest_path: str, output_shard: str, factors: list[Factor]) -> bool:
    if not (storage.exists(manifest_path) and storage.exists(output_shard)):
        return False
    try:
        manifest = storage.read_json(manifest_path)
    except (ValueError, OSError):
        return False
    return manifest == _manifest_for(input_shard, factors)


def annotate(
    pairs_dir: str,
    output: str,
    *,
    factors: list[str] | None = None,
    address: str | None = None,
    progress: bool | None = None,
) -> AnnotateSummary:
    chosen = resolve_factors(factors)
    response_shards = storage.list_files(storage.join(pairs_dir, "responses"))
    if not response_shards:
        raise ConfigError(f"{pairs_dir}: no responses shards found; is this the output directory of `profile-dist ingest`?")
    prompts_dir = storage.join(pairs_dir, "prompts")
    todo, skipped = [], 0
    for shard in response_shards:
        name = storage.basename(shard)
        output_shard = storage.join(output, name)
        manifest_path = storage.join(output, MANIFEST_DIR, name.replace(".parquet", ".json"))
        if _is_done(shard, manifest_path, output_shard, chosen):
            skipped += 1
            continue
        todo.append((shard, prompts_dir, output_shard, manifest_path, [f.name for f in chosen]))
    n_rows = 0
    if todo:
        ensure_ray(address)
        n_rows = sum(run_tasks(_annotate_shard_remote, todo, desc="annotate", progress=progress))
    return AnnotateSummary(output, [f.name for f in chosen], len(todo), skipped, n_rows)
