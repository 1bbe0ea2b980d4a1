"""Change since the previous audit, per factor and per alignment metric: pure functions, no I/O.

Both audits keep their bootstrap replicates (``replicates.parquet``: Poisson-weighted concordant and
discordant counts per replicate). The CI of a change is the percentile interval of the
replicate-by-replicate differences current_b - previous_b. Replicate weights are a pure function of
(bootstrap unit, replicate, seed), so when the two audits share pairs (a judge relabelling the same
corpus) replicate b reweights those pairs identically in both: a paired bootstrap whose difference
accounts for the shared sampling noise. For disjoint pairs the draws are (nearly) independent and the
difference is an ordinary two-sample bootstrap. Undefined replicates (NaN) are dropped pairwise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import polars as pl
import pyarrow as pa

from profile_dist import schema
from profile_dist.analysis import stats

Group = tuple[str, str, str]  # labeler, setting, task

#: Whether a larger value of the metric means closer agreement between two sources.
HIGHER_IS_BETTER = {
    "kendall_tau_b": True, "spearman_rho": True, "sign_agreement": True, "top_k_overlap": True,
    "mean_abs_diff": False,
}
assert set(HIGHER_IS_BETTER) == set(schema.ALIGNMENT_METRICS)


@dataclass(frozen=True)
class Change:
    previous: float | None
    current: float | None
    change: float | None
    ci_low: float | None
    ci_high: float | None
    n_replicates: int

    @property
    def significant(self) -> bool:
        """The interval excludes zero."""
        return self.ci_low is not None and self.ci_high is not None and (self.ci_low > 0 or self.ci_high < 0)


def _number(value: float | None) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def change_interval(previous: np.ndarray, current: np.ndarray, level: float) -> tuple[float | None, float | None, int]:
    """Percentile interval of ``current[b] - previous[b]`` over the replicates both audits have.

    Returns (low, high, number of replicate pairs used); (None, None, 0) when none is defined.
    """
    n = min(len(previous), len(current))
    diffs = np.asarray(current[:n], dtype=np.float64) - np.asarray(previous[:n], dtype=np.float64)
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return None, None, 0
    low, high = stats.percentile_interval(diffs, level)
    return low, high, int(diffs.size)


def measure_change(
    previous: float | None, current: float | None, previous_samples: np.ndarray, current_samples: np.ndarray, level: float,
) -> Change:
    previous, current = _number(previous), _number(current)
    if previous is None or current is None:
        return Change(previous, current, None, None, None, 0)
    low, high, n = change_interval(previous_samples, current_samples, level)
    return Change(previous, current, current - previous, low, high, n)


# --- reading the reduce tables into arrays ------------------------------------------------------------


@dataclass
class AuditTaus:
    """One audit's taus per group: point values and the [B, F] replicate matrix, in one factor order."""

    factors: dict[Group, list[str]]
    point: dict[Group, np.ndarray]  # [F]
    replicates: dict[Group, np.ndarray]  # [B, F] (B may be 0)
    # task -> the factors the reduce compared sources over (its manifest's alignment.factors); None: all shared
    alignment_factors: dict[str, list[str]] | None = None

    @classmethod
    def from_tables(cls, influence: pa.Table, replicates: pa.Table,
                    alignment_factors: dict[str, list[str]] | None = None) -> "AuditTaus":
        factors: dict[Group, list[str]] = {}
        taus: dict[Group, list[float]] = {}
        for row in influence.select(["labeler", "setting", "task", "factor", "tau"]).to_pylist():
            group = (row["labeler"], row["setting"], row["task"])
            factors.setdefault(group, []).append(row["factor"])
            taus.setdefault(group, []).append(math.nan if row["tau"] is None else row["tau"])
        point = {g: np.array(v, dtype=np.float64) for g, v in taus.items()}
        frame = pl.from_arrow(replicates.select(["labeler", "setting", "task", "factor", "replicate", "n_concordant", "n_discordant"]))
        total = pl.col("n_concordant") + pl.col("n_discordant")
        frame = frame.with_columns(
            tau=pl.when(total > 0).then((pl.col("n_concordant") - pl.col("n_discordant")) / total).otherwise(None)
        )
        reps: dict[Group, np.ndarray] = {}
        by_group = {tuple(k): g for k, g in frame.group_by(["labeler", "setting", "task"])} if frame.height else {}
        for group, names in factors.items():
            part = by_group.get(group)
            if part is None:
                reps[group] = np.empty((0, len(names)))
                continue
            wide = part.pivot(on="factor", index="replicate", values="tau").sort("replicate")
            reps[group] = np.column_stack([
                wide[f].cast(pl.Float64).fill_null(np.nan).to_numpy() if f in wide.columns else np.full(wide.height, np.nan)
                for f in names
            ]) if names else np.empty((wide.height, 0))
        return cls(factors, point, reps, alignment_factors)

    def factor_index(self, group: Group, factor: str) -> int | None:
        names = self.factors.get(group, [])
        return names.index(factor) if factor in names else None


