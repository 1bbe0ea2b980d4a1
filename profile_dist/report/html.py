"""report.html: one self-contained page (inline CSS, JS and data; no network) people can open anywhere.

Python writes the page's text (header, plain-language explanation, findings, rows left out), escaped,
and embeds every number the plots need as JSON in a ``<script type="application/json">`` block; the
inline script (assets/report.js) draws the plots as SVG and handles filtering, sorting and the
click-a-cell-to-see-its-pairs view. Corpus text only ever reaches the DOM as text. A Content-Security-
Policy allows exactly the page's own script (by hash) and no network at all, so even a mistake in
escaping could not run injected script or fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from importlib import resources
from typing import Any

import numpy as np

from profile_dist import storage
from profile_dist.report.adjusted import load_adjusted, load_gap
from profile_dist.report.drift import audit_drift
from profile_dist.report.examples import deciding_pairs
from profile_dist.report.gaps import from_gap_table, generation_gaps
from profile_dist.report.markdown import JUDGE_AGREEMENT_EXPLAINED, alignment_notes, source_label
from profile_dist.report.replicates import load_replicate_taus
from profile_dist.report.simulated import Simulated
from profile_dist.report.results import MIN_DECIDED_PAIRS
from profile_dist.layout.results import REPORT_HTML

PLAIN_TAU = (
    "For each factor (length, lists, bold text, ...) and each source of preferences (human raters, or a model "
    "acting as judge or as writer), we take the pairs whose two responses differ on that factor and ask: did the "
    "preferred response have more of it? tau sums the answer up from -1 to +1. tau = +0.4 means the preferred "
    "response had more of the factor in 70% of those pairs (the share is (1 + tau) / 2); tau = -0.4 means it had "
    "less in 70%; tau near 0 means the factor does not go with preference. tau measures going-together, not "
    "cause: a factor can ride along with another (longer answers also have more list items)."
)
PLAIN_CI = (
    "Each tau comes with a {level}% bootstrap interval. When the interval excludes 0 (marked * or drawn filled), "
    "the link is unlikely to be chance; with few pairs, intervals are wide and small taus mean little."
)


def _asset(name: str) -> str:
    return resources.files("profile_dist.report").joinpath("assets", name).read_text(encoding="utf-8")


def _plain(value: Any) -> Any:
    """JSON-safe: NaN -> null, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def script_json(data: Any) -> str:
    """JSON that is safe inside <script>: no '<', '>' or '&' can end the block or open a comment."""
    text = json.dumps(_plain(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True)
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def _top_cells(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: r[k] for k in ("task", "labeler", "setting", "factor")} for r in rows]


