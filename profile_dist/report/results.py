"""Load a reduce output directory into plain Python structures (the content of results.json)."""

from __future__ import annotations

import math
from typing import Any

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.report.settings import settings_results  # judge agreement, manipulation check, spend
from profile_dist.report.simulated import collect_simulated
from profile_dist.report.tables import ADDED_LATER, read_rows

MIN_DECIDED_PAIRS = 20  # below this a bootstrap interval is too coarse to call a finding


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def load_results(results_dir: str) -> dict[str, Any]:
    influence_path = storage.join(results_dir, "influence.parquet")
    if not storage.exists(influence_path):
        raise ConfigError(f"{results_dir}: no influence.parquet; is this the output directory of `profile-dist reduce`?")
    tables = {"influence": schema.INFLUENCE, "alignment": schema.ALIGNMENT, "skipped": schema.SKIPPED,
              "adjusted": schema.ADJUSTED, "gap": schema.GAP}  # adjusted and gap: absent before the reduce wrote them
    results: dict[str, Any] = {}
    for name, table_schema in tables.items():
        path = storage.join(results_dir, f"{name}.parquet")
        rows = read_rows(path, table_schema, ADDED_LATER.get(name, ())) if storage.exists(path) else []
        results[name] = [{k: _clean(v) for k, v in row.items()} for row in rows]
    manifest_path = storage.join(results_dir, "_manifest.json")
    results["reduce"] = storage.read_json(manifest_path) if storage.exists(manifest_path) else {}
    results.update(settings_results(results["reduce"]))
    results["simulated"] = collect_simulated(results["reduce"])
    return results
