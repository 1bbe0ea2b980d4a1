"""``profile-dist improve feedback``: tell a generator where its quality levels disagree with humans, let it
regenerate with that guidance, and measure the change with the same PROFILE reduce.

```
profile-dist improve feedback --results DIR --llm GEN --output OUT [--top 2] [--template feedback/v1]
                              [--reference human/human] [--annotate-llm EP] [--max-cost USD] [--dry-run]
```

1. From the audit (a reduce output that includes GEN's generation-setting pairs), every factor's
   misalignment d = tau_generation - tau_human, with its interval from the reduce's shared bootstrap
   replicates; the ``--top`` largest |d| whose interval excludes 0 are chosen.
2. A versioned template (``profile_dist.prompts.guidance``) turns them into guidance lines.
3. ``generate`` runs again on the same prompts, levels and mode with that guidance in the prompt (so in the
   reply cache key), labelled ``<model>+feedback``; its responses are annotated with the audit's factors.
4. One reduce over the audit's inputs plus the new generations (same factors, bootstrap and seed) gives
   tau_human, tau_before and tau_after on shared replicates, so the before/after change of every
   factor's |d| and of every alignment metric comes with a percentile interval.

Outputs under OUT: ``generate/``, ``annotations/``, ``results/`` (a reduce output), ``feedback_factors.parquet``
(FEEDBACK_FACTORS), ``feedback_alignment.parquet`` (FEEDBACK_ALIGNMENT), ``feedback.md`` and
``_manifest.json`` (guidance text, template version, chosen factors, inputs, LLM cost).
One task per run: an audit with several tasks for the generator needs ``--task``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import polars as pl
import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.analysis import stats
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.prompts.guidance import get_template
from profile_dist.report.replicates import load_replicate_taus

FEEDBACK_FACTORS = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("factor", pa.string(), nullable=False),
    pa.field("guided", pa.bool_(), nullable=False),  # the guidance named this factor
    pa.field("action", pa.string(), nullable=True),  # hold / more / less when guided
    pa.field("tau_human", pa.float64(), nullable=True),
    pa.field("tau_before", pa.float64(), nullable=True),
    pa.field("tau_before_ci_low", pa.float64(), nullable=True),
    pa.field("tau_before_ci_high", pa.float64(), nullable=True),
    pa.field("tau_after", pa.float64(), nullable=True),
    pa.field("tau_after_ci_low", pa.float64(), nullable=True),
    pa.field("tau_after_ci_high", pa.float64(), nullable=True),
    pa.field("tau_change", pa.float64(), nullable=True),  # after - before
    pa.field("tau_change_ci_low", pa.float64(), nullable=True),
    pa.field("tau_change_ci_high", pa.float64(), nullable=True),
    pa.field("misalignment_before", pa.float64(), nullable=True),  # |tau_before - tau_human|
    pa.field("misalignment_after", pa.float64(), nullable=True),
    pa.field("misalignment_change", pa.float64(), nullable=True),  # after - before (negative: closer to humans)
    pa.field("misalignment_change_ci_low", pa.float64(), nullable=True),
    pa.field("misalignment_change_ci_high", pa.float64(), nullable=True),
])

FEEDBACK_ALIGNMENT = pa.schema([
    pa.field("task", pa.string(), nullable=False),
    pa.field("reference", pa.string(), nullable=False),
    pa.field("metric", pa.string(), nullable=False),  # one of schema.ALIGNMENT_METRICS
    pa.field("before", pa.float64(), nullable=True),
    pa.field("before_ci_low", pa.float64(), nullable=True),
    pa.field("before_ci_high", pa.float64(), nullable=True),
    pa.field("after", pa.float64(), nullable=True),
    pa.field("after_ci_low", pa.float64(), nullable=True),
    pa.field("after_ci_high", pa.float64(), nullable=True),
    pa.field("change", pa.float64(), nullable=True),  # after - before, replicate by replicate
    pa.field("change_ci_low", pa.float64(), nullable=True),
    pa.field("change_ci_high", pa.float64(), nullable=True),
])

#: Metrics where a larger value means closer to humans; mean_abs_diff is the other way round.
HIGHER_IS_BETTER = {"kendall_tau_b": True, "spearman_rho": True, "sign_agreement": True, "top_k_overlap": True,
                    "mean_abs_diff": False}

Source = tuple[str, str]  # labeler, setting


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


@dataclass
class Audit:
    """The parts of a reduce output feedback reads: its manifest, point taus and replicate taus."""

    results: str
    manifest: dict[str, Any]
    influence: pl.DataFrame
    replicates: dict[tuple[str, str, str, str], np.ndarray]

    @classmethod
    def load(cls, results: str) -> "Audit":
        path = storage.join(results, "_manifest.json")
        if not storage.exists(path):
            raise BadInputError(path, None, "_manifest.json", "missing; is this the output directory of `profile-dist reduce`?")
        manifest = storage.read_json(path)
        if manifest.get("stage") != "reduce":
            raise BadInputError(path, None, "stage", f"is {manifest.get('stage')!r}, expected 'reduce'")
        influence = pl.from_arrow(storage.read_parquet(storage.join(results, "influence.parquet"), schema.INFLUENCE))
        replicates = load_replicate_taus(results)
        if not replicates:
            raise ConfigError(f"{results} has no bootstrap replicates (reduce --bootstrap 0); feedback needs them for its intervals")
        return cls(results, manifest, influence, replicates)

    @property
    def factors(self) -> list[str]:
        return list(self.manifest["factors"])

    @property
    def level(self) -> float:
        return float(self.manifest.get("confidence_level", 0.95))

    def tau(self, source: Source, task: str, factor: str) -> float:
        rows = self.influence.filter((pl.col("labeler") == source[0]) & (pl.col("setting") == source[1])
                                     & (pl.col("task") == task) & (pl.col("factor") == factor))
        value = rows["tau"][0] if rows.height else None
        return np.nan if value is None else float(value)

    def reps(self, source: Source, task: str, factor: str) -> np.ndarray:
        some = next(iter(self.replicates.values()))
        return self.replicates.get((source[0], source[1], task, factor), np.full(len(some), np.nan))

    def interval(self, samples: np.ndarray) -> tuple[float | None, float | None]:
        samples = samples[np.isfinite(samples)]
        return stats.percentile_interval(samples, self.level) if len(samples) else (None, None)

    def sources(self, task: str) -> set[Source]:
        frame = self.influence.filter(pl.col("task") == task).select("labeler", "setting").unique()
        return {tuple(r) for r in frame.iter_rows()}


def reference_source(audit: Audit, task: str, reference: str | None) -> Source:
    humans = sorted(s for s in audit.sources(task) if s[1] == "human")
    if reference is not None:
        labeler, _, setting = reference.partition("/")
        if (labeler, setting) not in audit.sources(task):
            raise ConfigError(f"reference {reference!r} has no influence rows for task {task!r} in {audit.results}")
        return labeler, setting
    if len(humans) != 1:
        raise ConfigError(f"task {task!r} has {len(humans)} human sources in {audit.results} "
                          f"({', '.join('/'.join(h) for h in humans) or 'none'}); pass --reference LABELER/SETTING")
    return humans[0]


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
        low, high = self.human_ci
        if low is None or low <= 0 <= high:
            return "hold"  # humans show no reliable preference either way
        return "more" if self.tau_human > self.tau_generation else "less"


def misalignments(audit: Audit, reference: Source, generator: Source, task: str) -> list[Misalignment]:
    """Every factor's tau_generation - tau_human with its shared-replicate interval, largest |d| first."""
    out = []
    for factor in audit.factors:
        h, g = audit.tau(reference, task, factor), audit.tau(generator, task, factor)
        if np.isnan(h) or np.isnan(g):
            continue
        low, high = audit.interval(audit.reps(generator, task, factor) - audit.reps(reference, task, factor))
        out.append(Misalignment(factor, h, g, g - h, low, high, audit.interval(audit.reps(reference, task, factor))))
    return sorted(out, key=lambda m: (-abs(m.diff), m.factor))


