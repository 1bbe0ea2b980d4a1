"""The engine end to end: real Ray workers, real HTTP on loopback, the test server as a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import ray

from profile_dist.factors.llm_calls import SINGLE, Usage
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.budget import CostModel
from profile_dist.llm.cache import ReplyCache
from profile_dist.llm.engine import BudgetExceededError, EndpointFatalError, LLMEngine, run_llm_requests
from profile_dist.testing.llm_server import reference_fluency

from llm_helpers import KEY, KEY_ENV, endpoint_for
from resume_driver import texts as resume_texts

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")


def texts(n: int, tag: str = "") -> list[str]:
    return [f"Response {tag}{i} is written well." if i % 3 else f"resp {tag}{i} 12 !!" for i in range(n)]


def requests_for(txts: list[str]):
    return SINGLE.requests(pl.DataFrame({"text": txts}), [FLUENCY])


def annotate_fluency(table: pl.DataFrame, engine: LLMEngine) -> tuple:
    """The fluency rows of ``table`` as the annotate stage scores them, and the engine's run summary."""
    rows = SINGLE.annotate(table, [FLUENCY], engine, Usage())
    return rows, engine.summary


def scores(results) -> list[int | None]:
    return [r.value["score"] if r.value else None for r in results]


def test_values_end_to_end_duplicates_sent_once_and_rerun_pays_nothing(llm_server, tmp_cache):
    server = llm_server("--latency-ms", "5", "20")
    ep = endpoint_for(server, rpm=6000)
    txts = texts(30) + texts(5)
    table = pl.DataFrame({"response_id": [f"r{i}" for i in range(len(txts) + 1)], "text": [*txts, None],
                          "source_text": ["the question"] * (len(txts) + 1)})
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        rows, summary = annotate_fluency(table, engine)
    assert rows.column_names == ["response_id", "factor", "value", "error"]
    assert rows["response_id"].to_pylist() == table["response_id"].to_list()
    assert rows["value"].to_pylist() == [float(reference_fluency(t)) for t in txts] + [None]
    assert rows["error"].to_pylist() == [None] * len(txts) + ["no_text: the response text is null"]
    assert set(rows["factor"].to_pylist()) == {"fluency"}
    assert {r.cache_key(ep) for r in SINGLE.requests(table, [FLUENCY])} == set(ReplyCache(tmp_cache).keys())
    stats = server.stats()
    assert stats["requests"] == stats["ok"] == 30 and set(stats["ok_per_key"].values()) == {1}
    assert (summary["unique"], summary["duplicates"], summary["sent"], summary["done"]) == (30, 5, 30, 30)
    assert summary["spend"] > 0 and summary["http_429"] == 0

    # A rerun, and another corpus sharing 30 of its 40 responses, pay only for what is new.
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        rows_again, again = annotate_fluency(table, engine)
        other = requests_for(texts(30) + texts(10, tag="new-"))
        results = engine.run(other)
    assert server.stats()["requests"] == 40
    assert rows_again.equals(rows) and (again["cached"], again["sent"]) == (30, 0)
    assert [r.cached for r in results] == [True] * 30 + [False] * 10
    assert scores(results) == [reference_fluency(t) for t in texts(30) + texts(10, tag="new-")]


def test_ray_is_reached_only_when_a_request_must_be_sent(llm_server, tmp_cache):
    # A fully cached run neither connects to Ray nor starts workers: its start-up is the cache read alone.
    server = llm_server("--latency-ms", "5", "20")
    ep = endpoint_for(server, rpm=6000)
    reqs = requests_for(texts(4))
    connects: list[int] = []
    with LLMEngine(ep, tmp_cache, progress=False, connect=lambda: connects.append(1)) as engine:
        first = engine.run(reqs)
    assert connects == [1] and server.stats()["requests"] == 4
    with LLMEngine(ep, tmp_cache, progress=False, connect=lambda: connects.append(2)) as engine:
        again = engine.run(reqs)
        assert engine.workers == []
    assert connects == [1] and server.stats()["requests"] == 4
    assert scores(again) == scores(first) == [reference_fluency(t) for t in texts(4)]


def test_two_worker_processes_keep_one_global_limit(llm_server, tmp_cache):
    # 600/min enforced per minute and per second (10/s). Were the limit per worker, two would send 20/s.
    server = llm_server("--rpm", "600", "--latency-ms", "20", "80")
    ep = endpoint_for(server, rpm=600, workers=2, max_concurrency=16, headroom=0.1)
    n = 50
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        results = engine.run(requests_for(texts(n)))
        per_worker = ray.get([w.stats.remote() for w in engine._workers])
    stats = server.stats()
    assert all(r.ok for r in results)
    assert stats["rate_limited"] == 0
    assert stats["max_in_any_1s"] <= 10
    assert all(w["sent"] >= 10 for w in per_worker)  # both processes really sent
    span = stats["last_accepted"] - stats["first_accepted"]
    paced = (n - 1) * 60 / (600 * 0.9)  # the headroom-reduced rate
    assert paced * 0.97 <= span <= paced * 1.3


