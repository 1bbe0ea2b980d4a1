"""``profile-dist improve feedback``: tell a generator where its quality levels disagree with humans, let it
regenerate with that guidance, and measure the change against resampling noise on held-out prompts.

```
profile-dist improve feedback --results DIR --llm GEN --output OUT [--top 2] [--template feedback/v2]
                              [--reference human/human] [--split-seed 0] [--sample 1]
                              [--annotate-llm EP] [--max-cost USD] [--dry-run]
```

1. **Split.** The audit's prompts are split in two, seeded (``improve.split``): the generator's prompts
   halved exactly, any other prompt separately. Every pairs directory of the audit is copied per half.
2. **Select** on the selection half only: a reduce over its pairs gives every factor's misalignment
   d = tau_generation - tau_human with an interval from shared replicates; the ``--top`` largest |d|
   whose interval excludes 0 are chosen. Picking the largest |d| and re-measuring on the same prompts
   would show a fall with no real effect (regression to the mean); the held-out half has no such bias.
3. **Guidance.** A versioned template (``improve.templates``) writes one line per chosen factor, its
   action from the humans' own tau (``templates.action_for``).
4. **Regenerate** on the held-out half, twice, both fresh draws (``generate(sample=S)``: a ``seed``
   decoding parameter, in the cache key): *guided* with the guidance, labelled ``<labeler>+feedback``,
   and *control* without it, ``<labeler>+resample``. The control is what resampling alone changes.
5. **Measure.** One reduce over the held-out half of the audit plus both new generations, the prompt as
   the bootstrap unit (a prompt weighs the same in every arm), gives human, before, guided and control on
   shared replicates: guided - before, control - before and guided - control, each with its interval.
   guided - control is the effect of the guidance net of resampling.

Outputs under OUT: ``split.parquet`` (prompt_id, half), ``split/`` (the halves' pairs directories),
``selection/`` (the selection half's reduce), ``generate/{guided,control}``, ``annotations/{guided,control}``,
``results/`` (the held-out reduce), ``feedback_factors.parquet`` (FEEDBACK_FACTORS),
``feedback_alignment.parquet`` (FEEDBACK_ALIGNMENT), ``feedback_changes.parquet`` (FEEDBACK_CHANGES),
``feedback.md`` and ``_manifest.json``. One task per run: an audit with several tasks for the generator
needs ``--task``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import polars as pl
import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.workflows.improve.compare import (HIGHER_IS_BETTER, Audit, Source, arm_alignment, ci_fields, fmt, num,
                                          reference_source, tau_with_interval, with_interval)
from profile_dist.workflows.improve.split import HALVES, audit_prompt_ids, split_prompts, split_table, write_subset
from profile_dist.prompts.guidance import action_for, get_template

__all__ = ["Audit", "HIGHER_IS_BETTER", "improve_feedback", "misalignments", "reference_source"]

ARMS = ("before", "guided", "control")
#: (name, minuend, subtrahend): guided - control is the guidance's effect net of resampling noise.
CONTRASTS = (("guided-before", "guided", "before"), ("control-before", "control", "before"),
             ("guided-control", "guided", "control"))
#: Bootstrap unit of the split reduces: a prompt's generation pairs are one cluster, and with the prompt
#: as the unit a prompt weighs the same in every arm, so differences between arms are paired by prompt.
UNIT = "prompt"
DEFAULT_TEMPLATE = "feedback/v2"

FEEDBACK_FACTORS = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("factor", pa.string(), nullable=False),
    pa.field("guided", pa.bool_(), nullable=False),  # the guidance named this factor
    pa.field("action", pa.string(), nullable=True),  # hold / more / less when guided
    *ci_fields("tau_human"),
    *[f for arm in ARMS for f in ci_fields(f"tau_{arm}")],
    *[pa.field(f"misalignment_{arm}", pa.float64(), nullable=True) for arm in ARMS],  # |tau_arm - tau_human|
])

FEEDBACK_ALIGNMENT = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("reference", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),  # one of schema.ALIGNMENT_METRICS
    pa.field("higher_is_closer", pa.bool_(), nullable=False),
    *[f for arm in ARMS for f in ci_fields(arm)],
])

FEEDBACK_CHANGES = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("quantity", pa.string(), nullable=False),  # tau | misalignment | alignment
    pa.field("item", pa.string(), nullable=False),  # the factor (tau, misalignment) or the metric (alignment)
    pa.field("contrast", pa.string(), nullable=False),  # one of CONTRASTS' names
    *ci_fields("value"),  # minuend - subtrahend, replicate by replicate for the interval
])


@dataclass
class Misalignment:
    factor: str
    tau_human: float
    tau_generation: float
    diff: float  # tau_generation - tau_human
    ci_low: float | None
    ci_high: float | None
    human_ci: tuple[float | None, float | None]

    @property
    def significant(self) -> bool:
        return self.ci_low is not None and (self.ci_low > 0 or self.ci_high < 0)

    @property
    def action(self) -> str:
        return action_for(self.tau_human, self.human_ci)


def misalignments(audit: Audit, reference: Source, generator: Source, task: str) -> list[Misalignment]:
    """Every factor's tau_generation - tau_human with its shared-replicate interval, largest |d| first."""
    out = []
    for factor in audit.factors:
        h, g = audit.tau(reference, task, factor), audit.tau(generator, task, factor)
        if np.isnan(h) or np.isnan(g):
            continue
        low, high = audit.interval(audit.reps(generator, task, factor) - audit.reps(reference, task, factor))
        out.append(Misalignment(factor, h, g, g - h, low, high, audit.tau_ci(reference, task, factor)))
    return sorted(out, key=lambda m: (-abs(m.diff), m.factor))


