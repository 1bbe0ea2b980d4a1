"""``profile-dist improve best-of-n``: N candidates per prompt, a judge picks one, PROFILE says what the pick
rewards and how well that agrees with humans.

```
profile-dist improve best-of-n --prompts DIR --llm GEN --judge NAME --n N --output OUT
                               [--pick knockout|pointwise] [--task T] [--factors F ...]
                               [--human DIR ... --human-annotations DIR ...] [--max-cost USD] [--dry-run]
```

1. GEN writes N candidates per prompt (``CandidatePrompt``: one request per candidate, the index in the
   text, so each has its own cache key).
2. The judge (GEN itself for self-evaluation, or any endpoint) picks one:
   ``knockout``: a single-elimination bracket in candidate order (an odd one out gets a bye); every match is
   asked in both orders (``JudgePrompt``) and won only by a position-consistent verdict, otherwise the
   earlier candidate stays (inconsistent matches are counted). ``pointwise``: every candidate rated
   (``RatingPrompt``, 1..10); the highest wins, ties to the earlier candidate.
3. Per prompt one pair: the pick (A, preferred) against a candidate drawn uniformly from the others by a
   hash of (seed, prompt_id); labeler ``<judge model>+best-of-<N>``, setting ``evaluation``. The output is
   ingest-shaped (``picks/``), annotated, and reduced together with the human pairs when given, so the
   influence table is the factor profile of picked vs random, and the alignment table compares it with
   humans (same reduce, same CIs).
4. With humans given, the judge model also runs the generation setting on the same prompts (``generate``,
   ``--levels``), reduced with the picks and the humans (the prompt as the bootstrap unit): the picks'
   alignment with humans next to that model's generation-setting alignment, and their difference, each
   with an interval from the shared replicates (``VS_GENERATION``). That difference is what exploiting
   the generation-evaluation gap (asking the model to judge rather than to write better) buys.

Outputs under OUT: ``picks/`` (+ ``candidates.parquet``: every candidate, its rating or wins, picked),
``annotations/``, with humans ``generation/`` and ``generation_annotations/``, ``results/`` (a reduce
output), ``best_of_n_vs_generation.parquet`` (with humans), ``best_of_n.md``, ``_manifest.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import polars as pl
import pyarrow as pa

from profile_dist import ids, schema, storage
from profile_dist.errors import ConfigError
from profile_dist.workflows.improve.compare import Audit, Source, arm_alignment, ci_fields, fmt, reference_source, with_interval
from profile_dist.prompts.best_of_n import CandidatePrompt
from profile_dist.layout.results import table_path

PICKS = ("knockout", "pointwise")
DATASET = "best_of_n"

CANDIDATES = pa.schema([
    pa.field("prompt_id", pa.string(), nullable=False),
    pa.field("candidate", pa.int64(), nullable=False),  # 1..N
    pa.field("response_id", pa.string(), nullable=True),  # null when the generation failed
    pa.field("error", pa.string(), nullable=True),
    pa.field("score", pa.float64(), nullable=True),  # pointwise: the rating; knockout: matches won
    pa.field("picked", pa.bool_(), nullable=False),
])


#: Per task and alignment metric: the picks' alignment with humans, the same (judge) model's generation-setting
#: alignment, and picks - generation, each with a percentile interval over the reduce's shared replicates.
VS_GENERATION = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("reference", pa.string(), nullable=False),  # the human source, LABELER/SETTING
    pa.field("picks_source", pa.string(), nullable=False),
    pa.field("generation_source", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),  # one of schema.ALIGNMENT_METRICS
    pa.field("factors", pa.list_(pa.string()), nullable=False),  # the factors compared (the reduce's alignment set)
    *ci_fields("picks"),
    *ci_fields("generation"),
    *ci_fields("difference"),  # picks - generation
])


def vs_generation(audit: Audit, picks: Source, generation: Source) -> pa.Table:
    """VS_GENERATION rows for every task where the picks, the generation setting and one human source meet."""
    rows = []
    for task in sorted(audit.influence["task"].unique()):
        sources = audit.sources(task)
        if picks not in sources or generation not in sources or not any(s[1] == "human" for s in sources):
            continue
        reference = reference_source(audit, task, None)
        factors = audit.alignment_factors(task)
        p, g = (arm_alignment(audit, reference, arm, task, factors) for arm in (picks, generation))
        for metric in schema.ALIGNMENT_METRICS:
            rows.append({"task": task, "reference": "/".join(reference), "picks_source": "/".join(picks),
                         "generation_source": "/".join(generation), "metric": metric, "factors": list(factors),
                         **with_interval(audit, "picks", p.point[metric], p.samples[metric]),
                         **with_interval(audit, "generation", g.point[metric], g.samples[metric]),
                         **with_interval(audit, "difference", p.point[metric] - g.point[metric],
                                         p.samples[metric] - g.samples[metric])})
    return pa.Table.from_pylist(rows, schema=VS_GENERATION)


@dataclass
class Candidate:
    index: int
    text: str
    response_id: str
    score: float = 0.0


def knockout_round(contenders: list[Candidate]) -> list[tuple[Candidate, Candidate | None]]:
    """Matches of one round in candidate order; the odd one out gets a bye (None)."""
    pairs = [(contenders[i], contenders[i + 1]) for i in range(0, len(contenders) - 1, 2)]
    if len(contenders) % 2:
        pairs.append((contenders[-1], None))
    return pairs


def match_winner(first: Candidate, second: Candidate, vote_ab: str | None, vote_ba: str | None) -> tuple[Candidate, bool]:
    """(winner, consistent): the verdict shown first/second must name the same candidate in both orders."""
    a = {"1": first, "2": second}.get(vote_ab or "")
    b = {"1": second, "2": first}.get(vote_ba or "")
    if a is not None and a is b:
        return a, True
    return first, False  # tie, failure or position-inconsistent: the earlier candidate stays


def _random_other(seed: int, prompt_id: str, others: list[Candidate]) -> Candidate:
    h = int(ids.content_id("best_of_n_random", seed, prompt_id), 16)
    return others[h % len(others)]


@dataclass
class BestOfNSummary:
    output: str
    n_prompts: int = 0
    n_picked: int = 0
    n_inconsistent: int = 0
    influence: list[dict[str, Any]] = field(default_factory=list)
    alignment: list[dict[str, Any]] = field(default_factory=list)
    vs_generation: list[dict[str, Any]] = field(default_factory=list)
    llm: list[dict[str, Any]] = field(default_factory=list)
    dry_run: list[dict[str, Any]] | None = None

    def lines(self) -> list[str]:
        from profile_dist.llm.step import projection_line

        if self.dry_run is not None:
            return [projection_line(r) for r in self.dry_run]
        out = [f"best-of-n: picked {self.n_picked} of {self.n_prompts} prompts ({self.n_inconsistent} inconsistent "
               f"matches) into {self.output}"]
        out += [f"  picked vs random, {r['factor']}: tau {r['tau']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                for r in self.influence if r["tau"] is not None and r["ci_low"] is not None]
        out += [f"  alignment with {r['source_x']} ({r['metric']}): {r['value']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                for r in self.alignment if r["value"] is not None and r["ci_low"] is not None]
        out += [f"  {r['metric']} with {r['reference']}: picks {fmt(r['picks'], r['picks_ci_low'], r['picks_ci_high'])}, "
                f"generation setting {fmt(r['generation'], r['generation_ci_low'], r['generation_ci_high'])}, "
                f"difference {fmt(r['difference'], r['difference_ci_low'], r['difference_ci_high'])}"
                for r in self.vs_generation]
        return out


def best_of_n(
    prompts: str, llm: str, judge_llm: str, output: str, *, n: int = 4, pick: str = "knockout", task: str | None = None,
    factors: list[str] | None = None, human: list[str] | None = None, human_annotations: list[str] | None = None,
    endpoints: str | None = None, cache_dir: str | None = None, max_cost: float | None = None, dry_run: bool = False,
    seed: int = 0, n_bootstrap: int = 200, levels: int = 5, annotate_llm: str | None = None, address: str | None = None,
    progress: bool | None = None, say: Callable[[str], None] | None = None,
) -> BestOfNSummary:
    from profile_dist.layout import write_ingest_shaped
    from profile_dist.llm.step import LLMStep
    from profile_dist.prompts.settings import JudgePrompt, RatingPrompt
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.generate import generate, prompt_tasks
    from profile_dist.stages.reduce import reduce
    from profile_dist.stages.runtime import ensure_ray

    if n < 2:
        raise ConfigError(f"--n must be at least 2 (a pick needs alternatives), got {n}")
    if pick not in PICKS:
        raise ConfigError(f"unknown --pick {pick!r}; expected one of {', '.join(PICKS)}")
    if human and levels < 2:
        raise ConfigError(f"--levels must be at least 2 (the judge model's generation setting compares levels), got {levels}")
    if bool(human) != bool(human_annotations):
        raise ConfigError("--human and --human-annotations go together (the human pairs and their annotations)")
    step = LLMStep("best_of_n", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost, dry_run=dry_run,
                   progress=progress, say=say)
    generator, judge_ep = step.endpoint(llm), step.endpoint(judge_llm)
    cache = step.cache
    frame = prompt_tasks(prompts, task)
    cand_prompt, judge_prompt, rating = CandidatePrompt(), JudgePrompt(), RatingPrompt()
    requests = [cand_prompt.request(t, k, n) for t in frame["text"] for k in range(1, n + 1)]
    labeler = f"{judge_ep.model}+best-of-{n}"
    summary = BestOfNSummary(output=output, n_prompts=frame.height)
    summary.llm = step.records
    ensure_ray(address)
    with step.engine("generator", generator, desc="best-of-n (candidates)") as engine:
        engine.project([requests])
        placeholder = " ".join(["word"] * cand_prompt.max_tokens)  # candidates do not exist yet: sized at the cap
        planned = ([judge_prompt.request(t, placeholder, placeholder + " x") for t in frame["text"] for _ in range(2 * (n - 1))]
                   if pick == "knockout" else [rating.request(t, f"{placeholder} {k}") for t in frame["text"] for k in range(n)])
        step.plan("judge", judge_ep, planned, "judged texts sized at the candidate cap")
        if step.announce():
            summary.dry_run = list(step.projections)
            if human:
                summary.dry_run += generate(prompts, judge_llm, storage.join(output, "generation"), levels=levels,
                                            task=task, endpoints=endpoints, cache_dir=cache, dry_run=True,
                                            address=address, progress=progress, say=say).dry_run
            return summary
        results = engine.run(requests)

    rows = list(frame.iter_rows(named=True))
    pool: list[list[Candidate]] = []
    cand_rows: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        seen, mine = set(), []
        for k in range(1, n + 1):
            r = results[i * n + k - 1]
            rid = ids.response_id(row["prompt_id"], r.value["text"]) if r.ok else None
            cand_rows.append({"prompt_id": row["prompt_id"], "candidate": k, "response_id": rid,
                              "error": r.error if not r.ok else (None if rid not in seen else "duplicate of an earlier candidate"),
                              "score": None, "picked": False})
            if rid is not None and rid not in seen:
                seen.add(rid)
                mine.append(Candidate(k, r.value["text"], rid))
        pool.append(mine)

    # The judge's cost record adds up every knockout round, and later spending is bounded by what is left.
    with step.engine("judge", judge_ep, desc=f"best-of-n ({pick})") as jengine:
        if pick == "pointwise":
            flat = [(i, c) for i, mine in enumerate(pool) for c in mine]
            ratings = jengine.run([rating.request(rows[i]["text"], c.text) for i, c in flat])
            for (i, c), r in zip(flat, ratings):
                c.score = float(r.value["rating"]) if r.ok else float("nan")
            winners = [max((c for c in mine if c.score == c.score), key=lambda c: (c.score, -c.index), default=None)
                       for mine in pool]
        else:
            alive = [list(mine) for mine in pool]
            while any(len(a) > 1 for a in alive):
                matches = [(i, m) for i, a in enumerate(alive) if len(a) > 1 for m in knockout_round(a)]
                played = [(i, x, y) for i, (x, y) in matches if y is not None]
                reqs = [req for i, x, y in played for req in (judge_prompt.request(rows[i]["text"], x.text, y.text),
                                                              judge_prompt.request(rows[i]["text"], y.text, x.text))]
                votes = jengine.run(reqs)
                next_alive: dict[int, list[Candidate]] = {i: [] for i, a in enumerate(alive) if len(a) > 1}
                v = iter(votes)
                for i, (x, y) in matches:
                    if y is None:
                        next_alive[i].append(x)
                        continue
                    ab, ba = next(v), next(v)
                    winner, consistent = match_winner(x, y, ab.value["preferred"] if ab.ok else None,
                                                      ba.value["preferred"] if ba.ok else None)
                    summary.n_inconsistent += not consistent
                    winner.score += 1
                    next_alive[i].append(winner)
                for i, a in next_alive.items():
                    alive[i] = a
            winners = [a[0] if a else None for a in alive]

    by_key = {(r["prompt_id"], r["candidate"]): r for r in cand_rows}
    pairs, responses = [], {}
    for i, (row, mine, winner) in enumerate(zip(rows, pool, winners)):
        for c in mine:
            responses[c.response_id] = (row["prompt_id"], c.text)
            by_key[(row["prompt_id"], c.index)]["score"] = c.score if c.score == c.score else None
        others = [c for c in mine if winner is not None and c is not winner]
        if winner is None or not others:
            continue
        by_key[(row["prompt_id"], winner.index)]["picked"] = True
        other = _random_other(seed, row["prompt_id"], others)
        pairs.append({"pair_id": ids.pair_id(DATASET, labeler, "evaluation", row["task"], storage.basename(prompts), i,
                                             winner.response_id, other.response_id),
                      "task": row["task"], "prompt_id": row["prompt_id"], "response_a_id": winner.response_id,
                      "response_b_id": other.response_id, "label": "a", "labeler": labeler, "setting": "evaluation",
                      "dataset": DATASET, "source_file": prompts, "source_row": i})
    summary.n_picked = len(pairs)
    if not pairs:
        raise ConfigError(f"best-of-n picked nothing: every prompt lacked two distinct successful candidates "
                          f"(see {storage.join(output, 'picks', 'candidates.parquet')})")
    picks = storage.join(output, "picks")
    used = pl.DataFrame({"prompt_id": sorted({p for p, _ in responses.values()})}, schema={"prompt_id": pl.String})
    write_ingest_shaped(picks, {
        "prompts": frame.join(used, on="prompt_id", how="semi").select("prompt_id", "text", "source").to_arrow(),
        "responses": pa.Table.from_pylist([{"response_id": r, "prompt_id": p, "text": t} for r, (p, t) in sorted(responses.items())],
                                          schema=schema.RESPONSES),
        "pairs": pa.Table.from_pylist(pairs, schema=schema.PAIRS), "rejected": schema.REJECTED.empty_table(),
    }, {"candidates": pa.Table.from_pylist(cand_rows, schema=CANDIDATES)}, {
        "stage": "best_of_n", "input": prompts, "generator": {"endpoint": generator.name, "model": generator.model,
                                                              "prompt_version": cand_prompt.version},
        "judge": {"endpoint": judge_ep.name, "model": judge_ep.model, "pick": pick,
                  "prompt_version": judge_prompt.version if pick == "knockout" else rating.version},
        "n": n, "seed": seed, "labeler": labeler, "setting": "evaluation",
        "counts": {"prompts": frame.height, "picked": len(pairs), "inconsistent_matches": summary.n_inconsistent},
        "dry_run": step.projections, "llm": step.records,
    }, 100_000)
    annotations = storage.join(output, "annotations")
    annotate(picks, annotations, factors=factors, llm=annotate_llm, endpoints=endpoints, cache_dir=cache, address=address,
             progress=progress)
    pairs_dirs, annotation_dirs = [picks, *(human or [])], [annotations, *(human_annotations or [])]
    if human:  # the judge model's own generation setting on the same prompts, for the comparison with the picks
        generation, gen_annotations = storage.join(output, "generation"), storage.join(output, "generation_annotations")
        gen = generate(prompts, judge_llm, generation, levels=levels, task=task, endpoints=endpoints, cache_dir=cache,
                       max_cost=step.remaining(), address=address, progress=progress)
        step.records += gen.llm  # summary.llm is step.records
        annotate(generation, gen_annotations, factors=factors, llm=annotate_llm, endpoints=endpoints, cache_dir=cache,
                 address=address, progress=progress)
        pairs_dirs.insert(1, generation)
        annotation_dirs.insert(1, gen_annotations)
    results_dir = storage.join(output, "results")
    # The prompt as the bootstrap unit: a prompt's C(K, 2) generation pairs are one cluster, and it weighs the
    # same in the picks, the generation setting and the human pairs, so their differences are paired.
    reduce(pairs_dirs, annotation_dirs, results_dir, factors=factors, n_bootstrap=n_bootstrap, seed=seed,
           address=address, progress=progress, bootstrap_unit="prompt")
    if human and n_bootstrap:
        table = vs_generation(Audit.load(results_dir), (labeler, "evaluation"), (judge_ep.model, "generation"))
        storage.write_parquet_atomic(table, storage.join(output, "best_of_n_vs_generation.parquet"))
        summary.vs_generation = table.to_pylist()
    influence = pl.from_arrow(storage.read_parquet(table_path(results_dir, "influence")))
    summary.influence = influence.filter(pl.col("labeler") == labeler).sort("factor").to_dicts()
    alignment = pl.from_arrow(storage.read_parquet(table_path(results_dir, "alignment")))
    me = f"{labeler}/evaluation"
    summary.alignment = alignment.filter(((pl.col("source_x") == me) | (pl.col("source_y") == me))
                                         & (pl.col("source_x").str.ends_with("/human") | pl.col("source_y").str.ends_with("/human"))).to_dicts()
    lines = [f"# Best-of-{n}: {pick} by {judge_ep.model} over candidates by {generator.model}", "",
             "## Factor profile of the picked vs a random other candidate", "", "| factor | tau | CI | pairs |", "|---|---|---|---|"]
    lines += [f"| {r['factor']} | {fmt(r['tau'])} | {fmt(r['ci_low'])}, {fmt(r['ci_high'])} | {r['n_pairs']} |"
              for r in summary.influence]
    if summary.alignment:
        lines += ["", "## Alignment of the picks' profile with humans", "", "| task | metric | value | CI |", "|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['metric']} | {fmt(r['value'])} | {fmt(r['ci_low'])}, {fmt(r['ci_high'])} |"
                  for r in summary.alignment]
    if summary.vs_generation:
        lines += ["", f"## The picks against {judge_ep.model}'s generation setting (what exploiting the gap buys)", "",
                  "Alignment with humans over the factors, intervals from the shared replicates; for mean_abs_diff "
                  "lower is closer.", "",
                  "| task | metric | picks | generation setting | picks - generation |", "|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['metric']} | {fmt(r['picks'], r['picks_ci_low'], r['picks_ci_high'])} | "
                  f"{fmt(r['generation'], r['generation_ci_low'], r['generation_ci_high'])} | "
                  f"{fmt(r['difference'], r['difference_ci_low'], r['difference_ci_high'])} |" for r in summary.vs_generation]
    storage.write_bytes_atomic(("\n".join(lines) + "\n").encode(), storage.join(output, "best_of_n.md"))
    storage.write_json_atomic({"stage": "improve_best_of_n", "prompts": prompts, "n": n, "pick": pick, "labeler": labeler,
                               "human": human, "human_annotations": human_annotations, "bootstrap_unit": "prompt",
                               "generation": {"endpoint": judge_ep.name, "model": judge_ep.model, "levels": levels}
                               if human else None, "llm": summary.llm},
                              storage.join(output, "_manifest.json"))
    return summary
