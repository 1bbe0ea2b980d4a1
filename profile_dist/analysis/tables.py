"""The reduce's result tables, from a merged ``partials.Partial``: influence (tau with intervals), alignment and
gaps between sources, adjusted effects (Bradley-Terry, length-matched), skipped rows and bootstrap replicates.

Pure: no I/O and no Ray. Every number is a function of the merged integers (and the bottom-k sample), so the
tables are bit-identical however the corpus was sharded; ``stages.reduce`` reads, maps, merges and writes them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pyarrow as pa

from profile_dist import schema
from profile_dist.analysis import adjusted, stats
from profile_dist.analysis.partials import GroupKey, Partial, UnitSummary, replicate_counts, replicate_taus, replicate_weights
from profile_dist.factor_sets import AlignmentFactors

DEFAULT_LENGTH_FACTOR = "length"


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
    units: dict[GroupKey, UnitSummary]  # what each group's bootstrap resampled
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
        units = {key: group.units.summary() for key, group in merged.groups.items()}
        return cls(merged, level, tau, reps, matched, reps_matched, weights, units)

    @property
    def factors(self) -> tuple[str, ...]:
        return self.merged.config.factors

    def interval(self, samples: np.ndarray) -> tuple[float | None, float | None]:
        return stats.percentile_interval(samples, self.level) if len(samples) else (None, None)

    def tau_interval(self, key: GroupKey, f: int, *, matched: bool = False) -> tuple[float | None, float | None, float | None]:
        """(low, high, design effect) of a tau (stats.tau_interval): Wilson where the group's pairs are
        independent, Korn-Graubard where prompts hold several pairs, with df from the number of prompts
        (or of buckets, when fewer: the bootstrap's variance then has that many degrees of freedom).

        The design effect comes from the group's bootstrap replicates, bounded by its units' sizes
        (stats.design_effect); no interval without replicates (``--bootstrap 0``) or decided pairs.
        """
        group = self.merged.groups[key]
        if matched:
            c, d, replicate_tau = int(group.totals[f, 5]), int(group.totals[f, 6]), self.replicate_matched_tau[key][:, f]
        else:
            c, d, replicate_tau = int(group.concordant[f]), int(group.discordant[f]), self.replicate_tau[key][:, f]
        if not len(replicate_tau) or c + d == 0:
            return None, None, None
        units = self.units[key]
        deff = stats.design_effect(c, d, (1 + replicate_tau) / 2, units.max_design_effect)
        df = max(1, min(units.n_units, self.merged.config.n_buckets) - 1) if units.clustered else None
        low, high = stats.tau_interval(c, d, deff, self.level, df)
        return low, high, deff


def _none_if_nan(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def influence_table(results: Results) -> pa.Table:
    rows = []
    b = results.merged.config.n_bootstrap
    for key, group in sorted(results.merged.groups.items()):
        units = results.units[key]
        for f, factor in enumerate(results.factors):
            c, d, t = int(group.concordant[f]), int(group.discordant[f]), int(group.ties[f])
            low, high, deff = results.tau_interval(key, f)
            rows.append({
                "labeler": key[0], "setting": key[1], "task": key[2], "factor": factor,
                "n_pairs": c + d + t, "n_concordant": c, "n_discordant": d, "n_ties": t,
                **stats.influence_summary(c, d, t), "ci_low": low, "ci_high": high, "n_bootstrap": b,
                "bootstrap_unit": units.unit, "n_units": units.n_units, "n_units_exact": units.exact, "design_effect": deff,
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


@dataclass(frozen=True)
class Comparison:
    """Where the two taus of a comparison come from: each source's own pairs ("separate"), or, for a judge
    and the labels it judged, the pairs both decided ("intersection", from the judged-pairs partial)."""

    results: Results
    x: GroupKey
    y: GroupKey
    pairs: str
    n_pairs: int | None = None  # pairs both decided (intersection only)
    dropped_x: dict[str, int] = field(default_factory=dict)  # reason -> judged pairs source x left out
    dropped_y: dict[str, int] = field(default_factory=dict)


def _compared_keys(compared: Results | None) -> dict[GroupKey, dict[str, int]]:
    """(side, other side, task) of the judged-pairs partial -> its dropped pairs per reason."""
    if compared is None:
        return {}
    keys: dict[GroupKey, dict[str, int]] = {key: {} for key in compared.merged.groups}
    for (side, other, task, factor, reason), n in sorted(compared.merged.skipped.items()):
        if not factor:  # pair-level drops; per-factor missing values are the same on both sides
            keys.setdefault((side, other, task), {})[reason] = n
    return keys


def comparison(results: Results, compared: Results | None, task: str, sx: tuple[str, str], sy: tuple[str, str]) -> Comparison:
    """Compare sx and sy on the same pairs where the judged-pairs partial has them, else on their own pairs."""
    keys = _compared_keys(compared)
    kx, ky = (source_name(*sx), source_name(*sy), task), (source_name(*sy), source_name(*sx), task)
    if compared is None or kx not in keys or ky not in keys:
        return Comparison(results, (*sx, task), (*sy, task), "separate")
    group = compared.merged.groups.get(kx)
    n_pairs = int(group.totals[0].sum()) if group is not None and len(compared.factors) else 0
    return Comparison(compared, kx, ky, "intersection", n_pairs, keys[kx], keys[ky])


def _alignment_samples(c: Comparison, columns: tuple[int, ...], top_k: int) -> tuple[dict[str, float], dict[str, np.ndarray], int]:
    """Point metrics over ``columns`` (the factor set), per-replicate metrics (from the same replicate
    draws) and the defined-factor count."""
    results = c.results
    if c.x not in results.tau or c.y not in results.tau:  # no pair both decided
        return {m: float("nan") for m in schema.ALIGNMENT_METRICS}, {m: np.empty(0) for m in schema.ALIGNMENT_METRICS}, 0
    cache_key = (c.x, c.y, columns, top_k)
    if cache_key in results._alignment_cache:
        return results._alignment_cache[cache_key]
    index = list(columns)
    tx, ty = results.tau[c.x][index], results.tau[c.y][index]
    point = stats.alignment_metrics(tx, ty, top_k)
    n_defined = int(np.sum(~(np.isnan(tx) | np.isnan(ty))))
    rx, ry = results.replicate_tau[c.x][:, index], results.replicate_tau[c.y][:, index]
    samples = {m: np.empty(len(rx)) for m in schema.ALIGNMENT_METRICS}
    for r in range(len(rx)):
        for metric, value in stats.alignment_metrics(rx[r], ry[r], top_k).items():
            samples[metric][r] = value
    results._alignment_cache[cache_key] = (point, samples, n_defined)
    return point, samples, n_defined


@dataclass(frozen=True)
class FactorSets:
    """The factors every comparison of a task is made over (``factor_sets.AlignmentFactors`` applied)."""

    rule: AlignmentFactors
    by_task: dict[str, tuple[str, ...]]
    columns: dict[str, tuple[int, ...]]  # the same, as indices into the reduced factors

    @classmethod
    def of(cls, rule: AlignmentFactors, factors: tuple[str, ...], tasks: Iterable[str]) -> "FactorSets":
        by_task = {task: rule.for_task(task, factors) for task in sorted(set(tasks))}
        return cls(rule, by_task, {task: tuple(factors.index(f) for f in names) for task, names in by_task.items()})


def _dropped_text(dropped: dict[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(dropped.items()))


def alignment_table(results: Results, factor_sets: FactorSets, compared: Results | None = None, top_k: int = 3) -> pa.Table:
    rows = []
    for task, sources in sorted(_task_sources(results).items()):
        for sx, sy in itertools.combinations(sorted(sources), 2):
            c = comparison(results, compared, task, sx, sy)
            point, samples, n_defined = _alignment_samples(c, factor_sets.columns[task], top_k)
            if n_defined < 2:
                continue
            for metric in schema.ALIGNMENT_METRICS:
                low, high = c.results.interval(samples[metric])
                rows.append({
                    "task": task, "source_x": source_name(*sx), "source_y": source_name(*sy), "n_factors": n_defined,
                    "metric": metric, "value": _none_if_nan(point[metric]), "ci_low": low, "ci_high": high,
                    "factor_set": factor_sets.rule.rule, "factors": ",".join(factor_sets.by_task[task]),
                    "pairs": c.pairs, "n_pairs": c.n_pairs,
                    "n_dropped_x": sum(c.dropped_x.values()) if c.pairs == "intersection" else None,
                    "n_dropped_y": sum(c.dropped_y.values()) if c.pairs == "intersection" else None,
                    "dropped_x": _dropped_text(c.dropped_x) if c.pairs == "intersection" else None,
                    "dropped_y": _dropped_text(c.dropped_y) if c.pairs == "intersection" else None,
                })
    return pa.Table.from_pylist(rows, schema=schema.ALIGNMENT)


def gap_table(results: Results, factor_sets: FactorSets, compared: Results | None = None, top_k: int = 3) -> pa.Table:
    """alignment(human, M/evaluation) - alignment(human, M/generation), replicate by replicate, over the
    task's factor set; the evaluation term on the pairs both decided where the judged pairs are known."""
    rows = []
    for task, sources in sorted(_task_sources(results).items()):
        humans = sorted(s for s in sources if s[1] == "human")
        models = sorted({s[0] for s in sources if (s[0], "evaluation") in sources and (s[0], "generation") in sources})
        for human, model in itertools.product(humans, models):
            c_ev = comparison(results, compared, task, human, (model, "evaluation"))
            c_gen = comparison(results, compared, task, human, (model, "generation"))
            ev, ev_samples, n_ev = _alignment_samples(c_ev, factor_sets.columns[task], top_k)
            gen, gen_samples, n_gen = _alignment_samples(c_gen, factor_sets.columns[task], top_k)
            if min(n_ev, n_gen) < 2:
                continue
            for metric in schema.ALIGNMENT_METRICS:
                low, high = results.interval(ev_samples[metric] - gen_samples[metric])
                rows.append({
                    "task": task, "reference": source_name(*human), "model": model, "metric": metric,
                    "evaluation": _none_if_nan(ev[metric]), "generation": _none_if_nan(gen[metric]),
                    "gap": _none_if_nan(ev[metric] - gen[metric]), "ci_low": low, "ci_high": high,
                    "factors": ",".join(factor_sets.by_task[task]), "evaluation_pairs": c_ev.pairs,
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
            t_low, t_high, _ = results.tau_interval(key, f)
            lc = _none_if_nan(results.matched_tau[key][f])
            lc_low, lc_high, _ = results.tau_interval(key, f, matched=True)
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


def result_tables(merged: Partial, *, level: float = 0.95, penalty: float = adjusted.DEFAULT_PENALTY, ingest_rejected: Counter | None = None,
                  alignment_factors: AlignmentFactors = AlignmentFactors(), compared: Partial | None = None) -> dict[str, pa.Table]:
    """Every table of the reduce; ``compared``: the judged-pairs partial (``JudgedPairsReader``), if any."""
    results = Results.from_partial(merged, level)
    compared_results = Results.from_partial(compared, level) if compared is not None else None
    factor_sets = FactorSets.of(alignment_factors, results.factors, (key[2] for key in merged.groups))
    return {
        "influence": influence_table(results),
        "alignment": alignment_table(results, factor_sets, compared_results),
        "gap": gap_table(results, factor_sets, compared_results),
        "adjusted": adjusted_table(results, penalty=penalty),
        "skipped": skipped_table(merged, ingest_rejected or Counter()),
        "replicates": replicates_table(results),
    }
