"""Intervals a reviewer would sign: the prompt as the bootstrap unit, the boundary, what the table says."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as sp
from statsmodels.stats.proportion import proportion_confint

from profile_dist import ids, schema, storage
from profile_dist.analysis import stats
from profile_dist.analysis.partials import DiffBatch, ReduceConfig, UnitSketch, map_batch
from profile_dist.errors import ConfigError
from profile_dist.workflows.job import parse_job
from profile_dist.analysis.tables import Results, influence_table

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
import reduce_coverage  # noqa: E402

GROUP = ("gen", "generation", "t")
PAIRS_OF_FIVE = list(combinations(range(5), 2))  # (lower level, higher level): the higher one is preferred


def generation_batch(n_prompts: int, rng: np.random.Generator, unit: str) -> DiffBatch:
    """C(5, 2) pairs per prompt whose signs all come from one random ordering of the prompt's 5 values.

    Under no effect (tau = 0) the sum of one prompt's 10 signs is Kendall's S for n = 5, of variance
    n(n - 1)(2n + 5) / 18 = 16.67, where 10 independent signs would have 10.
    """
    values = np.array([rng.permutation(5).astype(float) for _ in range(n_prompts)])
    diffs = np.concatenate([values[:, high] - values[:, low] for low, high in PAIRS_OF_FIVE])[:, None]
    prompt = np.tile(np.arange(n_prompts), len(PAIRS_OF_FIVE))
    pair_hash = stats.id_hashes([ids.content_id("pair", i) for i in range(len(prompt))])
    prompt_hash = stats.id_hashes([ids.content_id("prompt", p) for p in prompt])
    unit_hash = prompt_hash if unit == "prompt" else pair_hash
    return DiffBatch([GROUP], np.zeros(len(prompt), np.int32), pair_hash, unit_hash, diffs, np.zeros(len(prompt), bool), Counter())


def test_kendall_s_variance_of_five_is_the_one_the_issue_quotes():
    n = 5
    assert n * (n - 1) * (2 * n + 5) / 18 == pytest.approx(16.67, abs=0.01)
    # and it is what generation_batch simulates: one prompt's 10 signs over many prompts
    batch = generation_batch(4000, np.random.default_rng(7), "prompt")
    sums = np.sign(batch.diffs[:, 0]).reshape(len(PAIRS_OF_FIVE), 4000).sum(axis=0)
    assert np.var(sums) == pytest.approx(16.67, rel=0.06)


def test_resampling_pairs_of_one_prompt_one_by_one_understates_the_variance_by_16_7_over_10():
    config = ReduceConfig(("f",), n_bootstrap=1000, seed=2, n_buckets=1 << 16, sample_size=0)
    rng_seed = 11
    variance, tables = {}, {}
    for unit in ("pair", "prompt"):
        batch = generation_batch(2000, np.random.default_rng(rng_seed), unit)
        results = Results.from_partial(map_batch(batch, config), 0.95)
        variance[unit] = np.var(results.replicate_tau[GROUP][:, 0], ddof=1)
        tables[unit] = influence_table(results).to_pylist()[0]
    assert variance["prompt"] / variance["pair"] == pytest.approx(16.67 / 10, rel=0.15)
    pair, prompt = tables["pair"], tables["prompt"]
    assert (pair["bootstrap_unit"], pair["n_units"], pair["design_effect"]) == ("pair", 20_000, 1.0)
    assert (prompt["bootstrap_unit"], prompt["n_units"], prompt["n_units_exact"]) == ("prompt", 2000, True)
    assert prompt["design_effect"] == pytest.approx(16.67 / 10, rel=0.15)
    width = {unit: t["ci_high"] - t["ci_low"] for unit, t in tables.items()}
    assert width["prompt"] / width["pair"] == pytest.approx(math.sqrt(16.67 / 10), rel=0.08)


def one_factor_batch(diffs: list[float], unit_keys: list[int] | None = None) -> DiffBatch:
    n = len(diffs)
    pair_hash = stats.id_hashes([ids.content_id("pair", i) for i in range(n)])
    unit_hash = pair_hash if unit_keys is None else stats.id_hashes([ids.content_id("prompt", u) for u in unit_keys])
    return DiffBatch([GROUP], np.zeros(n, np.int32), pair_hash, unit_hash, np.array(diffs, float)[:, None], np.zeros(n, bool), Counter())


def test_no_discordant_pair_still_gives_an_interval_of_nonzero_width():
    config = ReduceConfig(("f",), n_bootstrap=200, seed=0, n_buckets=1 << 12, sample_size=0)
    # 40 concordant pairs and 5 ties, one pair per prompt: independent pairs, the Wilson interval
    row = influence_table(Results.from_partial(map_batch(one_factor_batch([1.0] * 40 + [0.0] * 5), config), 0.95)).to_pylist()[0]
    low, high = proportion_confint(40, 40, alpha=0.05, method="wilson")
    assert (row["tau"], row["ci_high"]) == (1.0, 1.0)
    assert row["ci_low"] == pytest.approx(2 * low - 1) and row["ci_low"] < 0.92
    assert row["design_effect"] == 1.0
    # the same 40 pairs as 4 prompts of 10: nothing says how much they move together, so the bound
    # sum n^2 / sum n over the prompts' decided and tied pairs is used (conservative), in the
    # Korn-Graubard interval with 9 - 1 degrees of freedom
    clustered = one_factor_batch([1.0] * 40 + [0.0] * 5, [i // 10 for i in range(40)] + [4, 5, 6, 7, 8])
    row = influence_table(Results.from_partial(map_batch(clustered, config), 0.95)).to_pylist()[0]
    deff = (4 * 10**2 + 5) / 45
    n_star = 40 / deff * (sp.t.ppf(0.975, 39) / sp.t.ppf(0.975, 8)) ** 2
    low, _ = proportion_confint(n_star, n_star, alpha=0.05, method="beta")
    assert row["design_effect"] == pytest.approx(deff) and row["ci_low"] == pytest.approx(2 * low - 1)
    assert (row["bootstrap_unit"], row["n_units"], row["ci_high"]) == ("prompt", 9, 1.0)


def test_relabelled_pairs_mirror_the_interval_and_length_matched_tau_gets_one_too():
    config = ReduceConfig(("f",), n_bootstrap=100, seed=4, n_buckets=1 << 10, sample_size=0)
    diffs = [1.0] * 30 + [-1.0] * 3
    rows = [influence_table(Results.from_partial(map_batch(one_factor_batch(d), config), 0.95)).to_pylist()[0]
            for d in (diffs, [-x for x in diffs])]
    assert rows[0]["ci_low"] == pytest.approx(-rows[1]["ci_high"]) and rows[0]["ci_high"] == pytest.approx(-rows[1]["ci_low"])
    batch = one_factor_batch([1.0] * 20)
    batch.length_matched[:] = True
    results = Results.from_partial(map_batch(batch, config), 0.95)
    low, high, deff = results.tau_interval(GROUP, 0, matched=True)
    assert high == 1.0 and low == pytest.approx(2 * proportion_confint(20, 20, method="wilson")[0] - 1)


def test_unit_sketch_is_exact_and_sharding_free_and_estimates_beyond_k():
    rng = np.random.default_rng(3)
    prompts = rng.integers(0, 500, 3000)
    hashes = stats.id_hashes([ids.content_id("prompt", int(p)) for p in prompts])
    _, counts = np.unique(prompts, return_counts=True)
    whole = UnitSketch.of(hashes, 1 << 16).summary()
    assert (whole.n_units, whole.exact, whole.clustered) == (len(counts), True, True)
    assert whole.max_design_effect == pytest.approx(np.sum(counts**2) / np.sum(counts))
    distinct, distinct_counts = np.unique(hashes, return_counts=True)
    for k in (64, 1 << 16):
        single = UnitSketch.of(hashes, k)
        assert np.array_equal(single.hashes, distinct[:k]) and np.array_equal(single.pairs, distinct_counts[:k])
        shards = np.array_split(rng.permutation(len(hashes)), 7)
        merged = UnitSketch.of(hashes[shards[0]], k)
        for part in shards[1:]:
            merged = merged.merge(UnitSketch.of(hashes[part], k))
        assert np.array_equal(merged.hashes, single.hashes) and np.array_equal(merged.pairs, single.pairs)
        assert merged.truncated == single.truncated == (k < len(counts))
    # beyond k units: the KMV estimate, within a few standard errors (1 / sqrt(k))
    many = stats.id_hashes([ids.content_id("unit", i) for i in range(200_000)])
    summary = UnitSketch.of(many, 4096).summary()
    assert not summary.exact and summary.n_units == pytest.approx(200_000, rel=4 / math.sqrt(4096))
    assert (summary.max_design_effect, summary.clustered, summary.unit) == (1.0, False, "pair")


def test_results_written_before_the_unit_columns_still_read(tmp_path):
    old = pa.schema([f for f in schema.INFLUENCE if f.name not in ("bootstrap_unit", "n_units", "n_units_exact", "design_effect")])
    row = {"labeler": "h", "setting": "human", "task": "t", "factor": "length", "n_pairs": 3, "n_concordant": 2,
           "n_discordant": 1, "n_ties": 0, "tau": 1 / 3, "tau_a": 1 / 3, "relevance": 1.0, "p_preferred_more": 2 / 3,
           "ci_low": -0.5, "ci_high": 0.9, "n_bootstrap": 10}
    pq.write_table(pa.Table.from_pylist([row], schema=old), tmp_path / "influence.parquet")
    table = storage.read_parquet(str(tmp_path / "influence.parquet"), schema.INFLUENCE).to_pylist()[0]
    assert table["bootstrap_unit"] is None and table["design_effect"] is None and table["tau"] == row["tau"]
    # a column that was always there is still required
    without_ties = pa.schema([f for f in old if f.name != "n_ties"])
    pq.write_table(pa.Table.from_pylist([row], schema=without_ties), tmp_path / "broken.parquet")
    with pytest.raises(schema.SchemaError, match="missing column.*n_ties"):
        storage.read_parquet(str(tmp_path / "broken.parquet"), schema.INFLUENCE)


def write_generation_corpus(root: Path, n_prompts: int, rng: np.random.Generator) -> tuple[str, str]:
    """Pairs and `length` annotations as generate + annotate write them: C(5, 2) pairs per prompt."""
    pairs, annotations = [], []
    for p in range(n_prompts):
        lengths = rng.permutation(5) * 10.0 + 5
        for level, length in enumerate(lengths):
            annotations.append({"response_id": ids.content_id("r", p, level), "factor": "length", "value": float(length),
                                "annotator": "rule", "prompt_version": "rule-v1", "error": None})
        for low, high in PAIRS_OF_FIVE:
            pairs.append({
                "pair_id": ids.content_id("pair", p, low, high), "task": "t", "prompt_id": ids.content_id("prompt", p),
                "response_a_id": ids.content_id("r", p, low), "response_b_id": ids.content_id("r", p, high), "label": "b",
                "labeler": "gen", "setting": "generation", "dataset": "synthetic", "source_file": "mem", "source_row": len(pairs),
            })
    # two shards that split prompts: a prompt's pairs are counted together whatever the sharding
    for i, part in enumerate((pairs[: len(pairs) // 2 + 3], pairs[len(pairs) // 2 + 3:])):
        storage.write_parquet_atomic(pa.Table.from_pylist(part, schema=schema.PAIRS), str(root / "pairs" / "pairs" / f"part-{i:05d}.parquet"))
    storage.write_parquet_atomic(pa.Table.from_pylist(annotations, schema=schema.ANNOTATIONS), str(root / "ann" / "part-00000.parquet"))
    return str(root / "pairs"), str(root / "ann")


@pytest.mark.usefixtures("ray_session")
def test_reduce_resamples_prompts_by_default_and_says_so(tmp_path):
    from profile_dist.cli import main
    from profile_dist.report import build_report
    from profile_dist.stages.reduce import reduce

    pairs_dir, ann_dir = write_generation_corpus(tmp_path, 30, np.random.default_rng(5))
    reduce([pairs_dir], [ann_dir], str(tmp_path / "auto"), n_bootstrap=200, progress=False)
    assert main(["reduce", "--pairs", pairs_dir, "--annotations", ann_dir, "--output", str(tmp_path / "pair"),
                 "--bootstrap", "200", "--bootstrap-unit", "pair"]) == 0
    auto = pl.read_parquet(tmp_path / "auto" / "influence.parquet").row(0, named=True)
    pair = pl.read_parquet(tmp_path / "pair" / "influence.parquet").row(0, named=True)
    assert auto["tau"] == pair["tau"] and auto["n_concordant"] + auto["n_discordant"] == 300
    assert (auto["bootstrap_unit"], auto["n_units"], auto["n_units_exact"]) == ("prompt", 30, True)
    assert (pair["bootstrap_unit"], pair["n_units"], pair["design_effect"]) == ("pair", 300, 1.0)
    assert auto["ci_high"] - auto["ci_low"] > pair["ci_high"] - pair["ci_low"]
    assert storage.read_json(str(tmp_path / "auto" / "_manifest.json"))["bootstrap"]["unit"] == "auto"
    build_report(str(tmp_path / "auto"))
    assert "gen/generation: prompt (30 prompts)" in (tmp_path / "auto" / "report.md").read_text()


def test_job_yaml_takes_the_bootstrap_unit():
    base = {"output": "out", "ingest": [{"name": "c", "format": "hh_rlhf", "input": "x.jsonl"}]}
    assert parse_job(base, "job.yaml").bootstrap_unit == "auto"
    assert parse_job({**base, "reduce": {"bootstrap_unit": "pair"}}, "job.yaml").bootstrap_unit == "pair"
    with pytest.raises(ConfigError, match="bootstrap_unit 'post' unknown"):
        parse_job({**base, "reduce": {"bootstrap_unit": "post"}}, "job.yaml")


def test_clustered_true_tau_of_the_coverage_bench_matches_a_large_monte_carlo():
    # The bench plants tau analytically; an independent draw of its model must agree.
    rng = np.random.default_rng(0)
    beta, sd_beta, n = 0.45, 0.8, 200_000
    slope = rng.normal(beta, sd_beta, n)
    values = slope[:, None] * np.arange(5)[None, :] + rng.normal(size=(n, 5))
    signs = np.concatenate([np.sign(values[:, h] - values[:, l]) for l, h in PAIRS_OF_FIVE])
    assert reduce_coverage.clustered_true_tau(beta, sd_beta) == pytest.approx(signs.mean(), abs=3 * signs.std() / math.sqrt(n))
    # and with no spread it is the closed form 2 Phi(beta dl / sqrt 2) - 1 averaged over the level gaps
    gaps = [h - l for l, h in PAIRS_OF_FIVE]
    assert reduce_coverage.clustered_true_tau(0.3, 0.0) == pytest.approx(np.mean([2 * sp.norm.cdf(0.3 * g / math.sqrt(2)) - 1 for g in gaps]))


def coverage_band(n: int, regimes: int, family_alpha: float = 0.01) -> tuple[float, float]:
    """Observed coverage (%) compatible with a true coverage in [93, 97]% over n corpora (Bonferroni)."""
    alpha = family_alpha / regimes / 2
    return 100 * sp.binom.ppf(alpha, n, 0.93) / n, 100 * sp.binom.isf(alpha, n, 0.97) / n


@pytest.mark.slow
def test_intervals_cover_the_planted_tau_in_every_regime():
    """500 corpora per regime (~1 minute idle, ~3 under load): each asserted regime's coverage is
    compatible with a true coverage in 93-97% (binomial band, 1% family-wise error over the regimes)."""
    corpora = 500
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "reduce_coverage.py"), "--corpora", str(corpora)],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    figures = dict(item.split("=") for item in result.stdout.strip().splitlines()[-1].split())
    asserted = figures["asserted"].split(",")
    assert {"small_50", "boundary_30", "boundary_300", "clustered_100x10", "pairs_lt_buckets"} <= set(asserted)
    low, high = coverage_band(corpora, len(asserted))
    for regime in asserted:
        assert low <= float(figures[f"coverage_{regime}"]) <= high, (regime, low, high, result.stdout)
    # resampling pairs of clustered prompts one by one is what the prompt unit fixes: clearly below
    assert float(figures["coverage_clustered_100x10_pair_unit"]) < low
