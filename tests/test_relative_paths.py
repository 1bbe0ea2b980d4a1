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
