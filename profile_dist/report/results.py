"""Load a reduce output directory into plain Python structures (the content of results.json)."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.report.simulated import collect_simulated


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


#: Columns added after a table first shipped: results written before read as None there.
ADDED_LATER = {
    "alignment": ("factor_set", "factors", "pairs", "n_pairs", "n_dropped_x", "n_dropped_y", "dropped_x", "dropped_y"),
    "gap": ("factors", "evaluation_pairs"),
}


def read_rows(path: str, table_schema: pa.Schema, added_later: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The table's rows conformed to ``table_schema``; ``added_later`` columns an older file lacks read as None."""
    table = storage.read_parquet(path)
    absent = [c for c in added_later if c not in table.column_names]
    present = pa.schema([f for f in table_schema if f.name not in absent])
    return [{**row, **{c: None for c in absent}} for row in schema.conform(table, present, where=path).to_pylist()]


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
    from profile_dist.report.settings import settings_results  # judge agreement, manipulation check, spend

    results.update(settings_results(results["reduce"]))
    results["simulated"] = collect_simulated(results["reduce"])
    return results
