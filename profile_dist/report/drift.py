"""Drift over time: the same sources' taus across earlier audits and this one.

An audit is a reduce output directory (influence.parquet, optionally replicates.parquet) or a report
directory holding results.json. Audits are shown in the order given, the current one last; each is
labelled by the directory name (the parent's when the directory is called ``results``). The change from
the previous audit to the current one gets a CI from replicate-wise differences when both audits kept
their replicates with the same count (same pair ids draw the same weights: a paired bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from profile_dist import schema, storage
from profile_dist.errors import ConfigError
from profile_dist.report.replicates import CellKey, interval, load_replicate_taus
from profile_dist.report.results import load_results
from profile_dist.layout.results import RESULTS_JSON, table_path


@dataclass
class Audit:
    label: str
    path: str
    influence: list[dict[str, Any]]
    replicate_taus: dict[CellKey, np.ndarray] = field(default_factory=dict)


def audit_label(path: str) -> str:
    parts = [p for p in path.rstrip("/").replace("\\", "/").split("/") if p]
    if len(parts) >= 2 and parts[-1] == "results":
        parts = parts[:-1]
    return parts[-1].removeprefix("date=") if parts else path  # nightly audits live in date=YYYY-MM-DD/


def load_audit(path: str) -> Audit:
    if storage.exists(table_path(path, "influence")):
        return Audit(audit_label(path), path, load_results(path)["influence"], load_replicate_taus(path))
    json_path = storage.join(path, RESULTS_JSON)
    if storage.exists(json_path):
        results = storage.read_json(json_path)
        if not isinstance(results, dict) or not isinstance(results.get("influence"), list):
            raise ConfigError(f"{json_path}: expected an object with an 'influence' list (a profile-dist results.json)")
        return Audit(audit_label(path), path, results["influence"])
    raise ConfigError(f"--history {path}: neither influence.parquet nor results.json there; give earlier reduce or report directories")


def _key(row: dict[str, Any]) -> CellKey:
    return row["labeler"], row["setting"], row["task"], row["factor"]


def drift(audits: list[Audit], level: float = 0.95) -> dict[str, Any]:
    """Points per (audit, cell), and the change from the previous audit to the last one per cell."""
    labels = [a.label for a in audits]
    if len(set(labels)) != len(labels):  # same directory names: fall back to the full paths
        labels = [a.path for a in audits]
    points = [
        {"audit": i, "labeler": r["labeler"], "setting": r["setting"], "task": r["task"], "factor": r["factor"],
         "tau": r["tau"], "ci_low": r.get("ci_low"), "ci_high": r.get("ci_high")}
        for i, a in enumerate(audits) for r in a.influence
    ]
    changes = []
    if len(audits) >= 2:
        before, after = audits[-2], audits[-1]
        previous = {_key(r): r for r in before.influence}
        for row in after.influence:
            key = _key(row)
            old = previous.get(key)
            if old is None or old["tau"] is None or row["tau"] is None:
                continue
            a, b = before.replicate_taus.get(key), after.replicate_taus.get(key)
            low, high = interval(b - a, level) if a is not None and b is not None and len(a) == len(b) else (None, None)
            changes.append({
                "labeler": row["labeler"], "setting": row["setting"], "task": row["task"], "factor": row["factor"],
                "before": old["tau"], "after": row["tau"], "delta": row["tau"] - old["tau"], "ci_low": low, "ci_high": high,
                "significant": None if low is None else bool(low > 0 or high < 0),
            })
    return {"audits": [{"label": label, "path": a.path} for label, a in zip(labels, audits)], "points": points, "changes": changes}



def _table_rows(results_dir: str, name: str) -> list[dict[str, Any]] | None:
    table_schema = getattr(schema, name.upper(), None)
    path = storage.join(results_dir, f"{name}.parquet")
    if table_schema is None or not storage.exists(path):
        return None
    return storage.read_parquet(path, table_schema).to_pylist()


def audit_drift(results_dir: str, history: list[str] | None, level: float = 0.95) -> dict[str, Any] | None:
    """Drift for the page: from --history audits, and/or the audit's own drift tables (the nightly audit
    writes drift_influence.parquet and drift_alignment.parquet beside its results; those are the reference
    for the change since the previous audit when present). None when there is neither."""
    changes_table = _table_rows(results_dir, "drift_influence")
    alignment_table = _table_rows(results_dir, "drift_alignment")
    if history:
        current = load_audit(results_dir)
        current.label = "this audit"
        out = drift([load_audit(path) for path in history] + [current], level)
    elif changes_table:
        keys = ("labeler", "setting", "task", "factor")
        points = [{"audit": i, **{k: r[k] for k in keys}, "tau": r[column], "ci_low": None, "ci_high": None}
                  for r in changes_table for i, column in enumerate(("tau_previous", "tau_current"))]
        out = {"audits": [{"label": "previous audit", "path": ""}, {"label": "this audit", "path": results_dir}], "points": points, "changes": []}
    else:
        return None
    if changes_table is not None:
        out["changes"] = [
            {"labeler": r["labeler"], "setting": r["setting"], "task": r["task"], "factor": r["factor"], "before": r["tau_previous"],
             "after": r["tau_current"], "delta": r["change"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
             "significant": r["significant"] if r["n_replicates"] else None}
            for r in changes_table if r["change"] is not None
        ]
    out["alignment_changes"] = alignment_table or []
    return out
