"""Acceptance of `improve feedback`: a generator whose better levels are only longer, told that humans do not
reward length, holds length fixed; the re-measured profile shows tau_generation(length) falling and
alignment with humans rising, with intervals that exclude no change."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from profile_dist.workflows.improve.feedback import Audit, improve_feedback, misalignments
from profile_dist.prompts.guidance import get_template
from profile_dist.testing.sim_improve import HOLD

from improve_helpers import FACTORS


def test_feedback_holds_length_fixed_and_alignment_rises(tmp_path, audit, server):
    # The audit itself: the generator's length tau is far from the humans', significantly.
    base = Audit.load(audit["results"])
    ranked = misalignments(base, ("human", "human"), ("sim-model", "generation"), "helpful")
    by_factor = {m.factor: m for m in ranked}
    length = by_factor["length"]
    assert length.significant and length.action == "hold" and length in ranked[:2]
    assert length.tau_generation > 0.8 and abs(length.tau_human) < 0.15
    assert by_factor["list_items"].action == "more"  # humans reward list items, the generator does not

    before_requests = server.stats()["requests"]
    out = tmp_path / "feedback"
    summary = improve_feedback(audit["results"], "model", str(out), endpoints=audit["endpoints"], top=2, progress=False)
    assert server.stats()["requests"] - before_requests == 80  # one joint generation call per prompt
    assert {c.factor for c in summary.chosen} == {m.factor for m in ranked[:2]} and "length" in {c.factor for c in summary.chosen}
    assert HOLD.search(summary.guidance).group(1) == "length"  # the simulated model recognises the guidance

    factors = pl.read_parquet(out / "feedback_factors.parquet")
    length = factors.filter(pl.col("factor") == "length").row(0, named=True)
    assert length["guided"] and length["action"] == "hold"
    # tau_generation(length) falls, and the interval of the change excludes 0.
    assert length["tau_after"] < length["tau_before"]
    assert length["tau_change_ci_high"] < 0
    # The length factor moved towards the humans' tau: misalignment fell, interval excluding 0.
    assert length["misalignment_change_ci_high"] < 0
    # Overall alignment across factors: mean |tau_gen - tau_human| falls (closer), interval excludes 0.
    alignment = pl.read_parquet(out / "feedback_alignment.parquet")
    mad = alignment.filter(pl.col("metric") == "mean_abs_diff").row(0, named=True)
    assert mad["after"] < mad["before"] and mad["change_ci_high"] < 0
    assert set(alignment["metric"]) >= {"kendall_tau_b", "mean_abs_diff"} and set(factors["factor"]) == set(FACTORS)

    # The before/after numbers are the reduce's own: re-derive the length taus from its influence table.
    influence = pl.read_parquet(out / "results" / "influence.parquet").filter(pl.col("factor") == "length")
    tau = {(r["labeler"], r["setting"]): r["tau"] for r in influence.iter_rows(named=True)}
    assert length["tau_before"] == pytest.approx(tau[("sim-model", "generation")])
    assert length["tau_after"] == pytest.approx(tau[("sim-model+feedback", "generation")])
    assert length["tau_human"] == pytest.approx(tau[("human", "human")])
    # mean_abs_diff recomputed from the influence table with numpy.
    all_inf = pl.read_parquet(out / "results" / "influence.parquet")
    def taus(labeler, setting):
        rows = all_inf.filter((pl.col("labeler") == labeler) & (pl.col("setting") == setting)).sort("factor")
        return rows["tau"].to_numpy()
    h, b, a = taus("human", "human"), taus("sim-model", "generation"), taus("sim-model+feedback", "generation")
    assert mad["before"] == pytest.approx(np.mean(np.abs(h - b)))
    assert mad["after"] == pytest.approx(np.mean(np.abs(h - a)))

    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["template"] == "feedback/v1" and manifest["guidance"] == summary.guidance
    assert summary.guidance.startswith(get_template("feedback/v1").header)
    assert "| length | hold |" in (out / "feedback.md").read_text()

    # A rerun is served from the reply cache (same guidance, same cache key): nothing sent.
    again = server.stats()["requests"]
    improve_feedback(audit["results"], "model", str(tmp_path / "again"), endpoints=audit["endpoints"], top=2,
                     cache_dir=str(out / "_llm_cache"), progress=False)
    assert server.stats()["requests"] == again


def test_dry_run_projects_the_guided_generation_and_sends_nothing(tmp_path, audit, server, capsys):
    from profile_dist.cli import main

    before = server.stats()["requests"]
    code = main(["improve", "feedback", "--results", audit["results"], "--llm", "model", "--output", str(tmp_path / "dry"),
                 "--endpoints", audit["endpoints"], "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and server.stats()["requests"] == before
    assert "dry run (generate, generator: model = sim-model): 80 requests" in printed and "80 to send" in printed
    assert "- length: human raters do not reward it" in printed  # the guidance it would send
    assert not (tmp_path / "dry" / "results").exists()
    # An unknown template is a one-line user error, before any work.
    assert main(["improve", "feedback", "--results", audit["results"], "--llm", "model", "--output", str(tmp_path / "x"),
                 "--endpoints", audit["endpoints"], "--template", "feedback/v9"]) == 2
    assert "unknown feedback template" in capsys.readouterr().err


def test_the_guidance_enters_the_generation_cache_key():
    from profile_dist.llm.endpoints import Endpoint
    from profile_dist.prompts.settings import GenerationPrompt

    endpoint = Endpoint(name="e", base_url="http://127.0.0.1:1", model="m")
    prompt = GenerationPrompt()
    plain, guided = prompt.joint_request("p", 5), prompt.joint_request("p", 5, "- length: hold")
    assert plain.cache_key(endpoint) == prompt.joint_request("p", 5, None).cache_key(endpoint)  # unguided unchanged
    assert plain.cache_key(endpoint) != guided.cache_key(endpoint) and "- length: hold" in guided.messages[-1]["content"]
    single = prompt.single_request("p", 2, 5, "- length: hold")
    assert single.cache_key(endpoint) != prompt.single_request("p", 2, 5).cache_key(endpoint)
