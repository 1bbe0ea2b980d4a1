"""Reduce: pairs + annotations -> factor influence, adjusted effects, alignment and gaps, with CIs.

Join: pairs shards (and judge outputs' judged pairs) meet their responses' factor values in a shuffle
co-partitioned on response id (factor_join.py), so no task reads every annotation file.
Map: each shard reader yields a ``DiffBatch`` (pre-joined, oriented factor differences); a Ray task
turns it into a ``partials.Partial`` of fixed size (see partials.py for the bucketed Poisson
bootstrap). The driver merges partials as they arrive, with a bounded number of tasks in flight, so
memory is bounded by a few shards, never the corpus. The same code runs on a laptop's local Ray and
on a cluster (``address``/RAY_ADDRESS): tasks only take a reader and the config.

Every number written is a function of the merged integers (and the bottom-k sample), so results are
bit-identical however the corpus is sharded and in whatever order the shards finish.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Protocol

import polars as pl
import pyarrow.compute as pc
import pyarrow.dataset as pads
import ray

from profile_dist import schema, storage
from profile_dist.layout import published
from profile_dist.analysis import adjusted
from profile_dist.errors import ConfigError
from profile_dist.factor_sets import AlignmentFactors
from profile_dist.analysis.partials import (
    DiffBatch, Partial, ReduceConfig, map_batch,
)
from profile_dist.analysis.tables import DEFAULT_LENGTH_FACTOR, FactorSets, result_tables
from profile_dist.stages.factor_join import Oriented, co_partition
from profile_dist.stages.runtime import as_completed, ensure_ray, run_tasks
from profile_dist.stages.unique_pairs import check_distinct_shards

DEFAULT_LENGTH_TOLERANCE = 0.10  # responses within 10% of each other's length count as length-matched


# --- shard readers: anything that yields a DiffBatch -------------------------------------------------


class ShardReader(Protocol):
    """A picklable description of one shard; ``read`` runs inside the Ray task."""

    name: str

    def read(self, factors: tuple[str, ...]) -> DiffBatch: ...


# unit -> the pairs column it hashes. "auto" resamples prompts: where a group has one pair per prompt
# that is resampling pairs, and where it has several it is the only honest unit, so no per-group choice
# (which would depend on what a shard sees) is needed; influence.parquet says which one each group had.
BOOTSTRAP_UNITS = {"auto": "prompt_id", "pair": "pair_id", "prompt": "prompt_id"}
DEFAULT_BOOTSTRAP_UNIT = "auto"


@dataclass(frozen=True)
class PairsShard:
    """A canonical pairs shard: its decided pairs (ties are counted as skipped), for the factor join."""

    name: str  # the pairs shard path
    bootstrap_unit: str = DEFAULT_BOOTSTRAP_UNIT

    def rows(self) -> Oriented:
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
        decided = pairs.filter(pl.col("label") != "tie").with_columns(
            pair_key=pl.col("pair_id"), unit_key=pl.col(BOOTSTRAP_UNITS[self.bootstrap_unit]))
        return Oriented(decided, skipped, pairs["pair_id"].to_arrow())


#: Why a judged pair is not one both sides decided, per side.
_REFERENCE_DROP = "tie label (no preference)"
_JUDGE_DROP = (  # the first matching condition on (outcome, label in the judge's pairs) names the reason
    (pl.col("outcome") == "failed", "judge request failed in at least one order"),
    ((pl.col("outcome") == "inconsistent") & pl.col("label").is_null(), "position-inconsistent (policy drop)"),
    ((pl.col("outcome") == "inconsistent") & (pl.col("label") == "tie"), "position-inconsistent (policy tie)"),
    (pl.col("label") == "tie", "tie verdict (no preference)"),
)


def _judge_drop_reason() -> pl.Expr:
    expr = pl.when(_JUDGE_DROP[0][0]).then(pl.lit(_JUDGE_DROP[0][1]))
    for condition, reason in _JUDGE_DROP[1:]:
        expr = expr.when(condition).then(pl.lit(reason))
    return expr.otherwise(pl.lit(None, dtype=pl.String))


JUDGED_PAIRS_FILE = "judged_pairs.parquet"
#: A pairs column of the bootstrap unit -> the judged_pairs column with the same value: both sides of a judged
#: pair hash the reference (human) pair, so they share its bucket, and its weight, with the human's own tau.
_JUDGED_UNIT_COLUMNS = {"pair_id": "reference_pair_id", "prompt_id": "prompt_id"}


@dataclass(frozen=True)
class JudgedPairs:
    """A judge output's judged_pairs.parquet: the judge and its reference on the pairs BOTH decided.

    Each judged pair that both the reference (a non-tie label) and the judge (a kept non-tie label) decided
    gives two rows, one per side, in groups (side, other side, task); both rows hash the reference pair
    (or its prompt), so replicate b reweights the two sides' pairs identically and their replicates, like
    their point values, come from the same pairs. Every other judged pair is counted, per side, under
    the reason that side left it out (``skipped``). Everything stays a per-row, additive statistic.
    """

    name: str  # the judged_pairs.parquet path
    bootstrap_unit: str = DEFAULT_BOOTSTRAP_UNIT

    def rows(self) -> Oriented:
        judged = pl.from_arrow(storage.read_parquet(self.name, schema.JUDGED_PAIRS))
        judge_source = pl.concat_str("judge", pl.lit("/evaluation"))
        skipped: Counter = Counter()
        ties = judged.filter(pl.col("reference_label") == "tie").with_columns(judge_source.alias("other"))
        for side, other, task, n in ties.group_by(["reference", "other", "task"]).len().iter_rows():
            skipped[(side, other, task, "", _REFERENCE_DROP)] += n
        dropped = judged.with_columns(judge_source.alias("side"), _judge_drop_reason().alias("reason")).drop_nulls("reason")
        for side, other, task, reason, n in dropped.group_by(["side", "reference", "task", "reason"]).len().iter_rows():
            skipped[(side, other, task, "", reason)] += n
        both = judged.filter((pl.col("reference_label") != "tie") & pl.col("label").is_in(["a", "b"]))
        columns = ["labeler", "setting", "task", "label", "response_a_id", "response_b_id", "reference_pair_id", "prompt_id"]
        sides = pl.concat([  # labeler/setting hold (this side, other side) so that group_codes applies
            both.with_columns(labeler=pl.col("reference"), setting=judge_source, label=pl.col("reference_label")).select(columns),
            both.with_columns(labeler=judge_source, setting=pl.col("reference")).select(columns),
        ])
        unit_column = _JUDGED_UNIT_COLUMNS[BOOTSTRAP_UNITS[self.bootstrap_unit]]
        return Oriented(sides.with_columns(pair_key=pl.col("reference_pair_id"), unit_key=pl.col(unit_column)), skipped)


def reduce_shard(reader: ShardReader, config: ReduceConfig) -> Partial:
    return map_batch(reader.read(config.factors), config)


_reduce_shard_remote = ray.remote(reduce_shard)


def map_reduce(
    readers: Iterable[ShardReader], config: ReduceConfig, *, progress: bool | None = None, max_in_flight: int | None = None,
    total: int | None = None,
) -> Partial:
    """Run ``reduce_shard`` on Ray for every reader and merge the partials as they complete.

    At most ``max_in_flight`` tasks are pending (default: twice the cluster's CPUs; runtime.as_completed), so
    a corpus of any number of shards holds at most that many partials in the object store and one merged in
    the driver.
    """
    if max_in_flight is None:
        max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
    config_ref = ray.put(config)
    merged = Partial(config)
    for _, partial in as_completed(_reduce_shard_remote, ((reader, config_ref) for reader in readers), desc="reduce",
                                   progress=progress, total=total, max_in_flight=max_in_flight):
        merged.add(partial)
    return merged


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


def _file_factors(annotation_file: str) -> list[str]:
    fs, path = storage.filesystem(annotation_file)
    with storage.arrow_errors(annotation_file):
        column = pads.dataset(path, filesystem=fs, format="parquet", schema=schema.ANNOTATIONS).to_table(columns=["factor"]).column("factor")
    return pc.unique(column).to_pylist()


_file_factors_remote = ray.remote(_file_factors)


def _annotated_factors(annotation_files: list[str], progress: bool | None) -> list[str]:
    """The factors present in any annotation file: a task per file, only the names reach the driver."""
    found = run_tasks(_file_factors_remote, [(f,) for f in annotation_files], desc="reduce: factors", progress=progress)
    return sorted({name for names in found for name in names})


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
    bootstrap_unit: str = DEFAULT_BOOTSTRAP_UNIT,
    n_buckets: int = ReduceConfig.n_buckets,
    sample_size: int = ReduceConfig.sample_size,
    penalty: float = adjusted.DEFAULT_PENALTY,
    length_tolerance: float = DEFAULT_LENGTH_TOLERANCE,
    alignment_factors: str | list[str] | None = None,
    join_buckets: int | None = None,
) -> ReduceSummary:
    """``alignment_factors``: which factors alignment and the gap use ("task", "all" or names; see
    factor_sets.AlignmentFactors.parse). A judge output's judged_pairs.parquet makes its comparison with
    the labels it judged use the pairs both decided. ``join_buckets`` (default: factor_join.default_buckets,
    from the pairs the manifests count) cuts the factor join; it changes no result."""
    if n_bootstrap < 0:
        raise ConfigError("--bootstrap must be 0 or more")
    # Tasks run elsewhere: relative paths would be resolved against their working directory (storage.absolute).
    pairs_dirs, annotation_dirs = [storage.absolute(d) for d in pairs_dirs], [storage.absolute(d) for d in annotation_dirs]
    output = storage.absolute(output)
    if bootstrap_unit not in BOOTSTRAP_UNITS:
        raise ConfigError(f"bootstrap unit {bootstrap_unit!r} unknown; expected one of {', '.join(BOOTSTRAP_UNITS)}")
    pairs_shards = [s for d in pairs_dirs for s in published.table_files(d, "pairs")]  # the manifest's files only
    if not pairs_shards:
        raise ConfigError(f"no pairs shards under {', '.join(pairs_dirs)}; is this the output directory of `profile-dist ingest`?")
    annotation_files = [f for d in annotation_dirs for f in storage.list_files(d)]
    if not annotation_files:
        raise ConfigError(f"no annotation shards under {', '.join(annotation_dirs)}; run `profile-dist annotate` first")
    check_distinct_shards(pairs_shards)
    ensure_ray(address)
    available = _annotated_factors(annotation_files, progress)
    if factors:
        unknown = [f for f in factors if f not in available]
        if unknown:
            raise ConfigError(f"factor(s) {', '.join(unknown)} not found in the annotations (annotated: {', '.join(available)})")
    chosen = tuple(factors) if factors else tuple(available)
    alignment_rule = AlignmentFactors.parse(alignment_factors, factors=factors)
    outside = [f for f in alignment_rule.given if f not in chosen]
    if outside:
        raise ConfigError(f"alignment factor(s) {', '.join(outside)} not among the reduced factors ({', '.join(chosen)})")
    try:
        config = ReduceConfig(chosen, n_bootstrap=n_bootstrap, seed=seed, n_buckets=n_buckets, sample_size=sample_size)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    counted = [published.table_rows(d, "pairs") for d in pairs_dirs]  # from the manifests: sizes the join
    n_pairs = None if None in counted else sum(counted)
    judged = [storage.join(d, JUDGED_PAIRS_FILE) for d in pairs_dirs if storage.exists(storage.join(d, JUDGED_PAIRS_FILE))]
    sources = [PairsShard(shard, bootstrap_unit) for shard in pairs_shards] + [JudgedPairs(f, bootstrap_unit) for f in judged]
    with published.claimed(output, "reduce") as claim:  # one writer: a second job on this output is refused
        scratch = claim.staging()  # the shuffles' files: removed at the end, or by the next run if this one dies
        try:
            readers = co_partition(sources, annotation_files, chosen, scratch, length_factor=DEFAULT_LENGTH_FACTOR,
                                   length_tolerance=length_tolerance, n_buckets=join_buckets, n_pairs=n_pairs,
                                   progress=progress)
            merged = map_reduce(readers[:len(pairs_shards)], config, progress=progress, total=len(pairs_shards))
            compared = map_reduce(readers[len(pairs_shards):], dataclasses.replace(config, sample_size=0), progress=progress,
                                  total=len(judged)) if judged else None
        finally:
            storage.remove_tree(scratch)
        rejected, notes = _ingest_rejected(pairs_dirs)
        tables = result_tables(merged, level=level, penalty=penalty, ingest_rejected=rejected,
                               alignment_factors=alignment_rule, compared=compared)
        published.withdraw(output, claim)  # readers refuse the directory until the new manifest is written
        for name, table in tables.items():
            storage.write_parquet_atomic(table, storage.join(output, f"{name}.parquet"))
        published.certify(output, {
            "stage": "reduce", "pairs": pairs_dirs, "annotations": annotation_dirs, "factors": list(chosen),
            "n_bootstrap": n_bootstrap, "seed": seed, "confidence_level": level, "pairs_shards": len(pairs_shards),
            "ingest_notes": notes, "bootstrap": {"scheme": "bucketed Poisson", "unit": bootstrap_unit, "n_buckets": n_buckets},
            "alignment": {
                "factor_set": alignment_rule.rule, "described": alignment_rule.describe(),
                "factors": {task: list(names) for task, names in
                            FactorSets.of(alignment_rule, chosen, (key[2] for key in merged.groups)).by_task.items()},
                "judged_pairs": judged,
            },
            "tau_interval": "Wilson score on C / (C + D) for independent pairs; Korn-Graubard over (C + D) / design effect "
                            "pairs where prompts hold several pairs (design effect from the bootstrap, in [1, sum n_u^2 / sum n_u])",
            "adjusted": {"model": "penalised logistic Bradley-Terry", "penalty": penalty, "sample_size": sample_size,
                         "length_tolerance": length_tolerance},
            "files": {"results": [{"name": f"{name}.parquet", "rows": table.num_rows} for name, table in tables.items()]},
        })
    return ReduceSummary(output, len(pairs_shards), tables["influence"].num_rows, tables["alignment"].num_rows)
