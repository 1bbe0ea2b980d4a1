"""LLMock 0.2.2 (PyPI ``llmock``) under issue 16's seeded chaos scenarios ``full`` and ``storm``.

LLMock's CLI draws its random 429/500/503 from an unseeded ``random`` and applies its stalls, dropped
connections, corrupted bodies and truncations to streamed replies only, while the engine asks for whole
(non-streamed) replies. So this runs LLMock's own app (``llmock.main.create_app``: its quota with
``x-ratelimit-*`` headers and real Retry-After, its error bodies, its schema-valid structured replies) and
decides each attempt's fault with LLMock's own behaviours, from a seeded draw:

- 429 / 500 / 503: ``Fail`` (LLMock adds Retry-After 1 s to 429 and 503, and no ``x-ratelimit-*`` headers:
  these are capacity refusals, not the quota);
- stall: ``Delay`` of ``--stall-s`` (30 s) on top of the latency;
- truncated: ``Reply`` with half a JSON object and ``finish_reason=length``;
- schema-invalid: ``Reply`` with a JSON object the schema refuses (``{"score": "five"}``);
- dropped connection / malformed body: LLMock's ``StreamFault`` ``disconnect`` / ``malformed``, which
  LLMock applies to SSE streams only; the thin ASGI layer here applies them to a whole reply too (the
  status line goes out, then the connection is closed; or the JSON body is cut in half).

Every attempt also gets a latency uniform in ``--latency-ms`` (a ``Delay``). The draw is a pure function
of (seed, the request's model and messages, how many times they were asked before), like the project's
test server, so a run's faults do not depend on the order requests arrive in.

``GET /_chaos/stats``: attempts, faults by kind, HTTP statuses, and ``duplicates`` (clean replies to
requests that already had one: sends a client should not have made); ``GET /_chaos/log``: every attempt
as (arrival time, request key, attempt number, fault or "ok").

    python bench/llmock_chaos.py --port 8000 --scenario full --rpm 600 --seed 42
"""

from __future__ import annotations

import argparse
import collections
import contextvars
import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from llmock.chaos import ChaosSettings
from llmock.main import create_app
from llmock.middleware import StreamAborted
from llmock.ratelimit import LimitSettings
from llmock.scenarios import ANY, Delay, Fail, Plan, Reply, RequestInfo, ScenarioQueue, StreamFault

#: Fault rates per attempt (issue 16: ``full`` = 15% 429, 5% 500, 5% 503, 3% stalls, dropped connections,
#: malformed bodies, schema-invalid JSON, truncated replies; ``storm`` = 30% 429, 10% 500, 5% stalls, 5%
#: malformed), the same as the project server's mirror in bench/llm_throughput.py (CHAOS).
SCENARIOS: dict[str, tuple[tuple[str, float], ...]] = {
    "full": (("429", 0.15), ("500", 0.05), ("503", 0.05), ("stall", 0.03), ("disconnect", 0.02),
             ("malformed_body", 0.025), ("schema_invalid", 0.025), ("truncated", 0.03)),
    "storm": (("429", 0.30), ("500", 0.10), ("stall", 0.05), ("malformed_body", 0.05)),
}


def _plans(stall_s: float) -> dict[str, Callable[[Delay], Plan]]:
    """Fault kind -> the LLMock plan of one attempt, given its latency."""
    return {
        "429": lambda lat: Plan(fail=Fail(429), delay=lat),
        "500": lambda lat: Plan(fail=Fail(500), delay=lat),
        "503": lambda lat: Plan(fail=Fail(503, retry_after=1.0), delay=lat),
        "stall": lambda lat: Plan(delay=Delay(lat.seconds + stall_s)),
        "disconnect": lambda lat: Plan(delay=lat, stream_fault=StreamFault("disconnect", match=ANY)),
        "malformed_body": lambda lat: Plan(delay=lat, stream_fault=StreamFault("malformed", match=ANY)),
        "schema_invalid": lambda lat: Plan(delay=lat, reply=Reply(text='{"score": "five"}')),
        "truncated": lambda lat: Plan(delay=lat, reply=Reply(text='{"sco', finish_reason="length")),
    }


