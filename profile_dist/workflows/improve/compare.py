"""Comparisons between sources of one reduce output ("arms"), with intervals from its shared replicates.

Replicate r of every source is drawn with the same hash-derived weights (with the prompt as the bootstrap
unit, a prompt weighs the same in every source that has it), so a difference between two arms' taus, or
between their alignments with humans, is computed replicate by replicate and its percentile interval
taken. ``improve feedback`` compares before / guided / control; ``improve best-of-n`` compares the picks
with the same model's generation setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from profile_dist import schema, storage
from profile_dist.analysis import stats
from profile_dist.errors import ConfigError
from profile_dist.report.replicates import load_replicate_taus
from profile_dist.layout.results import require_results_dir, table_path

Source = tuple[str, str]  # labeler, setting

#: Metrics where a larger value means closer to humans; mean_abs_diff is the other way round.
HIGHER_IS_BETTER = {"kendall_tau_b": True, "spearman_rho": True, "sign_agreement": True, "top_k_overlap": True,
                    "mean_abs_diff": False}


def num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def fmt(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" + ("" if low is None else f" [{low:+.3f}, {high:+.3f}]")


@dataclass
class Audit:
    """The parts of a reduce output the improve commands read: its manifest, point taus and replicate taus."""

    results: str
    manifest: dict[str, Any]
    influence: pl.DataFrame
    replicates: dict[tuple[str, str, str, str], np.ndarray]

    @classmethod
    def load(cls, results: str) -> "Audit":
        manifest = require_results_dir(results, manifest=True)
        influence = pl.from_arrow(storage.read_parquet(table_path(results, "influence"), schema.INFLUENCE))
        replicates = load_replicate_taus(results)
        if not replicates:
            raise ConfigError(f"{results} has no bootstrap replicates (reduce --bootstrap 0); intervals of comparisons need them")
        return cls(results, manifest, influence, replicates)

    @property
    def factors(self) -> list[str]:
        return list(self.manifest["factors"])

    @property
    def level(self) -> float:
        return float(self.manifest.get("confidence_level", 0.95))

    def tau(self, source: Source, task: str, factor: str) -> float:
        rows = self.influence.filter((pl.col("labeler") == source[0]) & (pl.col("setting") == source[1])
                                     & (pl.col("task") == task) & (pl.col("factor") == factor))
        value = rows["tau"][0] if rows.height else None
        return np.nan if value is None else float(value)

    def tau_ci(self, source: Source, task: str, factor: str) -> tuple[float | None, float | None]:
        """The reduce's own interval of one tau (influence.parquet), whatever interval reduce uses."""
        rows = self.influence.filter((pl.col("labeler") == source[0]) & (pl.col("setting") == source[1])
                                     & (pl.col("task") == task) & (pl.col("factor") == factor))
        return (rows["ci_low"][0], rows["ci_high"][0]) if rows.height else (None, None)

    def reps(self, source: Source, task: str, factor: str) -> np.ndarray:
        some = next(iter(self.replicates.values()))
        return self.replicates.get((source[0], source[1], task, factor), np.full(len(some), np.nan))

    def interval(self, samples: np.ndarray) -> tuple[float | None, float | None]:
        samples = samples[np.isfinite(samples)]
        return stats.percentile_interval(samples, self.level) if len(samples) else (None, None)

    def sources(self, task: str) -> set[Source]:
        frame = self.influence.filter(pl.col("task") == task).select("labeler", "setting").unique()
        return {tuple(r) for r in frame.iter_rows()}

    def alignment_factors(self, task: str) -> list[str]:
        """The factors this reduce compares sources over for ``task`` (its manifest's alignment set when it
        records one, else every reduced factor), in reduce order."""
        recorded = (self.manifest.get("alignment") or {}).get("factors") or {}
        return [f for f in self.factors if f in recorded[task]] if task in recorded else self.factors

    def taus(self, source: Source, task: str, factors: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(point taus over the factors, replicate taus [B, factors]); every reduced factor by default."""
        factors = self.factors if factors is None else factors
        return (np.array([self.tau(source, task, f) for f in factors]),
                np.stack([self.reps(source, task, f) for f in factors], axis=1))


def reference_source(audit: Audit, task: str, reference: str | None) -> Source:
    """``LABELER/SETTING`` when given, else the task's only human source."""
    humans = sorted(s for s in audit.sources(task) if s[1] == "human")
    if reference is not None:
        labeler, _, setting = reference.partition("/")
        if (labeler, setting) not in audit.sources(task):
            raise ConfigError(f"reference {reference!r} has no influence rows for task {task!r} in {audit.results}")
        return labeler, setting
    if len(humans) != 1:
        raise ConfigError(f"task {task!r} has {len(humans)} human sources in {audit.results} "
                          f"({', '.join('/'.join(h) for h in humans) or 'none'}); pass --reference LABELER/SETTING")
    return humans[0]


@dataclass
class Alignment:
    """One arm's alignment with the reference: point metrics and their replicate samples."""

    point: dict[str, float]
    samples: dict[str, np.ndarray]


def arm_alignment(audit: Audit, reference: Source, arm: Source, task: str, factors: list[str]) -> Alignment:
    """Alignment over ``factors`` (the same set on both sides, and for every arm compared)."""
    t_h, r_h = audit.taus(reference, task, factors)
    t_a, r_a = audit.taus(arm, task, factors)
    per_rep = [stats.alignment_metrics(r_h[i], r_a[i]) for i in range(len(r_h))]
    return Alignment(stats.alignment_metrics(t_h, t_a),
                     {m: np.array([s[m] for s in per_rep]) for m in schema.ALIGNMENT_METRICS})


def with_interval(audit: Audit, prefix: str, value: float | None, samples: np.ndarray) -> dict[str, float | None]:
    """A derived value (a difference, an alignment metric) with the percentile interval of its replicates."""
    low, high = audit.interval(samples)
    return {prefix: num(value), f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def tau_with_interval(audit: Audit, prefix: str, source: Source, task: str, factor: str) -> dict[str, float | None]:
    """One source's tau with the reduce's own interval (which, unlike a replicate percentile, need not
    collapse to a point when every pair agrees)."""
    low, high = audit.tau_ci(source, task, factor)
    return {prefix: num(audit.tau(source, task, factor)), f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}


def ci_fields(prefix: str) -> list[pa.Field]:
    return [pa.field(prefix, pa.float64(), nullable=True), pa.field(f"{prefix}_ci_low", pa.float64(), nullable=True),
            pa.field(f"{prefix}_ci_high", pa.float64(), nullable=True)]