def source_name(group: Group) -> str:
    return f"{group[0]}/{group[1]}"


# --- per factor ------------------------------------------------------------------------------------------


def influence_drift(previous: AuditTaus, current: AuditTaus, level: float) -> pa.Table:
    """One row per (group, factor) in either audit: tau before and now, the change, its CI."""
    rows = []
    for group in sorted(set(previous.factors) | set(current.factors)):
        names = list(current.factors.get(group, []))
        names += [f for f in previous.factors.get(group, []) if f not in names]
        for factor in names:
            values, samples = [], []
            for audit in (previous, current):
                index = audit.factor_index(group, factor)
                values.append(None if index is None else audit.point[group][index])
                samples.append(np.empty(0) if index is None else audit.replicates[group][:, index])
            found = measure_change(values[0], values[1], samples[0], samples[1], level)
            rows.append({
                "labeler": group[0], "setting": group[1], "task": group[2], "factor": factor,
                "tau_previous": found.previous, "tau_current": found.current, "change": found.change,
                "ci_low": found.ci_low, "ci_high": found.ci_high, "significant": found.significant,
                "n_replicates": found.n_replicates,
            })
    return pa.Table.from_pylist(rows, schema=schema.DRIFT_INFLUENCE)


# --- per alignment metric ---------------------------------------------------------------------------------