def _uniform(seed: int, key: str, n: int, salt: str) -> float:
    h = hashlib.blake2b(f"{seed}|{key}|{n}|{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0 ** 64


_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("chaos_request_key", default=None)


class SeededFaults(ScenarioQueue):
    """LLMock's scenario queue, with a seeded fault plan for every chat completion attempt."""

    def __init__(self, scenario: str, seed: int, latency_ms: tuple[float, float], stall_s: float) -> None:
        super().__init__()
        self.rates, self.seed, self.latency_ms = SCENARIOS[scenario], seed, latency_ms
        self.plans = _plans(stall_s)
        self._lock = threading.Lock()
        self.asked: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.clean: collections.Counter[str] = collections.Counter()
        self.log: list[tuple[float, str, int, str]] = []  # (arrival, request key, attempt, fault or "ok")

    def plan_for(self, info: RequestInfo) -> Plan:
        key = _KEY.get()
        if key is None or info.method != "POST" or not info.path.endswith("/chat/completions"):
            return super().plan_for(info)
        with self._lock:
            n = self.asked[key]
            self.asked[key] += 1
        lo, hi = self.latency_ms
        latency = Delay((lo + (hi - lo) * _uniform(self.seed, key, n, "latency")) / 1000.0)
        u, edge = _uniform(self.seed, key, n, "fault"), 0.0
        for kind, rate in self.rates:
            edge += rate
            if u < edge:
                with self._lock:
                    self.faults[kind] += 1
                    self.log.append((time.time(), key, n, kind))
                return self.plans[kind](latency)
        with self._lock:
            self.clean[key] += 1
            self.log.append((time.time(), key, n, "ok"))
        return Plan(delay=latency)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"attempts": sum(self.asked.values()), "requests": len(self.asked),
                    "faults": dict(self.faults), "clean": sum(self.clean.values()),
                    "duplicates": sum(c - 1 for c in self.clean.values() if c > 1)}


def request_key(body: bytes) -> str | None:
    """What identifies a logical request across its attempts: its model and messages (not its token cap,
    which a truncated reply's re-ask raises)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "messages" not in data:
        return None
    canonical = json.dumps([data.get("model"), data["messages"]], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


class WholeReplyFaults:
    """ASGI layer around LLMock: keys each request for the seeded draw, applies ``disconnect`` and
    ``malformed`` to whole (non-SSE) replies, counts statuses and serves ``/_chaos/stats``."""

    def __init__(self, app: Any, faults: SeededFaults) -> None:
        self.app, self.faults = app, faults
        self.statuses: collections.Counter[int] = collections.Counter()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in ("/_chaos/stats", "/_chaos/log"):
            body = json.dumps({**self.faults.stats(), "statuses": dict(self.statuses)} if scope["path"] ==
                              "/_chaos/stats" else self.faults.log).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        raw, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        held: dict | None = None

        async def faulty_send(message: dict) -> None:
            nonlocal held
            plan = scope.get("state", {}).get("llmock_plan")
            fault = plan.stream_fault if isinstance(plan, Plan) else None
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
                sse = any(k.lower() == b"content-type" and v.startswith(b"text/event-stream")
                          for k, v in message.get("headers", []))
                if fault is not None and not sse:
                    held = message  # sent with the body, which decides its length
                    return
            elif message["type"] == "http.response.body" and held is not None:
                start, held = held, None
                if fault.kind == "disconnect":
                    await send(start)
                    raise StreamAborted("disconnect")  # LLMock's own abort: the connection is closed
                body = message.get("body", b"")
                body = body[: max(1, len(body) // 2)]
                headers = [(k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                           for k, v in start.get("headers", [])]
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send(message)

        token = _KEY.set(request_key(raw))
        try:
            await self.app(scope, replay, faulty_send)
        finally:
            _KEY.reset(token)


def build_app(scenario: str, seed: int, rpm: int | None, latency_ms: tuple[float, float],
              stall_s: float) -> WholeReplyFaults:
    app = create_app(chaos=ChaosSettings(latency_ms=0), limits=LimitSettings(rpm=rpm))
    faults = SeededFaults(scenario, seed, latency_ms, stall_s)
    app.state.llmock.scenarios = faults
    return WholeReplyFaults(app, faults)


def main() -> None:
    import uvicorn

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--latency-ms", type=float, nargs=2, default=(200.0, 800.0))
    p.add_argument("--stall-s", type=float, default=30.0)
    a = p.parse_args()
    app = build_app(a.scenario, a.seed, a.rpm, tuple(a.latency_ms), a.stall_s)
    uvicorn.run(app, host=a.host, port=a.port, log_level="critical")


if __name__ == "__main__":
    main()
