"""Telling a limit from noise, end to end: random 429s leave the schedule alone, a real lower limit cuts it.

The test server refuses at random (``--rate-limited-rate``, a provider's shared-capacity 429s) or by its
own windows (``--rpm``), with or without ``x-ratelimit-*`` headers. Assertions are on counts kept by the
server and the limiter, never on wall-clock races.
"""

from __future__ import annotations

import polars as pl
import pytest
import ray

from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.factors.llm_calls import SINGLE
from profile_dist.llm.engine import LLMEngine
from profile_dist.testing.llm_server import reference_fluency

from llm_helpers import endpoint_for

pytestmark = pytest.mark.usefixtures("ray_session", "api_key")


def texts(n: int, tag: str = "") -> list[str]:
    return [f"Response {tag}{i} is written well." if i % 3 else f"resp {tag}{i} 12 !!" for i in range(n)]


def run(ep, tmp_cache, n: int) -> tuple[list, dict]:
    with LLMEngine(ep, tmp_cache, progress=False) as engine:
        results = engine.run(SINGLE.requests(pl.DataFrame({"text": texts(n)}), [FLUENCY]))
        limiter = ray.get(engine.limiter.stats.remote())
    assert [r.value["score"] if r.value else r.error for r in results] == [reference_fluency(t) for t in texts(n)]
    return results, limiter


@pytest.mark.parametrize("headers", [True, False], ids=["with-headers", "no-headers"])
def test_random_429s_at_a_low_rate_do_not_cut_the_rate(llm_server, tmp_cache, headers):
    # 10% of attempts refused at random; the server's own limit (when it says one) is far above ours.
    args = ["--rate-limited-rate", "0.1", "--seed", "11", "--latency-ms", "5", "20", "--rpm", "60000"]
    server = llm_server(*args, *([] if headers else ["--no-ratelimit-headers"]))
    _, limiter = run(endpoint_for(server, rpm=1200), tmp_cache, 60)
    refused = server.stats()["rate_limited"]
    assert refused >= 3  # the seed makes some
    assert limiter["noise_429"] >= 1 and limiter.get("penalties", 0) == 0 and limiter.get("cuts", 0) == 0
    assert limiter["factor"] == 1.0 and limiter["rpm"] == 1200


def test_a_real_lower_limit_without_headers_still_cuts_the_rate(llm_server, tmp_cache):
    # The provider takes 2/s (120/min, quantised) and says nothing else; the endpoint file claims 10/s.
    server = llm_server("--rpm", "120", "--no-ratelimit-headers", "--latency-ms", "5", "20")
    _, limiter = run(endpoint_for(server, rpm=600), tmp_cache, 24)
    assert limiter["cuts"] >= 1 and limiter["penalties"] >= 1
    assert server.stats()["max_in_any_1s"] <= 2


def test_a_lower_limit_in_the_headers_becomes_ours(llm_server, tmp_cache):
    server = llm_server("--rpm", "120", "--latency-ms", "5", "20")
    _, limiter = run(endpoint_for(server, rpm=600), tmp_cache, 12)
    assert limiter["rpm"] == 120 and limiter["lowered"] >= 1
