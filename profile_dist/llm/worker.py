"""Async worker actors: many requests in flight each, one retry loop, structured replies.

A worker (``LLMWorker`` in :mod:`profile_dist.llm.actor`, one Ray actor process) takes a batch of requests and streams their results back
as they finish (a Ray streaming generator yielding lists, coalescing what finished together). Each request:

1. waits for a send slot from the shared limiter (:class:`~profile_dist.llm.limiter.Pacer`), then for an
   in-flight unit (``max_concurrency`` split over the workers): a unit is held only from the send to the
   reply, not while waiting for a slot or in a backoff, so at 500 requests/s the wait for slots does not
   eat into the requests in flight;
2. is sent on :class:`ChatWire` (aiohttp, with the ``openai`` client's headers and typed errors), with no
   retries below this one, so every 429 reaches the limiter and there is one retry loop
   (:meth:`WorkerCore._call`): exponential backoff with
   jitter, or the Retry-After the server gave (on a 429, a 503 or any other status), for 429, 408/409,
   5xx, stalls, timeouts and dropped connections. ``max_attempts`` bounds the failed attempts of a call;
   429s ("later", not "failed") have a budget of their own, ``_429_BUDGET`` x ``max_attempts``. A reply
   that does not come within the read timeout (:class:`LatencyTracker`: the endpoint's observed p99
   latency x ``read_timeout_factor``, at least ``read_timeout_floor_s``; ``timeout_s`` until enough replies
   were seen) is abandoned and asked again, with twice the timeout for that request;
3. 401/403/404 are fatal for the endpoint: the worker stops sending and the engine stops the job, with a
   message naming the endpoint (the key is scrubbed from anything the server echoed); other 4xx fail the row;
4. the reply is validated against the schema and re-asked with the error up to ``max_reasks`` times
   (see :mod:`profile_dist.llm.structured`); a truncated reply (``finish_reason=length``) is asked again
   once with twice its ``max_tokens`` when the request sets one (else the model's own cap cut it, and
   asking again would be cut again).
5. on a 429 the slot goes back to the limiter with what the reply says about the cause: headers reporting
   nothing left (``x-ratelimit-remaining-*`` of 0) are conclusive; otherwise the limiter judges from how the
   429s fall on the shared schedule whether they are a limit or noise (:mod:`profile_dist.llm.limiter`).

A row's failure is a result with a reason and the raw text, never an exception that takes down its batch.

Results travel back in coalesced lists: a Ray generator item costs about 2.4 ms of CPU between worker and
driver, more than the HTTP call itself. A worker on the driver's node first appends each reply to the
cache directory itself (its own segment, the moment the reply arrives), so it can hold results back for up
to ``flush_s`` without risking them; a worker on another node cannot reach that directory, and yields each
reply at once for the driver to store. With an object-store cache, which the driver writes in batches
anyway, every worker holds its results back the same way.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
import httpx2
import openai

from profile_dist.llm import structured
from profile_dist.llm.cache import ReplyCache
from profile_dist.llm.endpoints import Endpoint, Secret
from profile_dist.llm.limiter import Pacer, Slot, parse_duration
from profile_dist.llm.request import is_final, reply_record
from profile_dist.llm.tokens import TokenEstimator

_FLUSH = object()  # queue sentinel: time to send what is held back

class _ModeSwitch(Exception):
    """The server rejected json_schema; resend at once in JSON mode."""


class _Aborted(Exception):
    """The endpoint failed fatally in another request of this worker: send nothing more."""


class _BadBody(Exception):
    """A 200 whose body is not a chat completion (a proxy's error page, a cut connection): transient."""


class _Stalled(Exception):
    """No reply within the read timeout: abandoned, asked again (transient)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"no reply within {timeout_s:.1f} s (read timeout); abandoned")
        self.timeout_s = timeout_s


#: 429s a call may meet, per ``max_attempts``: they say "later", not "failed", so they do not use up the
#: attempts; this bounds a provider that never lets a request through.
_429_BUDGET = 4
#: Token-cap parameters, in the order they are looked up.
_CAP_KEYS = ("max_tokens", "max_completion_tokens")


def raised_cap(params: dict[str, Any]) -> dict[str, Any] | None:
    """``params`` with twice its token cap (for one re-ask after a truncated reply); None without a cap."""
    for key in _CAP_KEYS:
        cap = params.get(key)
        if cap:
            return {**params, key: int(cap) * 2}
    return None


class LatencyTracker:
    """The read timeout of the next request, from the latencies of the replies seen so far.

    ``quantile`` (p99) of the last ``size`` latencies (nearest rank), x ``factor``, at least ``floor_s`` and at
    most ``default_s``; ``default_s`` until ``min_samples`` replies were seen, or when ``factor`` is None.
    A healthy reply rarely takes 4 x the p99 of its peers, while a stalled one would hold its in-flight slot
    for the whole default timeout (30 s or more): abandoning it after seconds and asking again costs one
    duplicate call at worst. Recomputed every ``every`` observations (a sort of ``size`` floats).
    """

    def __init__(self, default_s: float, factor: float | None, floor_s: float, quantile: float = 0.99,
                 min_samples: int = 20, size: int = 512, every: int = 16) -> None:
        self.default_s, self.factor, self.floor_s = default_s, factor, floor_s
        self.quantile, self.min_samples, self.every = quantile, min_samples, every
        self._recent: collections.deque[float] = collections.deque(maxlen=size)
        self._since = 0
        self._timeout = default_s

    def observe(self, seconds: float) -> bool:
        """Record a reply's latency; True when the timeout was recomputed and went down."""
        self._recent.append(seconds)
        self._since += 1
        if self.factor and len(self._recent) >= self.min_samples and (
                self._since >= self.every or len(self._recent) == self.min_samples):
            self._since = 0
            before = self._timeout
            self._timeout = min(self.default_s, max(self.floor_s, self.percentile() * self.factor))
            return self._timeout < before
        return False

    def percentile(self) -> float:
        ordered = sorted(self._recent)
        return ordered[max(0, math.ceil(self.quantile * len(ordered)) - 1)]

    def timeout(self) -> float:
        return self._timeout


@dataclass
class _Tally:
    calls: int = 0
    rate_limited: int = 0
    retries: int = 0
    reasks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    slots_in_flight_full: int = 0  # send slots given back because the in-flight limit was full when they came


def _retry_after(headers: Any) -> float | None:
    """Seconds a server asked to wait (``retry-after-ms``, else ``retry-after``), capped at 10 minutes."""
    after = _raw_retry_after(headers)
    return None if after is None else max(0.0, min(after, 600.0))


def _raw_retry_after(headers: Any) -> float | None:
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
            num("x-ratelimit-remaining-tokens"), parse_duration(headers.get("x-ratelimit-reset-tokens")),
            num("x-ratelimit-limit-requests"), num("x-ratelimit-limit-tokens"))