def test_slots_that_found_the_in_flight_limit_full_are_counted(llm_server, tmp_cache):
    """20 requests/s at 300 ms need 6 in flight; with max_concurrency 2 the slots come while both units are
    taken. Those sends are given back, every request is still answered, and the summary says why."""
    server = llm_server("--rpm", "1200", "--latency-ms", "300", "300")
    tight = endpoint_for(server, rpm=1200, max_concurrency=2)
    summary: dict = {}
    results = run_llm_requests(tight, requests_for(texts(24)), tmp_cache, progress=False, summary=summary)
    assert all(r.ok for r in results) and server.stats()["rate_limited"] == 0
    assert summary["slots_in_flight_full"] > 0


def test_transient_failures_are_retried_until_they_succeed(llm_server, tmp_cache):
    server = llm_server("--error-rate", "0.25", "--disconnect-rate", "0.1", "--timeout-rate", "0.1",
                        "--hang-s", "5", "--seed", "7")
    ep = endpoint_for(server, timeout_s=1.5, max_attempts=10)  # hangs last 5 s; a healthy reply takes ms
    n = 40
    summary: dict = {}
    results = run_llm_requests(ep, requests_for(texts(n)), tmp_cache, progress=False, summary=summary)
    assert [r.error for r in results] == [None] * n
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    by_status = server.stats()["by_status"]
    transient = sum(v for k, v in by_status.items() if k in ("500", "502", "503", "disconnect", "hang"))
    assert by_status.get("hang", 0) > 0 and by_status.get("disconnect", 0) > 0
    assert any(k in by_status for k in ("500", "502", "503"))
    assert summary["retries"] == transient and summary["http_calls"] == n + transient


def test_bad_request_fails_its_row_only_and_is_not_retried(llm_server, tmp_cache):
    server = llm_server("--max-context-tokens", "400")
    txts = texts(6) + ["word " * 500]
    results = run_llm_requests(endpoint_for(server), requests_for(txts), tmp_cache, progress=False)
    assert all(r.ok for r in results[:-1])
    assert results[-1].error.startswith("bad_request: HTTP 400") and results[-1].value is None
    assert server.stats()["by_status"] == {"200": 6, "400": 1}


def test_malformed_replies_are_reasked_with_the_validation_error(llm_server, tmp_cache):
    server = llm_server("--malformed-first", "1")
    n = 8
    summary: dict = {}
    results = run_llm_requests(endpoint_for(server), requests_for(texts(n)), tmp_cache, progress=False,
                               summary=summary)
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    assert summary["reasks"] == n and summary["failed"] == 0
    assert set(server.stats()["ok_per_key"].values()) == {2}
    reasks = [e for e in server.log() if e["n_messages"] == 4]
    assert len(reasks) == n and all("That reply was invalid" in e["last_message"] for e in reasks)


def test_replies_invalid_after_the_reask_budget_are_failures_with_raw_text(llm_server, tmp_cache):
    server = llm_server("--malformed-first", "5")
    n = 5
    table = pl.DataFrame({"response_id": [f"r{i}" for i in range(n)], "text": texts(n)})
    ep = endpoint_for(server, max_reasks=2)
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        rows, summary = annotate_fluency(table, engine)
    assert rows["value"].null_count == n
    errors = rows["error"].to_pylist()
    assert all(e.startswith("invalid_reply: ") and "after 2 re-asks" in e and "raw=" in e for e in errors)
    assert summary["failed_by_reason"] == {"invalid_reply": n}
    assert set(server.stats()["ok_per_key"].values()) == {3}
    # Deterministic failures are known: a rerun does not pay for them again, unless asked to.
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        assert all(r.cached and not r.ok for r in engine.run(requests_for(texts(n))))
    assert server.stats()["ok"] == 3 * n
    with LLMEngine(ep, tmp_cache, progress=False, retry_failed=True) as engine:
        assert all(r.ok for r in engine.run(requests_for(texts(n))))  # the 4th reply of each is valid


def test_a_truncated_reply_is_asked_again_once_with_twice_the_token_cap(llm_server, tmp_cache):
    server = llm_server("--length-first", "1")
    n = 4
    results = run_llm_requests(endpoint_for(server), requests_for(texts(n)), tmp_cache, progress=False)
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    caps = sorted(e["max_tokens"] for e in server.log())
    assert caps == [20] * n + [40] * n  # the prompt's cap, then twice that: once per request


