"""Alignment and the gap compare sources over the task's factors (tasks.py), not everything annotated."""

from __future__ import annotations

import json
import random

import numpy as np
import polars as pl
import pytest
from scipy.stats import kendalltau

from profile_dist.cli import main
from profile_dist.errors import ConfigError
from profile_dist.factor_sets import AlignmentFactors
from profile_dist.factors.rules import RULE_FACTORS
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce

REDUCED = ("bold", "code_blocks", "headers", "length", "list_items", "novel_words")  # what reduce finds, sorted


def test_the_task_rule_keeps_the_tasks_factors_in_reduce_order():
    rule = AlignmentFactors.parse(None)
    assert rule.for_task("summarization", REDUCED) == ("length", "novel_words")
    assert rule.for_task("helpful", REDUCED) == ("length",)  # novel_words is summarization's only
    assert rule.for_task("my-task", REDUCED) == REDUCED  # a user-defined task names no set: every factor
    assert AlignmentFactors.parse("all").for_task("helpful", REDUCED) == REDUCED
    named = AlignmentFactors.parse(["length", "bold"])
    assert (named.rule, named.for_task("helpful", REDUCED)) == ("given", ("bold", "length"))
    assert AlignmentFactors.parse(None, factors=["length", "bold"]) == named  # reduce --factors names the set
    with pytest.raises(ConfigError, match="expected 'task', 'all' or a list"):
        AlignmentFactors.parse([])


def _corpus(path, seed: int = 3) -> str:
    """Two sources (humans, a judge-like labeler) on two tasks; responses vary in length, lists, bold, headers."""
    rng = random.Random(seed)
    words = ("alpha", "beta", "gamma", "delta", "omega", "sigma")
    rows = []
    for task in ("summarization", "helpful"):
        for i in range(150):
            prompt = f"{task} post {i % 30}: " + " ".join(rng.choice(words) for _ in range(20))

            def response(tag: str) -> str:
                text = " ".join(rng.choice(words + ("novel", "fresh", "other")) for _ in range(rng.randint(4, 40)))
                text += "".join(f"\n- item {k}" for k in range(rng.randint(0, 2)))
                return ("**bold** " if rng.random() < 0.4 else "") + ("# Head\n" if rng.random() < 0.3 else "") + f"{text} {tag}{i}"

            a, b = response("a"), response("b")
            for labeler, setting, p_longer in (("human", "human", 0.65), ("m", "evaluation", 0.8)):
                longer_a = len(a.split()) >= len(b.split())
                label = "a" if (rng.random() < p_longer) == longer_a else "b"
                rows.append({"prompt": prompt, "response_a": a, "response_b": b, "label": label, "task": task,
                             "labeler": labeler, "setting": setting})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def reduced(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("factor-sets")
    pairs, annotations = str(root / "pairs"), str(root / "ann")
    ingest("pairs", [_corpus(root / "corpus.jsonl")], pairs, progress=False)
    annotate(pairs, annotations, factors=list(RULE_FACTORS), progress=False)
    reduce([pairs], [annotations], str(root / "task"), n_bootstrap=20, progress=False)
    assert main(["reduce", "--pairs", pairs, "--annotations", annotations, "--output", str(root / "all"),
                 "--bootstrap", "20", "--alignment-factors", "all"]) == 0
    return root


def _tables(directory) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.read_parquet(directory / "influence.parquet"), pl.read_parquet(directory / "alignment.parquet")


def _expected(influence: pl.DataFrame, task: str, factors: list[str]) -> dict[str, float]:
    """Kendall tau-b (scipy) and mean |difference| of the two sources' taus over ``factors``."""
    tau = {(r["labeler"], r["factor"]): r["tau"] for r in influence.filter(pl.col("task") == task).iter_rows(named=True)}
    x, y = [tau[("human", f)] for f in factors], [tau[("m", f)] for f in factors]
    return {"kendall_tau_b": kendalltau(x, y).statistic, "mean_abs_diff": float(np.mean(np.abs(np.subtract(x, y))))}


def test_by_default_alignment_leaves_the_rule_extras_out(reduced):
    influence, alignment = _tables(reduced / "task")
    assert set(influence["factor"]) == set(RULE_FACTORS)  # influence still covers every annotated factor
    summarization = {r["metric"]: r for r in alignment.filter(pl.col("task") == "summarization").iter_rows(named=True)}
    expected = _expected(influence, "summarization", ["length", "novel_words"])
    for metric, value in expected.items():
        row = summarization[metric]
        assert (row["factor_set"], row["factors"], row["n_factors"], row["pairs"]) == ("task", "length,novel_words", 2, "separate")
        assert row["value"] == pytest.approx(value, abs=1e-12)
    # helpful's factors among the rule factors: length alone, too few to rank: no row rather than a rule-extras one
    assert alignment.filter(pl.col("task") == "helpful").height == 0
    manifest = json.loads((reduced / "task" / "_manifest.json").read_text())["alignment"]
    assert manifest["factor_set"] == "task" and manifest["factors"] == {"helpful": ["length"], "summarization": ["length", "novel_words"]}
    from profile_dist.report import build_report

    build_report(str(reduced / "task"))
    report = (reduced / "task" / "report.md").read_text()
    assert "the same on both sides and in the gap: length, novel_words. Not compared: bold, code_blocks, headers, list_items" in report
    assert "No alignment: fewer than 2 of these factors have a tau for two sources" in report


def test_alignment_factors_all_widens_the_set_and_says_so(reduced):
    influence, alignment = _tables(reduced / "all")
    for task in ("summarization", "helpful"):
        rows = {r["metric"]: r for r in alignment.filter(pl.col("task") == task).iter_rows(named=True)}
        defined = sorted(influence.filter((pl.col("task") == task) & pl.col("tau").is_not_null())
                         .group_by("factor").len().filter(pl.col("len") == 2)["factor"])
        for metric, value in _expected(influence, task, defined).items():
            assert (rows[metric]["factor_set"], rows[metric]["factors"]) == ("all", ",".join(REDUCED))
            assert rows[metric]["value"] == pytest.approx(value, abs=1e-12)
