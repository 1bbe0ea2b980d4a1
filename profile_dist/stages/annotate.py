"""Annotate: responses -> long-format factor values (one annotations shard per responses shard).

Rule factors are polars expressions evaluated over a whole shard at once, in Ray tasks. LLM factors
go through the LLM engine (rate-limited worker actors, a durable content-addressed reply cache beside
the outputs), shard by shard from the driver. Each output file is written atomically with a manifest
naming its input shard and factor versions, so a rerun skips finished shards without reading them
and recomputes only shards whose inputs or factors changed; a killed LLM shard re-pays nothing
that reached the cache.

Layout: ``part-NNNNN.parquet`` (rule factors) and ``part-NNNNN.llm-<endpoint>.parquet`` (LLM factors
scored through that endpoint), each with ``_manifests/<same name>.json``.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from profile_dist import schema, storage
from profile_dist.layout import published
from profile_dist.errors import ConfigError
from profile_dist.factors import Factor, all_factors, get_factor
from profile_dist.factors.llm_calls import SINGLE, Usage
from profile_dist.factors.llm_response import COMBINED, combinable
from profile_dist.llm.step import LLMStep, project_chunks
from profile_dist.prompts.fencing import PromptSpec
from profile_dist.stages.runtime import ensure_ray, run_tasks
from profile_dist.tasks import get_task
from profile_dist.user_factors import load_factor_file, with_user_factors

MANIFEST_DIR = "_manifests"


@dataclass
class AnnotateSummary:
    output: str
    factors: list[str]
    shards_done: int
    shards_skipped: int
    n_annotations: int
    llm: dict[str, Any] = field(default_factory=dict)  # the engine's counts: requests, cached, failed, cost

    def lines(self) -> list[str]:
        out = [
            f"annotated {self.shards_done} shard(s) ({self.n_annotations} values; {self.shards_skipped} shard(s) already done) "
            f"with {', '.join(self.factors)} into {self.output}"
        ]
        if self.llm:
            out.append("  llm: " + ", ".join(f"{k}={v}" for k, v in sorted(self.llm.items()) if not isinstance(v, (dict, list))))
            for key, what in (("retried_by_reason", "retried (they failed transiently last time)"),
                              ("retryable_by_reason", "failed transiently and are not cached: rerun to retry them")):
                if self.llm.get(key):
                    reasons = ", ".join(f"{r}={n}" for r, n in sorted(self.llm[key].items()))
                    out.append(f"  {sum(self.llm[key].values())} LLM request(s) {what} ({reasons})")
            if self.llm.get("slots_in_flight_full"):
                out.append(f"  {self.llm['slots_in_flight_full']} send slot(s) went unused because the endpoint's "
                           "max_concurrency was full when they came: raise it to about requests/s x reply latency")
            for name, c in (self.llm.get("costs") or {}).get("per_factor_per_response", {}).items():
                out.append(f"  cost per response of {name}: {c['input_tokens']} in + {c['output_tokens']} out tokens, "
                           f"${c['spend']:.6f}")
        return out


def resolve_factors(names: list[str] | None, with_llm: bool = False) -> list[Factor]:
    """The factors to compute: by default every rule factor, plus every LLM factor when an endpoint is given."""
    if not names:
        return [f for f in all_factors() if f.kind == "rule" or (with_llm and f.llm is not None)]
    factors = []
    for name in names:
        try:
            factor = get_factor(name)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        if factor.kind != "rule" and not with_llm:
            raise ConfigError(f"factor {name!r} is an LLM factor ({factor.kind}); name an endpoint with --llm")
        factors.append(factor)
    return factors


def shard_with_sources(responses: pa.Table, prompt_files: list[str] | None) -> pl.DataFrame:
    """The shard's responses with ``source_text``: the response's own source, else its prompt's source
    document, else the prompt's text. ``prompt_files`` None: no factor reads the prompt, so only the
    response's own source is filled in and no prompts file is read (the prompts' buckets are not the
    responses', so each shard would read them all)."""
    frame = pl.from_arrow(responses)
    if prompt_files is None:
        return frame.rename({"source": "source_text"})
    wanted = pa.array(sorted(set(responses.column("prompt_id").to_pylist())), pa.string())
    if not prompt_files:
        prompts = schema.PROMPTS.empty_table()
    else:
        fs, _ = storage.filesystem(prompt_files[0])
        with storage.arrow_errors(prompt_files[0]):
            prompts = pads.dataset([storage.filesystem(p)[1] for p in prompt_files], filesystem=fs, schema=schema.PROMPTS,
                                   format="parquet").to_table(filter=pads.field("prompt_id").isin(wanted))
    prompts_df = pl.from_arrow(prompts).select(
        "prompt_id", pl.coalesce("source", "text").alias("prompt_source")
    )
    return (frame.join(prompts_df, on="prompt_id", how="left")
            .with_columns(source_text=pl.coalesce("source", "prompt_source")).drop("source", "prompt_source"))


