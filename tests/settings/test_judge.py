"""The judge stage: both orders, position bias, inconsistent-pair policies, failures, dry run, rerun from cache."""

from __future__ import annotations

import json

import polars as pl
import pytest

from profile_dist.cli import main
from profile_dist.stages.ingest import ingest
from profile_dist.stages.judge import judge

from settings_helpers import MODEL, endpoints_file, planted_server, write_human_corpus

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")
BIAS = 0.3
N = 300


@pytest.fixture(scope="module")
def biased_server():
    with planted_server("judge_prefers_longer=0.8", f"judge_position_bias={BIAS}") as process:
        yield process


@pytest.fixture
def human(tmp_path):
    out = str(tmp_path / "human")
    ingest("pairs", [write_human_corpus(tmp_path / "h.jsonl", N, 40)], out, progress=False)
    return out


def test_position_bias_lowers_consistency_and_the_policy_decides_what_is_kept(tmp_path, biased_server, human):
    endpoints = endpoints_file(tmp_path, biased_server)
    dropped = judge(human, "model", str(tmp_path / "drop"), endpoints=endpoints, progress=False)
    # A judge answering "1" with probability q per request is consistent with probability 1 - q.
    consistency = 1 - dropped.n_inconsistent / N
    assert abs(consistency - (1 - BIAS)) < 4 * (BIAS * (1 - BIAS) / N) ** 0.5
    row = pl.read_parquet(tmp_path / "drop" / "judge_agreement.parquet").row(0, named=True)
    assert row["position_consistency"] == pytest.approx(consistency) and row["n_inconsistent"] == dropped.n_inconsistent
    pairs = pl.read_parquet(tmp_path / "drop" / "pairs" / "*.parquet")
    rejected = pl.read_parquet(tmp_path / "drop" / "rejected" / "*.parquet")
    assert pairs.height == N - dropped.n_inconsistent == dropped.n_kept
    assert rejected.height == dropped.n_inconsistent and set(rejected["kind"]) == {"skipped"}
    assert set(pairs["labeler"]) == {MODEL} and set(pairs["setting"]) == {"evaluation"}

    # Votes are kept raw, both orders, mapped back to A/B; "first" keeps the (A, B) vote of every pair.
    votes = pl.read_parquet(tmp_path / "drop" / "judgments.parquet")
    assert votes.height == 2 * N and sorted(set(votes["order"])) == ["ab", "ba"]
    assert all(json.loads(raw)["preferred"] in ("1", "2", "tie") for raw in votes["raw"])
    sent = biased_server.stats()["requests"]
    first = judge(human, "model", str(tmp_path / "first"), endpoints=endpoints, progress=False, inconsistent="first",
                  cache_dir=str(tmp_path / "drop" / "_llm_cache"))
    assert biased_server.stats()["requests"] == sent and first.llm["sent"] == 0  # same requests: all cached
    kept = pl.read_parquet(tmp_path / "first" / "pairs" / "*.parquet")
    ab = votes.filter(pl.col("order") == "ab").select("pair_id", "vote")
    human_pairs = pl.read_parquet(f"{human}/pairs/*.parquet").join(ab, on="pair_id")
    joined = human_pairs.join(kept, on=["response_a_id", "response_b_id"], suffix="_judge")
    assert kept.height == N and (joined["vote"] == joined["label_judge"]).all()


def test_failed_replies_are_recorded_and_their_pairs_dropped(tmp_path, human):
    with planted_server("judge_prefers_longer=0.8") as server:
        server.configure(malformed_rate=1.0)  # every reply, re-asks included, fails validation
        summary = judge(human, "model", str(tmp_path / "out"), endpoints=endpoints_file(tmp_path, server), progress=False)
    assert summary.n_failed == N and summary.n_kept == 0
    votes = pl.read_parquet(tmp_path / "out" / "judgments.parquet")
    assert votes["vote"].null_count() == 2 * N and all(e.startswith("invalid_reply") for e in votes["error"])
    rejected = pl.read_parquet(tmp_path / "out" / "rejected" / "*.parquet")
    assert set(rejected["reason"]) == {"judge request failed in at least one order"}


def test_dry_run_prints_the_estimate_and_sends_nothing(tmp_path, biased_server, human, capsys):
    endpoints = endpoints_file(tmp_path, biased_server)
    before = biased_server.stats()["requests"]
    assert main(["judge", "--pairs", human, "--llm", "model", "--endpoints", endpoints,
                 "--output", str(tmp_path / "out"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"{2 * N} requests" in out and f"{2 * N} to send" in out and "$" in out
    assert biased_server.stats()["requests"] == before and not (tmp_path / "out" / "pairs").exists()
    # A budget below the estimate refuses before sending anything.
    assert main(["judge", "--pairs", human, "--llm", "model", "--endpoints", endpoints,
                 "--output", str(tmp_path / "out"), "--max-cost", "0.0001"]) == 2
    err = capsys.readouterr().err
    assert f"judging {N} pairs would cost about $" in err and "> --max-cost $0.0001; nothing was sent" in err
    assert biased_server.stats()["requests"] == before
    assert main(["judge", "--pairs", human, "--llm", "nope", "--endpoints", endpoints, "--output", str(tmp_path / "x")]) == 2
    assert "nope" in capsys.readouterr().err


def test_an_object_store_output_needs_a_filesystem_cache(tmp_path):
    from profile_dist.errors import ConfigError

    endpoints = tmp_path / "endpoints.yaml"
    endpoints.write_text("endpoints:\n  model:\n    base_url: http://127.0.0.1:1/v1\n    model: m\n    api_key_env: null\n")
    with pytest.raises(ConfigError, match="pass --cache-dir"):
        judge(str(tmp_path / "nowhere"), "model", "s3://bucket/judge", endpoints=str(endpoints))