def alignment_values(audit: AuditTaus, x: Group, y: Group, top_k: int = 3) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Alignment metrics of two sources over their shared factors (within the reduce's factor set for the
    task): point values and per replicate.

    The point values equal the reduce stage's ``alignment.parquet`` (same factors, order and top_k) where it
    compared the two on their own pairs; a judge's comparison on the pairs both decided is not in the
    replicates table, so here it is measured on each source's own pairs.
    """
    compared = (audit.alignment_factors or {}).get(x[2])
    shared = [f for f in audit.factors[x] if f in audit.factors[y] and (compared is None or f in compared)]
    ix = [audit.factors[x].index(f) for f in shared]
    iy = [audit.factors[y].index(f) for f in shared]
    point = stats.alignment_metrics(audit.point[x][ix], audit.point[y][iy], top_k)
    rx, ry = audit.replicates[x][:, ix], audit.replicates[y][:, iy]
    n = min(len(rx), len(ry))
    samples = {m: np.empty(n) for m in schema.ALIGNMENT_METRICS}
    for b in range(n):
        for metric, value in stats.alignment_metrics(rx[b], ry[b], top_k).items():
            samples[metric][b] = value
    return point, samples


def _source_pairs(audit: AuditTaus) -> dict[tuple[str, str, str], tuple[Group, Group]]:
    """(task, source_x, source_y) -> groups, pairs in the order reduce writes them (sorted sources)."""
    by_task: dict[str, list[Group]] = {}
    for group in audit.factors:
        by_task.setdefault(group[2], []).append(group)
    pairs = {}
    for task, groups in by_task.items():
        for x, y in itertools.combinations(sorted(groups), 2):
            pairs[(task, source_name(x), source_name(y))] = (x, y)
    return pairs


def drop_of(metric: str, change: float | None) -> float | None:
    """A change as lost agreement: positive when the two sources agree less than before."""
    if change is None:
        return None
    return (-change if HIGHER_IS_BETTER[metric] else change) + 0.0  # + 0.0: no "-0.0"


def alignment_drift(previous: AuditTaus, current: AuditTaus, level: float, top_k: int = 3) -> pa.Table:
    """One row per (task, source pair, metric) present in either audit."""
    before, now = _source_pairs(previous), _source_pairs(current)
    rows = []
    for key in sorted(set(before) | set(now)):
        task, sx, sy = key
        points, samples = [], []
        for audit, pairs in ((previous, before), (current, now)):
            if key in pairs:
                p, s = alignment_values(audit, *pairs[key], top_k)
            else:
                p, s = {m: math.nan for m in schema.ALIGNMENT_METRICS}, {m: np.empty(0) for m in schema.ALIGNMENT_METRICS}
            points.append(p)
            samples.append(s)
        for metric in schema.ALIGNMENT_METRICS:
            found = measure_change(points[0][metric], points[1][metric], samples[0][metric], samples[1][metric], level)
            if found.previous is None and found.current is None:
                continue
            rows.append({
                "task": task, "source_x": sx, "source_y": sy, "metric": metric,
                "value_previous": found.previous, "value_current": found.current, "change": found.change,
                "ci_low": found.ci_low, "ci_high": found.ci_high, "significant": found.significant,
                "drop": drop_of(metric, found.change), "n_replicates": found.n_replicates,
            })
    return pa.Table.from_pylist(rows, schema=schema.DRIFT_ALIGNMENT)


# --- the alert ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftPolicy:
    """When a drop in alignment with the reference labeler (humans) fails the audit.

    ``max_drop`` maps each watched metric to the largest tolerated loss of agreement since the previous
    audit (in the metric's own units; see :func:`drop_of`).
    """

    reference: str = "human"  # the labeler whose agreement with every other source is watched
    max_drop: tuple[tuple[str, float], ...] = (("kendall_tau_b", 0.2), ("sign_agreement", 0.2), ("mean_abs_diff", 0.1))
    require_significant: bool = True  # ... and (if set) the drop's CI excludes zero

    def __post_init__(self) -> None:
        unknown = [m for m, _ in self.max_drop if m not in HIGHER_IS_BETTER]
        if unknown:
            raise ValueError(f"unknown alignment metric(s) {', '.join(unknown)}; expected some of {', '.join(HIGHER_IS_BETTER)}")
        if not self.max_drop:
            raise ValueError("at least one alignment metric must be watched")
        negative = [m for m, v in self.max_drop if not v >= 0]
        if negative:
            raise ValueError(f"max_drop must be 0 or more (metric(s) {', '.join(negative)})")

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m, _ in self.max_drop)

    def threshold(self, metric: str) -> float | None:
        return dict(self.max_drop).get(metric)

    def watches(self, row: dict) -> bool:
        x, y = row["source_x"].split("/", 1)[0], row["source_y"].split("/", 1)[0]
        return row["metric"] in self.metrics and (x == self.reference) != (y == self.reference)

    def breached(self, row: dict) -> bool:
        drop = row["drop"]
        return (
            self.watches(row) and drop is not None and drop > self.threshold(row["metric"])
            and (row["significant"] or not self.require_significant)
        )


def alignment_alerts(drift: pa.Table | Iterable[dict], policy: DriftPolicy) -> list[dict]:
    """Rows of an alignment drift table where alignment with the reference dropped past the policy."""
    rows = drift.to_pylist() if isinstance(drift, pa.Table) else list(drift)
    return [row for row in rows if policy.breached(row)]
