"""Secrets: a recognisable LLM API key and AWS access key/secret are planted, a whole job runs on S3 with
LLM factors (`profile-dist run` in a fresh process with its own Ray), and then a run with a wrong key fails;
nothing written may contain them: outputs and manifests on S3, the local LLM reply cache, the report,
stdout/stderr of both runs (error messages included) and every file of the child's Ray session (logs, job
metadata). The key's env var *name* may appear; its value never."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml

from faults_helpers import KEY, KEY_ENV, endpoints_file, run_cli, cli_env
from profile_dist.workflows.demo import demo_rows
from profile_dist.testing.llm_server import ServerProcess
from profile_dist.testing.s3_server import S3TestServer

AWS_KEY_ID = "AKIAPLANTEDFAULTS0001"
AWS_SECRET = "PLANTEDawsSECRET/7f3a9c1e5b2d4068+9e8d7c6b5a"
WRONG_KEY = "sk-PLANTED-wrong-0f1e2d3c4b5a6978"
BUCKET = "secrets"


def leaks_in_files(root: Path, needles: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                blob = path.read_bytes()
            except OSError:
                continue  # sockets and the like
            found += [f"{path}: {n.decode()}" for n in needles if n in blob]
    return found


@pytest.mark.usefixtures("ray_session")
def test_planted_api_key_appears_nowhere_in_annotate_llm_outputs_cache_or_errors(tmp_path, monkeypatch, capsys):
    """The quick case (CI): annotate --llm in process, then with a wrong key that the provider echoes."""
    from profile_dist.cli import main

    needles = [KEY.encode(), WRONG_KEY.encode()]
    records = demo_rows()[:60]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["ingest", "--format", "pairs", "--input", str(tmp_path / "c.jsonl"), "--output",
                 str(tmp_path / "pairs")]) == 0
    with ServerProcess(["--api-key", KEY]) as llm:
        endpoints = endpoints_file(tmp_path / "endpoints.yaml", llm.base_url, concurrency=16)
        monkeypatch.setenv(KEY_ENV, KEY)
        assert main(["annotate", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "ann"),
                     "--factors", "length", "fluency", "--llm", "judge", "--endpoints", endpoints]) == 0
        assert llm.stats()["ok"] > 0
        monkeypatch.setenv(KEY_ENV, WRONG_KEY)
        assert main(["annotate", "--pairs", str(tmp_path / "pairs"), "--output", str(tmp_path / "ann2"),
                     "--factors", "fluency", "--llm", "judge", "--endpoints", endpoints]) == 2
        assert main(["reduce", "--pairs", str(tmp_path / "pairs"), "--annotations", str(tmp_path / "ann"),
                     "--output", str(tmp_path / "res"), "--bootstrap", "5"]) == 0
    streams = capsys.readouterr()
    assert "judge" in streams.err and any((tmp_path / "ann" / "_llm_cache").rglob("*"))
    leaks = leaks_in_files(tmp_path, needles)
    leaks += [n.decode() for n in needles if n.decode() in streams.out + streams.err]
    assert leaks == []


@pytest.mark.slow
def test_planted_keys_appear_nowhere_in_what_a_job_writes(tmp_path):
    needles = [KEY.encode(), AWS_SECRET.encode(), WRONG_KEY.encode()]
    ray_tmp = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths live under it
    s3 = S3TestServer()
    s3.access_key, s3.secret_key = AWS_KEY_ID, AWS_SECRET
    s3.start()
    try:
        with ServerProcess(["--api-key", KEY]) as llm:
            s3.create_bucket(BUCKET)
            s3.client().put_object(Bucket=BUCKET, Key="corpus/demo.jsonl",
                                   Body="".join(json.dumps(r) + "\n" for r in demo_rows()[:120]).encode())
            endpoints = endpoints_file(tmp_path / "endpoints.yaml", llm.base_url, concurrency=16)
            cache = tmp_path / "llm-cache"
            job = {"output": f"s3://{BUCKET}/run", "rows_per_shard": 60, "endpoints": endpoints,
                   "llm_cache": str(cache), "annotate": {"factors": ["length", "fluency"], "llm": "judge"},
                   "ingest": [{"name": "demo", "format": "pairs", "input": [f"s3://{BUCKET}/corpus/demo.jsonl"]}],
                   "reduce": {"bootstrap": 20, "seed": 0}}
            (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
            env = cli_env(AWS_ACCESS_KEY_ID=AWS_KEY_ID, AWS_SECRET_ACCESS_KEY=AWS_SECRET, RAY_TMPDIR=str(ray_tmp),
                          AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
            for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
                env.pop(name, None)
            done = run_cli("run", str(tmp_path / "job.yaml"), "--s3-endpoint-url", s3.endpoint, env=env, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
            assert llm.stats()["ok"] > 0  # the key was used
            # The same job with a wrong key: the provider echoes the presented key in its 401 body.
            failed = run_cli("annotate", "--pairs", f"s3://{BUCKET}/run/ingest/demo", "--output",
                             str(tmp_path / "ann-wrong"), "--factors", "fluency", "--llm", "judge",
                             "--endpoints", endpoints, "--s3-endpoint-url", s3.endpoint,
                             env={**env, KEY_ENV: WRONG_KEY}, timeout=600)
            assert failed.returncode == 2 and "judge" in failed.stderr
        objects = s3.client().list_objects_v2(Bucket=BUCKET)["Contents"]
        keys = [o["Key"] for o in objects]
        assert any(k.endswith("results/report.md") for k in keys) and any("/annotations/" in k for k in keys)
        leaks = [f"s3://{BUCKET}/{k}" for k in keys for n in needles
                 if n in s3.client().get_object(Bucket=BUCKET, Key=k)["Body"].read()]
        for name, text in (("run stdout", done.stdout), ("run stderr", done.stderr),
                           ("wrong-key stdout", failed.stdout), ("wrong-key stderr", failed.stderr)):
            leaks += [f"{name}: {n.decode()}" for n in needles if n.decode() in text]
        assert list(cache.rglob("*")), "the reply cache is empty: nothing was checked there"
        leaks += leaks_in_files(tmp_path, needles)
        ray_files = [p for p in ray_tmp.rglob("*") if p.is_file()]
        assert any("logs" in p.parts for p in ray_files), "no Ray logs were written: nothing was checked there"
        leaks += leaks_in_files(ray_tmp, needles)
        assert leaks == []
        print(f"\nsecrets: searched {len(keys)} S3 objects, {sum(1 for p in tmp_path.rglob('*') if p.is_file())} "
              f"local files, {len(ray_files)} Ray session files and 4 captured streams: no planted key found")
    finally:
        s3.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
