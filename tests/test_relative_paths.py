"""Relative local paths mean the driver's working directory, wherever the Ray workers run.

A Ray worker's working directory is where its cluster was started (here: where the session's Ray started,
before the test moves the driver to another directory), so a relative path handed to a task as given is
read and written there: ingest read the wrong input (or none) and left its ``.staging-*`` area, with the
rows, beside the cluster, and annotate and reduce read and wrote shards there too.
"""

from __future__ import annotations

import os
from pathlib import Path

from profile_dist import storage
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.workflows.demo import write_demo_corpus


def test_ingest_annotate_reduce_resolve_relative_paths_against_the_drivers_directory(ray_session, tmp_path, monkeypatch):
    workers_dir = Path(ray_session.get(ray_session.remote(lambda: os.getcwd()).remote()))
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    assert workers_dir != driver_dir
    before = set(workers_dir.iterdir())
    monkeypatch.chdir(driver_dir)
    write_demo_corpus("demo_pairs.jsonl")

    summary = ingest("pairs", ["demo_pairs.jsonl"], "out/pairs", rows_per_shard=100, progress=False)
    annotate("out/pairs", "out/annotations", factors=["length"], progress=False)
    reduce(["out/pairs"], ["out/annotations"], "out/results", n_bootstrap=0, progress=False)

    assert summary.n_pairs > 0
    assert storage.list_files(str(driver_dir / "out" / "annotations"), recursive=True)
    assert (driver_dir / "out" / "results" / "influence.parquet").exists()
    assert not list((driver_dir / "out" / "pairs").glob(".staging-*"))
    assert set(workers_dir.iterdir()) == before  # nothing landed beside the workers


def test_a_relative_reply_cache_is_the_drivers_so_a_rerun_pays_nothing(ray_session, tmp_path, monkeypatch):
    """The LLM workers write the reply cache; judge and generate read their inputs on the driver but share it."""
    from profile_dist.testing.llm_server import ServerProcess

    workers_dir = Path(ray_session.get(ray_session.remote(lambda: os.getcwd()).remote()))
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    before = set(workers_dir.iterdir())
    monkeypatch.chdir(driver_dir)
    monkeypatch.setenv("PROFILE_TEST_REL_KEY", "sk-relative-0123456789")
    ingest("pairs", [write_demo_corpus("demo_pairs.jsonl")], "pairs", rows_per_shard=120, progress=False)
    with ServerProcess(["--api-key", "sk-relative-0123456789", "--rpm", "6000"]) as server:
        Path("endpoints.yaml").write_text(f"endpoints:\n  judge:\n    base_url: {server.base_url}\n    model: test-judge\n"
                                          "    api_key_env: PROFILE_TEST_REL_KEY\n    max_concurrency: 8\n")
        first = annotate("pairs", "ann1", factors=["fluency"], llm="judge", endpoints="endpoints.yaml",
                         cache_dir="cache", progress=False)
        answered = server.stats()["ok"]
        again = annotate("pairs", "ann2", factors=["fluency"], llm="judge", endpoints="endpoints.yaml",
                         cache_dir="cache", progress=False)
        answered_again = server.stats()["ok"]
    assert first.llm["sent"] == answered > 0
    assert again.llm["sent"] == 0 and answered_again == answered
    assert list((driver_dir / "cache").glob("seg-*"))
    assert set(workers_dir.iterdir()) == before  # no cache beside the workers
