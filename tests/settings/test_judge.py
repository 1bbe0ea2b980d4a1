"""The judge stage: both orders, position bias, inconsistent-pair policies, failures, dry run, rerun from cache."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from scipy.stats import kendalltau
from sklearn.metrics import accuracy_score, cohen_kappa_score

from profile_dist.cli import main
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.judge import judge
from profile_dist.stages.reduce import reduce

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


def test_the_reply_cache_lives_beside_the_output_on_its_own_store():
    # An s3:// output gets an s3:// cache every node can share (llm.cache opens either kind); no --cache-dir needed.
    from profile_dist.llm.cache import default_cache_location

    assert default_cache_location("s3://bucket/judge", None) == "s3://bucket/judge/_llm_cache"
    assert default_cache_location("/data/judge", None) == "/data/judge/_llm_cache"
    assert default_cache_location("s3://bucket/judge", "/shared/cache") == "/shared/cache"


def _tau_on(pairs: pl.DataFrame, label: str, values: pl.DataFrame, factor: str) -> float:
    """(C - D) / (C + D) of one factor over ``pairs`` labelled by column ``label``, straight from the annotations."""
    joined = pairs.join(values.select(pl.col("response_id").alias("response_a_id"), pl.col(factor).alias("fa")), on="response_a_id") \
                  .join(values.select(pl.col("response_id").alias("response_b_id"), pl.col(factor).alias("fb")), on="response_b_id")
    diff = np.where(joined[label] == "a", joined["fa"] - joined["fb"], joined["fb"] - joined["fa"])
    c, d = int((diff > 0).sum()), int((diff < 0).sum())
    return (c - d) / (c + d)


def test_judge_and_humans_are_compared_on_the_pairs_both_decided(tmp_path, biased_server):
    """Humans tie some pairs, the judge flips with the order on others: alignment uses the pairs both decided,
    says what each side left out, and agreement counts the flipped pairs as ties."""
    human = str(tmp_path / "human")
    ingest("pairs", [write_human_corpus(tmp_path / "h.jsonl", 200, 40, ties=0.2)], human, progress=False)
    judged = str(tmp_path / "judged")
    judge(human, "model", judged, endpoints=endpoints_file(tmp_path, biased_server), progress=False)
    annotations = str(tmp_path / "ann")
    factors = ["bold", "length", "list_items"]
    annotate(human, annotations, factors=factors, progress=False)
    results = tmp_path / "results"
    reduce([human, judged], [annotations], str(results), n_bootstrap=20, progress=False, alignment_factors="all")

    # The expectation, independently: human labels, the judge's raw votes, the annotation values.
    votes = pl.read_parquet(f"{judged}/judgments.parquet").pivot(on="order", index="pair_id", values="vote")
    frame = pl.read_parquet(f"{human}/pairs/*.parquet").join(votes, on="pair_id")
    human_decided = frame["label"] != "tie"
    judge_decided = (frame["ab"] == frame["ba"]) & (frame["ab"] != "tie")  # policy drop: an inconsistent pair is left out
    both = frame.filter(human_decided & judge_decided)
    n_ties, n_flipped = int((~human_decided).sum()), int((frame["ab"] != frame["ba"]).sum())
    assert n_ties > 10 and n_flipped > 10 and int((~judge_decided).sum()) == n_flipped
    rows = {r["metric"]: r for r in pl.read_parquet(results / "alignment.parquet").to_dicts()
            if (r["source_x"], r["source_y"]) == ("human/human", f"{MODEL}/evaluation")}
    row = rows["mean_abs_diff"]
    assert (row["pairs"], row["n_pairs"]) == ("intersection", both.height)
    assert (row["n_dropped_x"], row["dropped_x"]) == (n_ties, f"{n_ties} tie label (no preference)")
    assert (row["n_dropped_y"], row["dropped_y"]) == (n_flipped, f"{n_flipped} position-inconsistent (policy drop)")
    values = pl.read_parquet(f"{annotations}/*.parquet").pivot(on="factor", index="response_id", values="value")
    tau_human = [_tau_on(both, "label", values, f) for f in factors]
    tau_judge = [_tau_on(both, "ab", values, f) for f in factors]
    assert row["value"] == pytest.approx(np.mean(np.abs(np.subtract(tau_human, tau_judge))), abs=1e-12)
    assert rows["kendall_tau_b"]["value"] == pytest.approx(kendalltau(tau_human, tau_judge).statistic, abs=1e-12)
    # Each source's own tau (influence) is over more pairs than the intersection: humans keep the pairs the
    # judge flipped on, the judge keeps the pairs humans tied.
    influence = pl.read_parquet(results / "influence.parquet").filter(pl.col("factor") == "length")
    own = dict(zip(influence["labeler"], influence["n_concordant"] + influence["n_discordant"] + influence["n_ties"]))
    assert own["human"] == int(human_decided.sum()) > both.height and own[MODEL] == int(judge_decided.sum()) > both.height

    # Agreement over all judged pairs (a flipped pair is a tie), and over the consistent pairs only, as sklearn has it.
    agreement = pl.read_parquet(f"{judged}/judge_agreement.parquet").row(0, named=True)
    verdict = pl.when(pl.col("ab") == pl.col("ba")).then(pl.col("ab")).otherwise(pl.lit("tie"))
    every = frame.with_columns(verdict=verdict)
    consistent = frame.filter(pl.col("ab") == pl.col("ba"))
    assert agreement["n_compared"] == 200 and agreement["n_compared_consistent_only"] == 200 - n_flipped
    assert agreement["accuracy"] == pytest.approx(accuracy_score(every["label"], every["verdict"]))
    assert agreement["cohen_kappa"] == pytest.approx(cohen_kappa_score(every["label"], every["verdict"]))
    assert agreement["accuracy_consistent_only"] == pytest.approx(accuracy_score(consistent["label"], consistent["ab"]))
    assert agreement["cohen_kappa_consistent_only"] == pytest.approx(cohen_kappa_score(consistent["label"], consistent["ab"]))
