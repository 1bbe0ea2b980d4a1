"""report.md: per task a factors x sources table of tau [CI], the alignment table, skipped rows."""

from __future__ import annotations

from typing import Any

from profile_dist.report.simulated import Simulated

TAU_EXPLAINED = (
    "tau(f) = (C - D) / (C + D) over a source's pairs, where C counts pairs whose preferred response has "
    "more of factor f and D pairs where it has less (pairs with a tied label or tied values left out). "
    "+1: the preferred response always has more of f; -1: always less; 0: f does not go with preference. "
    "P(preferred has more f) = (1 + tau) / 2. Brackets: 95% interval for P(preferred has more f) over the "
    "C + D pairs, as tau: Wilson score where pairs are independent, Korn-Graubard over (C + D) / design effect "
    "pairs where several pairs share a prompt (design effect from the bootstrap, which resamples prompts); "
    "it keeps its width when C or D is 0."
)


def _units(row: dict[str, Any]) -> str:
    """How a source's interval was resampled, e.g. "prompt (100 prompts)" or "pair (2,267 pairs)"."""
    unit, n = row.get("bootstrap_unit"), row.get("n_units")
    if unit is None or n is None:
        return "n/a"
    about = "" if row.get("n_units_exact", True) else "~"
    return f"{unit} ({about}{n:,} {unit}s)"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _cell(row: dict[str, Any]) -> str:
    if row["tau"] is None:
        return "n/a"
    if row["ci_low"] is None:
        return _fmt(row["tau"])
    marker = "" if row["ci_low"] <= 0 <= row["ci_high"] else " *"
    return f"{_fmt(row['tau'])} [{_fmt(row['ci_low'], 2)}, {_fmt(row['ci_high'], 2)}]{marker}"


def source_label(row: dict[str, Any]) -> str:
    return f"{row['labeler']}/{row['setting']}"


JUDGE_AGREEMENT_EXPLAINED = (
    "Each pair asked in both orders; position consistency = share of pairs where both orders agree. "
    "Accuracy and Cohen's kappa against the reference labels: over all judged pairs (a pair whose two orders "
    "disagree counts as a tie; failed requests left out), and over the position-consistent pairs only, which "
    "leaves out the pairs the judge could not decide and so can overstate agreement."
)


