"""An OpenAI-compatible chat-completions server for tests and benchmarks (loopback only).

It behaves like a provider from the client's side: ``POST /v1/chat/completions`` with ``response_format``
(``json_schema`` and ``json_object``), ``usage`` in every reply, ``x-ratelimit-*`` headers, ``401`` for a
wrong key, ``404`` for an unknown model, ``400`` for a prompt over ``max_context_tokens`` and ``429`` with
``Retry-After``/``retry-after-ms`` when a request would exceed the configured requests/min or tokens/min.
Limits are enforced over a sliding 60 s window and, when ``quantize`` is on, also over a sliding 1 s window
with a budget of ceil(limit/60) (providers quantise, so a burst of a minute's budget is refused).

Faults are injected at configured rates: latency, 5xx (``error_statuses``, with ``Retry-After`` when
``retry_after_s`` is set), hangs past the client's timeout (stalls), dropped connections, 429s whatever the
limits say (a provider's shared-capacity refusals), malformed JSON content and truncated
(``finish_reason=length``) replies; the ``*_first`` settings fault the first N attempts of every request
instead, for exact counts. Every decision is a pure function of (seed, request key, how many times that
key was seen before), so runs are reproducible whatever the arrival order, and a retried request draws a
fresh decision. ``ratelimit_headers=False`` leaves out the ``x-ratelimit-*`` headers (servers that send none).

Replies to the project's annotation prompts are deterministic: the server finds the text between the
``RESPONSE`` markers (see :mod:`profile_dist.prompts.fencing`) and answers the schema's integer field with
:func:`reference_fluency` of that text, so tests can assert values end to end.

Test hooks: ``GET /_stats`` (counts, 429s, max requests in any 1 s/60 s window, per-key counts, connections
opened by clients),
``GET /_log`` (one entry per request), ``POST /_reset``, ``POST /_config`` (change any config field).

Run: ``python -m profile_dist.testing.llm_server --port 8000 --rpm 600 --latency-ms 200 800``; it prints
``listening on http://127.0.0.1:PORT/v1`` once ready. In-process: ``with LLMTestServer(cfg) as srv:``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import hashlib
import json
import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from profile_dist.testing.behaviours import load as load_behaviours, reply_for

from profile_dist.prompts.fencing import find_block

REQUEST_KEY_CHARS = 16


@dataclass
class ServerConfig:
    api_key: str = "test-key"
    models: tuple[str, ...] = ("test-judge",)
    rpm: int | None = None
    tpm: int | None = None
    #: Also enforce ceil(limit/60) over any 1 s window.
    quantize: bool = True
    latency_ms: tuple[float, float] = (0.0, 0.0)
    error_rate: float = 0.0  # one of error_statuses
    error_statuses: tuple[int, ...] = (500, 502, 503)
    #: The first N attempts of each request key get a 5xx (deterministic retry tests).
    error_first: int = 0
    #: Retry-After (seconds) on injected 503s and 429s; None: 503s carry none, 429s say 0.05 s.
    retry_after_s: float | None = None
    #: Send x-ratelimit-limit/remaining/reset-* headers (off: a server that never says).
    ratelimit_headers: bool = True
    timeout_rate: float = 0.0  # hang for hang_s, past the client's timeout
    #: 429 with Retry-After at this rate, whatever the rpm/tpm windows say (a provider's shared-capacity 429s).
    rate_limited_rate: float = 0.0
    disconnect_rate: float = 0.0  # close the connection without a reply
    malformed_rate: float = 0.0  # invalid JSON or schema-invalid content
    #: The first N replies to each request key are malformed (deterministic re-ask tests).
    malformed_first: int = 0
    length_rate: float = 0.0  # truncated content with finish_reason=length
    #: The first N replies to each request key are truncated (finish_reason=length).
    length_first: int = 0
    hang_s: float = 30.0
    seed: int = 0
    #: False: answer response_format json_schema with 400, like servers that only have JSON mode.
    json_schema: bool = True
    max_context_tokens: int | None = None
    log_limit: int = 200_000
    #: Parameters of the simulated models in profile_dist.testing.behaviours (e.g. judge_prefers_longer).
    behaviour: dict[str, Any] = field(default_factory=dict)


def count_tokens(text: str) -> int:
    """The server's tokenizer: words and punctuation marks (what ``usage`` reports)."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def reference_fluency(text: str) -> int:
    """The fluency (1-5) the server answers for a response text; a simple, documented statistic.

    1 + round(2 * share of purely alphabetic tokens) + 1 if it starts with a capital letter
    + 1 if it ends with . ! or ?  (an empty text scores 1).
    """
    stripped = text.strip()
    tokens = stripped.split()
    if not tokens:
        return 1
    alpha = sum(1 for t in tokens if t.strip(".,;:!?\"'()").isalpha())
    score = 1 + round(2 * alpha / len(tokens))
    score += 1 if stripped[0].isupper() else 0
    score += 1 if stripped[-1] in ".!?" else 0
    return max(1, min(5, score))


