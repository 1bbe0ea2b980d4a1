"""What the judge and generate stages add to results.json: read from the directories the reduce was given.

The reduce manifest names its pairs and annotations directories; judge outputs there carry
``judge_agreement.parquet``, generate outputs ``manipulation_check.parquet``, and every LLM stage's
manifest its spend per model. Nothing here needs the reduce to know about these stages. A judge output
written before the consistent-only agreement columns existed still reads (those columns as None).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from profile_dist import schema, storage
from profile_dist.llm.step import COST_KEYS
from profile_dist.report.tables import read_rows


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


#: Columns added after the table first shipped: an older output reads as None there (its report says n/a).
_ADDED_LATER = {"judge_agreement": ("n_compared_consistent_only", "accuracy_consistent_only", "cohen_kappa_consistent_only")}


def _annotate_costs(directory: str) -> list[dict[str, Any]]:
    """Sum of the per-shard LLM counts of one annotations directory, per model, and per annotated response."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    responses: dict[str, int] = defaultdict(int)
    for path in storage.list_files(storage.join(directory, "_manifests"), suffix=".json"):
        manifest = storage.read_json(path)
        llm = manifest.get("llm")
        if not isinstance(llm, dict) or not manifest.get("model"):
            continue
        for key in COST_KEYS:
            if isinstance(llm.get(key), (int, float)):
                totals[manifest["model"]][key] += llm[key]
        responses[manifest["model"]] += int((manifest.get("cost") or {}).get("responses", 0))
    rows = []
    for model, counts in sorted(totals.items()):
        n = responses[model]
        rows.append({"stage": "annotate", "role": "annotator", "endpoint": None, "model": model, "output": directory,
                     **{k: round(v, 6) if k == "spend" else int(v) for k, v in counts.items()},
                     "responses": n, "spend_per_response": counts["spend"] / n if n else None,
                     "tokens_per_response": round((counts["input_tokens"] + counts["output_tokens"]) / n, 3) if n else None})
    return rows


def settings_results(reduce_manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """``judge_agreement``, ``manipulation_check`` and ``cost`` rows for results.json (empty lists if none)."""
    out: dict[str, list[dict[str, Any]]] = {"judge_agreement": [], "manipulation_check": [], "cost": []}
    for directory in reduce_manifest.get("pairs", []):
        for name, table_schema in (("judge_agreement", schema.JUDGE_AGREEMENT),
                                   ("manipulation_check", schema.MANIPULATION_CHECK)):
            path = storage.join(directory, f"{name}.parquet")
            if storage.exists(path):
                out[name] += [_clean(r) for r in read_rows(path, table_schema, _ADDED_LATER.get(name, ()))]
        manifest_path = storage.join(directory, "_manifest.json")
        if storage.exists(manifest_path):
            manifest = storage.read_json(manifest_path)
            if manifest.get("stage") in ("judge", "generate"):
                out["cost"] += [{**rec, "output": directory} for rec in manifest.get("llm", [])]
    for directory in reduce_manifest.get("annotations", []):
        out["cost"] += _annotate_costs(directory)
    return out
