"""Fixtures for the LLM factor tests: a loopback test server (child process), its endpoints file, and a small
ingested corpus with two tasks whose sources differ from the prompts."""

from __future__ import annotations

import json

import pytest

from profile_dist.stages.ingest import ingest
from profile_dist.testing.llm_server import ServerProcess
from profile_dist.testing.endpoints import write_endpoints_file

KEY_ENV, KEY = "PROFILE_TEST_FACTORS_KEY", "sk-factors-test-0123456789"

POST_1 = ("My landlord won't return my deposit after I moved out. The flat was spotless when I left. "
          "He says the carpet needs replacing but it was already worn when I moved in.")
POST_2 = ("The council approved a new cycling lane along the river. Construction starts in March. "
          "Local shops worry about losing parking spaces.")
QUESTION = "How do I keep basil alive indoors? Mine always wilts after a week!"

#: (task, prompt, source, response a, response b, label)
ROWS = [
    ("summarization", "Summarize the post.", POST_1,
     "Landlord keeps the deposit. He blames a worn carpet.",
     "The tenant left the flat spotless. The landlord refuses to return the deposit because of the carpet, "
     "which was already worn.", "b"),
    ("summarization", "Summarize the post.", POST_2,
     "A cycling lane along the river was approved. Shops never like change.",
     "New river cycling lane approved; construction starts in March. Shops worry about parking.", "b"),
    ("helpful", QUESTION, None,
     "Give your basil plenty of direct sunlight and water it when the top of the soil is dry. "
     "Don't let it sit in water!",
     "Basil is a herb. It always needs sun.", "a"),
    # More facts than one judgement call takes: judged in two calls.
    ("helpful", QUESTION, None,
     " ".join(f"Tip {i}: move your basil pot {i} cm closer to the window." for i in range(1, 31)),
     "Water it.", "a"),
]


def write_corpus(path) -> str:
    with open(path, "w") as fh:
        for task, prompt, source, a, b, label in ROWS:
            row = {"prompt": prompt, "response_a": a, "response_b": b, "label": label, "task": task}
            if source is not None:
                row["source"] = source
            fh.write(json.dumps(row) + "\n")
    return str(path)


@pytest.fixture
def corpus(tmp_path, ray_session):
    ingest("pairs", [write_corpus(tmp_path / "pairs.jsonl")], str(tmp_path / "pairs"), rows_per_shard=2,
           progress=False)
    return tmp_path / "pairs"


def endpoints_file(tmp_path, server: ServerProcess) -> str:
    return write_endpoints_file(tmp_path / "endpoints.yaml", server.base_url, {"judge": "test-judge"},
                                key_env=KEY_ENV, max_concurrency=8)


@pytest.fixture
def server():
    with ServerProcess(["--api-key", KEY, "--rpm", "60000", "--no-quantize"]) as process:
        yield process


@pytest.fixture
def endpoints(tmp_path, server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    return endpoints_file(tmp_path, server)
