"""Bootstrap replicate taus from a reduce's replicates.parquet, for CIs of derived comparisons.

Gaps and drift are differences of taus; their intervals come from the same Poisson replicates the
influence CIs use (replicate r of every source is drawn with the same hash-derived weights), so a
difference is computed replicate by replicate and its percentile interval taken.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from profile_dist import schema, storage
from profile_dist.analysis import stats
from profile_dist.layout.results import table_path

CellKey = tuple[str, str, str, str]  # labeler, setting, task, factor


def load_replicate_taus(results_dir: str) -> dict[CellKey, np.ndarray]:
    """(labeler, setting, task, factor) -> tau per replicate (NaN where C + D == 0); {} without the table."""
    path = table_path(results_dir, "replicates")
    if not storage.exists(path):
        return {}
    table = pl.from_arrow(storage.read_parquet(path, schema.REPLICATES)).sort(["labeler", "setting", "task", "factor", "replicate"])
    out: dict[CellKey, np.ndarray] = {}
    for key, group in table.group_by(["labeler", "setting", "task", "factor"], maintain_order=True):
        out[tuple(key)] = stats.tau_from_counts(group["n_concordant"].to_numpy(), group["n_discordant"].to_numpy())
    return out


def interval(samples: np.ndarray | None, level: float) -> tuple[float | None, float | None]:
    if samples is None or len(samples) == 0:
        return None, None
    return stats.percentile_interval(samples, level)
