"""Reduce results in Python: ``open_results(DIR)`` for notebooks and scripts (local paths or s3://).

    import profile_dist
    res = profile_dist.open_results("out/ae/results")
    print(res.summary())
    res.influence().filter(pl.col("factor") == "length")
    res  # in Jupyter: the report's heatmaps, inline

Every accessor reads its table with the schema of ``profile_dist.schema``, so the DataFrame's columns
and types are the same whichever reduce wrote it; a table an older reduce did not write (adjusted,
gap) comes back empty with its columns. Nothing is cached: a notebook sees a rerun's new tables.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import polars as pl
import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.layout import results as results_layout
from profile_dist.report.build import strongest_findings, strongest_rows
from profile_dist.report.html import page_data, render_html
from profile_dist.report.results import load_results

# accessor name -> (file, schema, written by every reduce?)
TABLES: dict[str, tuple[pa.Schema, bool]] = {
    "influence": (schema.INFLUENCE, True),
    "alignment": (schema.ALIGNMENT, True),
    "skipped": (schema.SKIPPED, True),
    "adjusted": (schema.ADJUSTED, False),
    "gap": (schema.GAP, False),
}


@dataclass(frozen=True)
class ResultsSummary:
    directory: str
    sources: list[str]  # "labeler/setting"
    tasks: list[str]
    factors: list[str]
    n_pairs: int  # the largest pair count of any source and task (pairs are counted per factor)
    n_bootstrap: int | None
    confidence_level: float | None
    findings: list[str]

    def lines(self) -> list[str]:
        level = f"{round(100 * self.confidence_level)}% " if self.confidence_level else ""
        out = [
            f"reduce results in {self.directory}",
            f"  {len(self.sources)} source(s): {', '.join(self.sources)}",
            f"  {len(self.tasks)} task(s): {', '.join(self.tasks)}; {len(self.factors)} factor(s): {', '.join(self.factors)}",
            f"  up to {self.n_pairs} pairs per source and task; {level}intervals from {self.n_bootstrap} bootstrap replicates",
        ]
        out += ["  strongest findings:"] + [f"    {i}. {f}" for i, f in enumerate(self.findings, 1)] if self.findings \
            else ["  no factor's interval excludes 0 yet"]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


class Results:
    """A reduce output directory; see :func:`open_results`."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def _table(self, name: str) -> pl.DataFrame:
        table_schema, _ = TABLES[name]
        path = results_layout.table_path(self.directory, name)
        table = storage.read_parquet(path, table_schema) if storage.exists(path) else table_schema.empty_table()
        return pl.from_arrow(table)  # type: ignore[return-value]

    def influence(self) -> pl.DataFrame:
        """tau, tau_a, relevance, C/D/T and the CI per labeler, setting, task and factor."""
        return self._table("influence")

    def alignment(self) -> pl.DataFrame:
        """Agreement between two sources' factor taus, per task and metric, with CIs."""
        return self._table("alignment")

    def adjusted(self) -> pl.DataFrame:
        """Length-controlled tau and Bradley-Terry coefficients beside plain tau (empty if not computed)."""
        return self._table("adjusted")

    def gap(self) -> pl.DataFrame:
        """The generation-evaluation gap per model, task and metric (empty without both settings)."""
        return self._table("gap")

    def skipped(self) -> pl.DataFrame:
        """What the run left out, and why (stage, source, task, factor, reason, count)."""
        return self._table("skipped")

    def manifest(self) -> dict[str, Any]:
        return results_layout.read_manifest(self.directory)

    def summary(self) -> ResultsSummary:
        influence = self.influence()
        manifest = self.manifest()
        sources = sorted({f"{r['labeler']}/{r['setting']}" for r in influence.select("labeler", "setting").to_dicts()})
        findings = strongest_findings({"influence": [_nan_to_none(r) for r in influence.to_dicts()]})
        return ResultsSummary(
            directory=self.directory, sources=sources, tasks=sorted(influence["task"].unique().to_list()),
            factors=sorted(influence["factor"].unique().to_list()),
            n_pairs=int(influence["n_pairs"].max() or 0) if influence.height else 0,
            n_bootstrap=manifest.get("n_bootstrap"), confidence_level=manifest.get("confidence_level"),
            findings=findings,
        )

    def report_html(self) -> str:
        """The report's self-contained page (what ``report`` writes as report.html), as a string."""
        results = load_results(self.directory)
        results["findings"] = strongest_findings(results)
        return render_html(page_data(results, self.directory, strongest=strongest_rows(results)), results)

    def _repr_html_(self) -> str:
        """Jupyter: the summary, then the report page (heatmaps and all) in a sandbox-free srcdoc iframe.

        The page carries its own Content-Security-Policy and draws its SVG with its own inline script, so
        inside an iframe it runs exactly as the saved report.html does, isolated from the notebook's CSS.
        """
        summary = html.escape(str(self.summary()))
        page = html.escape(self.report_html(), quote=True)
        return (f"<pre>{summary}</pre>"
                f'<iframe srcdoc="{page}" style="width:100%;height:720px;border:1px solid #ddd" '
                f'title="PROFILE report"></iframe>')

    def __repr__(self) -> str:
        return f"Results({self.directory!r})"


def _nan_to_none(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}


def open_results(directory: str) -> Results:
    """Open a ``profile-dist reduce`` output directory (local or s3://): typed accessors as polars
    DataFrames (influence, alignment, adjusted, gap, skipped), ``summary()``, and the heatmaps inline
    in Jupyter. Raises ConfigError naming the directory when it is not a reduce output."""
    directory = str(directory)
    results_layout.require_results_dir(directory)
    return Results(directory)