def comparison_tables(audit: Audit, reference: Source, arms: dict[str, Source], task: str, guided: dict[str, str],
                      alignment_factors: list[str]) -> tuple[pa.Table, pa.Table, pa.Table]:
    """Per factor, per alignment metric (over ``alignment_factors``), and per contrast of CONTRASTS:
    intervals from shared replicates."""
    factor_rows, change_rows = [], []
    for factor in audit.factors:
        h, rh = audit.tau(reference, task, factor), audit.reps(reference, task, factor)
        tau = {arm: audit.tau(src, task, factor) for arm, src in arms.items()}
        reps = {arm: audit.reps(src, task, factor) for arm, src in arms.items()}
        row = {"task": task, "factor": factor, "guided": factor in guided, "action": guided.get(factor),
               **tau_with_interval(audit, "tau_human", reference, task, factor)}
        for arm in ARMS:
            row.update(tau_with_interval(audit, f"tau_{arm}", arms[arm], task, factor))
            row[f"misalignment_{arm}"] = num(abs(tau[arm] - h))
        factor_rows.append(row)
        for name, x, y in CONTRASTS:
            change_rows.append({"task": task, "quantity": "tau", "item": factor, "contrast": name,
                                **with_interval(audit, "value", tau[x] - tau[y], reps[x] - reps[y])})
            change_rows.append({"task": task, "quantity": "misalignment", "item": factor, "contrast": name,
                                **with_interval(audit, "value", abs(tau[x] - h) - abs(tau[y] - h),
                                                np.abs(reps[x] - rh) - np.abs(reps[y] - rh))})
    aligned = {arm: arm_alignment(audit, reference, src, task, alignment_factors) for arm, src in arms.items()}
    alignment_rows = []
    for metric in schema.ALIGNMENT_METRICS:
        row = {"task": task, "reference": "/".join(reference), "metric": metric, "higher_is_closer": HIGHER_IS_BETTER[metric]}
        for arm in ARMS:
            row.update(with_interval(audit, arm, aligned[arm].point[metric], aligned[arm].samples[metric]))
        alignment_rows.append(row)
        for name, x, y in CONTRASTS:
            change_rows.append({"task": task, "quantity": "alignment", "item": metric, "contrast": name, **with_interval(
                audit, "value", aligned[x].point[metric] - aligned[y].point[metric],
                aligned[x].samples[metric] - aligned[y].samples[metric])})
    return (pa.Table.from_pylist(factor_rows, schema=FEEDBACK_FACTORS),
            pa.Table.from_pylist(alignment_rows, schema=FEEDBACK_ALIGNMENT),
            pa.Table.from_pylist(change_rows, schema=FEEDBACK_CHANGES))


