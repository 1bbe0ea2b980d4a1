"""`improve best-of-n` against the planted server: knockout and pointwise picks recomputed independently from
the candidates' texts, the factor profile of picked vs random, and alignment with humans from the same reduce."""

from __future__ import annotations

import json

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
    # Alignment of the picks' profile with the humans' (who do not reward length) from the same reduce.
    assert {r["metric"] for r in summary.alignment} >= {"kendall_tau_b", "mean_abs_diff"}
    alignment = pl.read_parquet(out / "results" / "alignment.parquet")
    assert alignment.filter(pl.col("source_x").str.ends_with("/human") | pl.col("source_y").str.ends_with("/human")).height > 0
    assert "## Factor profile of the picked vs a random other candidate" in (out / "best_of_n.md").read_text()
    # Everything went through the engine's cache: a rerun sends nothing.
    before = longer_server.stats()["requests"]
    best_of_n(audit["human"], "model", judge, str(tmp_path / "again"), n=4, pick=pick, factors=FACTORS, endpoints=endpoints,
              cache_dir=str(out / "_llm_cache"), n_bootstrap=0, progress=False)
    assert longer_server.stats()["requests"] == before
