"""Reduce: pairs + annotations -> factor influence, adjusted effects, alignment and gaps, with CIs.

Map: each shard reader yields a ``DiffBatch`` (pre-joined, oriented factor differences); a Ray task
turns it into a ``partials.Partial`` of fixed size (see partials.py for the bucketed Poisson
bootstrap). The driver merges partials as they arrive, with a bounded number of tasks in flight, so
memory is bounded by a few shards, never the corpus. The same code runs on a laptop's local Ray and
on a cluster (``address``/RAY_ADDRESS): tasks only take a reader and the config.

Every number written is a function of the merged integers (and the bottom-k sample), so results are
bit-identical however the corpus is sharded and in whatever order the shards finish.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import ray
from tqdm import tqdm

from profile_dist import adjusted, published, schema, stats, storage
from profile_dist.errors import BadInputError, ConfigError
from profile_dist.partials import (
    DiffBatch, GroupKey, Partial, ReduceConfig, map_batch, replicate_counts, replicate_taus, replicate_weights,
)
from profile_dist.stages.runtime import ensure_ray, unwrap

DEFAULT_LENGTH_FACTOR = "length"
DEFAULT_LENGTH_TOLERANCE = 0.10  # responses within 10% of each other's length count as length-matched


# --- shard readers: anything that yields a DiffBatch -------------------------------------------------


class ShardReader(Protocol):
    """A picklable description of one shard; ``read`` runs inside the Ray task."""

    name: str

    def read(self, factors: tuple[str, ...]) -> DiffBatch: ...


BOOTSTRAP_UNITS = {"pair": "pair_id", "prompt": "prompt_id"}  # unit -> the pairs column it hashes


def _annotation_dataset(files: list[str]) -> pads.Dataset:
    fs, _ = storage.filesystem(files[0])
    return pads.dataset([storage.filesystem(f)[1] for f in files], filesystem=fs, format="parquet", schema=schema.ANNOTATIONS)


def _factor_values(annotation_files: list[str], response_ids: pa.Array, factors: list[str]) -> pl.DataFrame:
    """Wide table response_id x factor (null where unknown or failed) for the given responses."""
    with storage.arrow_errors(annotation_files[0]):
        table = _annotation_dataset(annotation_files).to_table(
            columns=["response_id", "factor", "value"],
            filter=pads.field("response_id").isin(response_ids) & pads.field("factor").isin(pa.array(factors, pa.string())),
        )
    long = pl.from_arrow(table).unique(subset=["response_id", "factor"], keep="first", maintain_order=True)
    wide = long.pivot(on="factor", index="response_id", values="value") if long.height else pl.DataFrame({"response_id": []}, schema={"response_id": pl.String})
    for name in factors:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return wide.select("response_id", *factors)


def group_codes(frame: pl.DataFrame) -> tuple[list[GroupKey], np.ndarray]:
    """Distinct (labeler, setting, task) in first-seen order, and each row's index into them."""
    keyed = frame.select("labeler", "setting", "task").with_row_index("_row")
    groups: list[GroupKey] = []
    index = np.empty(frame.height, dtype=np.int32)
    for key, rows in keyed.group_by(["labeler", "setting", "task"], maintain_order=True):
        index[rows["_row"].to_numpy()] = len(groups)
        groups.append(tuple(key))
    return groups, index


