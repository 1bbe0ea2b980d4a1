"""LLM engine benchmark against the project's test server (a separate process on loopback).

Paced: the server enforces 600 requests/min per minute and per second (10/s) and answers in 200-800 ms;
the engine sends N fluency prompts with 1 and with 4 worker actors (separate processes) sharing the
endpoint's limiter. Figures per actor count:
  time_over_ideal     engine.run() wall time / (N / limit); workers are started (and warmed up) first
  self_429            429s the server had to send
  failed              requests that finally failed
  cpu_ms_per_request  CPU of the driver, every worker and the limiter during the run / N
                      (the server and Ray's daemons - raylet, GCS - are not counted). At 10 requests/s
                      this is dominated by what Ray's threads in those processes burn when idle, so
                      active_cpu_ms_per_request subtracts the idle rate measured over 5 s just before
Unlimited: no limit, 1 ms latency, 2 workers: requests/s the node sustains, server included.

More scenarios (``--scenarios``, comma-separated; default ``paced,unlimited``):
  rpm       the issue's table: 600 RPM x 1,500 requests and 6,000 RPM x 6,000 requests (latency 200-800 ms),
            30,000 RPM x 10,000 requests (50-200 ms), each with 1 and 4 actors (``--actors``), per-minute and
            per-second windows; figures as for paced, prefixed rpm<R>_a<A>_
  chaos     the test server with seeded faults mirroring LLMock's ``full`` (15% 429 without headers, 5% 500,
            5% 503 with Retry-After 1 s, 3% 30 s stalls, 2% dropped connections, 5% malformed or
            schema-invalid, 3% truncated) and ``storm`` (30% 429, 10% 500, 5% stalls, 5% malformed) under
            a 600 RPM quota, 400 requests, 1 actor: usable, failed by reason, accepted per minute, then a
            rerun into the same cache (retried, usable after it)
  llmock    the same two scenarios, seeded, from LLMock 0.2.2 itself (PyPI ``llmock``, the ``bench`` extra),
            through bench/llmock_chaos.py (its CLI draws unseeded and faults only streamed replies); also
            counts duplicate sends over both runs
  startup   ``profile-dist annotate --llm`` as a fresh process against the server (600 RPM): seconds
            from the command's start to the server's first request, and the wall time of a fully cached
            rerun into a new output

The last line holds the figures as key=value pairs; time_over_ideal, self_429, failed and
cpu_ms_per_request there are the worst over the actor counts of the paced scenario, followed by each
count's own figures and those of the other scenarios run.

    python bench/llm_throughput.py                  # N=1000 (about 4 minutes)
    python bench/llm_throughput.py --requests 3000  # the issue's full size (about 11 minutes)
    python bench/llm_throughput.py --scenarios rpm,chaos,startup --skip-unlimited
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

import polars as pl
import ray

from profile_dist.factors.llm_calls import SINGLE
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.endpoints import DEFAULT_HEADROOM, Endpoint, Price
from profile_dist.llm.engine import LLMEngine
from profile_dist.testing.llm_server import ServerProcess

KEY_ENV = "PROFILE_BENCH_LLM_KEY"
KEY = "sk-bench"


def texts(n: int, tag: str) -> list[str]:
    words = ["the", "model", "answer", "is", "clear", "and", "brief", "12", "##", "Fine"]
    return [f"{tag} {i}: " + " ".join(words[(i * 7 + j) % len(words)] for j in range(12 + i % 20)) + "."
            for i in range(n)]


def cpu_now(engine: LLMEngine) -> float:
    total = time.process_time()
    total += sum(s["cpu_s"] for s in ray.get([w.stats.remote() for w in engine.workers]))
    if engine.limiter is not None:
        total += ray.get(engine.limiter.stats.remote())["cpu_s"]
    return total


def run_engine(ep: Endpoint, n: int, tag: str, workers: int, idle_s: float = 5.0) -> dict[str, Any]:
    reqs = SINGLE.requests(pl.DataFrame({"text": texts(n, tag)}), [FLUENCY])
    with tempfile.TemporaryDirectory() as cache, LLMEngine(ep, cache, num_workers=workers, progress=False) as engine:
        engine.start()
        # What the same processes burn doing nothing (Ray's background threads), to tell it apart.
        idle0 = cpu_now(engine)
        time.sleep(idle_s)
        idle_rate = (cpu_now(engine) - idle0) / idle_s
        cpu0, driver0 = cpu_now(engine), time.process_time()
        t0 = time.perf_counter()
        results = engine.run(reqs)
        elapsed = time.perf_counter() - t0
        driver = time.process_time() - driver0
        cpu = cpu_now(engine) - cpu0
        pacer = ray.get([w.stats.remote() for w in engine.workers])
    return {"elapsed": elapsed, "failed": sum(not r.ok for r in results), "cpu_ms": cpu * 1000 / n,
            "driver_cpu_ms": driver * 1000 / n, "active_cpu_ms": (cpu - idle_rate * elapsed) * 1000 / n,
            "idle_cpu_ms_per_s": idle_rate * 1000,
            "late": sum(p.get("late_wake_up", 0) + p.get("late_in_flight_full", 0) for p in pacer),
            "voided": sum(p.get("voided", 0) for p in pacer),
            "in_flight_full": sum(p.get("late_in_flight_full", 0) for p in pacer)}


def paced(n: int, actors: int, rpm: int, latency: tuple[float, float], headroom: float,
          max_concurrency: int = 64) -> dict[str, Any]:
    with ServerProcess(["--api-key", KEY, "--rpm", str(rpm), "--latency-ms", *map(str, latency)]) as server:
        ep = Endpoint(name="bench", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV, rpm=rpm,
                      max_concurrency=max_concurrency, price_per_1k=Price(0.0025, 0.01), headroom=headroom)
        out = run_engine(ep, n, f"paced-{actors}", actors)
        stats = server.stats()
    ideal = n / (rpm / 60.0)
    return {"actors": actors, "time_over_ideal": out["elapsed"] / ideal, "self_429": stats["rate_limited"],
            "failed": out["failed"], "cpu_ms_per_request": out["cpu_ms"],
            "active_cpu_ms_per_request": out["active_cpu_ms"], "idle_cpu_ms_per_s": out["idle_cpu_ms_per_s"],
            "driver_cpu_ms_per_request": out["driver_cpu_ms"], "elapsed_s": out["elapsed"],
            "ideal_s": ideal, "max_in_any_1s": stats["max_in_any_1s"], "late_slots": out["late"],
            "late_slots_in_flight_full": out["in_flight_full"],
            "voided_slots": out["voided"]}


def unlimited(n: int, workers: int) -> dict[str, Any]:
    with ServerProcess(["--api-key", KEY, "--latency-ms", "1", "1"]) as server:
        ep = Endpoint(name="bench", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV,
                      max_concurrency=256)
        out = run_engine(ep, n, "unlimited", workers)
    return {"rps": n / out["elapsed"], "failed": out["failed"], "cpu_ms_per_request": out["cpu_ms"],
            "driver_cpu_ms_per_request": out["driver_cpu_ms"], "workers": workers}


#: The issue's table: (requests/min, requests, latency ms).
RPM_SCENARIOS = ((600, 1500, (200.0, 800.0)), (6000, 6000, (200.0, 800.0)), (30000, 10000, (50.0, 200.0)))

#: Seeded faults of the test server mirroring LLMock's scenarios (rates per attempt).
CHAOS = {
    "full": ["--rate-limited-rate", "0.15", "--error-rate", "0.10", "--error-statuses", "500", "503",
             "--retry-after-s", "1", "--timeout-rate", "0.03", "--disconnect-rate", "0.02",
             "--malformed-rate", "0.05", "--length-rate", "0.03"],
    "storm": ["--rate-limited-rate", "0.30", "--error-rate", "0.10", "--error-statuses", "500",
              "--timeout-rate", "0.05", "--malformed-rate", "0.05"],
}
#: LLMock itself runs the same scenarios, seeded, through bench/llmock_chaos.py.
LLMOCK_SEED = 42


def rpm_scenarios(actors: list[int], headroom: float, limits: set[int] | None = None,
                  max_concurrency: int = 64) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for rpm, n, latency in RPM_SCENARIOS:
        if limits and rpm not in limits:
            continue
        for a in actors:
            row = paced(n, a, rpm, latency, headroom, max_concurrency)
            print(f"rpm requests={n} rpm={rpm} " + fmt(row), flush=True)
            for k in ("time_over_ideal", "self_429", "failed", "cpu_ms_per_request", "active_cpu_ms_per_request"):
                out[f"rpm{rpm}_a{a}_{k}"] = row[k]
            out[f"rpm{rpm}_a{a}_rps"] = n / row["elapsed_s"]
    return out


def chaos_run(base_url: str, model: str, key_env: str, n: int, rpm: int, tag: str) -> dict[str, Any]:
    """400 fluency prompts under faults, then a rerun into the same cache (the failed rows asked again)."""
    ep = Endpoint(name="bench", base_url=base_url, model=model, api_key_env=key_env, rpm=rpm, max_concurrency=64,
                  price_per_1k=Price(0.0025, 0.01))
    reqs = SINGLE.requests(pl.DataFrame({"text": texts(n, tag)}), [FLUENCY])
    with tempfile.TemporaryDirectory() as cache:
        with LLMEngine(ep, cache, progress=False) as engine:
            engine.start()
            t0 = time.perf_counter()
            results = engine.run(reqs)
            elapsed = time.perf_counter() - t0
            first = engine.summary
            limiter = ray.get(engine.limiter.stats.remote()) if engine.limiter is not None else {}
        with LLMEngine(ep, cache, progress=False) as engine:
            again = engine.run(reqs)
            rerun = engine.summary
    usable = sum(r.ok for r in results)
    reasons = collections.Counter(r.reason for r in results if not r.ok)
    return {"usable": usable, "failed": n - usable, "elapsed_s": elapsed, "accepted_per_min": usable * 60 / elapsed,
            "failed_by_reason": ";".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "-",
            "http_429": first["http_429"], "retries": first["retries"], "reasks": first["reasks"],
            "rate_cuts": limiter.get("cuts", 0), "rate_factor_end": limiter.get("factor", 1.0),
            "retried_on_rerun": rerun["sent"], "usable_after_rerun": sum(r.ok for r in again)}


def chaos(n: int, rpm: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, faults in CHAOS.items():
        args = ["--api-key", KEY, "--rpm", str(rpm), "--no-ratelimit-headers", "--latency-ms", "200", "800",
                "--hang-s", "30", "--seed", "42", *faults]
        with ServerProcess(args) as server:
            row = chaos_run(server.base_url, "test-judge", KEY_ENV, n, rpm, f"chaos-{name}")
            row["server"] = json.dumps(server.stats()["by_status"], separators=(",", ":"))
        print(f"chaos scenario={name} requests={n} rpm={rpm} " + fmt(row), flush=True)
        out.update({f"chaos_{name}_{k}": v for k, v in row.items() if k != "server"})
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def llmock(n: int, rpm: int) -> dict[str, Any]:
    try:
        import llmock as _  # noqa: F401
    except ImportError:
        print("llmock: not installed (pip install -e '.[bench]'); skipped", flush=True)
        return {}
    out: dict[str, Any] = {}
    launcher = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llmock_chaos.py")
    for name in CHAOS:
        port = _free_port()
        cmd = [sys.executable, launcher, "--port", str(port), "--scenario", name, "--rpm", str(rpm),
               "--seed", str(LLMOCK_SEED), "--latency-ms", "200", "800", "--stall-s", "30"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:  # until it answers
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"llmock did not start: {' '.join(cmd)}") from None
                    time.sleep(0.3)
            row = chaos_run(f"{base}/v1", "gpt-4o-mini", KEY_ENV, n, rpm, f"llmock-{name}")
            with urllib.request.urlopen(f"{base}/_chaos/stats", timeout=10) as r:
                stats = json.loads(r.read())
        finally:
            proc.kill()
            proc.wait(timeout=10)
        row["duplicates"] = stats["duplicates"]  # clean replies sent twice, over both runs
        row["attempts"] = stats["attempts"]
        row["faults"] = ";".join(f"{k}:{v}" for k, v in sorted(stats["faults"].items()))
        row["server_status"] = ";".join(f"{k}:{v}" for k, v in sorted(stats["statuses"].items()))
        print(f"llmock scenario={name} requests={n} rpm={rpm} seed={LLMOCK_SEED} " + fmt(row), flush=True)
        out.update({f"llmock_{name}_{k}": v for k, v in row.items()})
    return out


def startup(rpm: int) -> dict[str, Any]:
    """A fresh `profile-dist annotate --llm` process: seconds to the first request, then a cached rerun."""
    from profile_dist.workflows.demo import write_demo_corpus
    from profile_dist.stages.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp, ServerProcess(["--api-key", KEY, "--rpm", str(rpm)]) as server:
        pairs = os.path.join(tmp, "pairs")
        ingest("pairs", [write_demo_corpus(os.path.join(tmp, "demo.jsonl"))], pairs, progress=False)
        endpoints = os.path.join(tmp, "endpoints.yaml")
        with open(endpoints, "w") as f:
            f.write(f"endpoints:\n  bench:\n    base_url: {server.base_url}\n    model: test-judge\n"
                    f"    api_key_env: {KEY_ENV}\n    rpm: {rpm}\n    max_concurrency: 64\n")
        cache = os.path.join(tmp, "cache")

        def annotate(output: str) -> float:
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "profile_dist.cli", "annotate", "--pairs", pairs, "--output",
                            os.path.join(tmp, output), "--factors", "fluency", "--llm", "bench", "--endpoints",
                            endpoints, "--cache-dir", cache], check=True, capture_output=True,
                           env={**os.environ, KEY_ENV: KEY})
            return t0

        t0 = annotate("first")
        stats = server.stats()
        t1 = annotate("cached")
        cached_s = time.time() - t1
        assert server.stats()["requests"] == stats["requests"], "the cached rerun sent requests"
    return {"first_request_s": stats["first_accepted"] - t0, "cached_rerun_s": cached_s,
            "startup_requests": stats["ok"]}


def fmt(d: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--actors", default="1,4")
    p.add_argument("--rpm", type=int, default=600)
    p.add_argument("--latency-ms", type=float, nargs=2, default=(200.0, 800.0))
    p.add_argument("--headroom", type=float, default=DEFAULT_HEADROOM,
                   help=f"the endpoint's headroom (default: the endpoint default, {DEFAULT_HEADROOM})")
    p.add_argument("--max-concurrency", type=int, default=64,
                   help="the endpoint's max_concurrency in the paced and rpm scenarios (default 64, the endpoint "
                        "default); split evenly over the workers")
    p.add_argument("--unlimited-requests", type=int, default=20000)
    p.add_argument("--unlimited-workers", type=int, default=2)
    p.add_argument("--skip-unlimited", action="store_true")
    p.add_argument("--rpm-limits", default="", help="rpm scenario: only these limits (comma-separated, e.g. 6000,30000)")
    p.add_argument("--scenarios", default="paced,unlimited",
                   help="comma-separated: paced, unlimited, rpm, chaos, llmock, startup")
    p.add_argument("--chaos-requests", type=int, default=400)
    a = p.parse_args()
    scenarios = set(a.scenarios.split(","))
    if a.skip_unlimited:
        scenarios.discard("unlimited")
    os.environ[KEY_ENV] = KEY
    load = os.getloadavg()
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
          f"loadavg={load[0]:.1f},{load[1]:.1f},{load[2]:.1f}", flush=True)
    # address="local": a new Ray instance, never another process's cluster found on this machine.
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    actors = [int(x) for x in a.actors.split(",")]
    rows = []
    final: dict[str, Any] = {"failed": 0}
    if "paced" in scenarios:
        for n_actors in actors:
            row = paced(a.requests, n_actors, a.rpm, tuple(a.latency_ms), a.headroom, a.max_concurrency)
            rows.append(row)
            print(f"paced requests={a.requests} rpm={a.rpm} headroom={a.headroom} " + fmt(row), flush=True)
        final = {"time_over_ideal": max(r["time_over_ideal"] for r in rows),
                 "self_429": sum(r["self_429"] for r in rows), "failed": sum(r["failed"] for r in rows),
                 "cpu_ms_per_request": max(r["cpu_ms_per_request"] for r in rows),
                 "actors": ",".join(str(r["actors"]) for r in rows), "requests": a.requests}
    for r in rows:
        final[f"time_over_ideal_a{r['actors']}"] = r["time_over_ideal"]
        final[f"self_429_a{r['actors']}"] = r["self_429"]
        final[f"cpu_ms_per_request_a{r['actors']}"] = r["cpu_ms_per_request"]
        final[f"active_cpu_ms_per_request_a{r['actors']}"] = r["active_cpu_ms_per_request"]
    if "rpm" in scenarios:
        final.update(rpm_scenarios(actors, a.headroom, {int(x) for x in a.rpm_limits.split(",") if x},
                                   a.max_concurrency))
    if "chaos" in scenarios:
        final.update(chaos(a.chaos_requests, 600))
    if "llmock" in scenarios:
        final.update(llmock(a.chaos_requests, 600))
    if "startup" in scenarios:
        final.update(startup(600))
    if "unlimited" in scenarios:
        u = unlimited(a.unlimited_requests, a.unlimited_workers)
        print(f"unlimited requests={a.unlimited_requests} " + fmt(u), flush=True)
        final["rps_unlimited"] = u["rps"]
        final["cpu_ms_per_request_unlimited"] = u["cpu_ms_per_request"]
        final["failed"] += u["failed"]
    ray.shutdown()
    final["loadavg_1m_end"] = os.getloadavg()[0]
    print(fmt(final), flush=True)


if __name__ == "__main__":
    main()