def request_key(model: str, messages: list[dict[str, Any]]) -> str:
    """Identity of a logical request: model + first user message (re-asks append turns, keep the key)."""
    first_user = next((m.get("content") for m in messages if m.get("role") == "user"), "")
    if not isinstance(first_user, str):
        first_user = json.dumps(first_user, sort_keys=True)
    return hashlib.sha256(f"{model}\x00{first_user}".encode()).hexdigest()[:REQUEST_KEY_CHARS]


def _uniform(seed: int, key: str, n: int, salt: str) -> float:
    h = hashlib.blake2b(f"{seed}|{key}|{n}|{salt}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


def _fmt_reset(seconds: float) -> str:
    # OpenAI's style: "20ms", "1.5s", "6m0s".
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    return f"{int(seconds // 60)}m{int(seconds % 60)}s"


class _Window:
    """Sliding-window log of (time, amount) with a budget."""

    def __init__(self, length: float, budget: float) -> None:
        self.length = length
        self.budget = budget
        self.entries: collections.deque[tuple[float, float]] = collections.deque()
        self.total = 0.0

    def _trim(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - self.length:
            self.total -= self.entries.popleft()[1]

    def wait_for(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` fits (0 if it fits now)."""
        self._trim(now)
        if self.total + amount <= self.budget or not self.entries:
            return 0.0
        need = self.total + amount - self.budget
        freed = 0.0
        for t, a in self.entries:
            freed += a
            if freed >= need:
                return max(0.0, t + self.length - now)
        return max(0.0, self.entries[-1][0] + self.length - now)

    def add(self, now: float, amount: float) -> None:
        self.entries.append((now, amount))
        self.total += amount

    def remaining(self, now: float) -> tuple[float, float]:
        self._trim(now)
        reset = (self.entries[0][0] + self.length - now) if self.entries else 0.0
        return max(0.0, self.budget - self.total), reset


class _Limits:
    def __init__(self, cfg: ServerConfig) -> None:
        self.req: list[_Window] = []
        self.tok: list[_Window] = []
        if cfg.rpm:
            self.req.append(_Window(60.0, cfg.rpm))
            if cfg.quantize:
                self.req.append(_Window(1.0, math.ceil(cfg.rpm / 60)))
        if cfg.tpm:
            self.tok.append(_Window(60.0, cfg.tpm))
            if cfg.quantize:
                self.tok.append(_Window(1.0, math.ceil(cfg.tpm / 60)))

    def admit(self, now: float, tokens: int) -> float:
        """0 and the request is counted, or the seconds to wait (Retry-After)."""
        wait = 0.0
        for w in self.req:
            wait = max(wait, w.wait_for(now, 1))
        for w in self.tok:
            wait = max(wait, w.wait_for(now, tokens))
        if wait > 0:
            return wait
        for w in self.req:
            w.add(now, 1)
        for w in self.tok:
            w.add(now, tokens)
        return 0.0

    def headers(self, cfg: ServerConfig, now: float) -> dict[str, str]:
        out: dict[str, str] = {}
        for kind, windows, limit in (("requests", self.req, cfg.rpm), ("tokens", self.tok, cfg.tpm)):
            if windows:
                remaining, reset = windows[0].remaining(now)
                out[f"x-ratelimit-limit-{kind}"] = str(limit)
                out[f"x-ratelimit-remaining-{kind}"] = str(int(remaining))
                out[f"x-ratelimit-reset-{kind}"] = _fmt_reset(reset)
        return out


@dataclass
class _Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False
    disconnect: bool = False


def _error(status: int, message: str, code: str, typ: str = "invalid_request_error", **headers: str) -> _Reply:
    return _Reply(status, {"error": {"message": message, "type": typ, "code": code, "param": None}}, dict(headers))


def _fill_schema(schema: dict[str, Any], score: int) -> Any:
    """A schema-valid instance whose integer/number fields carry ``score``."""
    typ = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if typ == "object":
        props = schema.get("properties", {})
        return {k: _fill_schema(v, score) for k, v in props.items()}
    if typ in ("integer", "number"):
        lo, hi = schema.get("minimum", -math.inf), schema.get("maximum", math.inf)
        value = min(max(score, lo), hi)
        return int(value) if typ == "integer" else float(value)
    if typ == "string":
        return "ok"
    if typ == "boolean":
        return score >= 3
    if typ == "array":
        return []
    return None


class ChatLogic:
    """Everything but the socket: decides the reply to one request. Thread-safe via the caller's lock."""

    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        # Now, not on the first request: importing the simulated models stalled the loop, and the requests
        # queued behind that first one reached the clock together.
        load_behaviours()
        self.reset()

    def reset(self) -> None:
        self.limits = _Limits(self.cfg)
        self.seen: collections.Counter[str] = collections.Counter()
        self.refused: collections.Counter[str] = collections.Counter()  # injected 429s per key
        self.ok_per_key: collections.Counter[str] = collections.Counter()
        self.by_status: collections.Counter[str] = collections.Counter()
        self.accepted_times: list[float] = []
        self.connections = 0  # opened by API clients (test hooks' connections are not counted)
        self.log: list[dict[str, Any]] = []
        self.tokens_total = 0

    def _record(self, now: float, key: str | None, status: str, fault: str | None = None,
                messages: list[dict[str, Any]] | None = None, max_tokens: int | None = None) -> None:
        self.by_status[status] += 1
        if status == "200" and key is not None:
            self.ok_per_key[key] += 1
        if len(self.log) < self.cfg.log_limit:
            last = messages[-1].get("content") if messages else None
            self.log.append({"t": now, "key": key, "status": status, "fault": fault,
                             "n_messages": len(messages) if messages else None, "max_tokens": max_tokens,
                             "last_message": last[:300] if isinstance(last, str) else None})

    def handle(self, now: float, auth: str | None, body: bytes) -> _Reply:
        cfg = self.cfg
        if auth != f"Bearer {cfg.api_key}":
            # Echo the presented key like some providers do: the client must never surface it.
            presented = (auth or "").removeprefix("Bearer ")
            self._record(now, None, "401")
            return _error(401, f"Incorrect API key provided: {presented}.", "invalid_api_key")
        try:
            req = json.loads(body)
            model = req["model"]
            messages = req["messages"]
        except (ValueError, KeyError, TypeError) as exc:
            self._record(now, None, "400")
            return _error(400, f"could not parse the request body: {exc}", "invalid_request")
        if model not in cfg.models:
            self._record(now, None, "404")
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                          "model_not_found")
        fmt = req.get("response_format") or {}
        if fmt.get("type") == "json_schema" and not cfg.json_schema:
            self._record(now, None, "400")
            return _error(400, "response_format of type json_schema is not supported by this model; "
                          "use json_object", "unsupported_response_format", param="response_format")
        key = request_key(model, messages)
        prompt_tokens = 2 + sum(4 + count_tokens(str(m.get("content", ""))) for m in messages)
        if cfg.max_context_tokens is not None and prompt_tokens > cfg.max_context_tokens:
            self._record(now, key, "400", messages=messages)
            return _error(400, f"This model's maximum context length is {cfg.max_context_tokens} tokens; "
                          f"your messages resulted in {prompt_tokens} tokens.", "context_length_exceeded")

        n = self.seen[key]
        max_tokens = req.get("max_tokens") or req.get("max_completion_tokens")
        content, finish, fault = self._content(req, messages, key, n)
        completion_tokens = count_tokens(content)
        wait = self.limits.admit(now, prompt_tokens + completion_tokens)
        injected = False
        if wait <= 0 and _uniform(cfg.seed, key, self.refused[key], "429") < cfg.rate_limited_rate:
            self.refused[key] += 1  # a fresh draw for the next attempt of the same request
            wait, injected = (cfg.retry_after_s if cfg.retry_after_s is not None else 0.05), True
        if wait > 0:
            self._record(now, key, "429", "429" if injected else None, messages, max_tokens)
            headers = {"retry-after": str(max(1, math.ceil(wait))), "retry-after-ms": str(math.ceil(wait * 1000))}
            headers.update(self._limit_headers(now))
            return _error(429, f"Rate limit reached for {model}; please try again in {wait:.3f}s.",
                          "rate_limit_exceeded", "requests", **headers)
        self.seen[key] += 1
        self.accepted_times.append(now)
        headers = self._limit_headers(now)
        u = _uniform(cfg.seed, key, n, "transport")
        lo, hi = cfg.latency_ms
        delay = (lo + (hi - lo) * _uniform(cfg.seed, key, n, "latency")) / 1000.0
        if u < cfg.timeout_rate:
            self._record(now, key, "hang", "timeout", messages, max_tokens)
            return _Reply(0, hang=True)
        u -= cfg.timeout_rate
        if n < cfg.error_first or u < cfg.error_rate:
            statuses = cfg.error_statuses
            status = statuses[int(_uniform(cfg.seed, key, n, "status") * len(statuses))]
            if status == 503 and cfg.retry_after_s is not None:
                headers = {**headers, "retry-after": str(max(1, math.ceil(cfg.retry_after_s))),
                           "retry-after-ms": str(math.ceil(cfg.retry_after_s * 1000))}
            self._record(now, key, str(status), "5xx", messages, max_tokens)
            reply = _error(status, "The server had an error while processing your request.", "server_error",
                           "server_error", **headers)
            reply.delay = delay
            return reply
        u -= cfg.error_rate
        if u < cfg.disconnect_rate:
            self._record(now, key, "disconnect", "disconnect", messages, max_tokens)
            return _Reply(0, disconnect=True, delay=delay)
        self.tokens_total += prompt_tokens + completion_tokens
        self._record(now, key, "200", fault, messages, max_tokens)
        body_out = {
            "id": f"chatcmpl-{key}-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }
        return _Reply(200, body_out, headers, delay=delay)

    def _limit_headers(self, now: float) -> dict[str, str]:
        return self.limits.headers(self.cfg, now) if self.cfg.ratelimit_headers else {}

    def _content(self, req: dict[str, Any], messages: list[dict[str, Any]], key: str, n: int
                 ) -> tuple[str, str, str | None]:
        cfg = self.cfg
        text = None
        for m in messages:
            if m.get("role") == "user" and isinstance(m.get("content"), str):
                text = find_block("RESPONSE", m["content"])
                if text is None:
                    text = m["content"]
                break
        score = reference_fluency(text or "")
        fmt = req.get("response_format") or {}
        planted = reply_for(req, messages, key, cfg.behaviour)
        if planted is not None:
            content = planted if isinstance(planted, str) else json.dumps(planted)
        elif fmt.get("type") == "json_schema":
            schema = (fmt.get("json_schema") or {}).get("schema") or {}
            content = json.dumps(_fill_schema(schema, score))
        elif fmt.get("type") == "json_object":
            content = json.dumps({"score": score})
        else:
            content = f"score: {score}"
        u = _uniform(cfg.seed, key, n, "content")
        if n < cfg.malformed_first or u < cfg.malformed_rate:
            variants = (content[: max(1, len(content) // 2)], '{"score": "excellent"}', "Sure! Here is my rating: 4")
            return variants[int(_uniform(cfg.seed, key, n, "variant") * 3)], "stop", "malformed"
        if n < cfg.length_first or cfg.malformed_rate <= u < cfg.malformed_rate + cfg.length_rate:
            return content[: max(1, len(content) // 3)], "length", "length"
        return content, "stop", None

    def stats(self) -> dict[str, Any]:
        return {
            "requests": sum(self.by_status.values()),
            "by_status": dict(self.by_status),
            "rate_limited": self.by_status.get("429", 0),
            "ok": self.by_status.get("200", 0),
            "max_in_any_1s": _max_in_window(self.accepted_times, 1.0),
            "max_in_any_60s": _max_in_window(self.accepted_times, 60.0),
            "first_accepted": self.accepted_times[0] if self.accepted_times else None,
            "last_accepted": self.accepted_times[-1] if self.accepted_times else None,
            "tokens": self.tokens_total,
            "connections": self.connections,
            "seen_per_key": dict(self.seen),
            "ok_per_key": dict(self.ok_per_key),
        }


def _max_in_window(times: list[float], length: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - length:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}


class LLMTestServer:
    """The HTTP front: a small asyncio HTTP/1.1 server (keep-alive) run in a background thread."""

    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or ServerConfig()
        self.logic = ChatLogic(self.config)
        self.host, self.port = host, port
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "LLMTestServer":
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._serve, self.host, self.port, backlog=1024))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            self._server.close()
            pending = asyncio.all_tasks(self._loop)  # hung or slow replies still sleeping
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="llm-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "LLMTestServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        self.start()
        assert self._thread is not None
        self._thread.join()

    # -- in-process access to what /_stats, /_reset and /_config offer ----------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return self.logic.stats()

    def reset(self) -> None:
        with self._lock:
            self.logic.reset()

    def configure(self, **changes: Any) -> None:
        with self._lock:
            for k, v in changes.items():
                if not hasattr(self.config, k):
                    raise AttributeError(f"unknown server config field {k!r}")
                setattr(self.config, k, tuple(v) if isinstance(v, list) else v)
            self.logic.limits = _Limits(self.config)

    # -- HTTP ------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = True
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                if first and path.startswith("/v1/"):
                    with self._lock:
                        self.logic.connections += 1
                first = False
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                reply = self._route(method, path.split("?", 1)[0], headers, body)
                if reply.hang:
                    # Past the client's timeout; the client gives up and closes, we just stop.
                    await asyncio.sleep(self.config.hang_s)
                    return
                if reply.delay > 0:
                    await asyncio.sleep(reply.delay)
                if reply.disconnect:
                    return
                payload = json.dumps(reply.body).encode()
                out = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}",
                       "content-type: application/json", f"content-length: {len(payload)}"]
                out += [f"{k}: {v}" for k, v in reply.headers.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            writer.close()

    def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        now = time.time()
        with self._lock:
            if method == "POST" and path == "/v1/chat/completions":
                return self.logic.handle(now, headers.get("authorization"), body)
            if method == "GET" and path == "/v1/models":
                if headers.get("authorization") != f"Bearer {self.config.api_key}":
                    return _error(401, "Incorrect API key provided.", "invalid_api_key")
                data = [{"id": m, "object": "model", "created": 0, "owned_by": "profile-dist"}
                        for m in self.config.models]
                return _Reply(200, {"object": "list", "data": data})
            if method == "GET" and path == "/_stats":
                return _Reply(200, self.logic.stats())
            if method == "GET" and path == "/_log":
                return _Reply(200, {"log": self.logic.log})
            if method == "POST" and path == "/_reset":
                self.logic.reset()
                return _Reply(200, {"ok": True})
        if method == "POST" and path == "/_config":
            try:
                self.configure(**json.loads(body or b"{}"))
            except (AttributeError, ValueError) as exc:
                return _error(400, str(exc), "bad_config")
            return _Reply(200, {"ok": True, "config": dataclasses.asdict(self.config)})
        return _error(404, f"no route for {method} {path}", "not_found")


class ServerProcess:
    """The server as a child process (what tests and benchmarks use: its own CPU, its own GIL), driven over
    HTTP. ``ServerProcess(["--rpm", "600"])`` starts it on a free loopback port and waits until it listens."""

    def __init__(self, args: list[str] | None = None, host: str = "127.0.0.1") -> None:
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "profile_dist.testing.llm_server", "--host", host, "--port", "0", *(args or [])]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError(f"llm test server did not start: {line!r}")
        self.base_url = line.split()[-1]
        self.root = self.base_url.removesuffix("/v1")

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        import urllib.request

        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(self.root + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.load(resp)

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/_stats")

    def log(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_log")["log"]

    def reset(self) -> None:
        self._call("POST", "/_reset", {})

    def configure(self, **changes: Any) -> None:
        self._call("POST", "/_config", changes)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> tuple[ServerConfig, str, int]:
    p = argparse.ArgumentParser(prog="python -m profile_dist.testing.llm_server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--api-key", default="test-key")
    p.add_argument("--model", action="append", dest="models", help="repeatable; default test-judge")
    p.add_argument("--rpm", type=int)
    p.add_argument("--tpm", type=int)
    p.add_argument("--no-quantize", action="store_true", help="enforce the per-minute window only")
    p.add_argument("--latency-ms", type=float, nargs=2, default=(0.0, 0.0), metavar=("MIN", "MAX"))
    for name in ("error-rate", "timeout-rate", "rate-limited-rate", "disconnect-rate", "malformed-rate", "length-rate"):
        p.add_argument(f"--{name}", type=float, default=0.0)
    for name in ("malformed-first", "length-first", "error-first"):
        p.add_argument(f"--{name}", type=int, default=0)
    p.add_argument("--error-statuses", type=int, nargs="+", default=[500, 502, 503])
    p.add_argument("--retry-after-s", type=float, help="Retry-After of injected 503s and 429s")
    p.add_argument("--no-ratelimit-headers", action="store_true")
    p.add_argument("--hang-s", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-json-schema", action="store_true")
    p.add_argument("--max-context-tokens", type=int)
    p.add_argument("--behaviour", action="append", default=[], metavar="KEY=VALUE",
                   help="parameter of the simulated models (profile_dist.testing.behaviours); repeatable; VALUE is JSON")
    a = p.parse_args(argv)
    cfg = ServerConfig(api_key=a.api_key, models=tuple(a.models or ("test-judge",)), rpm=a.rpm, tpm=a.tpm,
                       quantize=not a.no_quantize, latency_ms=tuple(a.latency_ms), error_rate=a.error_rate,
                       timeout_rate=a.timeout_rate, rate_limited_rate=a.rate_limited_rate, disconnect_rate=a.disconnect_rate,
                       malformed_rate=a.malformed_rate, malformed_first=a.malformed_first,
                       length_rate=a.length_rate, length_first=a.length_first, error_first=a.error_first,
                       error_statuses=tuple(a.error_statuses), retry_after_s=a.retry_after_s,
                       ratelimit_headers=not a.no_ratelimit_headers, hang_s=a.hang_s, seed=a.seed,
                       json_schema=not a.no_json_schema, max_context_tokens=a.max_context_tokens,
                       behaviour=dict(_parse_behaviour(item) for item in a.behaviour))
    return cfg, a.host, a.port


def _parse_behaviour(item: str) -> tuple[str, Any]:
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> None:
    cfg, host, port = _parse_args(argv)
    server = LLMTestServer(cfg, host, port).start()
    print(f"listening on {server.base_url}", flush=True)
    try:
        assert server._thread is not None
        server._thread.join()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
