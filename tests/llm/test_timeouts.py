"""Stalls fail fast: the read timeout follows the endpoint's observed latency."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.factors.llm_calls import SINGLE
from profile_dist.llm.engine import LLMEngine
from profile_dist.llm.worker import LatencyTracker
from profile_dist.testing.llm_server import reference_fluency

from llm_helpers import endpoint_for


def test_read_timeout_is_the_p99_times_the_factor_within_floor_and_default():
    rng = np.random.default_rng(0)
    tracker = LatencyTracker(default_s=30.0, factor=4.0, floor_s=1.0, min_samples=20, every=1)
    latencies = rng.lognormal(mean=-0.5, sigma=0.6, size=400)
    for x in latencies[:19]:
        tracker.observe(float(x))
    assert tracker.timeout() == 30.0  # too few replies seen: the configured default
    for x in latencies[19:]:
        tracker.observe(float(x))
    p99 = np.percentile(latencies, 99, method="inverted_cdf")  # nearest rank, independently
    assert tracker.timeout() == pytest.approx(min(30.0, max(1.0, 4 * p99)))
    fast = LatencyTracker(default_s=30.0, factor=4.0, floor_s=1.0, min_samples=20, every=1)
    for _ in range(50):
        fast.observe(0.01)
    assert fast.timeout() == 1.0  # the floor
    fixed = LatencyTracker(default_s=30.0, factor=None, floor_s=1.0)
    for _ in range(50):
        fixed.observe(0.01)
    assert fixed.timeout() == 30.0  # adaptation off


@pytest.mark.usefixtures("ray_session", "api_key")
def test_a_stalled_reply_is_abandoned_within_the_read_timeout_and_asked_again(llm_server, tmp_cache):
    # Stalls last 120 s and the configured timeout is 60 s; healthy replies take 5-20 ms. The stalls start
    # with the run, before any latency is known: those requests get the adaptive timeout when it is.
    server = llm_server("--latency-ms", "5", "20", "--hang-s", "120", "--seed", "5", "--timeout-rate", "0.2")
    ep = endpoint_for(server, timeout_s=60.0, read_timeout_factor=4.0, read_timeout_floor_s=1.0)
    txts = [f"Response {i} may stall." for i in range(60)]
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        results = engine.run(SINGLE.requests(pl.DataFrame({"text": txts}), [FLUENCY]))
    assert [r.value["score"] for r in results] == [reference_fluency(t) for t in txts]
    log = server.log()
    stalls = [i for i, e in enumerate(log) if e["status"] == "hang"]
    assert len(stalls) >= 5
    assert any(i < 8 for i in stalls)  # among the first requests, sent when no latency was known yet
    for i in stalls:
        retry = next(e for e in log[i + 1:] if e["key"] == log[i]["key"])
        # Abandoned after max(1 s, 4 x p99) plus a backoff under 0.5 s: seconds, not the 60 s default.
        # 20 s leaves room for a loaded machine.
        assert retry["t"] - log[i]["t"] < 20.0
