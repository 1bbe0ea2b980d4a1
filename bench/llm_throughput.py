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

The last line holds the figures as key=value pairs; time_over_ideal, self_429, failed and
cpu_ms_per_request there are the worst over the actor counts, followed by each count's own figures.

    python bench/llm_throughput.py                  # N=1000 (about 4 minutes)
    python bench/llm_throughput.py --requests 3000  # the issue's full size (about 11 minutes)
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from typing import Any

import polars as pl
import ray

from profile_dist.factors.llm_calls import SINGLE
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.endpoints import Endpoint, Price
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
            "late": sum(p.get("late", 0) for p in pacer), "voided": sum(p.get("voided", 0) for p in pacer)}


def paced(n: int, actors: int, rpm: int, latency: tuple[float, float], headroom: float) -> dict[str, Any]:
    with ServerProcess(["--api-key", KEY, "--rpm", str(rpm), "--latency-ms", *map(str, latency)]) as server:
        ep = Endpoint(name="bench", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV, rpm=rpm,
                      max_concurrency=64, price_per_1k=Price(0.0025, 0.01), headroom=headroom)
        out = run_engine(ep, n, f"paced-{actors}", actors)
        stats = server.stats()
    ideal = n / (rpm / 60.0)
    return {"actors": actors, "time_over_ideal": out["elapsed"] / ideal, "self_429": stats["rate_limited"],
            "failed": out["failed"], "cpu_ms_per_request": out["cpu_ms"],
            "active_cpu_ms_per_request": out["active_cpu_ms"], "idle_cpu_ms_per_s": out["idle_cpu_ms_per_s"],
            "driver_cpu_ms_per_request": out["driver_cpu_ms"], "elapsed_s": out["elapsed"],
            "ideal_s": ideal, "max_in_any_1s": stats["max_in_any_1s"], "late_slots": out["late"],
            "voided_slots": out["voided"]}


def unlimited(n: int, workers: int) -> dict[str, Any]:
    with ServerProcess(["--api-key", KEY, "--latency-ms", "1", "1"]) as server:
        ep = Endpoint(name="bench", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV,
                      max_concurrency=256)
        out = run_engine(ep, n, "unlimited", workers)
    return {"rps": n / out["elapsed"], "failed": out["failed"], "cpu_ms_per_request": out["cpu_ms"],
            "driver_cpu_ms_per_request": out["driver_cpu_ms"], "workers": workers}


def fmt(d: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--actors", default="1,4")
    p.add_argument("--rpm", type=int, default=600)
    p.add_argument("--latency-ms", type=float, nargs=2, default=(200.0, 800.0))
    p.add_argument("--headroom", type=float, default=0.01, help="the endpoint's headroom (default 0.01)")
    p.add_argument("--unlimited-requests", type=int, default=20000)
    p.add_argument("--unlimited-workers", type=int, default=2)
    p.add_argument("--skip-unlimited", action="store_true")
    a = p.parse_args()
    os.environ[KEY_ENV] = KEY
    load = os.getloadavg()
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
          f"loadavg={load[0]:.1f},{load[1]:.1f},{load[2]:.1f}", flush=True)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    rows = []
    for actors in (int(x) for x in a.actors.split(",")):
        row = paced(a.requests, actors, a.rpm, tuple(a.latency_ms), a.headroom)
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
    if not a.skip_unlimited:
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
