"""`ray job submit` of the nightly audit to a head started with `ray start --head`, on loopback.

The head is this test's own: its own ports, its own --temp-dir (so a plain ``ray.init()`` elsewhere never
finds it), started with ``--block`` as a child process and stopped by signalling that process (its
processes are killed by pid, never by name: ``ray stop`` would kill every Ray on the machine, including
the session's ``ray_session`` and other users'). The test process itself never connects to Ray: it only
runs the Ray CLI, and reads the results from the loopback S3 server the job wrote them to.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from profile_dist import schema, storage
from profile_dist.workflows.audit.example import write_example
from profile_dist.testing.s3_server import S3TestServer

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.cluster


def _free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


def _pids_using(marker: str) -> list[int]:
    """Processes whose command line mentions ``marker`` (our head's unique temp dir)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    if marker.encode() in handle.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


class LocalHead:
    """A Ray head of our own, on loopback ports, with the dashboard's job API."""

    def __init__(self, env: dict[str, str]):
        self.temp_dir = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.dashboard_port = _free_port(8265)
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        ports = {
            "--port": _free_port(), "--dashboard-port": self.dashboard_port, "--ray-client-server-port": _free_port(),
            "--node-manager-port": _free_port(), "--object-manager-port": _free_port(),
            "--dashboard-agent-listen-port": _free_port(), "--dashboard-agent-grpc-port": _free_port(),
            "--runtime-env-agent-port": _free_port(), "--metrics-export-port": _free_port(),
        }
        self.command = [
            str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
            "--include-dashboard=true", f"--temp-dir={self.temp_dir}", "--num-cpus=2", "--disable-usage-stats",
            "--min-worker-port=0", "--max-worker-port=0", *(f"{flag}={port}" for flag, port in ports.items()),
        ]
        self.env = env
        self.process: subprocess.Popen | None = None
        self.log = open(os.path.join(self.temp_dir, "ray-start.log"), "wb")

    def start(self, timeout: float = 180.0) -> "LocalHead":
        self.process = subprocess.Popen(self.command, stdout=self.log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # ready when the job API answers
            if self.process.poll() is not None:
                raise RuntimeError(f"ray start exited with {self.process.returncode}: {self.tail()}")
            request = urllib.request.Request(f"{self.address}/api/jobs/", headers={"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"})
            try:
                with urllib.request.urlopen(request, timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the head's job API did not come up within {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        with open(os.path.join(self.temp_dir, "ray-start.log"), "rb") as handle:
            return handle.read()[-3000:].decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # `ray start --block` shuts its node down on exit
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)  # our process group only
            except ProcessLookupError:
                pass
        for pid in _pids_using(self.temp_dir):  # anything of this head that left the group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def test_the_nightly_audit_runs_as_a_submitted_ray_job(tmp_path, monkeypatch):
    with S3TestServer() as s3:
        for name, value in s3.env().items():
            monkeypatch.setenv(name, value)
        bucket = s3.create_bucket("nightly")
        config = write_example(f"{bucket}/example", {"2024-05-01": "aligned", "2024-05-02": "drifted"}, output=f"{bucket}/audit", bootstrap=50)

        # The job gets credentials the way a cluster would hand them out (here: the job's runtime_env);
        # the endpoint only through the script's --s3-endpoint-url, which ensure_ray forwards to workers.
        job_env = {k: v for k, v in s3.env().items() if k not in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")}
        base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_"))}
        base_env["PATH"] = f"{BIN}{os.pathsep}{base_env.get('PATH', '')}"
        # Ray's token authentication, with a token of this test's own (the head and the CLI share it).
        base_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
        head = LocalHead(base_env)
        try:
            head.start()
            audit = f"python jobs/nightly_audit.py --config {config} --s3-endpoint-url {s3.endpoint}"
            submitted = subprocess.run(
                [str(BIN / "ray"), "job", "submit", "--address", head.address, "--working-dir", ".",
                 "--runtime-env-json", json.dumps({"env_vars": job_env}), "--",
                 "sh", "-c", f"{audit} --date 2024-05-01 && {audit} --date 2024-05-02"],
                cwd=REPO, env=base_env, capture_output=True, text=True, timeout=600,
            )
        finally:
            head.stop()
        assert _pids_using(head.temp_dir) == []

        logs = submitted.stdout + submitted.stderr
        # The first night is a baseline (exit 0); the second has the planted judge drift: exit 3, so the job fails.
        assert "Audit 2024-05-01 (first audit: nothing to compare with)" in logs, logs[-4000:]
        assert "Status: alignment drop (exit 3)" in logs, logs[-4000:]
        assert submitted.returncode != 0 and "exit code 3" in logs, logs[-4000:]
        for date, status in (("2024-05-01", "baseline"), ("2024-05-02", "alignment_drop")):
            summary = storage.read_json(f"{bucket}/audit/audits/date={date}/_SUCCESS.json")
            assert summary["status"] == status
        drift = storage.read_parquet(f"{bucket}/audit/audits/date=2024-05-02/drift_alignment.parquet", schema.DRIFT_ALIGNMENT)
        assert any(r["significant"] and r["source_y"] == "nightly-judge/evaluation" for r in drift.to_pylist())
        # What a scheduler runs after `ray job submit` (whose own exit code is 1 for any failed job) to get
        # the audit's code: --status reads the published result and runs nothing.
        status = subprocess.run(
            [sys.executable, "jobs/nightly_audit.py", "--config", config, "--date", "2024-05-02", "--status"],
            cwd=REPO, env={**base_env, **s3.env()}, capture_output=True, text=True, timeout=120,
        )
        assert status.returncode == 3 and "Status: alignment drop (exit 3)" in status.stdout, status.stderr
        # Ray workers on the head wrote annotation shards to the store: they got the endpoint too.
        assert storage.list_files(f"{bucket}/audit/annotations/human", suffix=".parquet", recursive=True)
