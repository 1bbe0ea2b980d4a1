"""The report stage: reduce results -> report.md and results.json (beside the Parquet tables by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from profile_dist import storage
from profile_dist.report.html import write_html
from profile_dist.report.markdown import render_markdown, source_label
from profile_dist.report.results import MIN_DECIDED_PAIRS, load_results
from profile_dist.report.simulated import Simulated
from profile_dist.layout.results import REPORT_MD, RESULTS_JSON


@dataclass
class ReportSummary:
    output: str
    markdown: str
    json: str
    html: str | None = None

    def lines(self) -> list[str]:
        lines = [f"report: {self.markdown}", f"results: {self.json}"]
        return lines + ([f"html report: {self.html}"] if self.html else [])



def _conservative_effect(row: dict[str, Any]) -> float:
    """The interval bound nearest zero: how strong the effect is at least, not at best."""
    if row["ci_low"] is None:
        return abs(row["tau"])
    return row["ci_low"] if row["tau"] > 0 else -row["ci_high"]


def strongest_rows(results: dict[str, Any], n: int = 3) -> list[dict[str, Any]]:
    """The n effects with the largest conservative size whose interval excludes zero."""
    rows = [
        r for r in results["influence"]
        if r["tau"] is not None and r["n_concordant"] + r["n_discordant"] >= MIN_DECIDED_PAIRS
        and (r["ci_low"] is None or r["ci_low"] > 0 or r["ci_high"] < 0)
    ]
    rows.sort(key=lambda r: (-_conservative_effect(r), r["task"], r["labeler"], r["factor"]))
    return rows[:n]


def strongest_findings(results: dict[str, Any], n: int = 3) -> list[str]:
    """The n effects with the largest conservative size whose interval excludes zero, one sentence each."""
    sim = Simulated.of(results)
    sentences = []
    for r in strongest_rows(results, n):
        direction = "more" if r["tau"] > 0 else "less"
        share = 100 * (r["p_preferred_more"] if r["tau"] > 0 else 1 - r["p_preferred_more"])
        sentences.append(
            f"{sim.source(source_label(r))} on {r['task']}: the preferred response has {direction} {sim.factor(r['factor'])} "
            f"in {share:.0f}% of the pairs where it differs (tau {r['tau']:+.3f}, n = {r['n_concordant'] + r['n_discordant']})."
        )
    return sentences


def build_report(results_dir: str, output: str | None = None, *, history: list[str] | None = None) -> ReportSummary:
    """report.md, results.json and report.html; ``history``: earlier audits' results dirs, oldest first."""
    output = output or results_dir
    results = load_results(results_dir)
    findings = strongest_findings(results)
    results["findings"] = findings
    markdown_path = storage.join(output, REPORT_MD)
    json_path = storage.join(output, RESULTS_JSON)
    storage.write_bytes_atomic(render_markdown(results, findings).encode(), markdown_path)
    storage.write_json_atomic(results, json_path)
    html_path = write_html(results, results_dir, output, history=history, strongest=strongest_rows(results))
    return ReportSummary(output, markdown_path, json_path, html_path)