def exhausted(headers: Any) -> bool:
    """True when a 429's headers say a quota is used up (conclusive evidence of a limit)."""
    obs = _observation(headers)
    return obs is not None and any(v is not None and v <= 0 for v in (obs[0], obs[2]))


def _told_wait(exc: BaseException) -> float | None:
    """Seconds the server asked to wait before the next attempt (its Retry-After, on any status, plus up to
    10% jitter against a herd); 0 after a switch to JSON mode; None when it said nothing."""
    if isinstance(exc, _ModeSwitch):
        return 0.0
    response = getattr(exc, "response", None)
    after = _retry_after(response.headers) if isinstance(exc, openai.APIStatusError) and response is not None \
        else None
    return None if after is None else after * (1.0 + 0.1 * random.random())


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError, _ModeSwitch, _BadBody,
                        _Stalled)):
        return True  # APITimeoutError is an APIConnectionError
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


#: The SDK's typed error for each status (as its own client picks them); >= 500 InternalServerError, else
#: APIStatusError.
_STATUS_ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError, 401: openai.AuthenticationError, 403: openai.PermissionDeniedError,
    404: openai.NotFoundError, 409: openai.ConflictError, 422: openai.UnprocessableEntityError,
    429: openai.RateLimitError}


def status_error(status: int, headers: Any, content: bytes, request: httpx2.Request) -> openai.APIStatusError:
    """The SDK's typed error for an HTTP error reply, as its own client makes it (class, message, body): what
    the retry loop and the fatal check read."""
    text = content.decode("utf-8", "replace").strip()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    data = body.get("error", body) if isinstance(body, dict) else body
    message = data.get("message") if isinstance(data, dict) else None
    cls = _STATUS_ERRORS.get(status) or (openai.InternalServerError if status >= 500 else openai.APIStatusError)
    response = httpx2.Response(status, headers=list(headers.items()), content=content, request=request)
    return cls(f"Error code: {status}" + (f" - {message}" if isinstance(message, str) and message else ""),
               response=response, body=data)


