"""`improve best-of-n` against the planted server: knockout and pointwise picks recomputed independently from
the candidates' texts, the factor profile of picked vs random, and alignment with humans from the same reduce."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from profile_dist.workflows.improve.bestofn import Candidate, best_of_n, match_winner

from improve_helpers import FACTORS
from settings_helpers import endpoints_file, planted_server


@pytest.fixture(scope="module")
def longer_server():
    # A judge that always prefers the longer response (position-consistent), a noiseless rater (1 + words // 12).
    with planted_server("judge_prefers_longer=1.0", "rate_noise=0") as process:
        yield process


def _candidates(out) -> pl.DataFrame:
    cands = pl.read_parquet(out / "picks" / "candidates.parquet")
    texts = pl.read_parquet(f"{out}/picks/responses/*.parquet").select("response_id", "text")
    return cands.join(texts, on="response_id", how="left").with_columns(words=pl.col("text").str.split(" ").list.len()
                                                                        + pl.col("text").str.count_matches("\n"))


def test_dry_run_through_the_cli_sends_nothing(tmp_path, audit, api_key_env, longer_server, capsys):
    from profile_dist.cli import main

    before = longer_server.stats()["requests"]
    code = main(["improve", "best-of-n", "--prompts", audit["human"], "--llm", "model", "--judge", "model", "--n", "3",
                 "--output", str(tmp_path / "dry"), "--endpoints", endpoints_file(tmp_path, longer_server), "--dry-run"])
    printed = capsys.readouterr().out
    assert code == 0 and longer_server.stats()["requests"] == before
    assert "dry run (best_of_n, generator: model = sim-model): 240 requests" in printed
    assert "dry run (best_of_n, judge: model = sim-model): 320 requests" in printed  # 2 orders x (N - 1) matches
    assert not (tmp_path / "dry" / "picks").exists()
    # With humans, the judge model's generation setting is projected too (80 prompts, one joint call each).
    main(["improve", "best-of-n", "--prompts", audit["human"], "--llm", "model", "--judge", "model", "--n", "3",
          "--output", str(tmp_path / "dry2"), "--endpoints", endpoints_file(tmp_path, longer_server), "--dry-run",
          "--human", audit["human"], "--human-annotations", audit["human"]])
    assert "dry run (generate, generator: model = sim-model): 80 requests" in capsys.readouterr().out
    assert longer_server.stats()["requests"] == before


def test_match_winner_needs_a_consistent_verdict():
    x, y = Candidate(1, "x", "rx"), Candidate(2, "y", "ry")
    assert match_winner(x, y, "2", "1") == (y, True)
    assert match_winner(x, y, "1", "2") == (x, True)
    assert match_winner(x, y, "1", "1") == (x, False)  # position-inconsistent: the earlier stays
    assert match_winner(y, x, "tie", "2") == (y, False) and match_winner(x, y, None, "1") == (x, False)


@pytest.mark.parametrize("pick", ["knockout", "pointwise"])
def test_best_of_n_picks_and_profiles(tmp_path, audit, api_key_env, longer_server, pick):
    endpoints = endpoints_file(tmp_path, longer_server)
    human_ann = json.loads(open(f"{audit['results']}/_manifest.json").read())["annotations"][0]
    out = tmp_path / pick
    judge = "model" if pick == "knockout" else "rater"
    summary = best_of_n(audit["human"], "model", judge, str(out), n=4, pick=pick, factors=FACTORS, endpoints=endpoints,
                        human=[audit["human"]], human_annotations=[human_ann], n_bootstrap=50, progress=False)
    cands = _candidates(out)
    assert cands.height == 80 * 4 and cands["response_id"].null_count() == 0
    picked = cands.filter(pl.col("picked"))
    assert picked.height == summary.n_picked == 80
    # Independent recomputation of each prompt's pick from the candidate texts.
    for pid, group in cands.group_by("prompt_id"):
        words = dict(zip(group["candidate"], group["words"]))
        chosen = group.filter(pl.col("picked"))["candidate"][0]
        if pick == "pointwise":
            score = {k: min(10, max(1, 1 + w // 12)) for k, w in words.items()}
            assert chosen == min(k for k in score if score[k] == max(score.values()))
        elif list(words.values()).count(max(words.values())) == 1:
            assert words[chosen] == max(words.values())  # the judge always prefers longer: the longest wins
    # Profile of picked vs a random other candidate: knockout's pick is never shorter; pointwise ties within a
    # rating bucket (12 words) go to the earlier candidate, so it is shorter sometimes but longer mostly.
    influence = pl.read_parquet(out / "results" / "influence.parquet")
    me = influence.filter((pl.col("labeler") == f"sim-{'model' if judge == 'model' else 'rater'}+best-of-4")
                          & (pl.col("factor") == "length")).row(0, named=True)
    assert me["n_pairs"] == 80 and me["ci_low"] > 0
    if pick == "knockout":
        assert me["n_discordant"] == 0 and me["tau"] == 1.0
        # The judge's cost record counts every round: m distinct candidates play m - 1 matches, two orders each.
        distinct = cands.filter(pl.col("error").is_null()).group_by("prompt_id").len()["len"]
        manifest = json.loads((out / "picks" / "_manifest.json").read_text())
        judge_record = [r for r in manifest["llm"] if r["role"] == "judge"]
        assert [r["requests"] for r in judge_record] == [2 * int((distinct - 1).sum())]
    # Alignment of the picks' profile with the humans' (who do not reward length) from the same reduce.
    assert {r["metric"] for r in summary.alignment} >= {"kendall_tau_b", "mean_abs_diff"}
    alignment = pl.read_parquet(out / "results" / "alignment.parquet")
    assert alignment.filter(pl.col("source_x").str.ends_with("/human") | pl.col("source_y").str.ends_with("/human")).height > 0
    assert "## Factor profile of the picked vs a random other candidate" in (out / "best_of_n.md").read_text()
    _check_against_generation(out, judge, pick, summary)
    # Everything went through the engine's cache: a rerun sends nothing.
    before = longer_server.stats()["requests"]
    best_of_n(audit["human"], "model", judge, str(tmp_path / "again"), n=4, pick=pick, factors=FACTORS, endpoints=endpoints,
              cache_dir=str(out / "_llm_cache"), n_bootstrap=0, progress=False)
    assert longer_server.stats()["requests"] == before


def _words(text: str) -> int:
    return len(text.split())  # the rule factor length (tests/improve/test_export_dpo.py pins it to this)


def _tau_from_texts(pairs_dir) -> float:
    """Kendall tau of length with the preferred response, counted from the texts (no annotate, no reduce)."""
    pairs = pl.read_parquet(f"{pairs_dir}/pairs/*.parquet")
    texts = dict(pl.read_parquet(f"{pairs_dir}/responses/*.parquet").select("response_id", "text").iter_rows())
    signs = np.sign([(_words(texts[a]) - _words(texts[b])) * (1 if label == "a" else -1)
                     for a, b, label in pairs.select("response_a_id", "response_b_id", "label").iter_rows()])
    c, d = int((signs > 0).sum()), int((signs < 0).sum())
    return (c - d) / (c + d)


#: Documented in docs/improve.md (planted run, 80 prompts, 50 replicates): mean_abs_diff with humans of the
#: picks, of the judge model's generation setting, and picks - generation.
PLANTED_MAD = {"knockout": (0.498, 0.707, -0.209), "pointwise": (0.482, 0.707, -0.225)}


def _check_against_generation(out, judge, pick, summary):
    """The picks' alignment with humans next to the same model's generation-setting alignment."""
    model = f"sim-{judge}"
    vs = pl.read_parquet(out / "best_of_n_vs_generation.parquet")
    assert set(vs["metric"]) == {"kendall_tau_b", "spearman_rho", "sign_agreement", "top_k_overlap", "mean_abs_diff"}
    assert vs["picks_source"].unique().to_list() == [f"{model}+best-of-4/evaluation"]
    assert vs["generation_source"].unique().to_list() == [f"{model}/generation"]
    assert vs["factors"].to_list() == [FACTORS] * 5
    assert summary.vs_generation == vs.to_dicts()
    mad = vs.filter(pl.col("metric") == "mean_abs_diff").row(0, named=True)
    # Recomputed from the reduce's influence table with numpy ...
    influence = pl.read_parquet(out / "results" / "influence.parquet")

    def taus(labeler, setting):
        return influence.filter((pl.col("labeler") == labeler) & (pl.col("setting") == setting)).sort("factor")["tau"].to_numpy()

    h = taus("human", "human")
    picks, generation = taus(f"{model}+best-of-4", "evaluation"), taus(model, "generation")
    assert mad["picks"] == pytest.approx(np.mean(np.abs(picks - h)))
    assert mad["generation"] == pytest.approx(np.mean(np.abs(generation - h)))
    assert mad["difference"] == pytest.approx(mad["picks"] - mad["generation"])
    assert mad["difference_ci_low"] <= mad["difference"] <= mad["difference_ci_high"]
    # ... and the generation setting's length tau counted from its texts: better levels are longer, with noise.
    length = influence.filter((pl.col("labeler") == model) & (pl.col("setting") == "generation")
                              & (pl.col("factor") == "length")).row(0, named=True)
    assert length["tau"] == pytest.approx(_tau_from_texts(out / "generation"))
    assert length["n_pairs"] == 80 * 10
    # The documented planted figures, within tolerance.
    expect = PLANTED_MAD[pick]
    assert (mad["picks"], mad["generation"], mad["difference"]) == pytest.approx(expect, abs=0.03)
    assert mad["difference_ci_high"] < 0  # the picks are closer to humans than the model's own levels
    assert "## The picks against" in (out / "best_of_n.md").read_text()
