"""The retry loop's waits (``WorkerCore._call``), on a scripted sequence of failed attempts.

No server here: the attempts' outcomes are scripted exceptions of the ``openai`` SDK, and the waits are
recorded instead of slept, so the policy is checked exactly. The end-to-end retry behaviour (Retry-After
of a 503, stalls, rerun) is in test_engine.py and test_timeouts.py, through the test server.
"""

from __future__ import annotations

import asyncio

import httpx2
import openai
import pytest

from profile_dist.llm import worker as worker_mod
from profile_dist.llm.endpoints import Endpoint, Secret
from profile_dist.llm.worker import WorkerCore

BASE, CAP = 0.5, 30.0


def status_error(cls: type, status: int, retry_after: str | None = None) -> openai.APIStatusError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("POST", "http://llm.invalid/v1"))
    return cls("scripted", response=response, body=None)


def waits_for(outcomes: list[BaseException], monkeypatch) -> list[float]:
    """The waits ``_call`` makes before each retry, when the attempts fail as scripted, then succeed."""
    ep = Endpoint(name="judge", base_url="http://llm.invalid/v1", model="m", api_key_env="K", rpm=None,
                  max_attempts=20, backoff_base_s=BASE, backoff_max_s=CAP)
    core = WorkerCore(ep, Secret("k"), "w0", None, in_flight=1)
    script = iter(outcomes)

    async def send(*args, **kwargs):
        exc = next(script, None)
        if exc is not None:
            raise exc
        return {"choices": []}

    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr(core, "_send", send)
    monkeypatch.setattr(worker_mod.asyncio, "sleep", record)
    asyncio.run(core._call([], {}, {}, worker_mod._Tally()))
    return waits


def test_failures_with_a_retry_after_do_not_lengthen_the_backoff_of_the_next(monkeypatch):
    told = [status_error(openai.RateLimitError, 429, "1")] * 6 + [status_error(openai.InternalServerError, 503, "2")]
    for _ in range(50):  # the backoff is random: every draw must be within the first failure's bound
        waits = waits_for([*told, status_error(openai.InternalServerError, 500)], monkeypatch)
        assert len(waits) == 8
        assert all(1.0 <= w <= 1.1 for w in waits[:6]) and 2.0 <= waits[6] <= 2.2  # as told, +10% jitter
        assert 0.0 <= waits[7] <= BASE * 2  # the call's first failure without a wait: not its eighth


def test_failures_without_a_retry_after_back_off_exponentially(monkeypatch):
    bounds = [min(CAP, BASE * 2 ** n) for n in range(1, 8)]
    seen = [0.0] * len(bounds)
    for _ in range(50):
        failures = [status_error(openai.InternalServerError, 500)] * 4 + \
            [status_error(openai.RateLimitError, 429)] * 3  # a 429 without Retry-After backs off too
        waits = waits_for(failures, monkeypatch)
        assert all(0.0 <= w <= b for w, b in zip(waits, bounds, strict=True))
        seen = [max(s, w) for s, w in zip(seen, waits)]
    assert seen[4] > bounds[3]  # the fifth wait really may be longer than the fourth could


@pytest.mark.parametrize("exc", [openai.APIConnectionError(request=httpx2.Request("POST", "http://llm.invalid")),
                                 worker_mod._Stalled(5.0), worker_mod._BadBody("half a body")],
                         ids=["dropped", "stalled", "malformed-body"])
def test_transport_failures_are_retried_with_backoff(exc, monkeypatch):
    waits = waits_for([exc, exc], monkeypatch)
    assert len(waits) == 2 and 0.0 <= waits[0] <= BASE * 2 and 0.0 <= waits[1] <= BASE * 4
