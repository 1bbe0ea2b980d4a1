"""Generate: the generation setting. A model writes responses at target quality levels 1..K per prompt.

```
profile-dist generate --prompts DIR --llm ENDPOINT --levels 5 --output DIR [--mode joint|separate]
                      [--check-llm ENDPOINT] [--task T] [--max-cost USD] [--dry-run]
```

Input: an ingest output (its prompts; the task of each prompt comes from its pairs, or ``--task``).
``joint`` asks for all K responses in one call (the model sees the scale at once); ``separate`` makes K
calls, one per level. Each generation is stored as a response, and every prompt gives C(K, 2) pairs, the
higher level preferred (labeler = the model, setting = generation), so annotate and reduce treat the output
like any other source. Each request carries its task's instruction ("write a TL;DR of this post") and, for
document QA, the prompt's documents (``settings.prompts.TaskFrame``). With ``--check-llm``, an independent
model rates every generation (1..10) and the manipulation check reports, per task, Kendall's tau-b between
target level and rating within each prompt, averaged over prompts with a bootstrap interval
(``settings/manipulation.py``; ``manipulation_check.parquet``; per-generation ratings in ``generations.parquet``). ``guidance`` (Python
only; ``profile-dist improve feedback`` sets it) appends factor-level guidance to every generation prompt,
so it is part of each request's cache key and recorded in the manifest. ``sample`` (Python only, likewise)
asks for a fresh draw: every request carries the decoding parameter ``seed: sample``, which is sent and is
in the cache key, so the reply is not the cached one of an unsampled run.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl
import pyarrow as pa

from profile_dist import ids, schema, storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.layout import write_ingest_shaped
from profile_dist.llm.step import LLMStep, projection_line
from profile_dist.analysis import manipulation
from profile_dist.prompts.settings import GenerationPrompt, RatingPrompt, frame_for
from profile_dist.stages.ingest import DEFAULT_ROWS_PER_SHARD
from profile_dist.stages.runtime import ensure_ray

MODES = ("joint", "separate")
DATASET = "generated"


@dataclass
class GenerateSummary:
    output: str
    generator: str
    n_prompts: int = 0
    n_responses: int = 0
    n_pairs: int = 0
    n_failed: int = 0
    check: list[dict[str, Any]] = field(default_factory=list)
    llm: list[dict[str, Any]] = field(default_factory=list)
    dry_run: list[dict[str, Any]] | None = None

    def lines(self) -> list[str]:
        if self.dry_run is not None:
            return [projection_line(r) for r in self.dry_run]
        out = [f"generated {self.n_responses} responses for {self.n_prompts} prompts with {self.generator} "
               f"({self.n_failed} failed): {self.n_pairs} pairs into {self.output}"]
        for row in self.check:
            tau = "n/a" if row["kendall_tau"] is None else f"{row['kendall_tau']:+.3f}"
            ci = "" if row["ci_low"] is None else f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"
            out.append(f"  manipulation check ({row['checker']}) on {row['task']}: Kendall tau(level, rating) within "
                       f"prompt, mean over {row['n_prompts']} prompts {tau}{ci} ({row['n_prompts_undefined']} undefined, "
                       f"{row['n_rated']} rated)")
        for rec in self.llm:
            out.append(f"  llm ({rec['role']}: {rec['model']}): requests={rec['requests']}, sent={rec['sent']}, "
                       f"cached={rec['cached']}, failed={rec['failed']}, tokens={rec['input_tokens']}+{rec['output_tokens']}, "
                       f"spend=${rec['spend']:.4f}")
        return out


def prompt_tasks(prompts_dir: str, task: str | None) -> pl.DataFrame:
    """prompt_id, text, source, task: every prompt of the input with its task (``task`` overrides)."""
    prompts = pl.from_arrow(storage.read_table_dir(storage.join(prompts_dir, "prompts"), schema.PROMPTS))
    if prompts.height == 0:
        raise BadInputError(prompts_dir, None, "prompts", "no prompts; is this the output directory of `profile-dist ingest`?")
    if task is not None:
        return prompts.with_columns(task=pl.lit(task)).sort("prompt_id")
    pairs = pl.from_arrow(storage.read_table_dir(storage.join(prompts_dir, "pairs"), schema.PAIRS))
    tasks = pairs.select("prompt_id", "task").unique().sort("task").unique("prompt_id", keep="first")
    joined = prompts.join(tasks, on="prompt_id", how="left")
    missing = joined.filter(pl.col("task").is_null())
    if missing.height:
        raise ConfigError(f"{prompts_dir}: {missing.height} prompt(s) have no pairs to take a task from "
                          f"(e.g. prompt_id {missing['prompt_id'][0]}); pass --task")
    return joined.sort("prompt_id")


def generation_requests(prompts: pl.DataFrame, levels: int, mode: str, prompt: GenerationPrompt,
                        guidance: str | None = None) -> list[Any]:
    """Per prompt (``text``, ``source``, ``task``): its task's instruction, and the source as the documents
    where the task has them (document QA)."""
    rows = list(zip(prompts["text"], prompts["source"], prompts["task"]))
    if mode == "joint":
        return [prompt.joint_request(t, levels, guidance, task=task, documents=src) for t, src, task in rows]
    return [prompt.single_request(t, level, levels, guidance, task=task, documents=src)
            for t, src, task in rows for level in range(1, levels + 1)]


def fresh_draws(requests: list[Any], sample: int | None) -> list[Any]:
    """The same requests asking for sample ``sample`` (decoding parameter ``seed``); unchanged for None."""
    if sample is None:
        return requests
    return [dataclasses.replace(r, params={**r.params, "seed": int(sample)}) for r in requests]


def texts_by_level(results: list[Any], n_prompts: int, levels: int, mode: str) -> list[dict[int, tuple[str | None, str | None]]]:
    """Per prompt: level -> (text, error)."""
    out = []
    for i in range(n_prompts):
        if mode == "separate":
            chunk = results[i * levels:(i + 1) * levels]
            out.append({lv: (r.value["text"], None) if r.ok else (None, r.error) for lv, r in zip(range(1, levels + 1), chunk)})
            continue
        r = results[i]
        if not r.ok:
            out.append({lv: (None, r.error) for lv in range(1, levels + 1)})
            continue
        got: dict[int, list[str]] = defaultdict(list)
        for item in r.value["responses"]:
            got[int(item["level"])].append(item["text"])
        out.append({lv: (got[lv][0], None) if len(got[lv]) == 1 else
                    (None, f"invalid_reply: level {lv} appears {len(got[lv])} time(s) in the reply") for lv in range(1, levels + 1)})
    return out


def level_pairs(gen_rows: list[dict[str, Any]], labeler: str, prompts_dir: str) -> pa.Table:
    """C(K,2) pairs per prompt over its successful generations: A = the higher level, preferred."""
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in gen_rows:
        if g["response_id"] is not None:
            by_prompt[g["prompt_id"]].append(g)
    rows = []
    for pid, gens in by_prompt.items():
        for low, high in itertools.combinations(sorted(gens, key=lambda g: g["level"]), 2):
            if low["response_id"] == high["response_id"]:
                continue  # the same text at two levels says nothing about preference
            rows.append({
                "pair_id": ids.pair_id(DATASET, labeler, "generation", high["task"], storage.basename(prompts_dir),
                                       high["_row"], high["response_id"], low["response_id"]),
                "task": high["task"], "prompt_id": pid, "response_a_id": high["response_id"],
                "response_b_id": low["response_id"], "label": "a", "labeler": labeler, "setting": "generation",
                "dataset": DATASET, "source_file": prompts_dir, "source_row": high["_row"],
            })
    return pa.Table.from_pylist(rows, schema=schema.PAIRS)


def generate(
    prompts: str, llm: str, output: str, *, levels: int = 5, mode: str = "joint", check_llm: str | None = None,
    task: str | None = None, endpoints: str | None = None, cache_dir: str | None = None, max_cost: float | None = None,
    dry_run: bool = False, labeler: str | None = None, rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    address: str | None = None, progress: bool | None = None, say: Callable[[str], None] | None = None,
    prompt: GenerationPrompt = GenerationPrompt(), rating: RatingPrompt = RatingPrompt(), guidance: str | None = None,
    sample: int | None = None,
) -> GenerateSummary:
    if levels < 2:
        raise ConfigError(f"--levels must be at least 2 (pairs compare levels), got {levels}")
    if mode not in MODES:
        raise ConfigError(f"unknown generation mode {mode!r}; expected one of {', '.join(MODES)}")
    step = LLMStep("generate", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost, dry_run=dry_run,
                   progress=progress, say=say)
    endpoint = step.endpoint(llm)
    checker = step.endpoint(check_llm) if check_llm else None
    labeler = labeler or endpoint.model
    frame = prompt_tasks(prompts, task)
    requests = generation_requests(frame, levels, mode, prompt, guidance)  # guidance is in the prompt, so the cache key
    requests = fresh_draws(requests, sample)
    summary = GenerateSummary(output=output, generator=labeler, n_prompts=frame.height)
    summary.llm = step.records
    # Ray only when a request must be sent: a fully cached rerun or a dry run never waits for it.
    with step.engine("generator", endpoint, desc="generate", connect=lambda: ensure_ray(address)) as engine:
        engine.project([requests])
        if checker is not None:
            # The texts to rate do not exist yet: size them at the generation's per-response token cap.
            placeholder = " ".join(["word"] * prompt.max_tokens_per_response)
            step.plan("checker", checker, [rating.request(t, f"{placeholder} {lv}", task=task, documents=src)
                                           for t, src, task in zip(frame["text"], frame["source"], frame["task"])
                                           for lv in range(1, levels + 1)], "rated texts sized at the generation cap")
        if step.announce():
            summary.dry_run = step.projections
            return summary
        results = engine.run(requests)

    per_prompt = texts_by_level(results, frame.height, levels, mode)
    gen_rows: list[dict[str, Any]] = []
    responses: dict[str, tuple[str, str]] = {}  # response_id -> (prompt_id, text)
    rejected: dict[str, list] = defaultdict(list)
    for row_index, (row, by_level) in enumerate(zip(frame.iter_rows(named=True), per_prompt)):
        for lv in range(1, levels + 1):
            text, error = by_level[lv]
            rid = ids.response_id(row["prompt_id"], text) if text is not None else None
            if rid is not None:
                responses[rid] = (row["prompt_id"], text)
            else:
                summary.n_failed += 1
                for name, value in zip(schema.REJECTED.names, (prompts, row_index, f"level {lv}", f"generation failed: {error}", "skipped")):
                    rejected[name].append(value)
            gen_rows.append({"prompt_id": row["prompt_id"], "task": row["task"], "generator": labeler, "level": lv,
                             "response_id": rid, "error": error, "rating": None, "rating_error": None, "_text": text,
                             "_prompt": row["text"], "_source": row["source"], "_row": row_index})

    pairs = level_pairs(gen_rows, labeler, prompts)

    if checker is not None:
        rated = [g for g in gen_rows if g["response_id"] is not None]
        with step.engine("checker", checker, desc="generate (check)",
                         connect=lambda: ensure_ray(address)) as check_engine:
            check_results = check_engine.run([rating.request(g["_prompt"], g["_text"], task=g["task"], documents=g["_source"])
                                              for g in rated])
        for g, r in zip(rated, check_results):
            g["rating"], g["rating_error"] = (float(r.value["rating"]), None) if r.ok else (None, r.error)
        for task_name in sorted({g["task"] for g in gen_rows}):  # a task whose generations all failed: n_rated 0
            scored = [(g["prompt_id"], g["level"], g["rating"]) for g in rated
                      if g["task"] == task_name and g["rating"] is not None]
            summary.check.append({"generator": labeler, "checker": checker.model, "task": task_name, "levels": levels,
                                  **manipulation.check_row(scored)})

    summary.n_responses = len(responses)
    summary.n_pairs = pairs.num_rows
    used = pl.DataFrame({"prompt_id": sorted({pid for pid, _ in responses.values()})}, schema={"prompt_id": pl.String})
    tables = {
        "prompts": frame.join(used, on="prompt_id", how="semi").select("prompt_id", "text", "source").to_arrow(),
        "responses": pa.Table.from_pylist(
            [{"response_id": rid, "prompt_id": pid, "text": text} for rid, (pid, text) in sorted(responses.items())],
            schema=schema.RESPONSES),
        "pairs": pairs,
        "rejected": pa.Table.from_pydict(dict(rejected), schema=schema.REJECTED) if rejected else schema.REJECTED.empty_table(),
    }
    extra = {"generations": pa.Table.from_pylist([{k: g[k] for k in schema.GENERATIONS.names} for g in gen_rows],
                                                 schema=schema.GENERATIONS)}
    if checker is not None:
        extra["manipulation_check"] = pa.Table.from_pylist(summary.check, schema=schema.MANIPULATION_CHECK)
    manifest = {
        "stage": "generate", "input": prompts, "endpoint": endpoint.name, "model": endpoint.model, "labeler": labeler,
        "setting": "generation", "levels": levels, "mode": mode, "prompt_version": prompt.version,
        "prompt_versions": {t: frame_for(t).versioned(prompt.version) for t in sorted(set(frame["task"]))},
        **({"guidance": guidance} if guidance else {}), **({"sample": sample} if sample is not None else {}),
        "check": None if checker is None else {"endpoint": checker.name, "model": checker.model,
                                               "prompt_version": rating.version,
                                               "prompt_versions": {t: frame_for(t).versioned(rating.version)
                                                                   for t in sorted(set(frame["task"]))}},
        "counts": {"prompts": summary.n_prompts, "responses": summary.n_responses, "pairs": summary.n_pairs,
                   "failed": summary.n_failed},
        "dry_run": step.projections, "llm": step.records,
    }
    write_ingest_shaped(output, tables, extra, manifest, rows_per_shard)
    return summary