class ChatWire:
    """The worker's HTTP: one aiohttp session (a connection per request in flight, kept alive), with the
    headers (auth, organization, project) and base URL of the ``openai`` client and its typed errors.

    CPU matters at hundreds of requests a second: the SDK's generic ``post`` wraps every call in httpx2
    request, URL and header models around the same aiohttp transport, 0.6 ms of CPU per call against
    0.15 ms for the aiohttp call itself (loopback, 64 in flight). The reply is a plain dict.
    """

    def __init__(self, client: openai.AsyncOpenAI, connections: int, timeout_s: float) -> None:
        base = str(client.base_url)  # the SDK ends it with "/"
        self.chat_url, self.models_url = base + "chat/completions", base + "models"
        self.headers = {k: v for k, v in {**client.default_headers, **client.auth_headers}.items()
                        if isinstance(v, str)}  # unset organization/project are the SDK's Omit markers
        # Created inside the running loop: aiohttp binds its session to it.
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, ssl=httpx2.create_ssl_context()),
            timeout=aiohttp.ClientTimeout(total=timeout_s))

    async def request(self, method: str, url: str, body: bytes | None = None) -> tuple[bytes, Any]:
        """(body, headers) of a 2xx reply; a status error raises the SDK's typed error, a dropped or refused
        connection ``APIConnectionError`` (``APITimeoutError`` past ``timeout_s``), as from the SDK."""
        try:
            async with self.session.request(method, url, data=body, headers=self.headers) as response:
                content = await response.read()
        except TimeoutError:
            raise openai.APITimeoutError(httpx2.Request(method, url)) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise openai.APIConnectionError(message=f"Connection error: {type(exc).__name__}: {exc}",
                                            request=httpx2.Request(method, url)) from exc
        if response.status >= 400:
            raise status_error(response.status, response.headers, content, httpx2.Request(method, url))
        return content, response.headers

    async def chat(self, body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        """(reply as a dict, headers) of one chat completion."""
        content, headers = await self.request("POST", self.chat_url, json.dumps(body).encode())
        try:
            reply = json.loads(content)
            reply["choices"]  # noqa: B018 - the shape check
        except (ValueError, KeyError, TypeError) as exc:
            raise _BadBody(f"a 2xx reply whose body is not a chat completion: {content[:200]!r}") from exc
        return reply, headers

    async def close(self) -> None:
        await self.session.close()


class WorkerCore:
    """The worker's logic, independent of Ray (the actor below is a thin shell around it)."""

    def __init__(self, endpoint: Endpoint, api_key: Secret, worker_id: str, limiter: Any | None,
                 in_flight: int, cache_dir: str | None = None, flush_s: float = 1.0, flush_max: int = 256,
                 hold: bool = False) -> None:
        self.ep = endpoint
        self.cache = ReplyCache(cache_dir, load=False) if cache_dir is not None else None
        #: Hold results back up to flush_s (fewer Ray items) also without a cache here: the driver's cache is
        #: itself written in batches (an object store), so yielding at once would make nothing safer.
        self.hold = hold or self.cache is not None
        self.latency = LatencyTracker(endpoint.timeout_s, endpoint.read_timeout_factor, endpoint.read_timeout_floor_s)
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
        self._wire: ChatWire | None = None
        self._sem: asyncio.Semaphore | None = None
        self._admit: asyncio.Semaphore | None = None
        self._open: set[tuple[Any, float, float]] = set()  # (deadline, sent at, scale) of requests in flight

    @property
    def sending(self) -> int:
        """Requests holding an in-flight unit: sent, reply not in (a request waiting for its slot holds none)."""
        return self.in_flight - self._sem._value if self._sem is not None else 0

    def _start(self) -> None:
        if self._wire is None:
            # The SDK client only lends the wire its headers, URL handling and timeouts; it sends nothing.
            client = openai.AsyncOpenAI(api_key=self._key.reveal(), base_url=self.ep.base_url, max_retries=0,
                                        timeout=self.ep.timeout_s)
            self._wire = ChatWire(client, self.in_flight, self.ep.timeout_s)
            # In flight at the provider (sent, reply not in); a request waiting for its send slot or in a
            # retry's backoff holds none, so at high rates the wait for slots does not eat the limit.
            self._sem = asyncio.Semaphore(self.in_flight)
            self._admit = asyncio.Semaphore(self.in_flight)  # requests waiting for a send slot

    async def start(self) -> str | None:
        """Open the connections and check the key; returns the fatal message if the endpoint refuses it.

        ``GET /models`` (free, not counted against chat limits) opens the first connection and catches a bad
        key before any paid call. Then the other in-flight connections are opened the same way, at once: a
        request that must open its connection reaches the provider later than its send slot by the handshake
        (a TLS handshake at a real provider; slow connects on loopback too), and the first second's sends, each
        on a new connection, would reach the provider's clock bunched, so that its 1 s window refuses the
        sends one window later. Opened now, they overlap the driver reading its input.
        """
        self._start()
        assert self._wire is not None
        try:
            await self._wire.request("GET", self._wire.models_url)
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                self.fatal = self._fatal_message(exc)
        except openai.APIError:
            pass  # no /models on this server, or it is slow: the first real call will tell
        if self.fatal is None and self.in_flight > 1:
            # As many at once as may be in flight: one reuses the key check's connection, the rest open theirs.
            warm = [self._wire.request("GET", self._wire.models_url) for _ in range(self.in_flight)]
            try:
                async with asyncio.timeout(self.ep.read_timeout_floor_s):  # a slow server: send cold instead
                    await asyncio.gather(*warm, return_exceptions=True)
            except TimeoutError:
                pass
        return self.fatal

    async def close(self) -> None:
        if self.pacer is not None:
            self.pacer.flush()
        if self._wire is not None:
            await self._wire.close()
            self._wire = None
        if self.cache is not None:
            self.cache.close()

    def pause(self, seconds: float) -> None:
        if self.pacer is not None:
            self.pacer.pause(seconds)

    async def process(self, batch: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
        """Results of ``batch`` in completion order, in lists of whatever finished together (held back up to
        ``flush_s`` when this worker stores replies itself or the driver's cache is batched)."""
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
                flush, before = False, remaining
                for item in items:
                    if item is _FLUSH:
                        flush, timer = True, None
                        continue
                    remaining -= 1
                    held.append(self._store(item))
                    flush = flush or bool(item.get("fatal"))
                # Half the batch answered: yield now, so the driver sends the next batch while this one's
                # slower half runs (held to the end, the in-flight slots would empty in every batch's tail).
                half = remaining <= len(tasks) // 2 < before
                if not self.hold or flush or half or remaining == 0 or len(held) >= self.flush_max:
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
        """Persist a final reply here and now when this worker keeps the cache."""
        if self.cache is not None and result.get("cacheable"):
            cost = self.ep.price_per_1k.cost(result["input_tokens"], result["output_tokens"])
            self.cache.put(result["key"], reply_record(result["value"], result["error"], result["raw"],
                                                       result["input_tokens"], result["output_tokens"], cost,
                                                       result["finish"]))
            result["persisted"] = True
        return result

    async def _run(self, req: dict[str, Any], done: asyncio.Queue) -> None:
        tally = _Tally()
        try:
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
        params = {**self.ep.params, **req.get("params", {})}
        reasks_left = self.ep.max_reasks
        cap_raised = False
        last_error, last_raw = "", None
        while True:
            try:
                completion = await self._call(messages, req, params, tally)
            except _Aborted:
                return self._fatal_result(req, tally)
            except openai.APIStatusError as exc:
                if exc.status_code in (401, 403, 404):
                    self.fatal = self.fatal or self._fatal_message(exc)
                    return self._fatal_result(req, tally)
                reason = "transport" if _transient(exc) else "bad_request"
                return self._failure(req, tally, reason, self._describe(exc), None)
            except (openai.APIConnectionError, openai.APIResponseValidationError, _BadBody, _Stalled) as exc:
                return self._failure(req, tally, "transport", self._describe(exc), None)
            choice = completion["choices"][0] if completion["choices"] else None
            if isinstance(choice, dict):
                message = choice.get("message") or {}
                text = message.get("content")
                finish = choice.get("finish_reason")
                refusal = message.get("refusal")
                if refusal:
                    return self._failure(req, tally, "refusal", self._scrub(refusal), text, finish)
                if finish == "length":
                    bigger = None if cap_raised else raised_cap(params)
                    if bigger is None:
                        what = "even with twice the token cap" if cap_raised else "and the request sets no cap to raise"
                        return self._failure(req, tally, "length",
                                             f"the reply hit the token limit (finish_reason=length) {what}", text, finish)
                    params, cap_raised = bigger, True  # once, with the same messages
                    tally.reasks += 1
                    continue
                if finish == "content_filter":
                    return self._failure(req, tally, "content_filter", "the provider filtered the reply", text, finish)
                value, error = structured.validate_reply(text, schema)
                if error is None:
                    return {"i": req["i"], "key": req.get("key"), "value": value, "error": None, "raw": text,
                            "finish": finish, "cacheable": True, **tally.__dict__}
                last_error, last_raw = error, text
            else:
                last_error, last_raw, text = "the reply has no choices", None, ""
            if reasks_left == 0:
                return self._failure(req, tally, "invalid_reply", f"{last_error} (after {self.ep.max_reasks} re-asks)",
                                     last_raw, "stop")
            reasks_left -= 1
            tally.reasks += 1
            messages = structured.reask_messages(messages, text or "", last_error)

    async def _call(self, messages: list[dict[str, str]], req: dict[str, Any], params: dict[str, Any],
                    tally: _Tally) -> Any:
        """One reply, retrying transient failures: ``max_attempts`` failed attempts at most, and 429s within a
        budget of their own. A stalled attempt's successor gets twice the read timeout (a slow but healthy
        reply must eventually fit)."""
        failed = limited = backoffs = 0
        scale = 1.0
        while True:
            try:
                return await self._send(messages, req, params, tally, scale)
            except Exception as exc:
                if not _transient(exc):
                    raise
                if isinstance(exc, openai.RateLimitError):
                    limited += 1
                elif not isinstance(exc, _ModeSwitch):
                    failed += 1
                if failed >= self.ep.max_attempts or limited >= _429_BUDGET * self.ep.max_attempts:
                    raise
                if isinstance(exc, _Stalled):
                    scale *= 2
                delay = _told_wait(exc)
                if delay is None:
                    backoffs += 1
                    delay = self._backoff(backoffs)
            tally.retries += 1
            if delay > 0:
                await asyncio.sleep(delay)

    def _backoff(self, n: int) -> float:
        """Seconds before the next attempt after the ``n``-th failure the server gave no wait for: exponential
        backoff with full jitter. Failures that came with a Retry-After (429s, 503s) waited what they were told
        and do not lengthen it: a 5xx after six such 429s is a first failure (a wait of up to 1 s), not a
        seventh (up to 30 s; under LLMock's ``full`` one request finished 18 s after all the others so)."""
        return random.uniform(0, min(self.ep.backoff_max_s, self.ep.backoff_base_s * 2 ** n))

    async def _send(self, messages: list[dict[str, str]], req: dict[str, Any], params: dict[str, Any],
                    tally: _Tally, scale: float = 1.0) -> Any:
        """One HTTP attempt: wait for a send slot, send, book what the reply used. It is abandoned (``_Stalled``)
        past ``scale`` x the read timeout."""
        schema = req.get("schema")
        mode = self.mode
        sent = self._as_sent(messages, schema, mode)
        raw_estimate = self.estimator.prompt_tokens(sent)
        slot = await self._wait_to_send(raw_estimate, params, tally)
        if mode != self.mode:  # another request found json_schema refused while this one waited
            mode = self.mode
            sent = self._as_sent(messages, schema, mode)
        body: dict[str, Any] = {**params, "model": self.ep.model, "messages": sent}
        fmt = structured.response_format(mode, schema, req.get("name", "reply"))
        if fmt is not None:
            body["response_format"] = fmt
        tally.calls += 1
        reply, headers = await self._transport(body, mode, slot, scale, tally)
        self._book(reply, headers, slot, raw_estimate, tally)
        return reply

    @staticmethod
    def _as_sent(messages: list[dict[str, str]], schema: dict[str, Any] | None, mode: str) -> list[dict[str, str]]:
        """The messages as sent in ``mode``: JSON mode carries the schema in the prompt."""
        return structured.json_mode_messages(messages, schema) if schema is not None and mode == "json_object" \
            else messages

    async def _wait_to_send(self, raw_estimate: int, params: dict[str, Any], tally: _Tally) -> Slot | None:
        """Wait for a send slot (with a limiter) and an in-flight unit; the caller then holds the unit."""
        slot: Slot | None = None
        assert self._sem is not None and self._admit is not None
        if self.pacer is not None:
            cap = params.get("max_tokens") or params.get("max_completion_tokens")
            given_back: collections.Counter[str] = collections.Counter()
            async with self._admit:  # the pacer never leases more slots than the in-flight limit can take
                slot = await self.pacer.acquire(self.estimator.estimate(raw_estimate, cap), gate=self._sem,
                                                given_back=given_back)
            tally.slots_in_flight_full += given_back["late_in_flight_full"]
        else:
            await self._sem.acquire()
        if self.fatal:  # the endpoint refused another request while this one waited: send nothing
            self._sem.release()
            if slot is not None:
                self.pacer.release(slot)  # type: ignore[union-attr]
            raise _Aborted()
        return slot

    async def _transport(self, body: dict[str, Any], mode: str, slot: Slot | None, scale: float,
                         tally: _Tally) -> tuple[dict[str, Any], Any]:
        """Send ``body`` and wait for the reply within the read timeout; gives back the in-flight unit. Requests
        in flight when the timeout goes down (the first replies of a run arrive) get the new one too, so a
        request that stalled before any latency was known does not wait out the configured default."""
        assert self._wire is not None and self._sem is not None
        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        timeout = min(self.ep.timeout_s, self.latency.timeout() * scale)
        try:
            async with asyncio.timeout(timeout) as deadline:
                watch = (deadline, sent_at, scale)
                self._open.add(watch)
                try:
                    reply, headers = await self._wire.chat(body)
                finally:
                    self._open.discard(watch)
        except TimeoutError:
            # The slot was used: the provider counts the request.
            raise _Stalled(deadline.when() - sent_at) from None
        except openai.RateLimitError as exc:
            wait = _retry_after(exc.response.headers)
            tally.rate_limited += 1
            if slot is not None:
                self.pacer.rate_limited(slot, wait if wait is not None else 1.0,  # type: ignore[union-attr]
                                        conclusive=exhausted(exc.response.headers))
            raise
        except openai.APIStatusError as exc:
            if self.ep.structured == "auto" and mode == "json_schema" and \
                    structured.is_response_format_rejection(exc.status_code, str(exc.message)):
                self.mode = "json_object"
                if slot is not None:
                    self.pacer.release(slot)  # type: ignore[union-attr]
                raise _ModeSwitch() from exc
            raise
        finally:
            self._sem.release()  # the reply (or its failure) is in: no longer in flight
        if self.latency.observe(loop.time() - sent_at):
            self._tighten(loop.time())
        return reply, headers

    def _book(self, reply: dict[str, Any], headers: Any, slot: Slot | None, raw_estimate: int,
              tally: _Tally) -> None:
        """Count the tokens the reply reports; tell the estimator and the limiter (tokens used, quota headers)."""
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

    def _tighten(self, now: float) -> None:
        """Bring the deadlines of the requests in flight down to the new read timeout."""
        for deadline, sent_at, scale in list(self._open):
            when = sent_at + min(self.ep.timeout_s, self.latency.timeout() * scale)
            current = deadline.when()
            if current is not None and when < current:
                deadline.reschedule(max(now, when))

    # -- results -----------------------------------------------------------------------------------
    def _failure(self, req: dict[str, Any], tally: _Tally, reason: str, detail: str, raw: str | None,
                 finish: str | None = None) -> dict[str, Any]:
        error = f"{reason}: {detail}"
        return {"i": req["i"], "key": req.get("key"), "value": None, "error": error, "raw": raw,
                "finish": finish, "cacheable": is_final(error), **tally.__dict__}

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
