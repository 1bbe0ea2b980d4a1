"""Reduce: pairs + annotations -> factor influence (tau with bootstrap CIs) and alignment.

Map: each pairs shard becomes additive partial counts per (labeler, setting, task, factor):
C, D, T and, per bootstrap replicate, the Poisson-weighted C and D. Weights are a pure function of
(pair_id, replicate), so the merged integers, and everything computed from them, are bit-identical
however the corpus is sharded and in whatever order the shards finish.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import ray

from profile_dist import schema, stats, storage
from profile_dist.errors import ConfigError
from profile_dist.stages.runtime import ensure_ray, run_tasks

GroupKey = tuple[str, str, str]  # labeler, setting, task
CHUNK_ROWS = 16_384  # bounds the (rows x replicates) weight matrix to ~3 MiB at 200 replicates


@dataclass
class Partial:
    """Additive sufficient statistics of one or more shards."""

    n_bootstrap: int
    # (labeler, setting, task, factor) -> int64[3 + 2B]: C, D, T, then C_1..C_B, D_1..D_B
    counts: dict[tuple[str, str, str, str], np.ndarray] = field(default_factory=dict)
    # (labeler, setting, task, factor or "", reason) -> count
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: "Partial") -> "Partial":
        for key, values in other.counts.items():
            if key in self.counts:
                self.counts[key] = self.counts[key] + values
            else:
                self.counts[key] = values.copy()
        self.skipped.update(other.skipped)
        return self


def _annotation_dataset(files: list[str]) -> pads.Dataset:
    fs, _ = storage.filesystem(files[0])
    return pads.dataset([storage.filesystem(f)[1] for f in files], filesystem=fs, format="parquet", schema=schema.ANNOTATIONS)


def _factor_values(annotation_files: list[str], response_ids: pa.Array, factors: list[str]) -> pl.DataFrame:
    """Wide table response_id x factor (null where unknown or failed) for the given responses."""
    table = _annotation_dataset(annotation_files).to_table(
        columns=["response_id", "factor", "value"],
        filter=pads.field("response_id").isin(response_ids) & pads.field("factor").isin(pa.array(factors, pa.string())),
    )
    long = pl.from_arrow(table).unique(subset=["response_id", "factor"], keep="first", maintain_order=True)
    wide = long.pivot(on="factor", index="response_id", values="value")
    for name in factors:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return wide.select("response_id", *factors)


def group_partial(
    pair_ids: list[str], preferred: np.ndarray, other: np.ndarray, n_bootstrap: int, seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Counts for one (labeler, setting, task) group.

    ``preferred``/``other`` are (n_pairs, n_factors) float arrays, NaN where a value is missing.
    Returns (int64[n_factors, 3 + 2B] counts, int64[n_factors] missing).
    """
    n_factors = preferred.shape[1]
    diff = preferred - other
    known = ~np.isnan(diff)
    concordant = known & (diff > 0)
    discordant = known & (diff < 0)
    out = np.zeros((n_factors, 3 + 2 * n_bootstrap), dtype=np.int64)
    out[:, 0] = concordant.sum(axis=0)
    out[:, 1] = discordant.sum(axis=0)
    out[:, 2] = (known & (diff == 0)).sum(axis=0)
    if n_bootstrap:
        hashes = stats.hash64(pair_ids)
        indicators = np.concatenate([concordant, discordant], axis=1)
        for start in range(0, len(pair_ids), CHUNK_ROWS):
            weights = stats.poisson_weights(hashes[start:start + CHUNK_ROWS], n_bootstrap, seed)
            boot = stats.weighted_counts(weights, indicators[start:start + CHUNK_ROWS])  # (B, 2F)
            out[:, 3:3 + n_bootstrap] += boot[:, :n_factors].T
            out[:, 3 + n_bootstrap:] += boot[:, n_factors:].T
    return out, (~known).sum(axis=0)


