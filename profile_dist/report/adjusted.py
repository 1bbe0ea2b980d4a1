"""Adjusted effects (PROFILE_METHOD.md section 6) and the reduce's gap table, when the reduce wrote them.

Both tables are produced by the reduce (schema.ADJUSTED: a length-controlled tau and a penalised
Bradley-Terry coefficient per cell, with the reduce's own verdict on where they disagree with plain tau;
schema.GAP: the generation-evaluation gap with its CI). The report only reads them: no table, no section
(older results directories keep working).
"""

from __future__ import annotations

import math
from typing import Any

from profile_dist import schema, storage
from profile_dist.report.tables import ADDED_LATER, read_rows

KEYS = ("labeler", "setting", "task", "factor")
# (column, label): each becomes one panel beside plain tau.
SERIES = (("length_controlled_tau", "length-controlled tau"), ("bt_coef", "Bradley-Terry coefficient"))


def _clean(value: Any) -> float | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _rows(results_dir: str, name: str, table_schema) -> list[dict[str, Any]] | None:
    path = storage.join(results_dir, f"{name}.parquet")
    if not storage.exists(path):
        return None
    return read_rows(path, table_schema, ADDED_LATER.get(name, ()))


def load_adjusted(results_dir: str) -> list[dict[str, Any]]:
    """Rows {labeler, setting, task, factor, series, value, ci_low, ci_high, n, disagreement}; [] without the table."""
    table_schema = getattr(schema, "ADJUSTED", None)
    rows = _rows(results_dir, "adjusted", table_schema) if table_schema is not None else None
    out = []
    for row in rows or []:
        for column, label in SERIES:
            value = _clean(row[column])
            if value is None:
                continue
            out.append({
                **{k: row[k] for k in KEYS}, "series": label, "value": value,
                "ci_low": _clean(row[f"{column}_ci_low"]), "ci_high": _clean(row[f"{column}_ci_high"]),
                "disagreement": row["disagreement"],
            })
    return out


def load_gap(results_dir: str) -> list[dict[str, Any]] | None:
    """The reduce's generation-evaluation gap rows, or None when the results directory has no gap table."""
    table_schema = getattr(schema, "GAP", None)
    rows = _rows(results_dir, "gap", table_schema) if table_schema is not None else None
    if rows is None:
        return None
    return [{k: (_clean(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