def reads_source(factors: list[Factor]) -> bool:
    """Whether any of these rule factors' expressions reads ``source_text`` (polars says which columns)."""
    return any("source_text" in f.expr().meta.root_names() for f in factors)


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


def prompt_version(factor: Factor) -> str:
    if factor.kind == "rule":
        return f"rule-v{factor.version}"
    return f"v{factor.version}/{factor.llm.template_version}"


def _manifest_for(input_shard: str, factors: list[Factor], model: str | None = None, extra: dict | None = None) -> dict:
    # Content ids make a shard's bytes a function of its rows, so name + size identify the input
    # without reading it.
    manifest = {
        "input_shard": storage.basename(input_shard),
        "input_bytes": storage.size(input_shard),
        "factors": {f.name: prompt_version(f) for f in factors},
    }
    if model is not None:
        manifest["model"] = model
    manifest.update(extra or {})
    return manifest


def annotate_shard(input_shard: str, prompt_files: list[str] | None, output_shard: str, manifest_path: str,
                   factor_names: list[str]) -> int:
    factors = [get_factor(n) for n in factor_names]
    responses = storage.read_parquet(input_shard, schema.RESPONSES)
    frame = shard_with_sources(responses, prompt_files)
    table = rule_annotations(frame, factors)
    storage.write_parquet_atomic(table, output_shard)
    # The manifest is written last: its presence certifies the shard beside it is complete.
    storage.write_json_atomic(_manifest_for(input_shard, factors), manifest_path)
    return table.num_rows


_annotate_shard_remote = ray.remote(annotate_shard)


def _is_done(input_shard: str, manifest_path: str, output_shard: str, factors: list[Factor], model: str | None = None,
             extra: dict | None = None) -> bool:
    if not (storage.exists(manifest_path) and storage.exists(output_shard)):
        return False
    try:
        manifest = storage.read_json(manifest_path)
    except (ValueError, OSError, storage.CorruptObjectError):  # unreadable: the shard is redone and rewritten
        return False
    manifest.pop("llm", None)  # run counts, not identity
    manifest.pop("cost", None)
    if manifest.pop("retryable", None):  # rows failed transiently: the shard is redone, paying only for them
        return False
    return manifest == _manifest_for(input_shard, factors, model, extra)


def _retryable_of(manifest_path: str) -> dict[str, int]:
    """The transient failures a previous run of a shard recorded, by reason ({} if none or no manifest)."""
    try:
        return dict(storage.read_json(manifest_path).get("retryable") or {})
    except (ValueError, OSError, AttributeError, storage.CorruptObjectError):
        return {}


def _output_paths(output: str, input_shard: str, suffix: str = "") -> tuple[str, str]:
    stem = storage.basename(input_shard).removesuffix(".parquet") + suffix
    return storage.join(output, f"{stem}.parquet"), storage.join(output, MANIFEST_DIR, f"{stem}.json")


