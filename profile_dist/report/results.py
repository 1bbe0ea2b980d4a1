"""Load a reduce output directory into plain Python structures (the content of results.json)."""

from __future__ import annotations

import math
from typing import Any

from profile_dist import schema, storage
from profile_dist.report.settings import settings_results  # judge agreement, manipulation check, spend
from profile_dist.report.simulated import collect_simulated
from profile_dist.report.tables import ADDED_LATER, read_rows
from profile_dist.layout.results import read_manifest, require_results_dir, table_path

MIN_DECIDED_PAIRS = 20  # below this a bootstrap interval is too coarse to call a finding


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_results(results_dir: str) -> dict[str, Any]:
    require_results_dir(results_dir)
    tables = {"influence": schema.INFLUENCE, "alignment": schema.ALIGNMENT, "skipped": schema.SKIPPED,
              "adjusted": schema.ADJUSTED, "gap": schema.GAP}  # adjusted and gap: absent before the reduce wrote them
    results: dict[str, Any] = {}
    for name, table_schema in tables.items():
        path = table_path(results_dir, name)
        rows = read_rows(path, table_schema, ADDED_LATER.get(name, ())) if storage.exists(path) else []
        results[name] = [{k: _clean(v) for k, v in row.items()} for row in rows]
    results["reduce"] = read_manifest(results_dir)
    results.update(settings_results(results["reduce"]))
    results["simulated"] = collect_simulated(results["reduce"])
    return results