@dataclass(frozen=True)
class PairsShardReader:
    """A canonical pairs shard joined with its responses' annotations (the pipeline's reader)."""

    name: str  # the pairs shard path
    annotation_files: tuple[str, ...]
    bootstrap_unit: str = "pair"
    length_factor: str = DEFAULT_LENGTH_FACTOR
    length_tolerance: float = DEFAULT_LENGTH_TOLERANCE

    def read(self, factors: tuple[str, ...]) -> DiffBatch:
        pairs = pl.from_arrow(storage.read_parquet(self.name, schema.PAIRS))
        bad_labels = pairs.filter(~pl.col("label").is_in(list(schema.LABELS)))
        if bad_labels.height:
            row = bad_labels.row(0, named=True)
            raise ConfigError(
                f"{self.name}: row {row['source_row']} of {row['source_file']} (pair {row['pair_id']}), field 'label': "
                f"{row['label']!r}; expected one of {', '.join(schema.LABELS)}"
            )
        skipped: Counter = Counter()
        for labeler, setting, task, n in pairs.filter(pl.col("label") == "tie").group_by(["labeler", "setting", "task"]).len().iter_rows():
            skipped[(labeler, setting, task, "", "tie label (no preference)")] += n
        decided = pairs.filter(pl.col("label") != "tie")
        wanted = list(dict.fromkeys([*factors, self.length_factor]))
        response_ids = pl.concat([decided["response_a_id"], decided["response_b_id"]]).unique().to_arrow()
        values = _factor_values(list(self.annotation_files), response_ids, wanted) if decided.height else None
        n, n_factors = decided.height, len(factors)
        if values is None:
            a_vals = b_vals = np.empty((0, len(wanted)))
        else:
            joined = (
                decided.select("response_a_id", "response_b_id")
                .join(values.rename({f: f"a__{f}" for f in wanted}), left_on="response_a_id", right_on="response_id", how="left", maintain_order="left")
                .join(values.rename({f: f"b__{f}" for f in wanted}), left_on="response_b_id", right_on="response_id", how="left", maintain_order="left")
            )
            a_vals = joined.select(f"a__{f}" for f in wanted).to_numpy().astype(np.float64)
            b_vals = joined.select(f"b__{f}" for f in wanted).to_numpy().astype(np.float64)
        a_pref = (decided["label"] == "a").to_numpy()[:, None]
        diffs = np.where(a_pref, a_vals - b_vals, b_vals - a_vals)[:, :n_factors]
        length_a, length_b = a_vals[:, -1], b_vals[:, -1]
        with np.errstate(invalid="ignore"):
            matched = np.abs(length_a - length_b) <= self.length_tolerance * np.maximum(length_a, length_b)
        groups, index = group_codes(decided)
        unit_column = BOOTSTRAP_UNITS[self.bootstrap_unit]
        pair_hash = stats.id_hashes(decided["pair_id"].to_arrow())
        unit_hash = pair_hash if unit_column == "pair_id" else stats.id_hashes(decided[unit_column].to_arrow())
        assert diffs.shape == (n, n_factors)
        return DiffBatch(groups, index, pair_hash, unit_hash, diffs, matched & ~np.isnan(length_a - length_b), skipped)


def reduce_shard(reader: ShardReader, config: ReduceConfig) -> Partial:
    return map_batch(reader.read(config.factors), config)


_reduce_shard_remote = ray.remote(reduce_shard)


def map_reduce(
    readers: Iterable[ShardReader], config: ReduceConfig, *, progress: bool | None = None, max_in_flight: int | None = None,
    total: int | None = None,
) -> Partial:
    """Run ``reduce_shard`` on Ray for every reader and merge the partials as they complete.

    At most ``max_in_flight`` tasks are pending (default: twice the cluster's CPUs), so a corpus of any
    number of shards holds at most that many partials in the object store and one merged in the driver.
    """
    if progress is None:
        progress = sys.stderr.isatty() or bool(os.environ.get("PROFILE_DIST_PROGRESS"))
    if max_in_flight is None:
        max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    config_ref = ray.put(config)
    merged = Partial(config)
    pending: list = []
    readers = iter(readers)
    exhausted = False
    with tqdm(total=total, desc="reduce", unit="shard", disable=not progress, file=sys.stderr) as bar:
        while pending or not exhausted:
            while not exhausted and len(pending) < max_in_flight:
                reader = next(readers, None)
                if reader is None:
                    exhausted = True
                else:
                    pending.append(_reduce_shard_remote.remote(reader, config_ref))
            if not pending:
                break
            done, pending = ray.wait(pending, num_returns=1)
            try:
                partial = ray.get(done[0])
            except Exception as exc:
                for other in pending:
                    ray.cancel(other)
                raise unwrap(exc) from None
            merged.add(partial)
            bar.update(1)
    return merged


# --- from the merged partial to result tables ---------------------------------------------------------


@dataclass
class Results:
    """Point estimates and per-replicate taus of every group, computed once from the merged partial."""

    merged: Partial
    level: float
    tau: dict[GroupKey, np.ndarray]  # [F]
    replicate_tau: dict[GroupKey, np.ndarray]  # [B, F]
    matched_tau: dict[GroupKey, np.ndarray]
    replicate_matched_tau: dict[GroupKey, np.ndarray]
    weights: np.ndarray | None  # [B, M] replicate weights of the buckets
    _alignment_cache: dict = field(default_factory=dict)

    @classmethod
    def from_partial(cls, merged: Partial, level: float) -> "Results":
        weights = replicate_weights(merged.config) if merged.config.n_bootstrap else None
        tau, reps, matched, reps_matched = {}, {}, {}, {}
        for key, group in sorted(merged.groups.items()):
            tau[key] = stats.tau_from_counts(group.concordant, group.discordant)
            matched[key] = stats.tau_from_counts(group.totals[:, 5], group.totals[:, 6])
            if weights is not None:
                reps[key], reps_matched[key] = replicate_taus(group, weights)
            else:
                empty = np.empty((0, len(merged.config.factors)))
                reps[key], reps_matched[key] = empty, empty
        return cls(merged, level, tau, reps, matched, reps_matched, weights)

    @property
    def factors(self) -> tuple[str, ...]:
        return self.merged.config.factors

    def interval(self, samples: np.ndarray) -> tuple[float | None, float | None]:
        return stats.percentile_interval(samples, self.level) if len(samples) else (None, None)


