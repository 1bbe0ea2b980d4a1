"""The S3 store goes away mid-run (connections refused and cut, not a patched call): `profile-dist run` on
s3:// stops with a clear error naming the object it could not write and exit code 2 (no traceback); once
the store is back, the same command completes and its results equal an uninterrupted run's."""

from __future__ import annotations

import io
import tempfile
from urllib.parse import urlparse

import botocore.exceptions
import polars as pl
import pytest
import yaml

from faults_helpers import Child, Forwarder, cli, cli_env, run_cli
from profile_dist.workflows.demo import demo_rows
from profile_dist.testing.s3_server import ACCESS_KEY, SECRET_KEY, S3TestServer

BUCKET = "outage"


@pytest.fixture
def store():
    server = S3TestServer().start()
    try:
        parsed = urlparse(server.endpoint)
        forwarder = Forwarder((parsed.hostname, parsed.port)).start()
        yield server, forwarder
        forwarder.stop()
    finally:
        server.stop()


def s3_env(**extra: str) -> dict[str, str]:
    env = cli_env(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_DEFAULT_REGION="us-east-1",
                  AWS_EC2_METADATA_DISABLED="true", AWS_MAX_ATTEMPTS="2", **extra)
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        env.pop(name, None)  # only the flag says where the store is
    return env


def put_object(server: S3TestServer, key: str, body: bytes) -> None:
    server.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def _readable(server: S3TestServer, key: str) -> bool:
    try:
        server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return True
    except botocore.exceptions.FlexibleChecksumError:
        return False


def test_store_stopped_mid_annotate_is_a_clear_error_and_the_rerun_completes(store, ray_session, tmp_path):
    """The quick case (CI): stages as separate CLI processes on the session's Ray."""
    server, forwarder = store
    server.create_bucket(BUCKET)
    import json

    put_object(server, "corpus/demo.jsonl", "".join(json.dumps(r) + "\n" for r in demo_rows()).encode())
    address = ray_session.get_runtime_context().gcs_address
    flags = ["--address", address, "--s3-endpoint-url", forwarder.endpoint]
    pairs, annotations = f"s3://{BUCKET}/pairs", f"s3://{BUCKET}/ann"
    env = s3_env()
    done = run_cli("ingest", *flags, "--format", "pairs", "--input", f"s3://{BUCKET}/corpus/demo.jsonl",
                   "--output", pairs, "--rows-per-shard", "40", env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    def annotating() -> bool:
        return any(r["method"] == "PUT" and "/ann/part-" in r["path"] for r in server.requests())

    first = Child(cli("annotate", *flags, "--pairs", pairs, "--output", annotations), env)
    import time

    deadline = time.monotonic() + 240
    while not annotating():
        assert first.proc.poll() is None, first.text()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    forwarder.stop()
    code = first.wait(timeout=300)
    text = first.text()
    assert code == 2 and "Traceback" not in text, text[-3000:]
    error = [line for line in text.splitlines() if "error:" in line][-1]
    assert f"s3://{BUCKET}/" in error and "cannot reach the S3 endpoint" in error, error
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix="ann/_manifests/").get("Contents", [])
    n_responses_shards = len(server.client().list_objects_v2(Bucket=BUCKET, Prefix="pairs/responses/")["Contents"])
    assert len(listed) < n_responses_shards  # it stopped mid-run
    # A manifest PUT cut off mid-body is kept by moto as an object whose bytes fail its checksum (S3 would
    # refuse it): such a shard is not done, and the rerun redoes it.
    intact = sum(_readable(server, item["Key"]) for item in listed)

    forwarder.start()
    rerun = run_cli("annotate", *flags, "--pairs", pairs, "--output", annotations, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{intact} shard(s) already done" in rerun.stdout
    manifests = server.client().list_objects_v2(Bucket=BUCKET, Prefix="ann/_manifests/")["Contents"]
    assert len(manifests) == n_responses_shards


@pytest.mark.slow
def test_store_stopped_mid_run_is_a_clear_error_and_the_rerun_completes(store):
    """The whole job (`profile-dist run`, its own Ray) on s3://."""
    server, forwarder = store
    server.create_bucket(BUCKET)
    import json

    put_object(server, "corpus/demo.jsonl", "".join(json.dumps(r) + "\n" for r in demo_rows()).encode())
    job = {"output": f"s3://{BUCKET}/run", "rows_per_shard": 60,
           "ingest": [{"name": "demo", "format": "pairs", "input": [f"s3://{BUCKET}/corpus/demo.jsonl"]}],
           "reduce": {"bootstrap": 20, "seed": 0}}
    put_object(server, "job.yaml", yaml.safe_dump(job).encode())
    args = ["run", f"s3://{BUCKET}/job.yaml", "--s3-endpoint-url", forwarder.endpoint]
    ray_tmp = tempfile.mkdtemp(prefix="rf", dir="/tmp")  # the child's own Ray, its files out of the way
    env = s3_env(RAY_TMPDIR=ray_tmp)

    def annotating() -> bool:
        return any(r["method"] == "PUT" and "/run/annotations/" in r["path"] for r in server.requests())

    first = Child(cli(*args), env)
    import shutil
    import time

    try:

        deadline = time.monotonic() + 240
        while not annotating():
            assert first.proc.poll() is None, first.text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        forwarder.stop()  # the store is gone: refused connections, open ones cut
        code = first.wait(timeout=300)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    try:
        _check_failed_then_rerun(server, forwarder, first, code, args, env)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _check_failed_then_rerun(server, forwarder, first, code, args, env) -> None:
    text = first.text()
    assert code == 2, text[-3000:]
    assert "Traceback" not in text
    error = [line for line in text.splitlines() if "error:" in line]
    assert error and f"s3://{BUCKET}/run/" in error[-1], text[-3000:]
    assert "unavailable" in error[-1] or "could not" in error[-1] or "reach" in error[-1], error[-1]
    keys = {o["Key"] for o in server.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])}
    assert "run/results/influence.parquet" not in keys

    forwarder.start()  # back on the same endpoint
    rerun = run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    body = server.client().get_object(Bucket=BUCKET, Key="run/results/influence.parquet")["Body"].read()
    influence = pl.read_parquet(io.BytesIO(body))
    assert influence.height > 0 and set(influence["labeler"]) == {"human", "demo-judge"}
    print(f"\nstore outage: first run error: {error[-1][:300]}")