def test_truncated_replies_fail_as_length_and_are_asked_again_by_the_next_run(llm_server, tmp_cache):
    server = llm_server("--length-rate", "1")
    summary: dict = {}
    results = run_llm_requests(endpoint_for(server), requests_for(texts(4)), tmp_cache, progress=False,
                               summary=summary)
    assert all(r.error.startswith("length: ") and r.finish_reason == "length" and r.raw for r in results)
    assert server.stats()["ok"] == 8  # cap 20, then 40
    assert summary["retryable"] == 4 and summary["retryable_by_reason"] == {"length": 4}
    assert len(ReplyCache(tmp_cache)) == 0  # a truncation is not an answer: nothing is remembered
    server.configure(length_rate=0.0)
    again = run_llm_requests(endpoint_for(server), requests_for(texts(4)), tmp_cache, progress=False)
    assert scores(again) == [reference_fluency(t) for t in texts(4)] and server.stats()["ok"] == 12


def test_transient_failures_are_not_cached_and_the_next_run_asks_them_again(llm_server, tmp_cache):
    server = llm_server()
    ep = endpoint_for(server, max_attempts=2)
    txts = texts(24)
    summary: dict = {}
    server.configure(error_rate=1.0)  # 5xx on every attempt
    failed = run_llm_requests(ep, requests_for(txts[:8]), tmp_cache, progress=False, summary=summary)
    server.configure(error_rate=0.0, disconnect_rate=1.0)  # the connection dropped on every attempt
    dropped = run_llm_requests(ep, requests_for(txts[8:12]), tmp_cache, progress=False)
    assert all(r.error.startswith("transport: HTTP 5") for r in failed)
    assert all(r.error.startswith("transport: ") for r in dropped)
    assert summary["retryable"] == 8 and summary["retryable_by_reason"] == {"transport": 8}
    assert len(ReplyCache(tmp_cache)) == 0
    server.configure(disconnect_rate=0.0)
    summary = {}
    results = run_llm_requests(ep, requests_for(txts), tmp_cache, progress=False, summary=summary)
    assert scores(results) == [reference_fluency(t) for t in txts]
    assert (summary["cached"], summary["sent"], summary["retryable"]) == (0, 24, 0)
    ok_per_key = server.stats()["ok_per_key"]
    assert len(ok_per_key) == 24 and set(ok_per_key.values()) == {1}
    run_llm_requests(ep, requests_for(txts), tmp_cache, progress=False, summary=summary)
    assert summary["cached"] == 24 and server.stats()["ok"] == 24


def test_retry_after_of_a_503_is_honoured(llm_server, tmp_cache):
    server = llm_server("--error-first", "1", "--error-statuses", "503", "--retry-after-s", "1.5")
    n = 6
    ep = endpoint_for(server, backoff_base_s=0.01, backoff_max_s=0.05)  # alone, backoff would wait <= 50 ms
    results = run_llm_requests(ep, requests_for(texts(n)), tmp_cache, progress=False)
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    by_key: dict[str, list] = {}
    for e in server.log():
        by_key.setdefault(e["key"], []).append(e)
    assert len(by_key) == n
    for entries in by_key.values():
        assert [e["status"] for e in entries] == ["503", "200"]
        assert entries[1]["t"] - entries[0]["t"] >= 1.5


def test_json_schema_unsupported_falls_back_to_json_mode(llm_server, tmp_cache):
    server = llm_server("--no-json-schema")
    n = 12
    summary: dict = {}
    results = run_llm_requests(endpoint_for(server, max_concurrency=4), requests_for(texts(n)), tmp_cache,
                               progress=False, summary=summary)
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    assert 1 <= server.stats()["by_status"]["400"] <= 4 and summary["failed"] == 0


def test_wrong_key_stops_the_job_fast_without_leaking_it(llm_server, tmp_cache, monkeypatch):
    server = llm_server()
    wrong = "sk-wrong-secret-value-0042"
    monkeypatch.setenv(KEY_ENV, wrong)
    t0 = time.monotonic()
    with pytest.raises(EndpointFatalError) as err:
        run_llm_requests(endpoint_for(server), requests_for(texts(200)), tmp_cache, progress=False)
    assert time.monotonic() - t0 < 20  # worker start included; no per-row failing
    message = str(err.value)
    assert "endpoint 'judge'" in message and KEY_ENV in message and "401" in message
    assert wrong not in message and "sk-wrong" not in message
    assert server.stats()["requests"] == 0  # the key check on /models caught it before any paid call


