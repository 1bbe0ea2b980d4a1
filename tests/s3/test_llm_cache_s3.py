"""The LLM reply cache on the object store: shared by runs in different processes, written in batches.

The store is the loopback moto server of this directory's conftest; the LLM is the project's test server
as a process; the runs are real drivers on the session's Ray.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from profile_dist import storage
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.llm.cache import ObjectStoreReplyCache
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.testing.llm_server import ServerProcess, reference_fluency

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "llm" / "resume_driver.py"  # annotates N texts with fluency through one engine
KEY_ENV, KEY = "PROFILE_TEST_S3_CACHE_KEY", "sk-s3-cache-0123456789"


def key(i: int) -> str:
    import hashlib

    return hashlib.sha256(str(i).encode()).hexdigest()


def test_puts_reach_the_store_as_one_segment_object_per_sync(s3, bucket):
    cache = ObjectStoreReplyCache(f"{bucket}/cache")
    for i in range(50):
        cache.put(key(i), {"value": {"score": i % 5}, "raw": "ünï"})
    assert storage.list_files(f"{bucket}/cache", ".jsonl") == []  # nothing written until the sync
    cache.sync()
    cache.put(key(50), {"value": None})
    cache.close()
    segments = storage.list_files(f"{bucket}/cache", ".jsonl")
    assert len(segments) == 2 and cache.segments_written == 2
    reader = ObjectStoreReplyCache(f"{bucket}/cache")
    assert len(reader) == 51 and reader.get(key(7)) == {"value": {"score": 2}, "raw": "ünï"}
    puts = [r for r in s3.requests() if r["method"] == "PUT" and "/cache/" in r["path"]]
    assert len(puts) == 2


def test_two_runs_in_different_processes_share_the_cache_and_the_second_pays_nothing(ray_session, bucket, tmp_path):
    with ServerProcess(["--api-key", KEY, "--latency-ms", "5", "20"]) as server:
        n = 40
        cache = f"{bucket}/shared/_llm_cache"
        env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": os.pathsep.join(sys.path)}
        outputs = []
        for run in range(2):
            out = tmp_path / f"run{run}.json"
            subprocess.run([sys.executable, str(DRIVER), "--address", ray_session.get_runtime_context().gcs_address,
                            "--base-url", server.base_url, "--key-env", KEY_ENV, "--cache", cache, "--out", str(out),
                            "--n", str(n)], env=env, check=True, timeout=300)
            outputs.append(json.loads(out.read_text()))
            if run == 0:
                assert server.stats()["ok"] == n
        assert server.stats()["requests"] == n  # the second process sent nothing
        first, second = outputs
        assert second["values"] == first["values"] and second["errors"] == [None] * n
        assert (second["summary"]["cached"], second["summary"]["sent"]) == (n, 0)
        assert len(storage.list_files(cache, ".jsonl")) == 1  # one run, one segment object


def test_annotate_llm_to_an_s3_output_keeps_its_cache_there_one_object_per_shard(ray_session, bucket, monkeypatch,
                                                                                  tmp_path):
    monkeypatch.setenv(KEY_ENV, KEY)
    corpus = write_demo_corpus(f"{bucket}/corpus/demo_pairs.jsonl")
    pairs, out = f"{bucket}/pairs", f"{bucket}/annotations"
    ingest("pairs", [corpus], pairs, rows_per_shard=120, progress=False)
    shards = storage.list_files(f"{pairs}/responses")
    with ServerProcess(["--api-key", KEY, "--rpm", "6000"]) as server:
        endpoints = str(tmp_path / "endpoints.yaml")
        storage.write_bytes_atomic((
            "endpoints:\n  judge:\n"
            f"    base_url: {server.base_url}\n    model: test-judge\n    api_key_env: {KEY_ENV}\n"
            "    rpm: 6000\n    max_concurrency: 8\n").encode(), endpoints)
        summary = annotate(pairs, out, factors=["fluency"], llm="judge", endpoints=endpoints, progress=False)
        assert summary.llm["failed"] == 0 and summary.shards_done == len(shards)
        segments = storage.list_files(f"{out}/_llm_cache", ".jsonl")
        assert 1 <= len(segments) <= len(shards)  # batched per shard, not one object per request
        lines = sum(storage.read_bytes(s).count(b"\n") for s in segments)
        assert lines == server.stats()["ok"] == summary.llm["sent"]
        values = pl.concat([pl.from_arrow(storage.read_parquet(p)) for p in storage.list_files(out)
                            if ".llm-judge." in p])
        texts = pl.concat([pl.from_arrow(storage.read_parquet(p)) for p in shards]).select("response_id", "text")
        joined = values.join(texts, on="response_id")
        assert joined["value"].to_list() == [float(reference_fluency(t)) for t in joined["text"]]
        # Another output over the same responses, same cache: nothing is paid again.
        again = annotate(pairs, f"{bucket}/annotations-2", factors=["fluency"], llm="judge", endpoints=endpoints,
                         cache_dir=f"{out}/_llm_cache", progress=False)
        assert again.llm["sent"] == 0 and server.stats()["ok"] == summary.llm["sent"]
