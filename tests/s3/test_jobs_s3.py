"""Whole jobs reading from and writing to s3:// through the loopback server: the same results as on local disk,
`profile-dist run` in a fresh process, and a store failing mid-run followed by a rerun that skips finished shards."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from profile_dist import schema, storage
from profile_dist.workflows.demo import write_demo_corpus
from profile_dist.report import build_report
from profile_dist.stages.annotate import annotate
from profile_dist.stages.ingest import ingest
from profile_dist.stages.reduce import reduce

REPO = Path(__file__).resolve().parents[2]
ROWS_PER_SHARD = 60  # several shards from the small demo corpus


def _pipeline(root: str) -> str:
    corpus = write_demo_corpus(storage.join(root, "corpus", "demo_pairs.jsonl"))
    pairs = storage.join(root, "ingest", "demo")
    annotations = storage.join(root, "annotations", "demo")
    results = storage.join(root, "results")
    ingest("pairs", [corpus], pairs, rows_per_shard=ROWS_PER_SHARD, progress=False)
    annotate(pairs, annotations, progress=False)
    reduce([pairs], [annotations], results, n_bootstrap=50, progress=False, alignment_factors="all")  # rule factors: all
    build_report(results)
    return results


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def test_stages_on_s3_give_the_same_results_as_on_local_disk(ray_session, bucket, tmp_path):
    on_s3 = _pipeline(f"{bucket}/job")
    local = _pipeline(str(tmp_path / "job"))
    for name, table_schema in (("influence", schema.INFLUENCE), ("alignment", schema.ALIGNMENT), ("replicates", schema.REPLICATES)):
        remote_table = storage.read_parquet(storage.join(on_s3, f"{name}.parquet"), table_schema)
        local_table = storage.read_parquet(storage.join(local, f"{name}.parquet"), table_schema)
        assert remote_table.num_rows > 0 and remote_table.equals(local_table), name
    assert storage.read_json(storage.join(on_s3, "results.json"))["influence"] == storage.read_json(storage.join(local, "results.json"))["influence"]
    assert "## Task: helpful" in storage.read_bytes(storage.join(on_s3, "report.md")).decode()
    # Nothing temporary or staged is left behind in the bucket.
    leftovers = [u for u in storage.list_tree(f"{bucket}/job") if "/.staging-" in u or "/.tmp-" in u]
    assert leftovers == []


def test_profile_dist_run_reads_its_job_file_and_corpus_from_s3_in_a_fresh_process(bucket, s3):
    corpus = write_demo_corpus(f"{bucket}/corpora/demo_pairs.jsonl")
    job = {
        "output": f"{bucket}/runs/quickstart", "rows_per_shard": 200,  # two shards: few worker start-ups
        "ingest": [{"name": "demo", "format": "pairs", "input": [corpus]}],
        "reduce": {"bootstrap": 20, "seed": 0},
    }
    storage.write_bytes_atomic(yaml.safe_dump(job).encode(), f"{bucket}/jobs/quickstart.yaml")
    # Only the flag says where the store is: the process and its Ray workers must get it from there.
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "RAY_ADDRESS")}
    result = subprocess.run(
        [sys.executable, "-m", "profile_dist.cli", "run", f"{bucket}/jobs/quickstart.yaml", "--s3-endpoint-url", s3.endpoint],
        capture_output=True, text=True, env=env, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"done: open {bucket}/runs/quickstart/results/report.md" in result.stdout
    influence = storage.read_parquet(f"{bucket}/runs/quickstart/results/influence.parquet", schema.INFLUENCE)
    assert set(influence.column("labeler").to_pylist()) == {"human", "demo-judge"}
    # Ray workers wrote the annotation shards: they reached the store through the runtime_env endpoint.
    assert len(storage.list_files(f"{bucket}/runs/quickstart/annotations/demo")) > 1


def test_a_store_failure_mid_annotate_then_a_rerun_redoes_only_unfinished_shards(ray_session, s3, bucket, tmp_path):
    corpus = write_demo_corpus(f"{bucket}/corpus/demo_pairs.jsonl")
    pairs, annotations = f"{bucket}/ingest/demo", f"{bucket}/annotations/demo"
    ingest("pairs", [corpus], pairs, rows_per_shard=ROWS_PER_SHARD, progress=False)
    n_shards = len(storage.list_files(f"{pairs}/responses"))
    assert n_shards >= 5

    # The store starts failing every shard write after the first three.
    s3.set_faults({"method": "PUT", "path": r"/annotations/demo/part-", "after": 3})
    with pytest.raises(storage.StorageError, match=rf"^{bucket}/annotations/demo/part-\d+\.parquet: the store is unavailable"):
        annotate(pairs, annotations, progress=False)
    finished = storage.list_files(f"{annotations}/_manifests", suffix=".json")
    assert 1 <= len(finished) <= 3

    s3.clear_faults()
    s3.reset_requests()
    summary = annotate(pairs, annotations, progress=False)
    assert summary.shards_skipped == len(finished)
    assert summary.shards_done == n_shards - len(finished)
    rewritten = [r for r in s3.requests() if r["method"] == "PUT" and "/annotations/demo/part-" in r["path"]]
    assert len(rewritten) == summary.shards_done  # finished shards were not written again

    # The resumed annotations equal an uninterrupted run's.
    reference = str(tmp_path / "annotations")
    annotate(pairs, reference, progress=False)
    for shard in storage.list_files(annotations):
        got = storage.read_parquet(shard, schema.ANNOTATIONS)
        want = storage.read_parquet(os.path.join(reference, storage.basename(shard)), schema.ANNOTATIONS)
        assert _sorted(got, ["response_id", "factor"]).equals(_sorted(want, ["response_id", "factor"]))


def test_the_example_s3_job_file_is_a_valid_job_reading_and_writing_s3():
    from profile_dist.workflows.job import load_job

    job = load_job(str(REPO / "jobs" / "s3_corpora.yaml"))
    assert job.output.startswith("s3://") and all(p.startswith("s3://") for c in job.corpora for p in c.input)


def test_the_reduce_reads_each_annotation_file_a_fixed_number_of_times_whatever_the_shard_count(ray_session, s3, bucket):
    """The factor join is co-partitioned: annotation files are read by their own tasks, not once per pairs
    shard (the old O(shards^2) filter). Counted at the store: GET requests per annotation object."""
    corpus = write_demo_corpus(f"{bucket}/corpus/demo_pairs.jsonl")
    reads = {}
    for rows_per_shard in (200, 40):
        root = f"{bucket}/join-{rows_per_shard}"
        ingest("pairs", [corpus], f"{root}/pairs", rows_per_shard=rows_per_shard, progress=False)
        annotate(f"{root}/pairs", f"{root}/ann", factors=["length", "bold"], progress=False)
        s3.reset_requests()
        reduce([f"{root}/pairs"], [f"{root}/ann"], f"{root}/results", n_bootstrap=10, progress=False)
        annotation_files = storage.list_files(f"{root}/ann")
        prefix = "/" + f"{root}/ann/".removeprefix("s3://")
        gets = [r["path"] for r in s3.requests() if r["method"] == "GET" and r["path"].startswith(prefix)]
        per_file = {f: sum(1 for p in gets if p == "/" + f.removeprefix("s3://")) for f in annotation_files}
        reads[rows_per_shard] = (len(storage.list_files(f"{root}/pairs/pairs")), max(per_file.values()))
    (few_shards, few_reads), (many_shards, many_reads) = reads[200], reads[40]
    assert many_shards >= 3 * few_shards, reads
    assert many_reads == few_reads, reads  # the same per-file reads with 3x+ the shards


def _put_with_wrong_checksum(s3, uri: str, body: bytes, checksum_of: bytes) -> None:
    """What a store that does not check checksums keeps of a PUT cut off mid-body: an object whose bytes
    do not match the checksum stored with it."""
    bucket, key = storage.split_s3(uri)
    crc = base64.b64encode(zlib.crc32(checksum_of).to_bytes(4, "big")).decode()
    s3.client().put_object(Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="CRC32", ChecksumCRC32=crc)


def test_an_object_whose_bytes_fail_its_checksum_is_a_corrupt_object_error_naming_it(s3, bucket):
    uri = f"{bucket}/x/manifest.json"
    _put_with_wrong_checksum(s3, uri, b"", b'{"stage": "annotate"}')
    with pytest.raises(storage.CorruptObjectError, match=rf"^{uri}: its bytes do not match the checksum"):
        storage.read_json(uri)


def test_a_shard_manifest_cut_off_mid_write_makes_the_rerun_redo_that_shard(ray_session, s3, bucket):
    """The store outage test's case, made deterministic: the manifest of one finished shard is an empty
    object with the full manifest's checksum (moto keeps such a PUT). The rerun redoes that shard only."""
    corpus = write_demo_corpus(f"{bucket}/corpus/demo_pairs.jsonl")
    pairs, annotations = f"{bucket}/ingest/demo", f"{bucket}/annotations/demo"
    ingest("pairs", [corpus], pairs, rows_per_shard=ROWS_PER_SHARD, progress=False)
    first = annotate(pairs, annotations, progress=False)
    manifests = sorted(storage.list_files(f"{annotations}/_manifests", suffix=".json"))
    assert first.shards_done == len(manifests) >= 2
    original = storage.read_bytes(manifests[0])
    _put_with_wrong_checksum(s3, manifests[0], b"", original)

    s3.reset_requests()
    rerun = annotate(pairs, annotations, progress=False)
    assert (rerun.shards_done, rerun.shards_skipped) == (1, len(manifests) - 1)
    assert storage.read_bytes(manifests[0]) == original  # rewritten whole
    rewritten = [r["path"] for r in s3.requests() if r["method"] == "PUT" and "/annotations/demo/" in r["path"]
                 and "/part-" in r["path"]]  # not the run's claim
    stem = storage.basename(manifests[0]).removesuffix(".json")
    assert rewritten and all(stem in path for path in rewritten)  # that shard's data and manifest, nothing else
