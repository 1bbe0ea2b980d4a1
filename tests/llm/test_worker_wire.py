"""The worker's hot path: its HTTP (ChatWire) raises what the openai SDK raises, a request waiting for its send
slot holds no in-flight unit, and a held batch goes back to the driver at half (so the next one is sent)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx2
import openai
import polars as pl
import pytest
import ray

from profile_dist.factors.llm_calls import SINGLE
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.endpoints import Secret
from profile_dist.llm.limiter import get_limiter
from profile_dist.llm.worker import WorkerCore, status_error

from llm_helpers import KEY, endpoint_for

_ERROR = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded",
                    "param": None}}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 429, 500, 503, 418])
@pytest.mark.parametrize("content", [json.dumps(_ERROR).encode(), b"<html>bad gateway</html>", b"",
                                     b'{"detail": "no error key"}'])
def test_status_errors_are_the_sdks_own(status, content):
    """Against the SDK's own factory (the reference): same class, message, body, status and headers."""
    client = openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1")
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    headers = {"retry-after": "2", "x-ratelimit-remaining-requests": "0"}
    ours = status_error(status, headers, content, request)
    sdk = client._make_status_error_from_response(
        httpx2.Response(status, headers=headers, content=content, request=request))
    assert type(ours) is type(sdk)
    assert (ours.status_code, ours.message, ours.body, ours.code) == (sdk.status_code, sdk.message, sdk.body, sdk.code)
    assert ours.response.headers["retry-after"] == "2"


def _wire_requests(n: int, tag: str) -> list[dict]:
    reqs = SINGLE.requests(pl.DataFrame({"text": [f"Response {tag} {i} is written well." for i in range(n)]}),
                           [FLUENCY])
    return [{"i": i, "key": f"{tag}-{i}", "messages": list(r.messages), "schema": r.json_schema,
             "name": r.schema_name, "params": r.params} for i, r in enumerate(reqs)]


@pytest.mark.usefixtures("ray_session")
def test_a_request_waiting_for_its_send_slot_holds_no_in_flight_unit(llm_server):
    # 120/min: slots 0.5 s apart, so after the first reply the other two wait for theirs with nothing sent.
    ep = endpoint_for(llm_server(), rpm=120)
    limiter = get_limiter(ep.rpm, None, f"test-{uuid.uuid4().hex[:8]}")

    async def run() -> tuple[int, int, list]:
        core = WorkerCore(ep, Secret(KEY), "w0", limiter, in_flight=3)
        try:
            assert await core.start() is None
            results = core.process(_wire_requests(3, "slot"))
            first = await results.__anext__()
            waiting_sending = core.sending  # two requests wait for their slots
            rest = [r async for r in results]
            return waiting_sending, core.sending, first + [r for batch in rest for r in batch]
        finally:
            await core.close()

    try:
        waiting_sending, after, results = asyncio.run(run())
    finally:
        ray.kill(limiter)
    assert waiting_sending == 0 and after == 0
    assert sorted(r["i"] for r in results) == [0, 1, 2] and all(r["error"] is None for r in results)


def test_a_held_batch_is_handed_back_at_half_then_at_the_end(llm_server):
    """With results held back (flush_s far away), the first half goes back as soon as it is answered."""
    ep = endpoint_for(llm_server("--latency-ms", "50", "600"))

    async def run() -> list[list[dict]]:
        core = WorkerCore(ep, Secret(KEY), "w0", None, in_flight=8, hold=True, flush_s=60.0)
        try:
            assert await core.start() is None
            return [batch async for batch in core.process(_wire_requests(8, "half"))]
        finally:
            await core.close()

    batches = asyncio.run(run())
    assert len(batches) == 2 and len(batches[0]) >= 4 and sum(map(len, batches)) == 8


def test_start_opens_the_in_flight_connections_so_no_send_waits_for_a_handshake(llm_server):
    """A send that must open its connection reaches the provider's clock late by the handshake; the first
    second's sends would all do so (bunched, they draw 429s one window later). Start opens them all."""
    server = llm_server("--latency-ms", "150", "150")
    ep = endpoint_for(server)

    async def run() -> tuple[int, int, list[dict]]:
        core = WorkerCore(ep, Secret(KEY), "w0", None, in_flight=8)
        try:
            assert await core.start() is None
            opened = server.stats()["connections"]
            results = [r async for batch in core.process(_wire_requests(8, "warm")) for r in batch]
            return opened, server.stats()["connections"], results
        finally:
            await core.close()

    opened, after, results = asyncio.run(run())
    assert opened == 8  # the key check's connection and 7 more
    assert after == 8  # eight sends at once, none on a new connection
    assert len(results) == 8 and all(r["error"] is None for r in results)