def reduce_shard(pairs_shard: str, annotation_files: list[str], factors: list[str], n_bootstrap: int, seed: int) -> Partial:
    pairs = pl.from_arrow(storage.read_parquet(pairs_shard, schema.PAIRS))
    partial = Partial(n_bootstrap)
    bad_labels = pairs.filter(~pl.col("label").is_in(list(schema.LABELS)))
    if bad_labels.height:
        row = bad_labels.row(0, named=True)
        raise ConfigError(f"{pairs_shard}: pair {row['pair_id']} has label {row['label']!r}; expected one of {', '.join(schema.LABELS)}")
    for labeler, setting, task, n in pairs.filter(pl.col("label") == "tie").group_by(["labeler", "setting", "task"]).len().iter_rows():
        partial.skipped[(labeler, setting, task, "", "tie label (no preference)")] += n
    decided = pairs.filter(pl.col("label") != "tie")
    if decided.height == 0:
        return partial
    response_ids = pl.concat([decided["response_a_id"], decided["response_b_id"]]).unique().to_arrow()
    values = _factor_values(annotation_files, response_ids, factors)
    joined = (
        decided.join(values.rename({f: f"a__{f}" for f in factors}), left_on="response_a_id", right_on="response_id", how="left")
        .join(values.rename({f: f"b__{f}" for f in factors}), left_on="response_b_id", right_on="response_id", how="left")
    )
    for (labeler, setting, task), group in joined.group_by(["labeler", "setting", "task"], maintain_order=True):
        a_pref = (group["label"] == "a").to_numpy()[:, None]
        a_vals = group.select(f"a__{f}" for f in factors).to_numpy().astype(np.float64)
        b_vals = group.select(f"b__{f}" for f in factors).to_numpy().astype(np.float64)
        preferred = np.where(a_pref, a_vals, b_vals)
        other = np.where(a_pref, b_vals, a_vals)
        counts, missing = group_partial(group["pair_id"].to_list(), preferred, other, n_bootstrap, seed)
        for i, factor in enumerate(factors):
            partial.counts[(labeler, setting, task, factor)] = counts[i]
            if missing[i]:
                partial.skipped[(labeler, setting, task, factor, "factor value missing or failed for a response")] += int(missing[i])
    return partial


_reduce_shard_remote = ray.remote(reduce_shard)


# --- from merged counts to result tables ------------------------------------------------------------


def influence_table(merged: Partial, level: float) -> pa.Table:
    rows = []
    b = merged.n_bootstrap
    for (labeler, setting, task, factor), values in sorted(merged.counts.items()):
        c, d, t = (int(v) for v in values[:3])
        summary = stats.influence_summary(c, d, t)
        low, high = stats.percentile_interval(stats.tau_from_counts(values[3:3 + b], values[3 + b:]), level) if b else (None, None)
        rows.append({
            "labeler": labeler, "setting": setting, "task": task, "factor": factor,
            "n_pairs": c + d + t, "n_concordant": c, "n_discordant": d, "n_ties": t,
            **summary, "ci_low": low, "ci_high": high, "n_bootstrap": b,
        })
    return pa.Table.from_pylist(rows, schema=schema.INFLUENCE)


def replicates_table(merged: Partial) -> pa.Table:
    """Bootstrap replicate counts, kept so later comparisons (drift, gaps) reuse the same draws."""
    b = merged.n_bootstrap
    columns: dict[str, list] = {k: [] for k in ("labeler", "setting", "task", "factor", "replicate", "n_concordant", "n_discordant")}
    for (labeler, setting, task, factor), values in sorted(merged.counts.items()):
        columns["labeler"] += [labeler] * b
        columns["setting"] += [setting] * b
        columns["task"] += [task] * b
        columns["factor"] += [factor] * b
        columns["replicate"] += list(range(b))
        columns["n_concordant"] += values[3:3 + b].tolist()
        columns["n_discordant"] += values[3 + b:].tolist()
    return pa.Table.from_pydict(columns, schema=schema.REPLICATES)


def source_name(labeler: str, setting: str) -> str:
    return f"{labeler}/{setting}"


def alignment_table(merged: Partial, level: float, top_k: int = 3) -> pa.Table:
    b = merged.n_bootstrap
    by_task: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for (labeler, setting, task, factor), values in merged.counts.items():
        by_task.setdefault(task, {}).setdefault(source_name(labeler, setting), {})[factor] = values
    rows = []
    for task in sorted(by_task):
        sources = by_task[task]
        for x, y in itertools.combinations(sorted(sources), 2):
            shared = sorted(set(sources[x]) & set(sources[y]))
            if len(shared) < 2:
                continue
            cx = np.stack([sources[x][f] for f in shared])  # (F, 3 + 2B)
            cy = np.stack([sources[y][f] for f in shared])
            tx, ty = stats.tau_from_counts(cx[:, 0], cx[:, 1]), stats.tau_from_counts(cy[:, 0], cy[:, 1])
            point = stats.alignment_metrics(tx, ty, top_k)
            n_defined = int(np.sum(~(np.isnan(tx) | np.isnan(ty))))
            replicate_metrics: dict[str, list[float]] = {m: [] for m in schema.ALIGNMENT_METRICS}
            for r in range(b):
                bx = stats.tau_from_counts(cx[:, 3 + r], cx[:, 3 + b + r])
                by = stats.tau_from_counts(cy[:, 3 + r], cy[:, 3 + b + r])
                for metric, value in stats.alignment_metrics(bx, by, top_k).items():
                    replicate_metrics[metric].append(value)
            for metric in schema.ALIGNMENT_METRICS:
                low, high = stats.percentile_interval(np.array(replicate_metrics[metric]), level) if b else (None, None)
                value = point[metric]
                rows.append({
                    "task": task, "source_x": x, "source_y": y, "n_factors": n_defined, "metric": metric,
                    "value": None if np.isnan(value) else value, "ci_low": low, "ci_high": high,
                })
    return pa.Table.from_pylist(rows, schema=schema.ALIGNMENT)