def comparison_tables(audit: Audit, reference: Source, before: Source, after: Source, task: str,
                      guided: dict[str, str]) -> tuple[pa.Table, pa.Table]:
    """Per factor and per alignment metric: before, after and the change, intervals from shared replicates."""
    factor_rows = []
    for factor in audit.factors:
        h, b, a = (audit.tau(s, task, factor) for s in (reference, before, after))
        rh, rb, ra = (audit.reps(s, task, factor) for s in (reference, before, after))
        factor_rows.append({
            "task": task, "factor": factor, "guided": factor in guided, "action": guided.get(factor),
            "tau_human": _num(h), "tau_before": _num(b), "tau_after": _num(a), "tau_change": _num(a - b),
            **dict(zip(("tau_before_ci_low", "tau_before_ci_high"), audit.interval(rb))),
            **dict(zip(("tau_after_ci_low", "tau_after_ci_high"), audit.interval(ra))),
            **dict(zip(("tau_change_ci_low", "tau_change_ci_high"), audit.interval(ra - rb))),
            "misalignment_before": _num(abs(b - h)), "misalignment_after": _num(abs(a - h)),
            "misalignment_change": _num(abs(a - h) - abs(b - h)),
            **dict(zip(("misalignment_change_ci_low", "misalignment_change_ci_high"),
                       audit.interval(np.abs(ra - rh) - np.abs(rb - rh)))),
        })
    t_h, t_b, t_a = (np.array([audit.tau(s, task, f) for f in audit.factors]) for s in (reference, before, after))
    r_h, r_b, r_a = (np.stack([audit.reps(s, task, f) for f in audit.factors], axis=1) for s in (reference, before, after))
    point_b, point_a = stats.alignment_metrics(t_h, t_b), stats.alignment_metrics(t_h, t_a)
    samples_b = [stats.alignment_metrics(r_h[i], r_b[i]) for i in range(len(r_h))]
    samples_a = [stats.alignment_metrics(r_h[i], r_a[i]) for i in range(len(r_h))]
    alignment_rows = []
    for metric in schema.ALIGNMENT_METRICS:
        sb = np.array([s[metric] for s in samples_b])
        sa = np.array([s[metric] for s in samples_a])
        alignment_rows.append({
            "task": task, "reference": "/".join(reference), "metric": metric,
            "before": _num(point_b[metric]), "after": _num(point_a[metric]), "change": _num(point_a[metric] - point_b[metric]),
            **dict(zip(("before_ci_low", "before_ci_high"), audit.interval(sb))),
            **dict(zip(("after_ci_low", "after_ci_high"), audit.interval(sa))),
            **dict(zip(("change_ci_low", "change_ci_high"), audit.interval(sa - sb))),
        })
    return (pa.Table.from_pylist(factor_rows, schema=FEEDBACK_FACTORS),
            pa.Table.from_pylist(alignment_rows, schema=FEEDBACK_ALIGNMENT))


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


