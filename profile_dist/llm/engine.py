"""The LLM engine: a list of requests in, a list of results out (same order), paid for at most once.

```python
from profile_dist.llm.endpoints import get_endpoint
from profile_dist.llm.engine import LLMEngine, run_llm_requests
from profile_dist.llm.request import LLMRequest

endpoint = get_endpoint("judge", "endpoints.yaml")
results = run_llm_requests(endpoint, requests, cache_dir="out/llm-cache", progress=True, max_cost=5.0)

with LLMEngine(endpoint, cache_dir, max_cost=5.0) as engine:   # workers live across run() calls
    projection = engine.dry_run(requests, sample=20)          # real calls for 20, projection for all
    results = engine.run(requests)                            # list[LLMResult], in request order
    metadata = engine.summary                                 # counts for the stage's output metadata
```

What a run does:
- keys every request by content (:meth:`LLMRequest.cache_key`); identical requests are sent once, and
  requests whose key is in the cache are not sent at all (a rerun, a resumed run or another corpus with
  the same responses pays nothing for them). The cache is a local directory or an ``s3://`` prefix that
  every node shares (:func:`profile_dist.llm.cache.open_reply_cache`). Failures final by nature (invalid
  replies after the re-asks, refusals, filtered replies, 400s) are cached too; transient ones (5xx, stalls,
  timeouts and dropped connections after the retries, truncated replies) are not, so the next run asks
  again (``retry_failed=True`` also re-asks the cached failures). ``summary["retryable"]`` counts this
  run's transient failures, by reason in ``summary["retryable_by_reason"]``;
- refuses to start if the projected spend of what is left exceeds ``max_cost`` (BudgetExceededError,
  nothing sent), and otherwise reserves each batch's worst-case cost (every re-ask used) before
  dispatching it, so it stops cleanly (in-flight requests finish and are stored; BudgetExceededError
  carries the partial results as ``.results``) before the budget would be exceeded. Token counts are the
  pre-send estimates (:mod:`profile_dist.llm.tokens`), which overestimate English by about a third;
- hands batches to the worker actors (:mod:`profile_dist.llm.worker`, started through :mod:`profile_dist.llm.actor`
  on the nodes :mod:`profile_dist.llm.placement` deals them to; all share the endpoint's limiter,
  :mod:`profile_dist.llm.limiter`); each reply is stored in the cache the moment it arrives (by a worker on
  the driver's node itself, by the driver for workers elsewhere), so a driver killed with SIGKILL and rerun
  pays again for at most the requests dispatched and not yet answered (at most 2 x in-flight per worker);
- stops the whole job within seconds on 401/403/404 (EndpointFatalError naming the endpoint);
- shows a bar with done/failed/cached, requests and tokens per minute and spend, and keeps the same counts
  in ``summary``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import math
import os
import uuid
from typing import Any, Callable, Sequence

import ray

from profile_dist.errors import ProfileDistError
from profile_dist.llm.budget import BudgetExceededError, CostModel, Measured, Projection, project
from profile_dist.llm.cache import open_reply_cache
from profile_dist.llm.endpoints import Endpoint, Secret
from profile_dist.llm.limiter import get_limiter
from profile_dist.llm.placement import place
from profile_dist.llm.progress import ProgressBar, RunStats
from profile_dist.llm.request import LLMRequest, LLMResult, failure_reason, is_final
from profile_dist.llm.actor import LLMWorker

_PREFETCH = 2  # batch feeders per worker: one batch running, one queued behind it (more while some stall)
_MAX_RESTARTS = 8  # dead workers replaced per engine before the run fails (a crash loop is not transient)

__all__ = ["LLMEngine", "run_llm_requests", "EndpointFatalError", "BudgetExceededError", "LLMRequest", "LLMResult"]


class EndpointFatalError(ProfileDistError, RuntimeError):
    """The endpoint refuses every request (bad key, no permission, unknown model): the job stops."""


class _Fatal(Exception):
    pass


class _Stop(Exception):
    pass


class LLMEngine:
    def __init__(self, endpoint: Endpoint, cache_dir: str | os.PathLike[str], *, num_workers: int | None = None,
                 progress: bool = True, max_cost: float | None = None, retry_failed: bool = False,
                 desc: str | None = None, connect: Callable[[], None] | None = None) -> None:
        self.endpoint = endpoint
        # How to reach Ray, called only when workers are needed: a fully cached run never starts Ray.
        self._connect = connect or _connect_default
        self.cache = open_reply_cache(cache_dir)
        self.num_workers = num_workers or endpoint.workers
        self.in_flight = max(1, math.ceil(endpoint.max_concurrency / self.num_workers))
        self.progress = progress
        self.max_cost = max_cost
        self.retry_failed = retry_failed
        self.desc = desc or f"llm:{endpoint.name}"
        self.spent = 0.0  # over this engine's lifetime: what max_cost bounds
        self.summary: dict[str, Any] = {}
        self._workers: list[Any] = []
        self._worker_ids: list[str] = []
        self._limiter: Any = None
        self._ready: list[Any] = []  # the workers' ready() replies, until the first run() checks them
        self._measured: Measured | None = None
        self._api_key: Secret | None = None
        self._restarts = 0  # worker processes replaced after dying, over this engine's lifetime

    # -- lifecycle ---------------------------------------------------------------------------------
    def __enter__(self) -> "LLMEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop_workers(graceful=True)
        self.cache.close()

    def start(self, wait: bool = True) -> None:
        """Start the worker actors now (run() does it on demand): warm-up and the key check happen here.
        ``wait=False`` returns once they are asked for (Ray reached, the limiter and actors created), so
        they boot (~1 s: a process, the HTTP client's imports, the key check) while the caller reads its
        inputs; the first run() waits for them and raises a refused key then."""
        self._launch_workers()
        if wait:
            self._await_workers()

    @property
    def workers(self) -> list[Any]:
        return list(self._workers)

    @property
    def limiter(self) -> Any:
        return self._limiter

    def _start_workers(self) -> None:
        self._launch_workers()
        self._await_workers()

    def _launch_workers(self) -> None:
        if self._workers:
            return
        api_key = self._api_key = Secret(self.endpoint.api_key())  # a missing key fails here, before anything is sent
        self._connect()
        ep = self.endpoint
        if ep.limited:
            self._limiter = get_limiter(ep.rpm, ep.tpm, ep.limiter_id, quantize=ep.quantize, headroom=ep.headroom)
        run_id = uuid.uuid4().hex[:8]
        self._worker_ids = [f"{ep.name}-{run_id}-{i}" for i in range(self.num_workers)]
        driver_node = ray.get_runtime_context().get_node_id()
        self._workers = [
            LLMWorker.options(scheduling_strategy=where).remote(ep, api_key, wid, self._limiter, self.in_flight,
                                                                self.cache.local_dir, driver_node, self.cache.batched)
            for wid, where in zip(self._worker_ids, place(self.num_workers, driver_node))]
        self._ready = [w.ready.remote() for w in self._workers]

    def _await_workers(self) -> None:
        ready, self._ready = self._ready, []
        if not ready:
            return
        fatal = next((m for m in ray.get(ready) if m), None)
        if fatal:
            self._stop_workers(graceful=False)
            raise EndpointFatalError(fatal)

    async def _replace_worker(self, slot: int, dead: Any) -> None:
        """Start a new worker in ``slot`` unless another feeder of that slot already did."""
        if self._workers[slot] is not dead:
            return
        self._restarts += 1
        if self._restarts > _MAX_RESTARTS:
            raise RuntimeError(f"{self.endpoint.describe()}: {self._restarts} worker processes died; giving up")
        if self._limiter is not None:
            self._limiter.unregister.remote(self._worker_ids[slot])
        wid = f"{self._worker_ids[slot]}-r{self._restarts}"
        self._worker_ids[slot] = wid
        driver_node = ray.get_runtime_context().get_node_id()
        worker = LLMWorker.options(scheduling_strategy=place(len(self._workers), driver_node)[slot]).remote(
            self.endpoint, self._api_key, wid, self._limiter, self.in_flight, self.cache.local_dir,
            driver_node, self.cache.batched)
        self._workers[slot] = worker
        fatal = await worker.ready.remote()
        if fatal:
            raise _Fatal(fatal)

    def _stop_workers(self, graceful: bool) -> None:
        if not self._workers:
            return
        if graceful:
            try:
                ray.get([w.close.remote() for w in self._workers], timeout=10)
            except Exception:
                pass
        elif self._limiter is not None:
            for wid in self._worker_ids:
                self._limiter.unregister.remote(wid)
        for w in self._workers:
            ray.kill(w)
        self._workers, self._worker_ids = [], []

    # -- the run -----------------------------------------------------------------------------------
    def run(self, requests: Sequence[LLMRequest]) -> list[LLMResult]:
        ep = self.endpoint
        keys = [r.cache_key(ep) for r in requests]
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        by_key: dict[str, LLMResult] = {}
        for k in first:
            rec = self.cache.get(k)
            # A transient failure cached by an older version (e.g. length) is asked again like any other.
            if rec is not None and is_final(rec.get("error")) and (rec.get("error") is None or not self.retry_failed):
                by_key[k] = LLMResult.from_record(k, rec)
        todo = [k for k in first if k not in by_key]
        stats = RunStats(ep.name, ep.model, self.num_workers)
        stats.add_requests(len(requests), len(first), len(by_key))
        cost_model = CostModel(ep, self._measured)
        if self.max_cost is not None and todo:
            projected = sum(cost_model.cost(requests[first[k]]) for k in todo)
            if self.spent + projected > self.max_cost:
                stats.stopped = "max_cost"
                self.summary = {**stats.summary(), "projected_spend": round(projected, 6)}
                raise BudgetExceededError(
                    f"{ep.describe()}: {len(todo)} requests to send would cost about ${projected:.4f} "
                    f"(+ ${self.spent:.4f} spent) > --max-cost ${self.max_cost:.4f}; nothing was sent", self.summary)
        bar = ProgressBar(stats, len(first), self.desc, self.progress, cached=len(by_key), max_cost=self.max_cost,
                          spent_before=self.spent)
        try:
            if todo:
                self._start_workers()
                bar.start_sending()
                fresh = _run_coro(self._dispatch([requests[first[k]] for k in todo], todo, cost_model, stats, bar))
                by_key.update(fresh)
        finally:
            bar.close()
            self.cache.sync()
            self.summary = {**stats.summary(), **_retryable(by_key.values())}
        results = []
        seen: set[str] = set()
        for k in keys:
            r = by_key.get(k)
            if r is None:
                r = LLMResult(key=k, value=None, error="not_run: the run stopped at --max-cost", raw=None)
            elif k in seen:  # an in-run duplicate: same answer, paid once
                r = LLMResult(**{**r.__dict__, "cost": 0.0, "cached": True, "calls": 0})
            seen.add(k)
            results.append(r)
        if stats.stopped:
            exc = BudgetExceededError(f"{ep.describe()}: stopped before exceeding --max-cost ${self.max_cost:.4f} "
                                      f"(spent ${self.spent:.4f}); rerun with a higher budget to finish",
                                      self.summary)
            exc.results = results  # type: ignore[attr-defined]
            raise exc
        return results

    async def _dispatch(self, reqs: list[LLMRequest], keys: list[str], cost_model: CostModel, stats: RunStats,
                        bar: ProgressBar) -> dict[str, LLMResult]:
        ep = self.endpoint
        wire = [{"i": i, "key": keys[i], "messages": list(r.messages), "schema": r.json_schema,
                 "name": r.schema_name, "params": r.params} for i, r in enumerate(reqs)]
        size = max(1, min(self.in_flight, math.ceil(len(wire) / (len(self._workers) * _PREFETCH))))
        batches = collections.deque(wire[i:i + size] for i in range(0, len(wire), size))
        reserved: dict[int, float] = {}
        out: dict[str, LLMResult] = {}
        measured = _MeasuredTally(cost_model)

        def take() -> list[dict[str, Any]] | None:
            if not batches or stats.stopped:
                return None
            batch = batches[0]
            if self.max_cost is not None:
                need = {w["i"]: cost_model.worst_cost(reqs[w["i"]]) for w in batch}
                if self.spent + sum(reserved.values()) + sum(need.values()) > self.max_cost:
                    stats.stopped = "max_cost"
                    return None
                reserved.update(need)
            return batches.popleft()

        def accept(res: dict[str, Any]) -> None:
            if res.get("fatal"):
                raise _Fatal(res["fatal"])
            i = res["i"]
            reserved.pop(i, None)
            cost = ep.price_per_1k.cost(res["input_tokens"], res["output_tokens"])
            result = LLMResult(key=keys[i], value=res["value"], error=res["error"], raw=res["raw"],
                               input_tokens=res["input_tokens"], output_tokens=res["output_tokens"], cost=cost,
                               cached=False, finish_reason=res["finish"], calls=res["calls"])
            if res.get("persisted"):
                self.cache.remember(keys[i], result.to_record())  # the worker already wrote it
            elif res["cacheable"]:
                self.cache.put(keys[i], result.to_record())  # durable before anything else happens
            out[keys[i]] = result
            self.spent += cost
            measured.add(reqs[i], res)
            stats.add_result(result.ok, result.reason, cost, res)
            bar.advance()

        async def consume(slot: int, batch: list[dict[str, Any]], moved_on: asyncio.Event) -> None:
            worker = self._workers[slot]
            left = {w["i"]: w for w in batch}
            try:
                async for ref in worker.process.remote(batch):
                    for res in await ref:
                        left.pop(res["i"], None)
                        accept(res)
                    if len(left) <= len(batch) // 2:
                        moved_on.set()
            except ray.exceptions.RayActorError:
                # The worker process died (OOM, a lost node, a kill): its unanswered requests go back to
                # the queue for the other workers and its replacement; answered ones are already stored.
                if left:
                    batches.appendleft(list(left.values()))
                await self._replace_worker(slot, worker)
            finally:
                moved_on.set()

        async def feed(slot: int) -> None:
            # The next batch goes out once half of the current one is answered, not all of it: a stalled
            # or slowly retried request must not hold back the requests behind it (the worker's in-flight
            # limit still bounds what is sent at once).
            running: set[asyncio.Future] = set()
            try:
                while True:
                    for t in [t for t in running if t.done()]:
                        running.discard(t)
                        t.result()  # a fatal reply or a bug ends the run
                    batch = take()
                    if batch is None:
                        if not running:
                            return
                        # Wait for one to end: a dead worker's requests may come back to the queue.
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                        continue
                    moved_on = asyncio.Event()
                    running.add(asyncio.ensure_future(consume(slot, batch, moved_on)))
                    await moved_on.wait()
            finally:
                for t in running:
                    t.cancel()

        tasks = [asyncio.ensure_future(feed(slot)) for slot in range(len(self._workers)) for _ in range(_PREFETCH)]
        try:
            await asyncio.gather(*tasks)
        except _Fatal as exc:
            for t in tasks:
                t.cancel()
            self._stop_workers(graceful=False)  # in-flight requests are abandoned: the endpoint refuses them
            stats.stopped = "fatal"
            raise EndpointFatalError(str(exc)) from None
        except BaseException:
            for t in tasks:
                t.cancel()
            self._stop_workers(graceful=False)
            raise
        self._measured = measured.result() or self._measured
        return out

    # -- planning ----------------------------------------------------------------------------------
    def dry_run(self, requests: Sequence[LLMRequest], sample: int = 0) -> Projection:
        """Project requests, tokens, spend and time for ``requests``; with ``sample`` > 0, first send that many
        (spread over the input, uncached ones; their replies are kept) and project from what they measured."""
        ep = self.endpoint
        keys = [r.cache_key(ep) for r in requests]
        basis = "estimate"
        measured = self._measured
        if sample > 0:
            todo = list({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.cache}.values())
            todo.sort()
            if todo:
                step = max(1, len(todo) // sample)
                picked = [requests[i] for i in todo[::step][:sample]]
                results = self.run(picked)
                tally = _MeasuredTally(CostModel(ep))
                for req, res in zip(picked, results):
                    tally.add(req, {"input_tokens": res.input_tokens, "output_tokens": res.output_tokens,
                                    "calls": res.calls})
                measured = tally.result() or measured
                basis = f"sample of {len(picked)} (spent ${sum(r.cost for r in results):.4f})"
        cached = {k for k in set(keys) if k in self.cache}
        return project(ep, requests, keys, cached, measured, basis)


class _MeasuredTally:
    """Averages of what real requests used, for projections and budget reservations."""

    def __init__(self, cost_model: CostModel) -> None:
        self.estimator = cost_model.estimator
        self.n = 0
        self.raw_prompt = 0
        self.prompt = 0
        self.completion = 0
        self.calls = 0

    def add(self, req: LLMRequest, res: dict[str, Any]) -> None:
        if res.get("calls", 0) <= 0 or res.get("input_tokens", 0) <= 0:
            return
        self.n += 1
        self.raw_prompt += self.estimator.prompt_tokens(req.messages)
        self.prompt += res["input_tokens"] / res["calls"]
        self.completion += res["output_tokens"] / res["calls"]
        self.calls += res["calls"]

    def result(self) -> Measured | None:
        if self.n == 0:
            return None
        return Measured(prompt_ratio=self.prompt / max(1, self.raw_prompt), completion_tokens=self.completion / self.n,
                        calls=self.calls / self.n)


def _retryable(results: Any) -> dict[str, Any]:
    """How many of a run's unique requests failed transiently (the next run asks them again), by reason."""
    reasons = collections.Counter(failure_reason(r.error) for r in results if not r.final)
    return {"retryable": sum(reasons.values()), "retryable_by_reason": dict(reasons)}


def _connect_default() -> None:
    if not ray.is_initialized():
        ray.init()


def _run_coro(coro: Any) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside a running loop (a notebook): run ours on a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def run_llm_requests(endpoint: Endpoint, requests: Sequence[LLMRequest], cache_dir: str | os.PathLike[str], *,
                     progress: bool = True, max_cost: float | None = None, num_workers: int | None = None,
                     retry_failed: bool = False, summary: dict[str, Any] | None = None) -> list[LLMResult]:
    """One-shot :class:`LLMEngine` run; pass a dict as ``summary`` to receive the run's counts."""
    with LLMEngine(endpoint, cache_dir, num_workers=num_workers, progress=progress, max_cost=max_cost,
                   retry_failed=retry_failed) as engine:
        try:
            return engine.run(requests)
        finally:
            if summary is not None:
                summary.update(engine.summary)
