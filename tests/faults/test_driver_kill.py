"""SIGKILL of the driver (the real CLI in a child process) mid-annotate, mid-judge and mid-reduce; then a rerun.

Guarantees checked: the rerun completes; every row is there exactly once with the value an uninterrupted
run gives; requests paid twice (counted by the test server: 200 replies per request key) are at most the
ones in flight at the kill (2 batches of ceil(max_concurrency / workers) per worker = 2 x concurrency).
"""

from __future__ import annotations

import re

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from faults_helpers import Child, cli, cli_env, endpoints_file, llm_rows, run_cli
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.testing.llm_server import ServerProcess, reference_fluency

CONCURRENCY = 4
IN_FLIGHT_BOUND = 2 * CONCURRENCY


@pytest.fixture
def demo_pairs(tmp_path, ray_session):
    out = tmp_path / "pairs"
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], str(out), rows_per_shard=120, progress=False)
    return out


def paid_twice(server: ServerProcess) -> int:
    return sum(c - 1 for c in server.stats()["ok_per_key"].values())


def test_sigkill_mid_annotate_llm_then_rerun_completes_paying_again_only_in_flight(tmp_path, ray_session, demo_pairs):
    address = ray_session.get_runtime_context().gcs_address
    responses = pl.read_parquet(demo_pairs / "responses" / "*.parquet")
    n_texts = responses["text"].n_unique()
    with ServerProcess(["--api-key", cli_env()["PROFILE_TEST_FAULTS_KEY"], "--latency-ms", "40", "120"]) as server:
        endpoints = endpoints_file(tmp_path / "endpoints.yaml", server.base_url, concurrency=CONCURRENCY)
        args = ["annotate", "--address", address, "--pairs", str(demo_pairs), "--output", str(tmp_path / "ann"),
                "--factors", "fluency", "--llm", "judge", "--endpoints", endpoints]
        first = Child(cli(*args), cli_env())
        first.kill_when(lambda: server.stats()["ok"] >= n_texts // 3)
        killed_at = server.stats()["ok"]
        assert killed_at < n_texts, "the kill came after the run had finished"

        rerun = run_cli(*args)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        values = llm_rows(tmp_path / "ann")
        # Every response exactly once, with the value of an uninterrupted run (the server's reference).
        assert values.height == responses.height
        assert values.select("response_id", "factor").is_duplicated().sum() == 0
        assert set(values["response_id"]) == set(responses["response_id"])
        joined = values.join(responses, on="response_id")
        assert joined["error"].null_count() == joined.height
        assert joined["value"].to_list() == [float(reference_fluency(t)) for t in joined["text"]]
        # Each distinct text was paid for once, except at most the requests in flight at the kill.
        assert len(server.stats()["ok_per_key"]) == n_texts
        print(f"\nannotate --llm SIGKILL: killed at ok={killed_at}/{n_texts}, paid twice={paid_twice(server)} (bound {IN_FLIGHT_BOUND})")
        assert paid_twice(server) <= IN_FLIGHT_BOUND


@pytest.mark.slow
def test_sigkill_mid_reduce_then_rerun_gives_the_uninterrupted_result(tmp_path, ray_session):
    pairs, annotations = tmp_path / "pairs", tmp_path / "ann"
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], str(pairs), rows_per_shard=10, progress=False)
    annotate(str(pairs), str(annotations), factors=["length", "bold", "list_items"], progress=False)
    n_shards = len(list((pairs / "pairs").glob("*.parquet")))
    reference = tmp_path / "reference"
    reduce([str(pairs)], [str(annotations)], str(reference), n_bootstrap=400, seed=3, progress=False)

    address = ray_session.get_runtime_context().gcs_address
    out = tmp_path / "res"
    args = ["reduce", "--address", address, "--pairs", str(pairs), "--annotations", str(annotations),
            "--output", str(out), "--bootstrap", "400", "--seed", "3"]
    first = Child(cli(*args), cli_env(PROFILE_DIST_PROGRESS="1"))

    def mid_map() -> bool:  # some shards merged, not all
        done = [int(m) for m in re.findall(rb"reduce:.*?\| *(\d+)/\d+", bytes(first.err))]
        return bool(done) and 0 < max(done) < n_shards

    first.kill_when(mid_map)
    # Nothing half-written is left where a reader would take it for a result.
    assert not (out / "influence.parquet").exists() or not (out / "_manifest.json").exists()

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for name in ("influence", "alignment", "skipped"):
        got = pl.read_parquet(out / f"{name}.parquet")
        want = pl.read_parquet(reference / f"{name}.parquet")
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9)
    assert pl.read_parquet(out / "influence.parquet")["n_pairs"].sum() == pl.read_parquet(
        reference / "influence.parquet")["n_pairs"].sum()


@pytest.mark.slow
def test_sigkill_mid_judge_then_rerun_completes_paying_again_only_in_flight(tmp_path, ray_session, demo_pairs):
    address = ray_session.get_runtime_context().gcs_address
    n_pairs = pl.read_parquet(demo_pairs / "pairs" / "*.parquet").height
    with ServerProcess(["--api-key", cli_env()["PROFILE_TEST_FAULTS_KEY"], "--latency-ms", "20", "60"]) as server:
        endpoints = endpoints_file(tmp_path / "endpoints.yaml", server.base_url, concurrency=CONCURRENCY)
        out = tmp_path / "judged"
        args = ["judge", "--address", address, "--pairs", str(demo_pairs), "--llm", "judge", "--output", str(out),
                "--endpoints", endpoints]
        first = Child(cli(*args), cli_env())
        first.kill_when(lambda: server.stats()["ok"] >= n_pairs // 2)
        assert not (out / "judgments.parquet").exists()
        rerun = run_cli(*args)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        votes = pl.read_parquet(out / "judgments.parquet")
        assert votes.select("pair_id", "order").is_duplicated().sum() == 0
        n_requests = len(server.stats()["ok_per_key"])
        assert votes.height == n_requests  # one vote per distinct request, both orders of every judged pair
        print(f"\njudge SIGKILL: requests={n_requests}, paid twice={paid_twice(server)} (bound {IN_FLIGHT_BOUND})")
        assert paid_twice(server) <= IN_FLIGHT_BOUND
