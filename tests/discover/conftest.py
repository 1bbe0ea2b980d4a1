"""Fixtures for user-defined factors and discover: the loopback test server (child process, with the planted
annotator and proposer of profile_dist/testing/sim_discover.py), its endpoints file, and a planted corpus."""

from __future__ import annotations

import json

import pytest

from profile_dist.stages.ingest import ingest
from profile_dist.testing.llm_server import ServerProcess
from profile_dist.testing.sim_discover import planted_rows
from profile_dist.testing.endpoints import write_endpoints_file

KEY_ENV, KEY = "PROFILE_TEST_DISCOVER_KEY", "sk-discover-test-0123456789"


def write_rows(path, rows) -> str:
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return str(path)


def ingest_planted(tmp_path, n: int, seed: int = 0, rows_per_shard: int = 100_000):
    out = tmp_path / f"pairs-{n}-{seed}"
    ingest("pairs", [write_rows(tmp_path / f"planted-{n}-{seed}.jsonl", planted_rows(n, seed))], str(out),
           rows_per_shard=rows_per_shard, progress=False)
    return out


@pytest.fixture
def small_corpus(tmp_path, ray_session):
    return ingest_planted(tmp_path, 6, rows_per_shard=4)


@pytest.fixture
def server():
    with ServerProcess(["--api-key", KEY, "--rpm", "60000", "--no-quantize"]) as process:
        yield process


@pytest.fixture
def endpoints(tmp_path, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return write_endpoints_file(tmp_path / "endpoints.yaml", server.base_url,
                                {"annotator": "test-judge", "proposer": "test-judge"}, key_env=KEY_ENV, max_concurrency=8)
