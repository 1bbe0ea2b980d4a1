"""`profile-dist annotate --llm`: LLM factors end to end through the engine and the loopback test server."""

from __future__ import annotations

import polars as pl
import pytest

from profile_dist.cli import main
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.testing.llm_server import ServerProcess, reference_fluency

KEY_ENV, KEY = "PROFILE_TEST_ANNOTATE_KEY", "sk-annotate-test-0123456789"
pytestmark = pytest.mark.usefixtures("ray_session")


@pytest.fixture
def server():
    with ServerProcess(["--api-key", KEY, "--rpm", "6000"]) as process:
        yield process


def endpoints_file(tmp_path, server: ServerProcess, key_env: str = KEY_ENV) -> str:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        "  judge:\n"
        f"    base_url: {server.base_url}\n"
        "    model: test-judge\n"
        f"    api_key_env: {key_env}\n"
        "    max_concurrency: 8\n"
        "    price_per_1k: {input: 0.001, output: 0.002}\n"
    )
    return str(path)


@pytest.fixture
def corpus(tmp_path):
    path = write_demo_corpus(str(tmp_path / "demo.jsonl"))
    ingest("pairs", [path], str(tmp_path / "pairs"), rows_per_shard=120)
    return tmp_path / "pairs"


def test_llm_factor_values_reach_the_reduce_and_a_rerun_pays_nothing(tmp_path, server, corpus, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    endpoints = endpoints_file(tmp_path, server)
    first = annotate(str(corpus), str(tmp_path / "ann"), factors=["length", "fluency"], llm="judge", endpoints=endpoints)
    responses = pl.read_parquet(corpus / "responses" / "*.parquet")
    # Fluency reads the response alone: the same text answering two prompts is one request, sent once.
    assert first.llm["sent"] == responses["text"].n_unique() < responses.height
    assert first.llm["requests"] == responses.height and first.llm["failed"] == 0
    values = pl.read_parquet(tmp_path / "ann" / "part-*.llm-judge.parquet").join(responses, on="response_id")
    assert values.height == responses.height
    assert set(values["annotator"]) == {"test-judge"} and set(values["factor"]) == {"fluency"}
    # The test server scores fluency as a deterministic function of the text it finds between the markers.
    assert values["value"].to_list() == [float(reference_fluency(t)) for t in values["text"]]

    requests_before = server.stats()["requests"]
    again = annotate(str(corpus), str(tmp_path / "ann"), factors=["length", "fluency"], llm="judge", endpoints=endpoints)
    assert again.shards_done == 0 and server.stats()["requests"] == requests_before

    reduce([str(corpus)], [str(tmp_path / "ann")], str(tmp_path / "res"), n_bootstrap=20)
    factors = set(pl.read_parquet(tmp_path / "res" / "influence.parquet")["factor"])
    assert {"length", "fluency"} <= factors


def test_a_lost_shard_is_redone_from_the_cache_without_new_requests(tmp_path, server, corpus, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    endpoints = endpoints_file(tmp_path, server)
    annotate(str(corpus), str(tmp_path / "ann"), factors=["fluency"], llm="judge", endpoints=endpoints)
    sent = server.stats()["requests"]
    victim = sorted((tmp_path / "ann").glob("part-*.llm-judge.parquet"))[0]
    victim.unlink()
    redo = annotate(str(corpus), str(tmp_path / "ann"), factors=["fluency"], llm="judge", endpoints=endpoints)
    assert redo.shards_done == 1 and victim.exists()
    assert server.stats()["requests"] == sent


def test_dry_run_projects_and_sends_nothing(tmp_path, server, corpus, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY)
    endpoints = endpoints_file(tmp_path, server)
    code = main(["annotate", "--pairs", str(corpus), "--output", str(tmp_path / "ann"), "--factors", "fluency",
                 "--llm", "judge", "--endpoints", endpoints, "--dry-run"])
    assert code == 0
    out = capsys.readouterr().out
    n_responses = pl.read_parquet(corpus / "responses" / "*.parquet").height
    n_texts = pl.read_parquet(corpus / "responses" / "*.parquet")["text"].n_unique()
    assert f"requests={n_responses}," in out and f"to_send={n_texts}" in out and "cost=" in out
    assert server.stats()["requests"] == 0
    assert not list((tmp_path / "ann").glob("part-*.parquet"))


def test_llm_factor_without_endpoint_and_bad_key_are_clear_errors(tmp_path, server, corpus, monkeypatch, capsys):
    assert main(["annotate", "--pairs", str(corpus), "--output", str(tmp_path / "a"), "--factors", "fluency"]) == 2
    assert "name an endpoint with --llm" in capsys.readouterr().err
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-000")
    endpoints = endpoints_file(tmp_path, server)
    code = main(["annotate", "--pairs", str(corpus), "--output", str(tmp_path / "a"), "--factors", "fluency",
                 "--llm", "judge", "--endpoints", endpoints])
    err = capsys.readouterr().err
    assert code == 2 and "judge" in err and "sk-wrong-key-000" not in err and "Traceback" not in err


def test_llm_factors_with_output_on_s3_need_a_filesystem_cache(tmp_path, corpus, capsys):
    code = main(["annotate", "--pairs", str(corpus), "--output", "s3://bucket/annotations", "--factors", "length", "fluency",
                 "--llm", "judge", "--endpoints", str(tmp_path / "unused.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "not s3://bucket/annotations/_llm_cache; pass --cache-dir" in err