def alignment_notes(results: dict[str, Any], task: str) -> list[str]:
    """Which factors the task's comparisons use, and on which pairs a judge met the labels it judged."""
    if len({source_label(r) for r in results["influence"] if r["task"] == task}) < 2:
        return []  # nothing to compare
    manifest = (results.get("reduce") or {}).get("alignment") or {}
    rows = [a for a in results["alignment"] if a["task"] == task]
    names = (manifest.get("factors") or {}).get(task)
    if names is None and rows:
        names = rows[0]["factors"].split(",")
    lines = []
    if names is not None:
        reduced = (results.get("reduce") or {}).get("factors") or []
        left_out = [f for f in reduced if f not in names]
        described = manifest.get("described") or (rows[0]["factor_set"] if rows else "")
        lines.append(f"Factors compared ({described}), the same on both sides and in the gap: {', '.join(names) or 'none'}."
                     + (f" Not compared: {', '.join(left_out)} (`reduce --alignment-factors` widens the set)." if left_out else ""))
        if not rows:
            lines.append("No alignment: fewer than 2 of these factors have a tau for two sources. Annotate the task's "
                         "LLM factors, or widen the set with `reduce --alignment-factors all`.")
    seen = set()
    for a in rows:
        if a["pairs"] != "intersection" or (a["source_x"], a["source_y"]) in seen:
            continue
        seen.add((a["source_x"], a["source_y"]))
        lines.append(f"{a['source_x']} vs {a['source_y']}: compared on the {a['n_pairs']} judged pairs both decided; "
                     f"{a['source_x']} left out {a['n_dropped_x']}" + (f" ({a['dropped_x']})" if a["dropped_x"] else "")
                     + f", {a['source_y']} left out {a['n_dropped_y']}" + (f" ({a['dropped_y']})" if a["dropped_y"] else "") + ".")
    return lines


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def settings_section(results: dict[str, Any]) -> list[str]:
    """Judges' agreement with humans, the generation manipulation check, and what the LLM stages cost."""
    sim = Simulated.of(results)
    lines: list[str] = []
    agreement = results.get("judge_agreement") or []
    if agreement:
        lines += ["## Models as judges (evaluation setting)", "", JUDGE_AGREEMENT_EXPLAINED, "",
                  "| judge | task | vs | pairs | inconsistent | failed | position consistency "
                  "| accuracy (all judged) | Cohen's kappa (all judged) | accuracy (consistent only) | Cohen's kappa (consistent only) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in agreement:
            lines.append(f"| {sim.model(r['judge'])} | {r['task']} | {r['reference']} | {r['n_pairs']} | {r['n_inconsistent']} | {r['n_failed']} "
                         f"| {_share(r['position_consistency'])} | {_share(r['accuracy'])} | {_share(r['cohen_kappa'])} "
                         f"| {_share(r.get('accuracy_consistent_only'))} | {_share(r.get('cohen_kappa_consistent_only'))} |")
        lines.append("")
    checks = results.get("manipulation_check") or []
    if checks:
        lines += ["## Generation setting: manipulation check", "",
                  "Kendall tau between the target quality level and an independent rater's score: do the levels mean anything? "
                  "Computed within each prompt and averaged over prompts (95% percentile bootstrap over prompts); "
                  "prompts with constant ratings have no tau and are counted apart. The pooled tau mixes prompts.", "",
                  "| generator | rater | task | levels | rated | prompts (undefined) | Kendall tau within prompt | 95% CI | pooled tau |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in checks:
            ci = "n/a" if r.get("ci_low") is None else f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
            lines.append(f"| {sim.model(r['generator'])} | {sim.model(r['checker'])} | {r['task']} | {r['levels']} | {r['n_rated']} "
                         f"| {r['n_prompts']} ({r['n_prompts_undefined']}) | {_share(r['kendall_tau'])} | {ci} "
                         f"| {_share(r['pooled_kendall_tau'])} |")
        lines.append("")
    costs = results.get("cost") or []
    if costs:
        lines += ["## LLM cost", "", "| stage | model | requests | input tokens | output tokens | spend (USD) |", "|---|---|---|---|---|---|"]
        for r in costs:
            model = str(r.get("model", ""))
            lines.append(f"| {r.get('stage', '')} | {model + ' (simulated)' if r.get('simulated') else sim.model(model)} | {r.get('requests', '')} | {r.get('input_tokens', '')} "
                         f"| {r.get('output_tokens', '')} | {r.get('spend', '')} |")
        lines.append("")
    return lines


def gap_section(results: dict[str, Any]) -> list[str]:
    """The reduce's generation-evaluation gap (schema.GAP), one row per task, model, reference and metric."""
    gap = results.get("gap") or []
    if not gap:
        return []
    sim = Simulated.of(results)
    lines = ["## Generation-evaluation gap", "",
             "A model can judge like humans yet write unlike them. Per model seen as judge (evaluation) and as "
             "writer (generation): its alignment with the human source in each setting; gap = evaluation - generation.", "",
             "| task | model | vs | metric | as judge | as writer | gap [95% CI] |", "|---|---|---|---|---|---|---|"]
    for g in gap:
        ci = f" [{_fmt(g['ci_low'], 2)}, {_fmt(g['ci_high'], 2)}]" if g["ci_low"] is not None else ""
        lines.append(f"| {g['task']} | {sim.model(g['model'])} | {sim.source(g['reference'])} | {g['metric']} "
                     f"| {_fmt(g['evaluation'])} | {_fmt(g['generation'])} | {_fmt(g['gap'])}{ci} |")
    return lines + [""]


def render_markdown(results: dict[str, Any], findings: list[str]) -> str:
    influence = results["influence"]
    sim = Simulated.of(results)
    lines = ["# PROFILE report", ""] + ([f"> **{sim.banner()}**", ""] if sim else []) + [TAU_EXPLAINED, ""]
    if findings:
        lines += ["## Strongest findings", ""] + [f"- {f}" for f in findings] + [""]
    for task in sorted({r["task"] for r in influence}):
        rows = [r for r in influence if r["task"] == task]
        sources = sorted({source_label(r) for r in rows})
        factors = sorted({r["factor"] for r in rows})
        by_key = {(source_label(r), r["factor"]): r for r in rows}
        lines += [f"## Task: {task}", "", "Factor influence tau [95% CI] per source (* = interval excludes 0).", ""]
        lines.append("| factor | " + " | ".join(sim.source(s) for s in sources) + " |")
        lines.append("|---|" + "---|" * len(sources))
        for factor in factors:
            cells = [_cell(by_key[(s, factor)]) if (s, factor) in by_key else "" for s in sources]
            lines.append(f"| {sim.factor(factor)} | " + " | ".join(cells) + " |")
        lines.append("")
        lines.append("Pairs per source (C + D + T for `length`, or the first factor): " + ", ".join(
            f"{s}: {next((by_key[(s, f)]['n_pairs'] for f in ['length', *factors] if (s, f) in by_key), 0)}" for s in sources
        ))
        lines.append("")
        lines.append("Bootstrap unit per source (prompt: several pairs share a prompt and are resampled together): " + ", ".join(
            f"{s}: {_units(next(r for r in rows if source_label(r) == s))}" for s in sources
        ))
        lines.append("")
        alignment = [a for a in results["alignment"] if a["task"] == task]
        notes = alignment_notes(results, task)
        if alignment or notes:
            lines += ["### Alignment between sources", ""] + [f"{n}\n" for n in notes]
        if alignment:
            lines += ["| source x | source y | pairs | factors | metric | value [95% CI] |", "|---|---|---|---|---|---|"]
            for a in alignment:
                ci = f" [{_fmt(a['ci_low'], 2)}, {_fmt(a['ci_high'], 2)}]" if a["ci_low"] is not None else ""
                pairs = f"{a['n_pairs']} both decided" if a["pairs"] == "intersection" else "each its own"
                lines.append(f"| {sim.source(a['source_x'])} | {sim.source(a['source_y'])} | {pairs} | {a['n_factors']} | {a['metric']} | {_fmt(a['value'])}{ci} |")
            lines.append("")
    lines += gap_section(results)
    lines += adjusted_section(results.get("adjusted") or [], sim)
    lines += settings_section(results)
    skipped = results["skipped"]
    lines += ["## Rows left out", ""]
    if skipped:
        lines += ["| stage | source | task | factor | reason | count |", "|---|---|---|---|---|---|"]
        for s in skipped:
            source = f"{s['labeler']}/{s['setting']}" if s["labeler"] else ""
            lines.append(f"| {s['stage']} | {source} | {s['task'] or ''} | {s['factor'] or ''} | {s['reason']} | {s['count']} |")
    else:
        lines.append("None.")
    notes = results.get("reduce", {}).get("ingest_notes") or {}
    if notes:
        lines += ["", "Ingest notes (rows used as described):", ""] + [f"- {n} row(s): {note}" for note, n in sorted(notes.items())]
    lines.append("")
    return "\n".join(lines)


ADJUSTED_EXPLAINED = (
    "tau looks at one factor at a time, so a factor that travels with length inherits length's influence. "
    "Length-controlled tau: tau over the pairs whose responses are within 10% of each other's length. "
    "Bradley-Terry: the log-odds of preference per typical (root-mean-square) difference of the factor, "
    "with every other factor held fixed (penalised logistic model; Wald 95% interval)."
)


def _interval(value: float | None, low: float | None, high: float | None) -> str:
    if value is None:
        return "n/a"
    if low is None:
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(low, 2)}, {_fmt(high, 2)}]"


def adjusted_section(adjusted: list[dict[str, Any]], sim: Simulated = Simulated()) -> list[str]:
    """Where the adjusted and the plain effect disagree, per task; nothing when the reduce wrote no adjusted table."""
    if not adjusted:
        return []
    lines = ["## Adjusted vs plain effects", "", ADJUSTED_EXPLAINED, ""]
    disagreeing = [r for r in adjusted if r["disagreement"]]
    if not disagreeing:
        return lines + ["The adjusted effects agree with the plain taus everywhere.", ""]
    lines += [
        "| task | source | factor | tau | length-controlled tau | Bradley-Terry | why they differ |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(disagreeing, key=lambda r: (r["task"], source_label(r), r["factor"])):
        lines.append(
            f"| {r['task']} | {sim.source(source_label(r))} | {sim.factor(r['factor'])} | {_interval(r['tau'], r['tau_ci_low'], r['tau_ci_high'])} | "
            f"{_interval(r['length_controlled_tau'], r['length_controlled_tau_ci_low'], r['length_controlled_tau_ci_high'])} | "
            f"{_interval(r['bt_coef'], r['bt_coef_ci_low'], r['bt_coef_ci_high'])} | {r['disagreement']} |"
        )
    return lines + [""]