def _fmt(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" + ("" if low is None else f" [{low:+.3f}, {high:+.3f}]")


def markdown(factors: pa.Table, alignment: pa.Table, guidance: str, before: str, after: str) -> str:
    lines = ["# Factor-level feedback: before and after", "",
             f"Generator before: `{before}`; after: `{after}` (same prompts, levels and mode, with this guidance):", "",
             *[f"> {line}" for line in guidance.splitlines()], "",
             "## Per factor (tau: Kendall's tau of the factor with the preferred response; change = after - before)", "",
             "| factor | guided | tau human | tau before | tau after | tau change | misalignment change |",
             "|---|---|---|---|---|---|---|"]
    for r in factors.to_pylist():
        lines.append(f"| {r['factor']} | {r['action'] or ''} | {_fmt(r['tau_human'])} | "
                     f"{_fmt(r['tau_before'], r['tau_before_ci_low'], r['tau_before_ci_high'])} | "
                     f"{_fmt(r['tau_after'], r['tau_after_ci_low'], r['tau_after_ci_high'])} | "
                     f"{_fmt(r['tau_change'], r['tau_change_ci_low'], r['tau_change_ci_high'])} | "
                     f"{_fmt(r['misalignment_change'], r['misalignment_change_ci_low'], r['misalignment_change_ci_high'])} |")
    lines += ["", "## Alignment with humans over factors (mean_abs_diff: lower is closer)", "",
              "| task | reference | metric | before | after | change |", "|---|---|---|---|---|---|"]
    for r in alignment.to_pylist():
        lines.append(f"| {r['task']} | {r['reference']} | {r['metric']} | "
                     f"{_fmt(r['before'], r['before_ci_low'], r['before_ci_high'])} | "
                     f"{_fmt(r['after'], r['after_ci_low'], r['after_ci_high'])} | "
                     f"{_fmt(r['change'], r['change_ci_low'], r['change_ci_high'])} |")
    return "\n".join(lines) + "\n"


@dataclass
class FeedbackSummary:
    output: str
    guidance: str = ""
    chosen: list[Misalignment] = field(default_factory=list)
    factors: pa.Table | None = None
    alignment: pa.Table | None = None
    dry_run: list[dict[str, Any]] | None = None

    def lines(self) -> list[str]:
        if self.dry_run is not None:
            return ["guidance:", *self.guidance.splitlines()]
        out = [f"feedback on {', '.join(m.factor for m in self.chosen)}: results in {self.output}"]
        for r in self.factors.to_pylist():
            out.append(f"  {r['factor']}: tau {_fmt(r['tau_before'])} -> {_fmt(r['tau_after'])} (human {_fmt(r['tau_human'])}), "
                       f"misalignment change {_fmt(r['misalignment_change'], r['misalignment_change_ci_low'], r['misalignment_change_ci_high'])}")
        for r in self.alignment.to_pylist():
            out.append(f"  alignment {r['metric']}: {_fmt(r['before'])} -> {_fmt(r['after'])} "
                       f"(change {_fmt(r['change'], r['change_ci_low'], r['change_ci_high'])})")
        return out


def improve_feedback(
    results: str, llm: str, output: str, *, endpoints: str | None = None, cache_dir: str | None = None,
    max_cost: float | None = None, dry_run: bool = False, template: str = "feedback/v1", top: int = 2,
    reference: str | None = None, task: str | None = None, labeler: str | None = None,
    annotate_llm: str | None = None, address: str | None = None, progress: bool | None = None,
    say: Callable[[str], None] | None = None,
) -> FeedbackSummary:
    from profile_dist.llm.step import cache_dir_for, resolve_endpoint
    from profile_dist.stages.annotate import annotate
    from profile_dist.stages.generate import generate
    from profile_dist.stages.reduce import reduce

    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    chosen_template = get_template(template)
    audit = Audit.load(results)
    endpoint = resolve_endpoint(llm, endpoints)
    gen_dir, gen_manifest = _generation_input(audit, endpoint, labeler)
    before: Source = (gen_manifest["labeler"], "generation")
    tasks = sorted(t for t in audit.influence["task"].unique() if before in audit.sources(t))
    if task is None and len(tasks) != 1:
        raise ConfigError(f"{before[0]} has generation pairs for {len(tasks)} tasks ({', '.join(tasks)}); pass --task")
    task = task or tasks[0]
    ref = reference_source(audit, task, reference)
    ranked = misalignments(audit, ref, before, task)
    chosen = [m for m in ranked if m.significant][:top]
    if not chosen:
        raise ConfigError(f"no factor of {before[0]} differs significantly from {'/'.join(ref)} on {task!r}; nothing to feed back")
    guidance = chosen_template.render([(m.factor, m.action, m.tau_human, m.tau_generation) for m in chosen])
    summary = FeedbackSummary(output=output, guidance=guidance, chosen=chosen)
    after_labeler = f"{before[0]}+feedback"
    cache = cache_dir_for(output, cache_dir)
    generated = storage.join(output, "generate")
    gen = generate(gen_manifest["input"], llm, generated, levels=int(gen_manifest["levels"]), mode=gen_manifest["mode"],
                   endpoints=endpoints, cache_dir=cache, max_cost=max_cost, dry_run=dry_run, labeler=after_labeler,
                   address=address, progress=progress, say=say, guidance=guidance)
    if dry_run:
        summary.dry_run = gen.dry_run
        return summary
    annotations = storage.join(output, "annotations")
    annotate(generated, annotations, factors=audit.factors, llm=annotate_llm, endpoints=endpoints, cache_dir=cache,
             address=address, progress=progress)
    m = audit.manifest
    after_results = storage.join(output, "results")
    reduce(list(m["pairs"]) + [generated], list(m["annotations"]) + [annotations], after_results, factors=audit.factors,
           n_bootstrap=int(m["n_bootstrap"]), seed=int(m["seed"]), level=audit.level, address=address, progress=progress,
           bootstrap_unit=m.get("bootstrap", {}).get("unit", "pair"))
    combined = Audit.load(after_results)
    summary.factors, summary.alignment = comparison_tables(
        combined, ref, before, (after_labeler, "generation"), task, {c.factor: c.action for c in chosen})
    storage.write_parquet_atomic(summary.factors, storage.join(output, "feedback_factors.parquet"))
    storage.write_parquet_atomic(summary.alignment, storage.join(output, "feedback_alignment.parquet"))
    storage.write_bytes_atomic(markdown(summary.factors, summary.alignment, guidance, before[0], after_labeler).encode(),
                               storage.join(output, "feedback.md"))
    storage.write_json_atomic({
        "stage": "improve_feedback", "results": results, "generation_input": gen_dir, "task": task,
        "reference": "/".join(ref), "before": before[0], "after": after_labeler, "template": chosen_template.version,
        "guidance": guidance, "top": top,
        "chosen": [{"factor": c.factor, "action": c.action, "tau_human": c.tau_human, "tau_generation": c.tau_generation,
                    "diff": c.diff, "ci_low": c.ci_low, "ci_high": c.ci_high} for c in chosen],
        "llm": gen.llm,
    }, storage.join(output, "_manifest.json"))
    return summary