def test_unknown_model_stops_the_job_after_at_most_one_round(llm_server, tmp_cache):
    server = llm_server()
    with pytest.raises(EndpointFatalError, match="unknown model 'gpt-nope'") as err:
        run_llm_requests(endpoint_for(server, model="gpt-nope", max_concurrency=4), requests_for(texts(200)),
                         tmp_cache, progress=False)
    assert "404" in str(err.value)
    assert server.stats()["by_status"].keys() == {"404"}
    assert server.stats()["requests"] <= 4
    assert len(ReplyCache(tmp_cache)) == 0


def test_max_cost_refuses_to_start_when_the_projection_is_over(llm_server, tmp_cache):
    server = llm_server()
    ep = endpoint_for(server)
    reqs = requests_for(texts(20))
    one = CostModel(ep).cost(reqs[0])
    with pytest.raises(BudgetExceededError, match="nothing was sent"):
        run_llm_requests(ep, reqs, tmp_cache, progress=False, max_cost=one * 10)
    assert server.stats()["requests"] == 0


def test_max_cost_stops_cleanly_mid_run_and_a_rerun_finishes(llm_server, tmp_cache):
    # Every reply needs one re-ask, which the projection (one call per request) does not foresee.
    server = llm_server("--malformed-first", "1")
    ep = endpoint_for(server, max_concurrency=4)
    n = 40
    reqs = requests_for(texts(n))
    model = CostModel(ep)
    projected = sum(model.cost(r) for r in reqs)
    budget = projected * 1.05
    with LLMEngine(ep, tmp_cache, progress=False, max_cost=budget) as engine:
        with pytest.raises(BudgetExceededError, match="stopped before exceeding") as err:
            engine.run(reqs)
    summary = err.value.summary
    partial = err.value.results
    assert summary["stopped"] == "max_cost" and summary["spend"] <= budget
    assert 0 < summary["sent"] < n
    assert sum(r.ok for r in partial) == summary["sent"]
    assert all(r.error.startswith("not_run") for r in partial if not r.ok)
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        results = engine.run(reqs)
    assert scores(results) == [reference_fluency(t) for t in texts(n)]
    assert server.stats()["ok"] == 2 * n  # nothing was paid twice


def test_dry_run_projects_from_a_sample(llm_server, tmp_cache):
    server = llm_server()
    ep = endpoint_for(server, rpm=600)
    reqs = requests_for(texts(30))
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        plain = engine.dry_run(reqs)
        assert server.stats()["requests"] == 0
        assert (plain.to_send, plain.cached, plain.basis) == (30, 0, "estimate")
        assert plain.minutes_at_limit == pytest.approx(30 / 600)
        sampled = engine.dry_run(reqs, sample=5)
        assert server.stats()["ok"] == 5
        assert (sampled.to_send, sampled.cached) == (25, 5) and sampled.basis.startswith("sample of 5")
        before = server.stats()["tokens"]
        engine.run(reqs)
        actual = server.stats()["tokens"] - before
    projected = sampled.input_tokens + sampled.output_tokens
    assert abs(projected - actual) / actual < 0.1
    assert sampled.cost == pytest.approx(ep.price_per_1k.cost(sampled.input_tokens, sampled.output_tokens))


def test_resume_after_sigkill_of_the_driver_pays_again_only_for_in_flight(llm_server, tmp_cache, tmp_path,
                                                                         ray_session):
    server = llm_server("--latency-ms", "50", "150")
    n, concurrency = 120, 4
    in_flight_bound = 2 * concurrency  # dispatched and not yet returned: one running batch + one queued
    driver = Path(__file__).with_name("resume_driver.py")
    out = tmp_path / "out.json"
    cmd = [sys.executable, str(driver), "--address", ray_session.get_runtime_context().gcs_address,
           "--base-url", server.base_url, "--key-env", KEY_ENV, "--cache", tmp_cache, "--out", str(out),
           "--n", str(n), "--concurrency", str(concurrency)]
    env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(cmd, env=env)
    try:
        deadline = time.monotonic() + 120
        while server.stats()["ok"] < 40:  # kill it mid-run, with a third of the work done
            assert first.poll() is None and time.monotonic() < deadline, "driver ended before the kill"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
    assert ReplyCache(tmp_cache).__len__() >= 40 - in_flight_bound
    subprocess.run(cmd, env=env, check=True, timeout=180)
    done = json.loads(out.read_text())
    expected = [reference_fluency(t) for t in resume_texts(n)]
    assert [v["score"] for v in done["values"]] == expected and done["errors"] == [None] * n
    ok_per_key = server.stats()["ok_per_key"]
    assert len(ok_per_key) == n
    assert sum(c - 1 for c in ok_per_key.values()) <= in_flight_bound
    assert done["summary"]["cached"] >= 40 - in_flight_bound