def _none_if_nan(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def influence_table(results: Results) -> pa.Table:
    rows = []
    b = results.merged.config.n_bootstrap
    for key, group in sorted(results.merged.groups.items()):
        for f, factor in enumerate(results.factors):
            c, d, t = int(group.concordant[f]), int(group.discordant[f]), int(group.ties[f])
            low, high = results.interval(results.replicate_tau[key][:, f])
            rows.append({
                "labeler": key[0], "setting": key[1], "task": key[2], "factor": factor,
                "n_pairs": c + d + t, "n_concordant": c, "n_discordant": d, "n_ties": t,
                **stats.influence_summary(c, d, t), "ci_low": low, "ci_high": high, "n_bootstrap": b,
            })
    return pa.Table.from_pylist(rows, schema=schema.INFLUENCE)


def replicates_table(results: Results) -> pa.Table:
    """Bootstrap replicate counts, kept so later comparisons (drift, gaps) reuse the same draws."""
    merged = results.merged
    b = merged.config.n_bootstrap
    if not b:
        return schema.REPLICATES.empty_table()
    weights = results.weights
    parts = []
    for key, group in sorted(merged.groups.items()):
        counts = replicate_counts(group, weights)  # (B, F, 4)
        for f, factor in enumerate(results.factors):
            parts.append(pa.table({
                "labeler": [key[0]] * b, "setting": [key[1]] * b, "task": [key[2]] * b, "factor": [factor] * b,
                "replicate": np.arange(b, dtype=np.int64),
                "n_concordant": counts[:, f, 0] + counts[:, f, 2], "n_discordant": counts[:, f, 1] + counts[:, f, 3],
            }, schema=schema.REPLICATES))
    return pa.concat_tables(parts) if parts else schema.REPLICATES.empty_table()


def source_name(labeler: str, setting: str) -> str:
    return f"{labeler}/{setting}"


def _task_sources(results: Results) -> dict[str, dict[tuple[str, str], GroupKey]]:
    by_task: dict[str, dict[tuple[str, str], GroupKey]] = {}
    for key in results.tau:
        by_task.setdefault(key[2], {})[(key[0], key[1])] = key
    return by_task


def _alignment_samples(results: Results, x: GroupKey, y: GroupKey, top_k: int) -> tuple[dict[str, float], dict[str, np.ndarray], int]:
    """Point metrics, per-replicate metrics (from the same replicate draws) and the defined-factor count."""
    if (x, y, top_k) in results._alignment_cache:
        return results._alignment_cache[(x, y, top_k)]
    tx, ty = results.tau[x], results.tau[y]
    point = stats.alignment_metrics(tx, ty, top_k)
    n_defined = int(np.sum(~(np.isnan(tx) | np.isnan(ty))))
    rx, ry = results.replicate_tau[x], results.replicate_tau[y]
    samples = {m: np.empty(len(rx)) for m in schema.ALIGNMENT_METRICS}
    for r in range(len(rx)):
        for metric, value in stats.alignment_metrics(rx[r], ry[r], top_k).items():
            samples[metric][r] = value
    results._alignment_cache[(x, y, top_k)] = (point, samples, n_defined)
    return point, samples, n_defined


def alignment_table(results: Results, top_k: int = 3) -> pa.Table:
    rows = []
    for task, sources in sorted(_task_sources(results).items()):
        for sx, sy in itertools.combinations(sorted(sources), 2):
            point, samples, n_defined = _alignment_samples(results, sources[sx], sources[sy], top_k)
            if n_defined < 2:
                continue
            for metric in schema.ALIGNMENT_METRICS:
                low, high = results.interval(samples[metric])
                rows.append({
                    "task": task, "source_x": source_name(*sx), "source_y": source_name(*sy), "n_factors": n_defined,
                    "metric": metric, "value": _none_if_nan(point[metric]), "ci_low": low, "ci_high": high,
                })
    return pa.Table.from_pylist(rows, schema=schema.ALIGNMENT)


def gap_table(results: Results, top_k: int = 3) -> pa.Table:
    """alignment(human, M/evaluation) - alignment(human, M/generation), replicate by replicate."""
    rows = []
    for task, sources in sorted(_task_sources(results).items()):
        humans = sorted(s for s in sources if s[1] == "human")
        models = sorted({s[0] for s in sources if (s[0], "evaluation") in sources and (s[0], "generation") in sources})
        for human, model in itertools.product(humans, models):
            ev, ev_samples, n_ev = _alignment_samples(results, sources[human], sources[(model, "evaluation")], top_k)
            gen, gen_samples, n_gen = _alignment_samples(results, sources[human], sources[(model, "generation")], top_k)
            if min(n_ev, n_gen) < 2:
                continue
            for metric in schema.ALIGNMENT_METRICS:
                low, high = results.interval(ev_samples[metric] - gen_samples[metric])
                rows.append({
                    "task": task, "reference": source_name(*human), "model": model, "metric": metric,
                    "evaluation": _none_if_nan(ev[metric]), "generation": _none_if_nan(gen[metric]),
                    "gap": _none_if_nan(ev[metric] - gen[metric]), "ci_low": low, "ci_high": high,
                })
    return pa.Table.from_pylist(rows, schema=schema.GAP)


def disagreement(tau: tuple[float | None, float | None, float | None], adjusted_effect: tuple[float | None, float | None, float | None], held_fixed: str) -> str:
    """Why an adjusted effect and the plain tau tell different stories, or "" if they do not.

    Each effect is read as -, 0 or + (0: its interval contains zero); they disagree when those differ.
    """
    def direction(value, low, high):
        if value is None:
            return None
        if low is not None and low <= 0 <= high:
            return 0
        return 1 if value > 0 else -1

    plain, adj = direction(*tau), direction(*adjusted_effect)
    if plain is None or adj is None or plain == adj:
        return ""
    if plain != 0 and adj != 0:
        return f"sign flips once {held_fixed}"
    if adj == 0:
        return f"no longer distinguishable from zero once {held_fixed}"
    return f"significant only once {held_fixed}"


def adjusted_table(results: Results, *, penalty: float, length_factor: str = DEFAULT_LENGTH_FACTOR) -> pa.Table:
    rows = []
    factors = list(results.factors)
    for key, group in sorted(results.merged.groups.items()):
        present = [f for f in range(len(factors)) if int(group.concordant[f] + group.discordant[f] + group.ties[f])]
        effects = adjusted.adjusted_effects([factors[f] for f in present], group.sample_diffs[:, present], penalty=penalty, level=results.level)
        for position, f in enumerate(present):
            tau = _none_if_nan(results.tau[key][f])
            t_low, t_high = results.interval(results.replicate_tau[key][:, f])
            lc = _none_if_nan(results.matched_tau[key][f])
            lc_low, lc_high = results.interval(results.replicate_matched_tau[key][:, f])
            coef = _none_if_nan(effects.coef[position])
            b_low, b_high = _none_if_nan(effects.ci_low[position]), _none_if_nan(effects.ci_high[position])
            reasons = [disagreement((tau, t_low, t_high), (coef, b_low, b_high), "the other factors are held fixed (Bradley-Terry)")]
            if factors[f] != length_factor:
                reasons.append(disagreement((tau, t_low, t_high), (lc, lc_low, lc_high), "length is held fixed (length-matched pairs)"))
            rows.append({
                "labeler": key[0], "setting": key[1], "task": key[2], "factor": factors[f],
                "tau": tau, "tau_ci_low": t_low, "tau_ci_high": t_high,
                "length_controlled_tau": lc if factors[f] != length_factor else None,
                "length_controlled_tau_ci_low": lc_low if factors[f] != length_factor else None,
                "length_controlled_tau_ci_high": lc_high if factors[f] != length_factor else None,
                "n_length_matched_decided": int(group.totals[f, 5] + group.totals[f, 6]),
                "bt_coef": coef, "bt_coef_ci_low": b_low, "bt_coef_ci_high": b_high, "n_bt_pairs": effects.n_pairs,
                "disagreement": "; ".join(r for r in reasons if r),
            })
    return pa.Table.from_pylist(rows, schema=schema.ADJUSTED)


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
    with storage.arrow_errors(annotation_files[0]):
        table = _annotation_dataset(annotation_files).to_table(columns=["factor"])
    return sorted(set(pl.from_arrow(table)["factor"].unique().to_list()))


def result_tables(merged: Partial, *, level: float = 0.95, penalty: float = adjusted.DEFAULT_PENALTY, ingest_rejected: Counter | None = None) -> dict[str, pa.Table]:
    results = Results.from_partial(merged, level)
    return {
        "influence": influence_table(results),
        "alignment": alignment_table(results),
        "gap": gap_table(results),
        "adjusted": adjusted_table(results, penalty=penalty),
        "skipped": skipped_table(merged, ingest_rejected or Counter()),
        "replicates": replicates_table(results),
    }


def _pair_hashes(shard: str) -> np.ndarray:
    return stats.id_hashes(storage.read_parquet(shard, schema.PAIRS).column("pair_id"))


_pair_hashes_remote = ray.remote(_pair_hashes)


def check_unique_pairs(pairs_shards: list[str]) -> None:
    """Refuse pairs that appear twice (a pairs dir given twice, a shard copied, two ingests of one file):
    they would be counted twice. Hashes only reach the driver (8 bytes a pair), one task per shard."""
    if len(set(pairs_shards)) != len(pairs_shards):
        raise ConfigError("the same pairs shard is given twice (is a --pairs directory repeated?); its pairs would be counted twice")
    refs = [_pair_hashes_remote.remote(s) for s in pairs_shards]
    try:
        hashes = ray.get(refs)
    except Exception as exc:
        raise unwrap(exc) from None
    every = np.concatenate(hashes) if hashes else np.empty(0, np.uint64)
    values, counts = np.unique(every, return_counts=True)
    if not (counts > 1).any():
        return
    dup = values[np.argmax(counts > 1)]
    where = []
    for shard, h in zip(pairs_shards, hashes):
        for i in np.flatnonzero(h == dup):
            where.append((shard, int(i)))
    shard, row = where[-1]
    pair_id = storage.read_parquet(shard, schema.PAIRS).column("pair_id")[row].as_py()
    raise BadInputError(shard, row, "pair_id", f"duplicate pair id {pair_id} (also in {where[0][0]}, row {where[0][1]}); "
                        f"{int((counts - 1).sum())} pair(s) would be counted twice")


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
    bootstrap_unit: str = "pair",
    n_buckets: int = ReduceConfig.n_buckets,
    sample_size: int = ReduceConfig.sample_size,
    penalty: float = adjusted.DEFAULT_PENALTY,
    length_tolerance: float = DEFAULT_LENGTH_TOLERANCE,
) -> ReduceSummary:
    if n_bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more")
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise ConfigError(f"bootstrap unit {bootstrap_unit!r} unknown; expected one of {', '.join(BOOTSTRAP_UNITS)}")
    pairs_shards = [s for d in pairs_dirs for s in published.table_files(d, "pairs")]  # the manifest's files only
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
    chosen = tuple(factors) if factors else tuple(available)
    try:
        config = ReduceConfig(chosen, n_bootstrap=n_bootstrap, seed=seed, n_buckets=n_buckets, sample_size=sample_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    ensure_ray(address)
    readers = [
        PairsShardReader(shard, tuple(annotation_files), bootstrap_unit=bootstrap_unit, length_tolerance=length_tolerance)
        for shard in pairs_shards
    ]
    check_unique_pairs(pairs_shards)
    merged = map_reduce(readers, config, progress=progress, total=len(readers))
    rejected, notes = _ingest_rejected(pairs_dirs)
    tables = result_tables(merged, level=level, penalty=penalty, ingest_rejected=rejected)
    for name, table in tables.items():
        storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
    storage.write_json_atomic({
        "stage": "reduce", "pairs": pairs_dirs, "annotations": annotation_dirs, "factors": list(chosen),
        "n_bootstrap": n_bootstrap, "seed": seed, "confidence_level": level, "pairs_shards": len(pairs_shards),
        "ingest_notes": notes, "bootstrap": {"scheme": "bucketed Poisson", "unit": bootstrap_unit, "n_buckets": n_buckets},
        "adjusted": {"model": "penalised logistic Bradley-Terry", "penalty": penalty, "sample_size": sample_size,
                     "length_tolerance": length_tolerance},
    }, storage.join(output, "_manifest.json"))
    return ReduceSummary(output, len(pairs_shards), tables["influence"].num_rows, tables["alignment"].num_rows)
