"""Async worker actors: many requests in flight each, one retry loop, structured replies.

A worker (``LLMWorker``, one Ray actor process) takes a batch of requests and streams their results back
as they finish (a Ray streaming generator yielding lists, coalescing what finished together). Each request:

1. waits for an in-flight slot (``max_concurrency`` split over the workers) and a send slot from the
   shared limiter (:class:`~profile_dist.llm.limiter.Pacer`);
2. is sent with the ``openai`` async client, with the SDK's own retries off (``max_retries=0``), so every
   429 reaches the limiter and there is one retry loop: tenacity, exponential backoff with jitter,
   honouring Retry-After, for 429, 408/409, 5xx, timeouts and dropped connections (``max_attempts`` per
   call). CPU matters at a thousand requests a second, so the client uses the SDK's aiohttp transport and
   its generic ``post`` to ``/chat/completions`` with the JSON body and reply as plain dicts: the same
   auth, URL handling, timeouts and typed errors (RateLimitError, AuthenticationError, ...), without the
   typed-params transform and pydantic reply models, which cost 2.8 ms of CPU per call against 1.1 ms;
3. 401/403/404 are fatal for the endpoint: the worker stops sending and the engine stops the job, with a
   message naming the endpoint (the key is scrubbed from anything the server echoed); other 4xx fail the row;
4. the reply is validated against the schema and re-asked with the error up to ``max_reasks`` times
   (see :mod:`profile_dist.llm.structured`).

A row's failure is a result with a reason and the raw text, never an exception that takes down its batch.

Results travel back in coalesced lists: a Ray generator item costs about 2.4 ms of CPU between worker and
driver, more than the HTTP call itself. A worker on the driver's node first appends each reply to the
cache directory itself (its own segment, the moment the reply arrives), so it can hold results back for up
to ``flush_s`` without risking them; a worker on another node cannot reach that directory, and yields each
reply at once for the driver to store.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx2
import openai
import ray
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from profile_dist.llm import structured
from profile_dist.llm.cache import ReplyCache
from profile_dist.llm.endpoints import Endpoint
from profile_dist.llm.limiter import Pacer, Slot, parse_duration
from profile_dist.llm.request import reply_record
from profile_dist.llm.tokens import TokenEstimator

_FLUSH = object()  # queue sentinel: time to send what is held back

class Secret:
    """Keeps a value out of reprs, logs and Ray's task descriptions."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"


class _ModeSwitch(Exception):
    """The server rejected json_schema; resend at once in JSON mode."""


class _Aborted(Exception):
    """The endpoint failed fatally in another request of this worker: send nothing more."""


class _BadBody(Exception):
    """A 200 whose body is not a chat completion (a proxy's error page, a cut connection): transient."""


@dataclass
class _Tally:
    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    reasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


def _retry_after(headers: Any) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    return parse_duration(headers.get("retry-after"))


def _observation(headers: Any) -> tuple | None:
    if headers is None or "x-ratelimit-remaining-requests" not in headers and \
            "x-ratelimit-remaining-tokens" not in headers:
        return None

    def num(name: str) -> float | None:
        try:
            return float(headers.get(name))
        except (TypeError, ValueError):
            return None

    return (num("x-ratelimit-remaining-requests"), parse_duration(headers.get("x-ratelimit-reset-requests")),
            num("x-ratelimit-remaining-tokens"), parse_duration(headers.get("x-ratelimit-reset-tokens")))


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError, _ModeSwitch, _BadBody)):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