def _generation_input(audit: Audit, endpoint: Any, labeler: str | None) -> tuple[str, dict[str, Any]]:
    """The audit's pairs directory written by `generate` for this generator, and its manifest."""
    found = []
    for d in audit.manifest["pairs"]:
        path = storage.join(d, "_manifest.json")
        if not storage.exists(path):
            continue
        m = storage.read_json(path)
        if m.get("stage") == "generate" and not m.get("guidance") and (
                m.get("labeler") == labeler if labeler else m.get("endpoint") == endpoint.name or m.get("model") == endpoint.model):
            found.append((d, m))
    if len(found) != 1:
        raise ConfigError(f"expected one unguided `generate` output for {labeler or endpoint.name} among the audit's "
                          f"pairs directories ({', '.join(audit.manifest['pairs'])}); found {len(found)}"
                          + ("" if labeler else "; pass --labeler"))
    return found[0]


def markdown(factors: pa.Table, alignment: pa.Table, changes: pa.Table, guidance: str, labels: dict[str, str],
             split: dict[str, int], alignment_factors: list[str]) -> str:
    change = {(r["quantity"], r["item"], r["contrast"]): r for r in changes.to_pylist()}

    def c(quantity: str, item: str, contrast: str) -> str:
        r = change[(quantity, item, contrast)]
        return fmt(r["value"], r["value_ci_low"], r["value_ci_high"])

    lines = ["# Factor-level feedback: guided and unguided regeneration on held-out prompts", "",
             f"Factors chosen on {split['select']} prompts, measured on the other {split['measure']}. "
             f"Before: `{labels['before']}` (the audit's replies); guided: `{labels['guided']}` (a fresh sample with "
             f"this guidance); control: `{labels['control']}` (a fresh sample without it):", "",
             *[f"> {line}" for line in guidance.splitlines()], "",
             "## Per factor (tau: Kendall's tau of the factor with the preferred response)", "",
             "| factor | guided | tau human | tau before | tau guided | tau control |", "|---|---|---|---|---|---|"]
    for r in factors.to_pylist():
        lines.append(f"| {r['factor']} | {r['action'] or ''} | "
                     + " | ".join(fmt(r[f"tau_{a}"], r[f"tau_{a}_ci_low"], r[f"tau_{a}_ci_high"]) for a in ("human", *ARMS)) + " |")
    names = [name for name, _, _ in CONTRASTS]
    lines += ["", "## Change of misalignment |tau - tau_human| (negative: closer to humans)", "",
              "| factor | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| {r['factor']} | " + " | ".join(c("misalignment", r["factor"], n) for n in names) + " |"
              for r in factors.to_pylist()]
    lines += ["", f"## Alignment with humans over {', '.join(alignment_factors)}", "",
              "| metric | closer when | " + " | ".join(ARMS) + " | " + " | ".join(names) + " |",
              "|---" * (2 + len(ARMS) + len(names)) + "|"]
    for r in alignment.to_pylist():
        lines.append(f"| {r['metric']} | {'higher' if r['higher_is_closer'] else 'lower'} | "
                     + " | ".join(fmt(r[a], r[f"{a}_ci_low"], r[f"{a}_ci_high"]) for a in ARMS) + " | "
                     + " | ".join(c("alignment", r["metric"], n) for n in names) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class FeedbackSummary:
    output: str
    guidance: str = ""
    chosen: list[Misalignment] = field(default_factory=list)
    split: dict[str, int] = field(default_factory=dict)
    factors: pa.Table | None = None
    alignment: pa.Table | None = None
    changes: pa.Table | None = None
    dry_run: list[dict[str, Any]] | None = None

    def lines(self) -> list[str]:
        if self.dry_run is not None:
            return ["guidance:", *self.guidance.splitlines()]
        out = [f"feedback on {', '.join(m.factor for m in self.chosen)} (chosen on {self.split['select']} prompts, "
               f"measured on {self.split['measure']}): results in {self.output}"]
        for r in self.changes.to_pylist():
            value = fmt(r["value"], r["value_ci_low"], r["value_ci_high"])
            if r["quantity"] == "misalignment":
                out.append(f"  {r['item']}: misalignment change {r['contrast']} {value}")
            elif r["quantity"] == "alignment" and r["item"] == "mean_abs_diff":
                out.append(f"  alignment mean_abs_diff change {r['contrast']} {value}")
        return out


def improve_feedback(
    results: str, llm: str, output: str, *, endpoints: str | None = None, cache_dir: str | None = None,
    max_cost: float | None = None, dry_run: bool = False, template: str = DEFAULT_TEMPLATE, top: int = 2,
    reference: str | None = None, task: str | None = None, labeler: str | None = None, split_seed: int = 0,
    sample: int = 1, annotate_llm: str | None = None, address: str | None = None, progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> FeedbackSummary:
    from profile_dist.llm.step import LLMStep
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.generate import generate
    from profile_dist.stages.reduce import reduce

    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    chosen_template = get_template(template)
    audit = Audit.load(results)
    step = LLMStep("improve_feedback", output, endpoints=endpoints, cache_dir=cache_dir, max_cost=max_cost,
                   dry_run=dry_run, progress=progress, say=say)
    endpoint = step.endpoint(llm)
    cache = step.cache
    gen_dir, gen_manifest = _generation_input(audit, endpoint, labeler)
    before: Source = (gen_manifest["labeler"], "generation")
    tasks = sorted(t for t in audit.influence["task"].unique() if before in audit.sources(t))
    if task is None and len(tasks) != 1:
        raise ConfigError(f"{before[0]} has generation pairs for {len(tasks)} tasks ({', '.join(tasks)}); pass --task")
    task = task or tasks[0]
    ref = reference_source(audit, task, reference)
    alignment_factors = audit.alignment_factors(task)  # the audit's set, whatever the split reduces default to
    m = audit.manifest
    reduce_args = dict(factors=audit.factors, n_bootstrap=int(m["n_bootstrap"]), seed=int(m["seed"]), level=audit.level,
                       address=address, progress=progress, bootstrap_unit=UNIT)

    # 1. Split, stratified: the generator's prompts of this task are halved exactly.
    gen_pairs = pl.from_arrow(storage.read_table_dir(storage.join(gen_dir, "pairs"), schema.PAIRS)).filter(pl.col("task") == task)
    gen_prompts = set(gen_pairs["prompt_id"].to_list())
    if len(gen_prompts) < 2:
        raise ConfigError(f"{before[0]} has generation pairs for {len(gen_prompts)} prompt(s) of {task!r}; "
                          f"a selection and a held-out half need at least 2")
    halves = split_prompts([gen_prompts, audit_prompt_ids(list(m["pairs"]))], split_seed)
    storage.write_parquet_atomic(split_table(halves), storage.join(output, "split.parquet"))
    subsets: dict[str, list[str]] = {h: [] for h in HALVES}
    for half in HALVES:
        mine = {p for p, h in halves.items() if h == half}
        for i, d in enumerate(m["pairs"]):
            target = storage.join(output, "split", half, f"{i:02d}-{storage.basename(d)}")
            if write_subset(d, mine, target, {"split_half": half, "split_seed": split_seed}):
                subsets[half].append(target)
    held_out = gen_prompts & {p for p, h in halves.items() if h == "measure"}
    split_counts = {"select": len(gen_prompts) - len(held_out), "measure": len(held_out)}

    # 2. Select on the selection half only.
    selection_dir = storage.join(output, "selection")
    reduce(subsets["select"], list(m["annotations"]), selection_dir, **reduce_args)
    ranked = misalignments(Audit.load(selection_dir), ref, before, task)
    chosen = [x for x in ranked if x.significant][:top]
    if not chosen:
        raise ConfigError(f"no factor of {before[0]} differs significantly from {'/'.join(ref)} on {task!r} in the "
                          f"selection half ({split_counts['select']} prompts, {selection_dir}); nothing to feed back")
    guidance = chosen_template.render([(x.factor, x.action, x.tau_human, x.tau_generation) for x in chosen])
    summary = FeedbackSummary(output=output, guidance=guidance, chosen=chosen, split=split_counts)

    # 3. Regenerate the held-out prompts: guided and an unguided control, both fresh samples.
    prompts_dir = storage.join(output, "split", "generation_input")
    write_subset(gen_manifest["input"], held_out, prompts_dir, {"split_half": "measure", "split_seed": split_seed})
    labels = {"before": before[0], "guided": f"{before[0]}+feedback", "control": f"{before[0]}+resample"}
    generated, dry = {}, []
    for arm, arm_guidance in (("guided", guidance), ("control", None)):
        generated[arm] = storage.join(output, "generate", arm)
        gen = generate(prompts_dir, llm, generated[arm], levels=int(gen_manifest["levels"]), mode=gen_manifest["mode"],
                       task=task, endpoints=endpoints, cache_dir=cache, max_cost=step.remaining(), dry_run=dry_run,
                       labeler=labels[arm], address=address, progress=progress, say=say, guidance=arm_guidance,
                       sample=sample)
        if dry_run:
            dry += gen.dry_run
            continue
        step.records += gen.llm  # the control is bounded by what the guided arm left
    if dry_run:
        summary.dry_run = dry
        return summary

    # 4. Measure on the held-out half: human, before, guided and control in one reduce.
    annotations = {arm: storage.join(output, "annotations", arm) for arm in generated}
    for arm in generated:
        annotate(generated[arm], annotations[arm], factors=audit.factors, llm=annotate_llm, endpoints=endpoints,
                 cache_dir=cache, address=address, progress=progress)
    results_dir = storage.join(output, "results")
    reduce(subsets["measure"] + list(generated.values()), list(m["annotations"]) + list(annotations.values()),
           results_dir, **reduce_args)
    summary.factors, summary.alignment, summary.changes = comparison_tables(
        Audit.load(results_dir), ref, {arm: (labels[arm], "generation") for arm in ARMS}, task,
        {x.factor: x.action for x in chosen}, alignment_factors)
    for name, table in (("factors", summary.factors), ("alignment", summary.alignment), ("changes", summary.changes)):
        storage.write_parquet_atomic(table, storage.join(output, f"feedback_{name}.parquet"))
    storage.write_bytes_atomic(markdown(summary.factors, summary.alignment, summary.changes, guidance, labels,
                                        split_counts, alignment_factors).encode(), storage.join(output, "feedback.md"))
    storage.write_json_atomic({
        "stage": "improve_feedback", "results": results, "generation_input": gen_dir, "task": task,
        "reference": "/".join(ref), "labels": labels, "template": chosen_template.version, "guidance": guidance,
        "top": top, "sample": sample, "bootstrap_unit": UNIT, "alignment_factors": alignment_factors,
        "split": {"seed": split_seed, "table": "split.parquet", "generator_prompts": split_counts,
                  "pairs": {h: subsets[h] for h in HALVES}},
        "selection": selection_dir,
        "chosen": [{"factor": x.factor, "action": x.action, "tau_human": x.tau_human, "tau_generation": x.tau_generation,
                    "diff": x.diff, "ci_low": x.ci_low, "ci_high": x.ci_high, "human_ci": list(x.human_ci)} for x in chosen],
        "llm": step.records,
    }, storage.join(output, "_manifest.json"))
    return summary