def annotate(
    pairs_dir: str,
    output: str,
    *,
    factors: list[str] | None = None,
    llm: str | None = None,
    endpoints: str | None = None,
    cache_dir: str | None = None,
    max_cost: float | None = None,
    dry_run: bool = False,
    address: str | None = None,
    progress: bool | None = None,
    llm_calls: str = "combined",
    factor_file: str | None = None,
) -> AnnotateSummary:
    # Tasks run elsewhere: relative paths would be resolved against their working directory (storage.absolute).
    pairs_dir, output = storage.absolute(pairs_dir), storage.absolute(output)
    # User-defined LLM factors (docs/discovery.md) come from the file, never from the global registry.
    factors, user_factors = with_user_factors(factors, load_factor_file(factor_file) if factor_file else [])
    if user_factors and llm is None:
        raise ConfigError(f"{factor_file}: user-defined factors are LLM factors; name an endpoint with --llm")
    if llm is not None and factors is None:
        chosen = default_llm_factors(pairs_dir)
    elif factors == []:
        chosen = []
    else:
        chosen = resolve_factors(factors, with_llm=llm is not None)
    chosen += user_factors
    rule_factors = [f for f in chosen if f.kind == "rule"]
    llm_factors = [f for f in chosen if f.kind != "rule"]
    # Before any work: the reply cache beside the output, on its store (an s3:// output gets an s3:// cache
    # every node shares).
    step = LLMStep("annotate", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost, dry_run=dry_run,
                   progress=progress) if llm_factors else None
    response_shards = published.table_files(pairs_dir, "responses")  # the manifest's files only
    if not response_shards:
        raise ConfigError(f"{pairs_dir}: no responses shards found; is this the output directory of `profile-dist ingest`?")
    prompt_files = published.table_files(pairs_dir, "prompts")  # the manifest's files only
    summary = AnnotateSummary(output, [f.name for f in chosen], 0, 0, 0)
    # One writer per output: a second annotate (or job) given it is refused, not let to pay for the same calls.
    with contextlib.nullcontext() if dry_run else published.claimed(output, "annotate"):
        if rule_factors and not dry_run:
            todo = []
            for shard in response_shards:
                output_shard, manifest_path = _output_paths(output, shard)
                if _is_done(shard, manifest_path, output_shard, rule_factors):
                    summary.shards_skipped += 1
                    continue
                todo.append((shard, prompt_files if reads_source(rule_factors) else None, output_shard, manifest_path,
                             [f.name for f in rule_factors]))
            if todo:
                ensure_ray(address)
                summary.n_annotations += sum(run_tasks(_annotate_shard_remote, todo, desc="annotate", progress=progress))
                summary.shards_done += len(todo)
        if step is not None:
            _annotate_llm(step, response_shards, prompt_files, output, llm_factors, llm, address, summary, llm_calls)
    return summary


def _endpoint_slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


#: How response-level LLM factors are asked: one call per response for all of them (the default), or one
#: call per response and factor.
LLM_CALL_MODES = ("combined", "per_factor")


def default_llm_factors(pairs_dir: str) -> list[Factor]:
    """With --llm and no --factors: the default factors of the tasks present in the pairs (those registered),
    plus every rule factor."""
    pair_files = published.table_files(pairs_dir, "pairs")
    fs, _ = storage.filesystem(pairs_dir)
    # The task column only: the pairs can be far larger than the driver's memory.
    column = pads.dataset([storage.filesystem(p)[1] for p in pair_files], filesystem=fs, schema=schema.PAIRS,
                          format="parquet").to_table(columns=["task"]).column("task")
    tasks = set(column.unique().to_pylist())
    wanted = {name for task in tasks for name in get_task(task).default_factors}
    return [f for f in all_factors() if f.kind == "rule" or f.name in wanted]


def llm_groups(factors: list[Factor], mode: str = "combined") -> list[tuple[Any, list[Factor]]]:
    """(scorer, its factors) in a stable order. A factor whose ``llm`` names a ``scorer`` (atomic facts) is
    scored by it together with every other factor of the same scorer; in ``combined`` mode two or more
    response-level factors share one call per response; any other PromptSpec factor has a call of its own."""
    if mode not in LLM_CALL_MODES:
        raise ConfigError(f"llm_calls must be one of {', '.join(LLM_CALL_MODES)}, got {mode!r}")
    combine = mode == "combined" and sum(1 for f in factors if combinable(f)) >= 2
    groups: dict[str, tuple[Any, list[Factor]]] = {}
    for f in factors:
        if combine and combinable(f):
            scorer = COMBINED
        elif getattr(f.llm, "scorer", None) is not None:
            scorer = f.llm.scorer
        elif isinstance(f.llm, PromptSpec):
            scorer = SINGLE
        else:
            raise ConfigError(f"factor {f.name!r} ({f.kind}) has neither a prompt (PromptSpec) nor a scorer")
        groups.setdefault(scorer.name, (scorer, []))[1].append(f)
    return list(groups.values())


