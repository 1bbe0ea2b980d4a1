"""A worker actor killed mid-run (SIGKILL of its process, found among this session's Ray processes): its
unanswered requests are retried by the other worker and its replacement, and the run completes with every
value right; requests paid twice are at most the ones the dead worker had in flight."""

from __future__ import annotations

import os
import signal
import threading
import time

import polars as pl
import pytest

from faults_helpers import KEY, KEY_ENV

from profile_dist.factors.llm_calls import SINGLE
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.endpoints import Endpoint
from profile_dist.llm.engine import LLMEngine
from profile_dist.testing.llm_server import ServerProcess, reference_fluency

N, CONCURRENCY, WORKERS = 240, 8, 2


def descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out += children.get(pid, [])
        todo += children.get(pid, [])
    return out


def llm_worker_pids() -> list[int]:
    """Processes of this session's Ray (children of this process) running an LLMWorker actor."""
    pids = []
    for pid in descendants(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::LLMWorker"):
                    pids.append(pid)
        except OSError:
            pass
    return pids


def test_a_worker_killed_mid_run_has_its_requests_retried_and_the_run_completes(tmp_path, ray_session, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    texts = [f"Worker kill response number {i} reads well." if i % 2 else f"worker kill {i} 7 8" for i in range(N)]
    with ServerProcess(["--api-key", KEY, "--latency-ms", "40", "120"]) as server:
        ep = Endpoint(name="judge", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV,
                      max_concurrency=CONCURRENCY, workers=WORKERS, backoff_base_s=0.02, backoff_max_s=0.5)
        with LLMEngine(ep, tmp_path / "cache", progress=False) as engine:
            before = set(llm_worker_pids())
            engine.start()
            started = [p for p in llm_worker_pids() if p not in before]
            assert len(started) == WORKERS, "could not find the worker processes"
            box: dict = {}
            runner = threading.Thread(target=lambda: box.update(results=engine.run(
                SINGLE.requests(pl.DataFrame({"text": texts}), [FLUENCY]))), daemon=True)
            runner.start()
            deadline = time.monotonic() + 120
            while server.stats()["ok"] < N // 3:
                assert runner.is_alive() and time.monotonic() < deadline, "the run ended before the kill"
                time.sleep(0.02)
            os.kill(started[0], signal.SIGKILL)
            killed_at = server.stats()["ok"]
            runner.join(timeout=180)
            assert not runner.is_alive() and "results" in box, "the run did not complete"
            results = box["results"]
            assert killed_at < N
            assert engine._restarts >= 1
            assert all(p not in llm_worker_pids() for p in started[:1])
        ok_per_key = server.stats()["ok_per_key"]
    assert [r.error for r in results] == [None] * N
    assert [r.value["score"] for r in results] == [reference_fluency(t) for t in texts]
    assert len(ok_per_key) == N
    paid_twice = sum(c - 1 for c in ok_per_key.values())
    print(f"\nworker SIGKILL: killed at ok={killed_at}/{N}, paid twice={paid_twice} (bound {CONCURRENCY})")
    assert paid_twice <= CONCURRENCY  # the dead worker's two batches of ceil(concurrency / workers)
