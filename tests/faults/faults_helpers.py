"""Helpers of the fault suite: the real CLI as a child process, kill-when-condition, endpoint files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import polars as pl

from profile_dist.testing.endpoints import write_endpoints_file

REPO = Path(__file__).resolve().parents[2]
# Recognisable on purpose: the secrets test searches everything written for these.
KEY_ENV, KEY = "PROFILE_TEST_FAULTS_KEY", "sk-PLANTED-faults-7f3a9c1e5b2d4068"


def endpoints_file(path: Path, base_url: str, *, concurrency: int = 4, timeout_s: float | None = None,
                   max_attempts: int | None = None, workers: int = 1, name: str = "judge",
                   model: str = "test-judge", key_env: str = KEY_ENV) -> str:
    return write_endpoints_file(path, base_url, {name: model}, key_env=key_env, max_concurrency=concurrency,
                                workers=workers, backoff_base_s=0.05, backoff_max_s=0.5, timeout_s=timeout_s,
                                max_attempts=max_attempts)


def cli_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, KEY_ENV: KEY, "PYTHONPATH": os.pathsep.join(sys.path), **extra}
    env.pop("RAY_ADDRESS", None)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "profile_dist.cli", *args]


class Child:
    """A CLI child process whose stderr is collected in the background (progress bars end in \\r)."""

    def __init__(self, cmd: list[str], env: dict[str, str]):
        self.proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err = bytearray()
        self.out = bytearray()
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stderr, self.err), (self.proc.stdout, self.out))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, sink: bytearray) -> None:
        while chunk := stream.read1(4096):
            sink.extend(chunk)

    def kill_when(self, condition: Callable[[], bool], timeout: float = 120.0) -> None:
        """SIGKILL the child once ``condition()`` holds; fails if the child ended first."""
        deadline = time.monotonic() + timeout
        try:
            while not condition():
                assert self.proc.poll() is None, f"the child ended before the kill:\n{self.text()[-3000:]}"
                assert time.monotonic() < deadline, "condition not reached in time"
                time.sleep(0.02)
            assert self.proc.poll() is None, "the child ended before the kill"
            os.kill(self.proc.pid, signal.SIGKILL)
        finally:
            if self.proc.poll() is None and not condition():
                self.proc.kill()
            self.proc.wait(timeout=30)
            for t in self._threads:
                t.join(timeout=5)

    def wait(self, timeout: float = 300.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for t in self._threads:
            t.join(timeout=5)
        return code

    def text(self) -> str:
        return self.out.decode(errors="replace") + self.err.decode(errors="replace")


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300.0) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), env=env or cli_env(), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def llm_rows(annotations: Path, endpoint: str = "judge") -> pl.DataFrame:
    return pl.read_parquet(annotations / f"part-*.llm-{endpoint}.parquet")


class Forwarder:
    """A loopback TCP forwarder in front of a server: ``stop()`` is the server going away for its clients
    (new connections refused, open ones cut); ``start()`` brings it back on the same port."""

    def __init__(self, target: tuple[str, int]):
        import socket

        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener = None
        self._conns: list = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Forwarder":
        import socket

        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def _accept(self, listener) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        import socket

        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        import socket

        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