def _row_versions(groups: list[tuple[Any, list[Factor]]]) -> dict[str, str]:
    """The prompt version written on each factor's rows: the combined prompt's where it was asked that way."""
    out = {}
    for scorer, members in groups:
        for f in members:
            out[f.name] = (f"v{f.version}/{COMBINED.prompt_version(members)}" if scorer is COMBINED
                           else prompt_version(f))
    return out


def _annotate_llm(
    step: LLMStep, response_shards: list[str], prompt_files: list[str], output: str, factors: list[Factor], llm: str | None,
    address: str | None, summary: AnnotateSummary, llm_calls: str = "combined",
) -> None:
    endpoint = step.endpoint(llm)
    groups = llm_groups(factors, llm_calls)
    # What was asked, not what was requested: "combined" needs two combinable factors.
    calls_mode = "combined" if any(scorer is COMBINED for scorer, _ in groups) else "per_factor"
    versions = _row_versions(groups)
    # The prompt each factor was asked with (its own or the combined one) is part of a shard's identity, so
    # switching --llm-calls redoes exactly the shards whose prompts change.
    extra = {"prompt_versions": versions}
    if endpoint.simulated:  # the report labels these factors' values as simulated
        extra["simulated"] = True
    suffix = f".llm-{_endpoint_slug(endpoint.name)}"
    pending = []
    retried: Counter = Counter()
    for shard in response_shards:
        output_shard, manifest_path = _output_paths(output, shard, suffix)
        if _is_done(shard, manifest_path, output_shard, factors, endpoint.model, extra):
            summary.shards_skipped += 1
        else:
            pending.append((shard, output_shard, manifest_path))
            retried.update(_retryable_of(manifest_path))
    if not pending and not step.dry_run:
        return
    # Durable, beside the outputs: a rerun, a resumed run or another stage over the same responses
    # pays nothing for replies already received. Ray starts only when a request must be sent (the shards
    # are read here, in the driver): a fully cached run never waits for it.
    with step.engine("annotator", endpoint, desc="annotate (llm)", connect=lambda: ensure_ray(address)) as engine:
        if step.dry_run:
            def shard_requests() -> Iterator[list[Any]]:  # a shard at a time: a corpus's requests never sit in memory
                for shard, _, _ in pending:
                    frame = shard_with_sources(storage.read_parquet(shard, schema.RESPONSES), prompt_files)
                    yield [request for scorer, members in groups for request in scorer.requests(frame, members, engine)]

            summary.llm = {"dry_run": True, **project_chunks(engine, shard_requests()).as_dict()}
            return
        if len(engine.cache) == 0:
            # An empty reply cache: every request will be sent. The workers (and the limiter) boot while the
            # first shard is read and its requests built, not after (issue 16: seconds to first request).
            engine.start(wait=False)
        usage = Usage()
        n_responses = 0
        for shard, output_shard, manifest_path in pending:
            frame = shard_with_sources(storage.read_parquet(shard, schema.RESPONSES), prompt_files)
            shard_usage = Usage()
            parts = []
            for scorer, members in groups:
                rows = scorer.annotate(frame, members, engine, shard_usage)
                parts.append(pl.from_arrow(rows).with_columns(
                    annotator=pl.lit(endpoint.model),
                    prompt_version=pl.col("factor").replace_strict(versions, return_dtype=pl.String),
                ))
            table = schema.conform(pl.concat(parts).to_arrow(), schema.ANNOTATIONS, where=output_shard)
            storage.write_parquet_atomic(table, output_shard)
            storage.write_json_atomic({**_manifest_for(shard, factors, endpoint.model, extra),
                                       "llm": dict(shard_usage.totals), "cost": shard_usage.report(frame.height),
                                       "retryable": dict(shard_usage.retryable)},
                                      manifest_path)
            usage.merge(shard_usage)
            n_responses += frame.height
            summary.shards_done += 1
            summary.n_annotations += table.num_rows
        cost = usage.report(n_responses)
        summary.llm = {"endpoint": endpoint.name, "model": endpoint.model, "llm_calls": calls_mode, **usage.totals,
                       "retried": sum(retried.values()), "retried_by_reason": dict(retried),
                       "retryable_by_reason": dict(usage.retryable),
                       "spend_per_response": cost["per_response"]["spend"],
                       "tokens_per_response": round(cost["per_response"]["input_tokens"]
                                                    + cost["per_response"]["output_tokens"], 3),
                       "costs": cost}
