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


def endpoints_file(tmp_path, server: ServerProcess, key_env: str = KEY_ENV, extra: str = "") -> str:
    path = tmp_path / "endpoints.yaml"
    path.write_text(
        "endpoints:\n"
        "  judge:\n"
        f"    base_url: {server.base_url}\n"
        "    model: test-judge\n"
        f"    api_key_env: {key_env}\n"
        "    max_concurrency: 8\n"
        "    price_per_1k: {input: 0.001, output: 0.002}\n"
        + extra
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


def test_with_an_empty_cache_the_workers_start_before_the_pairs_are_read(tmp_path, server, corpus, monkeypatch):
    """Issue 16: the workers and the limiter boot while the driver reads the first shard, not after it; a run
    that finds every reply in the cache still starts none."""
    import profile_dist.llm.engine as engine_module
    import profile_dist.stages.annotate as annotate_module

    monkeypatch.setenv(KEY_ENV, KEY)
    endpoints = endpoints_file(tmp_path, server)
    events: list[str] = []
    worker, read = engine_module.LLMWorker, annotate_module.shard_with_sources

    class SpyWorker:  # the real actor class, noting when the engine asks for workers
        def options(self, **kwargs):
            events.append("workers")
            return worker.options(**kwargs)

    def spy_read(*args, **kwargs):
        events.append("read")
        return read(*args, **kwargs)

    monkeypatch.setattr(engine_module, "LLMWorker", SpyWorker())
    monkeypatch.setattr(annotate_module, "shard_with_sources", spy_read)
    cache = str(tmp_path / "cache")
    first = annotate(str(corpus), str(tmp_path / "ann"), factors=["fluency"], llm="judge", endpoints=endpoints,
                     cache_dir=cache)
    assert first.llm["sent"] > 0 and first.llm["failed"] == 0
    assert events[:2] == ["workers", "read"], events

    events.clear()
    sent = server.stats()["requests"]
    again = annotate(str(corpus), str(tmp_path / "ann2"), factors=["fluency"], llm="judge", endpoints=endpoints,
                     cache_dir=cache)
    assert again.llm["sent"] == 0 and again.llm["cached"] > 0 and server.stats()["requests"] == sent
    assert "workers" not in events and "read" in events


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


def test_a_rerun_retries_exactly_the_rows_that_failed_transiently(tmp_path, server, corpus, monkeypatch, capsys):
    monkeypatch.setenv(KEY_ENV, KEY)
    # One attempt per request: the 5xx the server injects at random become failed rows.
    endpoints = endpoints_file(tmp_path, server, extra="    max_attempts: 1\n    backoff_base_s: 0.01\n")
    server.configure(error_rate=0.3, seed=4)
    out = tmp_path / "ann"
    first = annotate(str(corpus), str(out), factors=["fluency"], llm="judge", endpoints=endpoints)
    log = server.log()
    answered = {e["key"] for e in log if e["status"] == "200"}
    failed_keys = {e["key"] for e in log} - answered
    values = pl.read_parquet(out / "part-*.llm-judge.parquet")
    failed_rows = values.filter(pl.col("error").is_not_null())
    assert failed_keys and failed_rows.height >= len(failed_keys)  # a text may answer several prompts
    assert failed_rows["error"].str.starts_with("transport: HTTP ").all()  # 5xx (and 429s over their budget)
    # Counted per shard's run: a text failing in two shards counts twice (and is resent once, below).
    assert first.llm["retryable"] >= len(failed_keys)
    assert first.llm["retryable_by_reason"] == {"transport": first.llm["retryable"]}
    assert any("failed transiently and are not cached: rerun to retry them" in line for line in first.lines())
    assert first.llm["llm_calls"] == "per_factor"  # one factor: its own prompt, whatever was requested

    shards = sorted(out.glob("part-*.llm-judge.parquet"))
    failed_shards = [f for f in shards if pl.read_parquet(f)["error"].null_count() < pl.read_parquet(f).height]
    server.configure(error_rate=0.0)
    server.reset()
    again = annotate(str(corpus), str(out), factors=["fluency"], llm="judge", endpoints=endpoints)
    log = server.log()
    answered_now = [e["key"] for e in log if e["status"] == "200"]
    assert sorted(answered_now) == sorted(failed_keys) and {e["key"] for e in log} == failed_keys  # those, once
    assert again.shards_done == len(failed_shards) and again.shards_skipped == len(shards) - len(failed_shards)
    assert again.llm["retried"] == first.llm["retryable"]
    assert again.llm["retried_by_reason"] == first.llm["retryable_by_reason"]
    assert again.llm["cached"] > 0 and again.llm["retryable"] == 0
    assert any("retried (they failed transiently last time)" in line for line in again.lines())
    values = pl.read_parquet(out / "part-*.llm-judge.parquet")
    assert values["error"].null_count() == values.height
    # Nothing left to retry: the next rerun skips every shard.
    done = annotate(str(corpus), str(out), factors=["fluency"], llm="judge", endpoints=endpoints)
    assert done.shards_done == 0 and len(server.log()) == len(log)
