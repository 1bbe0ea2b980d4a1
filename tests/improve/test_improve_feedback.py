"""Acceptance of `improve feedback`: factors chosen on one half of the prompts, measured on the other, against
an unguided re-generation. The planted generator's better levels are only longer; told that humans do not
reward length, it holds length fixed, and told that humans prefer list items, it adds them with the level."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import polars as pl
import pytest

from profile_dist.workflows.improve.feedback import Audit, Misalignment, improve_feedback, misalignments
from profile_dist.workflows.improve.split import split_prompts
from profile_dist.prompts.guidance import action_for, get_template
from profile_dist.testing.sim_improve import HOLD, MORE

from improve_helpers import FACTORS

#: Documented in docs/improve.md (planted run: 80 prompts split 40/40, 200 replicates, split seed 0, sample 1).
#: tau of each arm on the held-out half, and mean_abs_diff(human, arm) over the factors.
PLANTED_TAU = {"length": {"before": 0.950, "guided": -0.061, "control": 0.915},
               "list_items": {"before": -0.093, "guided": 1.000, "control": -0.239}}
PLANTED_MAD = {"before": 0.696, "guided": 0.095, "control": 0.722}


def _words(text: str) -> int:
    return len(text.split())  # the rule factor length


def _length_tau(pairs_dir) -> tuple[float, int]:
    """tau of length with the preferred response, counted from the texts (no annotate, no reduce), and pairs."""
    pairs = pl.read_parquet(f"{pairs_dir}/pairs/*.parquet")
    texts = dict(pl.read_parquet(f"{pairs_dir}/responses/*.parquet").select("response_id", "text").iter_rows())
    signs = np.sign([(_words(texts[a]) - _words(texts[b])) * (1 if label == "a" else -1)
                     for a, b, label in pairs.select("response_a_id", "response_b_id", "label").iter_rows()])
    c, d = int((signs > 0).sum()), int((signs < 0).sum())
    return (c - d) / (c + d), pairs.height


def test_guidance_follows_the_sign_of_the_human_tau():
    template = get_template("feedback/v2")
    cases = [  # (tau_human, tau_generation, human interval) -> action
        ((+0.3, +0.8, (0.1, 0.5)), "more"),   # humans prefer more f, the generator over-does it: still "more f"
        ((+0.3, -0.2, (0.1, 0.5)), "more"),
        ((-0.3, -0.8, (-0.5, -0.1)), "less"),  # humans prefer less f: "less f", however the generator ranks it
        ((-0.3, +0.5, (-0.5, -0.1)), "less"),
        ((+0.1, +0.9, (-0.1, 0.3)), "hold"),   # the humans' interval contains 0
    ]
    for (h, g, ci), action in cases:
        m = Misalignment("list_items", h, g, g - h, -1.0, -0.5, ci)
        assert m.action == action_for(h, ci) == action, (h, g, ci)
        text = template.render([(m.factor, m.action, h, g)])
        if action == "more":
            assert "prefer the response with more list_items" in text and "less list_items" not in text
            assert MORE.search(text).group(1) == "list_items"  # the simulated generator reads it as "more"
        elif action == "less":
            assert "prefer the response with less list_items" in text and "more list_items" not in text
        else:
            assert HOLD.search(text).group(1) == "list_items"
    with pytest.raises(Exception, match="unknown feedback template"):
        get_template("feedback/v1")  # its "more"/"less" followed tau_human - tau_generation, not the humans


def test_split_is_seeded_exact_and_stratified():
    gen = [f"g{i}" for i in range(41)]
    other = [f"o{i}" for i in range(7)] + ["g0"]  # g0 belongs to the first stratum
    halves = split_prompts([gen, other], seed=3)
    assert set(halves) == set(gen) | {f"o{i}" for i in range(7)}
    assert Counter(halves[p] for p in gen) == {"select": 20, "measure": 21}  # each stratum halved exactly
    assert Counter(halves[f"o{i}"] for i in range(7)) == {"select": 3, "measure": 4}
    assert split_prompts([list(reversed(gen)), other], seed=3) == halves  # order does not matter, the seed does
    assert split_prompts([gen, other], seed=4) != halves
    assert split_prompts([["lone"]], seed=0) == {"lone": "measure"}
    # Over seeds, every prompt is selected about half the time (the hash order is not biased to some ids).
    share = np.mean([[split_prompts([gen], seed=s)[p] == "select" for p in gen] for s in range(300)], axis=0)
    assert np.all(np.abs(share - 20 / 41) < 0.12)


def test_feedback_chosen_on_one_half_measured_on_the_other_against_a_resample(tmp_path, audit, server):
    before_requests = server.stats()["requests"]
    out = tmp_path / "feedback"
    summary = improve_feedback(audit["results"], "model", str(out), endpoints=audit["endpoints"], top=2, progress=False)
    assert server.stats()["requests"] - before_requests == 2 * 40  # guided and control, held-out prompts only
    manifest = json.loads((out / "_manifest.json").read_text())

    # The split: seeded, recorded, exact halves of the generator's 80 prompts.
    split = pl.read_parquet(out / "split.parquet")
    held_out = set(split.filter(pl.col("half") == "measure")["prompt_id"])
    assert split.height == 80 and len(held_out) == 40 and summary.split == {"select": 40, "measure": 40}
    assert manifest["split"]["seed"] == 0 and manifest["split"]["generator_prompts"] == {"select": 40, "measure": 40}
    assert dict(zip(split["prompt_id"], split["half"])) == split_prompts(
        [pl.read_parquet(f"{audit['generate']}/pairs/*.parquet")["prompt_id"]], 0)
    human = pl.read_parquet(f"{audit['human']}/pairs/*.parquet")
    human_held_out = human.filter(pl.col("prompt_id").is_in(list(held_out))).height

    # Selection used the selection half only: its reduce saw 40 prompts' pairs, and the chosen factors are
    # exactly the top significant misalignments of that reduce.
    selection = Audit.load(manifest["selection"])
    sel_rows = selection.influence.filter(pl.col("factor") == "length")
    n_pairs = dict(zip(sel_rows["labeler"], sel_rows["n_pairs"]))
    assert n_pairs["sim-model"] == 40 * 10 and n_pairs["human"] == human.height - human_held_out
    ranked = [m for m in misalignments(selection, ("human", "human"), ("sim-model", "generation"), "helpful") if m.significant]
    assert [(c.factor, c.action) for c in summary.chosen] == [(m.factor, m.action) for m in ranked[:2]]
    assert {(c.factor, c.action) for c in summary.chosen} == {("length", "hold"), ("list_items", "more")}
    assert HOLD.search(summary.guidance).group(1) == "length" and MORE.search(summary.guidance).group(1) == "list_items"

    # The control is a fresh draw, not the cached reply: none of its texts is one of the audit's.
    before_ids = set(pl.read_parquet(f"{audit['generate']}/responses/*.parquet")["response_id"])
    control_ids = set(pl.read_parquet(f"{out}/generate/control/responses/*.parquet")["response_id"])
    assert len(control_ids) == 40 * 5 and not control_ids & before_ids
    assert json.loads((out / "generate" / "control" / "_manifest.json").read_text())["sample"] == 1

    # The held-out reduce: each arm's length tau equals the one counted from its texts, independently.
    influence = pl.read_parquet(out / "results" / "influence.parquet").filter(pl.col("factor") == "length")
    tau = {r["labeler"]: (r["tau"], r["n_pairs"]) for r in influence.iter_rows(named=True)}
    measure_generate = next(d for d in manifest["split"]["pairs"]["measure"] if d.endswith("generate"))
    assert tau["sim-model"] == pytest.approx(_length_tau(measure_generate))
    assert tau["sim-model+feedback"] == pytest.approx(_length_tau(out / "generate" / "guided"))
    assert tau["sim-model+resample"] == pytest.approx(_length_tau(out / "generate" / "control"))
    assert tau["sim-model"][1] == tau["sim-model+feedback"][1] == tau["sim-model+resample"][1] == 400
    assert tau["human"][1] == human_held_out

    factors = {r["factor"]: r for r in pl.read_parquet(out / "feedback_factors.parquet").iter_rows(named=True)}
    assert set(factors) == set(FACTORS) and factors["length"]["action"] == "hold" and not factors["bold"]["guided"]
    for factor, arms in PLANTED_TAU.items():
        for arm, value in arms.items():
            assert factors[factor][f"tau_{arm}"] == pytest.approx(value, abs=0.03), (factor, arm)
    changes = {(r["quantity"], r["item"], r["contrast"]): r for r in pl.read_parquet(out / "feedback_changes.parquet").iter_rows(named=True)}
    for factor in FACTORS:
        # Resampling alone moves no factor: every control - before interval contains 0 ...
        noise = changes[("tau", factor, "control-before")]
        assert noise["value_ci_low"] < 0 < noise["value_ci_high"], factor
    # ... while the guidance moves the guided factors against the control, towards the humans.
    for factor in ("length", "list_items"):
        effect = changes[("misalignment", factor, "guided-control")]
        assert effect["value_ci_high"] < 0, factor
        tau_effect = changes[("tau", factor, "guided-control")]
        assert tau_effect["value"] == pytest.approx(factors[factor]["tau_guided"] - factors[factor]["tau_control"])

    # Alignment over the factors: mean |tau_arm - tau_human|, recomputed from the influence table with numpy.
    alignment = pl.read_parquet(out / "feedback_alignment.parquet")
    mad = alignment.filter(pl.col("metric") == "mean_abs_diff").row(0, named=True)
    everything = pl.read_parquet(out / "results" / "influence.parquet")

    def taus(labeler, setting="generation"):
        return everything.filter((pl.col("labeler") == labeler) & (pl.col("setting") == setting)).sort("factor")["tau"].to_numpy()

    h = taus("human", "human")
    for arm, labeler in (("before", "sim-model"), ("guided", "sim-model+feedback"), ("control", "sim-model+resample")):
        assert mad[arm] == pytest.approx(np.mean(np.abs(h - taus(labeler))))
        assert mad[arm] == pytest.approx(PLANTED_MAD[arm], abs=0.03), arm
    assert not mad["higher_is_closer"]
    assert changes[("alignment", "mean_abs_diff", "guided-control")]["value_ci_high"] < 0
    noise = changes[("alignment", "mean_abs_diff", "control-before")]
    assert noise["value_ci_low"] < 0 < noise["value_ci_high"]

    assert manifest["template"] == "feedback/v2" and manifest["guidance"] == summary.guidance
    assert manifest["alignment_factors"] == sorted(FACTORS)  # the audit records no set: every reduced factor
    assert summary.guidance.startswith(get_template("feedback/v2").header)
    text = (out / "feedback.md").read_text()
    assert "| length | hold |" in text and "guided-control" in text and "measured on the other 40" in text

    # A rerun is served from the reply cache (same guidance and sample, same cache keys): nothing sent.
    again = server.stats()["requests"]
    improve_feedback(audit["results"], "model", str(tmp_path / "again"), endpoints=audit["endpoints"], top=2,
                     cache_dir=str(out / "_llm_cache"), progress=False)
    assert server.stats()["requests"] == again


def test_dry_run_projects_both_regenerations_and_sends_nothing(tmp_path, audit, server, capsys):
    from profile_dist.cli import main

    before = server.stats()["requests"]
    code = main(["improve", "feedback", "--results", audit["results"], "--llm", "model", "--output", str(tmp_path / "dry"),
                 "--endpoints", audit["endpoints"], "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and server.stats()["requests"] == before
    assert printed.count("dry run (generate, generator: model = sim-model): 40 requests") == 2  # guided, control
    assert "- length: human raters do not reward it" in printed  # the guidance it would send
    assert not (tmp_path / "dry" / "results").exists()
    # An unknown template is a one-line user error, before any work.
    assert main(["improve", "feedback", "--results", audit["results"], "--llm", "model", "--output", str(tmp_path / "x"),
                 "--endpoints", audit["endpoints"], "--template", "feedback/v9"]) == 2
    assert "unknown feedback template" in capsys.readouterr().err


def test_alignment_is_over_the_reduce_s_recorded_factor_set():
    audit = Audit("r", {"factors": ["length", "list_items", "bold"], "alignment": {"factors": {"helpful": ["bold", "length"]}}},
                  pl.DataFrame(), {})
    assert audit.alignment_factors("helpful") == ["length", "bold"]  # the recorded set, in reduce order
    assert audit.alignment_factors("other") == ["length", "list_items", "bold"]  # none recorded: every factor
    assert Audit("r", {"factors": ["length"]}, pl.DataFrame(), {}).alignment_factors("helpful") == ["length"]


def test_the_guidance_and_the_sample_enter_the_generation_cache_key():
    from profile_dist.llm.endpoints import Endpoint
    from profile_dist.prompts.settings import GenerationPrompt
    from profile_dist.stages.generate import fresh_draws

    endpoint = Endpoint(name="e", base_url="http://127.0.0.1:1", model="m")
    prompt = GenerationPrompt()
    plain, guided = prompt.joint_request("p", 5), prompt.joint_request("p", 5, "- length: hold")
    assert plain.cache_key(endpoint) == prompt.joint_request("p", 5, None).cache_key(endpoint)  # unguided unchanged
    assert plain.cache_key(endpoint) != guided.cache_key(endpoint) and "- length: hold" in guided.messages[-1]["content"]
    single = prompt.single_request("p", 2, 5, "- length: hold")
    assert single.cache_key(endpoint) != prompt.single_request("p", 2, 5).cache_key(endpoint)
    # A sample index is a decoding parameter: same messages, another cache key, sent as `seed`.
    (resampled,) = fresh_draws([plain], 1)
    assert resampled.messages == plain.messages and resampled.decoding_params(endpoint)["seed"] == 1
    assert len({r.cache_key(endpoint) for r in (plain, resampled, *fresh_draws([plain], 2))}) == 3
    assert fresh_draws([plain], None) == [plain]