def skipped_table(merged: Partial, ingest_rejected: Counter) -> pa.Table:
    rows = [
        {"stage": "ingest", "labeler": None, "setting": None, "task": None, "factor": None, "reason": reason, "count": n}
        for reason, n in sorted(ingest_rejected.items())
    ]
    rows += [
        {"stage": "reduce", "labeler": labeler, "setting": setting, "task": task, "factor": factor or None, "reason": reason, "count": n}
        for (labeler, setting, task, factor, reason), n in sorted(merged.skipped.items())
    ]
    return pa.Table.from_pylist(rows, schema=schema.SKIPPED)


def _ingest_rejected(pairs_dirs: list[str]) -> tuple[Counter, dict[str, int]]:
    rejected: Counter = Counter()
    notes: Counter = Counter()
    for directory in pairs_dirs:
        table = storage.read_table_dir(storage.join(directory, "rejected"), schema.REJECTED)
        for kind, field_name, reason in zip(table.column("kind").to_pylist(), table.column("field").to_pylist(), table.column("reason").to_pylist()):
            rejected[f"{kind}: {field_name}: {reason}"] += 1
        manifest_path = storage.join(directory, "_manifest.json")
        if storage.exists(manifest_path):
            notes.update(storage.read_json(manifest_path).get("notes", {}))
    return rejected, dict(notes)


def _annotated_factors(annotation_files: list[str]) -> list[str]:
    table = _annotation_dataset(annotation_files).to_table(columns=["factor"])
    return sorted(set(pl.from_arrow(table)["factor"].unique().to_list()))


@dataclass
class ReduceSummary:
    output: str
    n_pairs_shards: int
    influence_rows: int
    alignment_rows: int

    def lines(self) -> list[str]:
        return [f"reduced {self.n_pairs_shards} pairs shard(s): {self.influence_rows} influence rows, {self.alignment_rows} alignment rows in {self.output}"]


def reduce(
    pairs_dirs: list[str],
    annotation_dirs: list[str],
    output: str,
    *,
    factors: list[str] | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    level: float = 0.95,
    address: str | None = None,
    progress: bool | None = None,
) -> ReduceSummary:
    if n_bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more")
    pairs_shards = [s for d in pairs_dirs for s in storage.list_files(storage.join(d, "pairs"))]
    if not pairs_shards:
        raise ConfigError(f"no pairs shards under {', '.join(pairs_dirs)}; is this the output directory of `profile-dist ingest`?")
    annotation_files = [f for d in annotation_dirs for f in storage.list_files(d)]
    if not annotation_files:
        raise ConfigError(f"no annotation shards under {', '.join(annotation_dirs)}; run `profile-dist annotate` first")
    available = _annotated_factors(annotation_files)
    if factors:
        unknown = [f for f in factors if f not in available]
        if unknown:
            raise ConfigError(f"factor(s) {', '.join(unknown)} not found in the annotations (annotated: {', '.join(available)})")
    chosen = list(factors) if factors else available
    ensure_ray(address)
    files_ref = ray.put(annotation_files)
    partials = run_tasks(
        _reduce_shard_remote, [(shard, files_ref, chosen, n_bootstrap, seed) for shard in pairs_shards], desc="reduce", progress=progress,
    )
    merged = Partial(n_bootstrap)
    for partial in partials:
        merged.add(partial)
    rejected, notes = _ingest_rejected(pairs_dirs)
    tables = {
        "influence": influence_table(merged, level),
        "alignment": alignment_table(merged, level),
        "skipped": skipped_table(merged, rejected),
        "replicates": replicates_table(merged),
    }
    for name, table in tables.items():
        storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
    storage.write_json_atomic({
        "stage": "reduce", "pairs": pairs_dirs, "annotations": annotation_dirs, "factors": chosen,
        "n_bootstrap": n_bootstrap, "seed": seed, "confidence_level": level, "pairs_shards": len(pairs_shards),
        "ingest_notes": notes,
    }, storage.join(output, "_manifest.json"))
    return ReduceSummary(output, len(pairs_shards), tables["influence"].num_rows, tables["alignment"].num_rows)
