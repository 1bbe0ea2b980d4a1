"""The demo's parts: its simulated writer, its server's lifetime, and a report that marks only what is simulated."""

from __future__ import annotations

import socket
import urllib.parse

import pytest
import yaml

from profile_dist.testing.sim_demo import OVERCLAIM, PADDING, topic_of, written
from profile_dist.workflows.demo import demo_rows, run_demo


def test_the_demo_writer_elaborates_more_at_each_level():
    prompt = "How do I sleep better?"
    texts = [written(prompt, level, 5) for level in range(1, 6)]
    words = [len(t.split()) for t in texts]
    assert words == sorted(words) and len(set(words)) == 5
    for level, text in enumerate(texts, 1):
        lines = text.splitlines()
        assert ("To sleep better, start small and repeat it daily." in text)  # on topic at every level
        assert sum(text.count(p) for p in PADDING) == level  # one padding sentence per level
        assert (sum(1 for line in lines if line.startswith("- ")) == level) == (level >= 3)
        assert ("**Short version:**" in text) == (level >= 4) == text.endswith(OVERCLAIM)
        assert (lines[0] == "## Guide") == (level == 5)
    assert written(prompt, 3, 5) == written(prompt, 3, 5)  # deterministic: a cached run and a fresh one agree
    assert topic_of("What is the best way to water succulents?") == "water succulents"
    assert topic_of("Human: hi\n\nAssistant: hello\n\nHuman: Can you help me fix my bike chain?") == "can you help me fix my bike chain"


def test_the_demo_corpus_without_its_judge_keeps_the_same_human_labels():
    both, human = demo_rows(), demo_rows(with_judge=False)
    assert {r["labeler"] for r in human} == {"human"}
    assert human == [r for r in both if r["labeler"] == "human"]


def test_the_server_is_stopped_when_the_demo_fails(tmp_path):
    """An error inside the run (here: printing the line that names the running server raises) still stops it."""
    said = []

    def failing_say(line: str) -> None:
        said.append(line)
        if line.startswith("SIMULATED"):
            raise RuntimeError("the terminal went away")

    with pytest.raises(RuntimeError, match="the terminal went away"):
        run_demo(str(tmp_path / "demo"), bootstrap=0, say=failing_say, progress=False)
    base_url = yaml.safe_load((tmp_path / "demo" / "simulated_endpoints.yaml").read_text())["endpoints"]["sim-model"]["base_url"]
    assert base_url in said[-1]  # the server was up when the run failed
    port = urllib.parse.urlsplit(base_url).port
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