def page_data(
    results: dict[str, Any], results_dir: str, *, history: list[str] | None = None, strongest: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything the page shows, as plain JSON-able structures."""
    manifest = results.get("reduce") or {}
    level = float(manifest.get("confidence_level") or 0.95)
    replicate_taus = load_replicate_taus(results_dir)
    examples = deciding_pairs(results)
    gaps = generation_gaps(results["influence"], replicate_taus, level)
    reduce_gap = load_gap(results_dir)
    if reduce_gap is not None:  # the reduce's own gap table is the reference when it exists
        gaps["alignment"] = from_gap_table(reduce_gap, results["alignment"])
    data: dict[str, Any] = {
        "meta": {
            "results_dir": results_dir, "confidence_level": level, "n_bootstrap": manifest.get("n_bootstrap"),
            "factors": manifest.get("factors"), "min_decided_pairs": MIN_DECIDED_PAIRS,
        },
        "influence": results["influence"],
        "alignment": results["alignment"],
        "findings": results.get("findings") or [],
        "top_cells": _top_cells(strongest or []),
        "gaps": gaps,
        "adjusted": load_adjusted(results_dir),
        "drift": audit_drift(results_dir, history, level),
        "examples": examples.pairs,
        "examples_note": examples.note,
        "simulated": results.get("simulated") or {"models": [], "sources": [], "factors": []},
    }
    return data


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _pairs_per_source(influence: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for r in influence:
        key = (r["task"], source_label(r))
        out[key] = max(out.get(key, 0), r["n_pairs"])
    return out


def _skipped_table(results: dict[str, Any]) -> str:
    skipped = results.get("skipped") or []
    if not skipped:
        return "<p>None: every row was used.</p>"
    head = "".join(f"<th>{c}</th>" for c in ("stage", "source", "task", "factor", "reason", "count"))
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
            s["stage"], f"{s['labeler']}/{s['setting']}" if s["labeler"] else "", s["task"] or "", s["factor"] or "", s["reason"],
        )) + f"<td class=\"num\">{s['count']}</td></tr>"
        for s in skipped
    )
    return f"<table class=\"data\"><tr>{head}</tr>{body}</table>"


def _sources_table(data: dict[str, Any]) -> str:
    counts = _pairs_per_source(data["influence"])
    sim = Simulated.of(data)
    rows = "".join(f"<tr><td>{_e(task)}</td><td>{_e(sim.source(source))}</td><td class=\"num\">{n}</td></tr>" for (task, source), n in sorted(counts.items()))
    return f"<table class=\"data\"><tr><th>task</th><th>source</th><th>pairs with both values known</th></tr>{rows}</table>"


def _alignment_notes(results: dict[str, Any], tasks: list[str]) -> str:
    notes = [(task, line) for task in tasks for line in alignment_notes(results, task)]
    return "".join(f"<p class=\"note alignment-note\" data-task=\"{_e(task)}\">Task {_e(task)}: {_e(line)}</p>" for task, line in notes)


def _judge_table(rows: list[dict[str, Any]]) -> str:
    columns = (("judge", "judge"), ("task", "task"), ("reference", "vs"), ("n_pairs", "pairs"), ("n_inconsistent", "inconsistent"),
               ("n_failed", "failed"), ("position_consistency", "position consistency"),
               ("accuracy", "accuracy (all judged)"), ("cohen_kappa", "Cohen's kappa (all judged)"),
               ("accuracy_consistent_only", "accuracy (consistent only)"), ("cohen_kappa_consistent_only", "Cohen's kappa (consistent only)"))
    head = "".join(f"<th>{_e(label)}</th>" for _, label in columns)

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"<td class=\"num\">{value:.3f}</td>"
        return f"<td>{_e('n/a' if value is None else value)}</td>"

    body = "".join("<tr>" + "".join(cell(r.get(key)) for key, _ in columns) + "</tr>" for r in rows)
    return f"<table class=\"data judge-agreement\"><tr>{head}</tr>{body}</table>"


def render_html(data: dict[str, Any], results: dict[str, Any]) -> str:
    level = round(100 * data["meta"]["confidence_level"])
    script = _asset("report.js")
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    csp = f"default-src 'none'; script-src 'sha256-{script_hash}'; style-src 'unsafe-inline'; img-src data:"
    tasks = sorted({r["task"] for r in data["influence"]})
    sources = sorted({source_label(r) for r in data["influence"]})
    findings = data["findings"]
    findings_html = (
        "<ol class=\"findings\">" + "".join(f"<li>{_e(f)}</li>" for f in findings) + "</ol>"
        if findings else "<p>No factor's interval excludes 0 yet: no finding is clear at this sample size.</p>"
    )
    n_boot = data["meta"].get("n_bootstrap")
    sim = Simulated.of(data)
    banner = (f"<p class=\"simulated-banner\" id=\"simulated-banner\" role=\"note\">{_e(sim.banner())}</p>" if sim else "")
    sections = [
        f"""<section id="heatmaps"><h2>Which factors go with being preferred</h2>
<p>One table per task: a row per factor, a column per source. Purple: the preferred response tends to have
<em>more</em> of the factor; orange: <em>less</em>; pale: no clear link.</p>
<div id="tau-legend"></div><div id="heatmap-plots"></div><div id="cell-pairs" aria-live="polite"></div></section>""",
        """<section id="factors"><h2>Humans vs models, factor by factor</h2>
<p>Each factor's tau for every source side by side, with interval bars: where humans and a model part, the
markers sit apart.</p><div id="forest-plots"></div></section>""",
        f"""<section id="alignment"><h2>Alignment between sources</h2>
<p>Do two sources care about the same factors? A rank correlation of their taus over the task's factors
(+1: same order; 0: unrelated; -1: opposite). Pick another metric at the top of the page.</p>
{_alignment_notes(results, tasks)}<div id="alignment-plots"></div><h3>Generation-evaluation gap</h3>
<p>A model can judge like humans yet write unlike them (PROFILE's generation-evaluation gap). Per model seen in
both settings: its alignment with humans as judge and as writer.</p><div id="gap-plots"></div></section>""",
    ]
    if results.get("judge_agreement"):
        sections.append(f"""<section id="judges"><h2>Models as judges: agreement with the reference labels</h2>
<p>{_e(JUDGE_AGREEMENT_EXPLAINED)}</p>{_judge_table(results["judge_agreement"])}</section>""")
    if data["adjusted"]:
        sections.append("""<section id="adjusted"><h2>Adjusted vs plain effects</h2>
<p>tau looks at one factor at a time, so a factor can borrow another's effect (longer answers also hold more
facts). Adjusted effects hold the other factors fixed. Where the two disagree in sign or significance, the
plain tau is likely a side effect of another factor.</p><div id="adjusted-plots"></div></section>""")
    if data["drift"]:
        sections.append("""<section id="drift"><h2>Drift over time</h2>
<p>The same sources in earlier audits and in this one: a line per factor. A change is significant when its
interval (from the paired bootstrap) excludes 0.</p><div id="drift-plots"></div></section>""")
    sections.append("""<section id="examples"><h2>Pairs where the factor decided</h2>
<p>For the strongest findings, the real pairs where the factor differs most in the direction tau says: read them
to see why. Click any heatmap cell for its own pairs.</p><div id="examples-list"></div></section>""")
    sections.append(f"""<section id="data"><h2>Data behind this report</h2>{_sources_table(data)}
<h3>Rows left out</h3>{_skipped_table(results)}</section>""")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>PROFILE report: {_e(", ".join(tasks))}</title>
<style>{_asset("report.css")}</style>
</head>
<body>
<header class="page">
<h1>PROFILE report: what drives preferences</h1>
{banner}
<p class="meta">{len(sources)} source(s) on {len(tasks)} task(s): {_e(", ".join(sim.source(x) for x in sources))}. {level}% intervals from {_e(n_boot)} bootstrap replicates.
Results: <code>{_e(data["meta"]["results_dir"])}</code>.</p>
<div class="intro"><h2>How to read tau</h2><p>{_e(PLAIN_TAU)}</p><p>{_e(PLAIN_CI.format(level=level))}</p>
<h2>The three strongest findings</h2>{findings_html}</div>
</header>
<nav id="controls" aria-label="Filters"></nav>
<main>
<noscript><p><strong>The plots need JavaScript.</strong> report.md and results.json beside this file hold the same numbers.</p></noscript>
{"".join(sections)}
</main>
<footer class="page"><p class="note">Made by profile-dist (PROFILE, Oh et al., arXiv 2410.06965). This file is self-contained: it
needs no network and no server. The embedded data (element <code>#report-data</code>) is the JSON the plots are drawn from.</p></footer>
<script type="application/json" id="report-data">{script_json(data)}</script>
<script>{script}</script>
</body>
</html>
"""


def write_html(
    results: dict[str, Any], results_dir: str, output: str, *, history: list[str] | None = None,
    strongest: list[dict[str, Any]] | None = None,
) -> str:
    path = storage.join(output, REPORT_HTML)
    data = page_data(results, results_dir, history=history, strongest=strongest)
    storage.write_bytes_atomic(render_html(data, results).encode("utf-8"), path)
    return path
