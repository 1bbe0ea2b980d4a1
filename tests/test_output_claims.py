"""Every stage's output has one writer: annotate, reduce, judge and generate refuse an output another live
job holds (as ingest does), and a results directory being rewritten is refused by its readers."""

from __future__ import annotations

import json
import os
import socket

import pytest

from profile_dist import storage
from profile_dist.layout import published, require_results_dir
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce
from profile_dist.workflows.demo import write_demo_corpus

pytestmark = pytest.mark.usefixtures("ray_session")


def _hold(output: str, stage: str) -> None:
    """A claim by a live process on this host (this test's own), as another job's would be."""
    holder = {"output": output, "stage": stage, "run": "other-run", "host": socket.gethostname(), "pid": os.getpid(),
              "since": "2026-11-30T00:00:00+00:00"}
    assert storage.write_bytes_exclusive(json.dumps(holder).encode(), storage.join(output, published.CLAIM))


def test_annotate_and_reduce_refuse_an_output_another_job_is_writing(tmp_path):
    pairs, ann, res = str(tmp_path / "pairs"), str(tmp_path / "ann"), str(tmp_path / "res")
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], pairs, rows_per_shard=100, progress=False)
    _hold(ann, "annotate")
    with pytest.raises(published.OutputClaimedError, match="other-run"):
        annotate(pairs, ann, factors=["length"], progress=False)
    assert storage.list_files(ann) == []  # nothing written beside the other job's claim
    storage.remove_file(storage.join(ann, published.CLAIM))
    annotate(pairs, ann, factors=["length"], progress=False)
    assert not storage.exists(storage.join(ann, published.CLAIM))  # released when done

    reduce([pairs], [ann], res, n_bootstrap=5, progress=False)
    first = storage.read_bytes(storage.join(res, "influence.parquet"))
    _hold(res, "reduce")
    with pytest.raises(published.OutputClaimedError, match="other-run"):
        reduce([pairs], [ann], res, n_bootstrap=7, progress=False)
    assert storage.read_bytes(storage.join(res, "influence.parquet")) == first  # the first output is untouched
    manifest = storage.read_json(storage.join(res, published.MANIFEST))
    assert manifest["state"] == published.COMPLETE and {e["name"] for e in manifest["files"]["results"]} >= {"influence.parquet"}


def test_a_results_directory_being_rewritten_is_refused_by_its_readers(tmp_path):
    pairs, ann, res = str(tmp_path / "pairs"), str(tmp_path / "ann"), str(tmp_path / "res")
    ingest("pairs", [write_demo_corpus(str(tmp_path / "demo.jsonl"))], pairs, rows_per_shard=100, progress=False)
    annotate(pairs, ann, factors=["length"], progress=False)
    reduce([pairs], [ann], res, n_bootstrap=5, progress=False)
    require_results_dir(res)
    with published.claimed(res, "reduce") as claim:  # a rewrite that has withdrawn the manifest, mid-way
        published.withdraw(res, claim)
        with pytest.raises(published.IncompleteOutputError, match="is incomplete"):
            require_results_dir(res)