_WARM_REPLY = {"id": "warm", "object": "chat.completion", "created": 0, "model": "warm",
               "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                            "message": {"role": "assistant", "content": "{}", "refusal": None}}],
               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


async def _warm_up_sdk() -> None:
    transport = httpx2.MockTransport(lambda request: httpx2.Response(200, json=_WARM_REPLY))
    client = openai.AsyncOpenAI(api_key="warm-up", base_url="http://warm-up.invalid/v1", max_retries=0,
                                http_client=httpx2.AsyncClient(transport=transport))
    try:
        await _post_chat(client, {"model": "warm", "messages": [{"role": "user", "content": "."}], "max_tokens": 1})
    finally:
        await client.close()


async def _post_chat(client: openai.AsyncOpenAI, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """(reply as a dict, headers) of one chat completion; status errors raise the SDK's typed errors."""
    response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response)
    try:
        reply = json.loads(response.content)
        reply["choices"]  # noqa: B018 - the shape check
    except (ValueError, KeyError, TypeError) as exc:
        raise _BadBody(f"HTTP {response.status_code} with a body that is not a chat completion: "
                       f"{response.content[:200]!r}") from exc
    return reply, response.headers


class WorkerCore:
    """The worker's logic, independent of Ray (the actor below is a thin shell around it)."""

    def __init__(self, endpoint: Endpoint, api_key: Secret, worker_id: str, limiter: Any | None,
                 in_flight: int, cache_dir: str | None = None, flush_s: float = 1.0, flush_max: int = 256) -> None:
        self.ep = endpoint
        self.cache = ReplyCache(cache_dir, load=False) if cache_dir is not None else None
        self.flush_s = flush_s
        self.flush_max = flush_max
        self._key = api_key
        self.worker_id = worker_id
        self.in_flight = in_flight
        # Half the headroom absorbs a late wake-up, half the jitter between sending and the provider's clock.
        self.pacer = Pacer(limiter, worker_id, late_tolerance_s=endpoint.headroom / 2) \
            if limiter is not None else None
        params = dict(endpoint.params)
        self.estimator = TokenEstimator(endpoint.model, params.get("max_tokens") or params.get("max_completion_tokens"))
        self.mode = "json_object" if endpoint.structured == "json_object" else "json_schema"
        self.fatal: str | None = None
        self._client: openai.AsyncOpenAI | None = None
        self._sem: asyncio.Semaphore | None = None

    def _start(self) -> None:
        if self._client is None:
            # Created inside the running loop: aiohttp binds its session to it.
            self._client = openai.AsyncOpenAI(
                api_key=self._key.reveal(), base_url=self.ep.base_url, max_retries=0, timeout=self.ep.timeout_s,
                http_client=openai.DefaultAioHttpClient(timeout=self.ep.timeout_s))
            self._sem = asyncio.Semaphore(self.in_flight)

    async def start(self) -> str | None:
        """Warm up and check the key; returns the fatal message if the endpoint refuses it.

        The SDK builds its request and reply models lazily, which makes a worker's first call 80-300 ms
        slower than the rest; sent on a paced slot that late, it would crowd its successors into one
        provider window. So one call runs first against an in-memory transport, and ``GET /models`` (free,
        not counted against chat limits) opens the connection and catches a bad key before any paid call.
        """
        self._start()
        await _warm_up_sdk()
        assert self._client is not None
        try:
            await self._client.models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                self.fatal = self._fatal_message(exc)
        except openai.APIError:
            pass  # no /models on this server, or it is slow: the first real call will tell
        return self.fatal

    async def close(self) -> None:
        if self.pacer is not None:
            self.pacer.flush()
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self.cache is not None:
            self.cache.close()

    def pause(self, seconds: float) -> None:
        if self.pacer is not None:
            self.pacer.pause(seconds)

    async def process(self, batch: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
        """Results of ``batch`` in completion order, in lists of whatever finished together (held back up to
        ``flush_s`` when this worker stores replies itself)."""
        self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Queue[Any] = asyncio.Queue()
        tasks = [asyncio.ensure_future(self._run(req, done)) for req in batch]
        held: list[dict[str, Any]] = []
        timer: asyncio.TimerHandle | None = None
        try:
            remaining = len(tasks)
            while remaining:
                items = [await done.get()]
                while not done.empty():
                    items.append(done.get_nowait())
                flush = False
                for item in items:
                    if item is _FLUSH:
                        flush, timer = True, None
                        continue
                    remaining -= 1
                    held.append(self._store(item))
                    flush = flush or bool(item.get("fatal"))
                if self.cache is None or flush or remaining == 0 or len(held) >= self.flush_max:
                    if held:
                        yield held
                        held = []
                    if timer is not None:
                        timer.cancel()
                        timer = None
                elif held and timer is None:
                    timer = loop.call_later(self.flush_s, done.put_nowait, _FLUSH)
        finally:
            if timer is not None:
                timer.cancel()
            for t in tasks:
                t.cancel()

    def _store(self, result: dict[str, Any]) -> dict[str, Any]:
        """Persist a cacheable reply here and now when this worker keeps the cache."""
        if self.cache is not None and result.get("cacheable"):
            cost = self.ep.price_per_1k.cost(result["input_tokens"], result["output_tokens"])
            self.cache.put(result["key"], reply_record(result["value"], result["error"], result["raw"],
                                                       result["input_tokens"], result["output_tokens"], cost,
                                                       result["finish"]))
            result["persisted"] = True
        return result

    async def _run(self, req: dict[str, Any], done: asyncio.Queue) -> None:
        assert self._sem is not None
        tally = _Tally()
        try:
            async with self._sem:
                result = await self._annotate(req, tally)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must fail one row, not the batch
            result = self._failure(req, tally, "internal", f"{type(exc).__name__}: {self._scrub(str(exc))}", None)
        done.put_nowait(result)

    # -- one request: re-asks around transport retries ---------------------------------------------
    async def _annotate(self, req: dict[str, Any], tally: _Tally) -> dict[str, Any]:
        messages = list(req["messages"])
        schema = req.get("schema")
        last_error, last_raw = "", None
        for ask in range(self.ep.max_reasks + 1):
            if ask:
                tally.reasks += 1
            try:
                completion = await self._call(messages, req, tally)
            except _Aborted:
                return self._fatal_result(req, tally)
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403, 404):
                    self.fatal = self.fatal or self._fatal_message(exc)
                    return self._fatal_result(req, tally)
                if _transient(exc):
                    return self._failure(req, tally, "transport", self._describe(exc), None)
                return self._failure(req, tally, "bad_request", self._describe(exc), None, cacheable=True)
            except (openai.APIConnectionError, openai.APIResponseValidationError, _BadBody) as exc:
                return self._failure(req, tally, "transport", self._describe(exc), None)
            choice = completion["choices"][0] if completion["choices"] else None
            if not isinstance(choice, dict):
                last_error, last_raw = "the reply has no choices", None
                messages = structured.reask_messages(messages, "", last_error)
                continue
            message = choice.get("message") or {}
            text = message.get("content")
            finish = choice.get("finish_reason")
            refusal = message.get("refusal")
            if refusal:
                return self._failure(req, tally, "refusal", self._scrub(refusal), text, finish, cacheable=True)
            if finish == "length":
                return self._failure(req, tally, "length", "the reply hit the token limit (finish_reason=length)",
                                     text, finish, cacheable=True)
            if finish == "content_filter":
                return self._failure(req, tally, "content_filter", "the provider filtered the reply", text, finish,
                                     cacheable=True)
            value, error = structured.validate_reply(text, schema)
            if error is None:
                return {"i": req["i"], "key": req.get("key"), "value": value, "error": None, "raw": text,
                        "finish": finish, "cacheable": True, **tally.__dict__}
            last_error, last_raw = error, text
            messages = structured.reask_messages(messages, text or "", error)
        return self._failure(req, tally, "invalid_reply", f"{last_error} (after {self.ep.max_reasks} re-asks)",
                             last_raw, "stop", cacheable=True)

    async def _call(self, messages: list[dict[str, str]], req: dict[str, Any], tally: _Tally) -> Any:
        # The first attempt is a plain call: tenacity's per-attempt bookkeeping costs a third of a
        # millisecond of CPU, which matters at a thousand requests a second and buys nothing until a
        # transient failure. From then on tenacity drives the retries.
        try:
            return await self._send(messages, req, tally)
        except Exception as exc:
            if not _transient(exc) or self.ep.max_attempts <= 1:
                raise
            await asyncio.sleep(self._delay(exc, 1))

        def wait(state: Any) -> float:
            return self._delay(state.outcome.exception(), state.attempt_number + 1)

        retrying = AsyncRetrying(stop=stop_after_attempt(self.ep.max_attempts - 1), wait=wait,
                                 retry=retry_if_exception(_transient), reraise=True)
        async for attempt in retrying:
            with attempt:
                tally.retries += 1
                return await self._send(messages, req, tally)

    def _delay(self, exc: BaseException | None, attempt: int) -> float:
        """Seconds before the next attempt after ``attempt`` failed attempts: Retry-After when the provider
        gave one (plus up to 10% jitter against a herd), else exponential backoff with full jitter."""
        if isinstance(exc, _ModeSwitch):
            return 0.0
        after = getattr(exc, "retry_after", None)
        if after is not None:
            return after * (1.0 + 0.1 * random.random())
        return random.uniform(0, min(self.ep.backoff_max_s, self.ep.backoff_base_s * 2 ** attempt))

    async def _send(self, messages: list[dict[str, str]], req: dict[str, Any], tally: _Tally) -> Any:
        assert self._client is not None
        schema = req.get("schema")
        mode = self.mode
        sent = structured.json_mode_messages(messages, schema) if schema is not None and mode == "json_object" \
            else messages
        params = {**self.ep.params, **req.get("params", {})}
        raw_estimate = self.estimator.prompt_tokens(sent)
        slot: Slot | None = None
        if self.pacer is not None:
            cap = params.get("max_tokens") or params.get("max_completion_tokens")
            slot = await self.pacer.acquire(self.estimator.estimate(raw_estimate, cap))
        if self.fatal:
            if slot is not None:
                self.pacer.release(slot)  # type: ignore[union-attr]
            raise _Aborted()
        body: dict[str, Any] = {**params, "model": self.ep.model, "messages": sent}
        fmt = structured.response_format(mode, schema, req.get("name", "reply"))
        if fmt is not None:
            body["response_format"] = fmt
        tally.calls += 1
        try:
            reply, headers = await _post_chat(self._client, body)
        except openai.RateLimitError as exc:
            wait = _retry_after(exc.response.headers)
            tally.rate_limited += 1
            if slot is not None:
                self.pacer.penalize(slot, wait if wait is not None else 1.0)  # type: ignore[union-attr]
            exc.retry_after = wait  # type: ignore[attr-defined]
            raise
        except openai.APIStatusError as exc:
            if self.ep.structured == "auto" and mode == "json_schema" and \
                    structured.is_response_format_rejection(exc.status_code, str(exc.message)):
                self.mode = "json_object"
                if slot is not None:
                    self.pacer.release(slot)  # type: ignore[union-attr]
                raise _ModeSwitch() from exc
            raise
        usage = reply.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        tally.input_tokens += prompt_tokens
        tally.output_tokens += completion_tokens
        self.estimator.observe(raw_estimate, prompt_tokens, completion_tokens)
        if slot is not None:
            assert self.pacer is not None
            if usage:
                self.pacer.correct(slot, prompt_tokens + completion_tokens)
            obs = _observation(headers)
            if obs is not None:
                self.pacer.observe(obs)
        return reply

    # -- results -----------------------------------------------------------------------------------
    def _failure(self, req: dict[str, Any], tally: _Tally, reason: str, detail: str, raw: str | None,
                 finish: str | None = None, cacheable: bool = False) -> dict[str, Any]:
        return {"i": req["i"], "key": req.get("key"), "value": None, "error": f"{reason}: {detail}", "raw": raw,
                "finish": finish, "cacheable": cacheable, **tally.__dict__}

    def _fatal_result(self, req: dict[str, Any], tally: _Tally) -> dict[str, Any]:
        out = self._failure(req, tally, "fatal", self.fatal or "endpoint failed", None)
        out["fatal"] = self.fatal
        return out

    def _scrub(self, text: str) -> str:
        key = self._key.reveal()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    def _describe(self, exc: Exception) -> str:
        status = getattr(exc, "status_code", None)
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        prefix = f"HTTP {status}" if status else type(exc).__name__
        return f"{prefix}: {self._scrub(str(message))[:300]}"

    def _fatal_message(self, exc: openai.APIStatusError) -> str:
        what = {401: f"authentication failed: the key in ${self.ep.api_key_env} was rejected",
                403: "permission denied for this key",
                404: f"not found: unknown model {self.ep.model!r} or wrong base_url"}[exc.status_code]
        return f"{self.ep.describe()}: {what} (HTTP {exc.status_code}; server said: " \
               f"{self._scrub(str(exc.message))[:200]})"


@ray.remote(num_cpus=0)
class LLMWorker:
    """Ray shell of :class:`WorkerCore` (async actor: all calls share one event loop)."""

    def __init__(self, endpoint: Endpoint, api_key: Secret, worker_id: str, limiter: Any | None,
                 in_flight: int, cache_dir: str | None = None, driver_node: str | None = None) -> None:
        # The cache directory is the driver's: only a worker on the same node can append to it.
        same_node = driver_node is not None and ray.get_runtime_context().get_node_id() == driver_node
        self.core = WorkerCore(endpoint, api_key, worker_id, limiter, in_flight,
                               cache_dir=cache_dir if same_node else None)
        if limiter is not None:
            limiter.register.remote(worker_id, ray.get_runtime_context().current_actor)

    async def ready(self) -> str | None:
        """None when warmed up and the key is accepted, else the fatal message."""
        return await self.core.start()

    async def process(self, batch: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
        async for out in self.core.process(batch):
            yield out

    async def pause(self, seconds: float) -> None:
        self.core.pause(seconds)

    async def stats(self) -> dict[str, float]:
        """Pacer counts (sent, late, voided) and this process's CPU seconds so far."""
        out: dict[str, float] = dict(self.core.pacer.stats) if self.core.pacer is not None else {}
        out["cpu_s"] = time.process_time()
        return out

    async def close(self) -> None:
        await self.core.close()
        if self.core.pacer is not None:
            self.core.pacer.limiter.unregister.remote(self.core.worker_id)
