"""The one LLM step every stage and workflow goes through: endpoint -> reply cache -> engine -> projection
(announced before anything is spent; a dry run stops there) -> run -> cost record.

```python
step = LLMStep("judge", output, endpoints=..., cache_dir=..., max_cost=..., dry_run=..., progress=..., say=...)
endpoint = step.endpoint("judge-model")
with step.engine("judge", endpoint, desc="judge") as engine:
    engine.project(chunks)                      # one projection record per engine, over chunks of requests
    if step.announce():                         # printed when saying or in a dry run; True in a dry run
        return step.projections
    engine.check_budget("judging 20 pairs")     # the whole projection against --max-cost, before any send
    results = engine.run(requests)              # any number of runs; their counts add up
step.records                                    # one cost record per engine: the manifest's "llm"
```

A second engine of the same step (a checker, a judge after a generator) is bounded by what the earlier
ones left of ``max_cost`` (:meth:`LLMStep.remaining`).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Sequence

from profile_dist.llm.cache import default_cache_location
from profile_dist.llm.budget import BudgetExceededError, Projection
from profile_dist.llm.endpoints import Endpoint, get_endpoint
from profile_dist.llm.engine import LLMEngine
from profile_dist.llm.request import LLMRequest, LLMResult

#: The engine counts a stage manifest keeps per model (and results.json shows under "cost").
COST_KEYS = ("requests", "duplicates", "cached", "sent", "done", "failed", "http_calls", "input_tokens",
             "output_tokens", "spend")


def project_chunks(engine: LLMEngine, chunks: Iterable[Sequence[LLMRequest]]) -> Projection:
    """The engine's projection over requests made chunk by chunk (never all in memory at once); a request
    repeated in a later chunk counts once, as the run will send it once (the earlier chunk caches it)."""
    total = None
    seen: set[str] = set()
    n_requests = 0
    for requests in chunks:
        n_requests += len(requests)
        fresh = []
        for request in requests:
            key = request.cache_key(engine.endpoint)
            if key not in seen:
                seen.add(key)
                fresh.append(request)
        part = engine.dry_run(fresh)
        if total is None:
            total = part
            continue
        total = Projection(requests=0, unique=total.unique + part.unique, cached=total.cached + part.cached,
                           to_send=total.to_send + part.to_send, input_tokens=total.input_tokens + part.input_tokens,
                           output_tokens=total.output_tokens + part.output_tokens, cost=total.cost + part.cost,
                           minutes_at_limit=total.minutes_at_limit + part.minutes_at_limit, basis=total.basis)
    if total is None:
        return engine.dry_run([])
    total.requests = n_requests
    return total


def cost_record(stage: str, role: str, endpoint: Endpoint, summary: dict[str, Any]) -> dict[str, Any]:
    """One stage's spend through one endpoint, as kept in the stage manifest (``simulated``: the report
    labels what a simulated endpoint produced)."""
    return {"stage": stage, "role": role, "endpoint": endpoint.name, "model": endpoint.model,
            "simulated": bool(getattr(endpoint, "simulated", False)), **{k: summary.get(k, 0) for k in COST_KEYS}}


def projection_record(stage: str, role: str, endpoint: Endpoint, projection: Projection) -> dict[str, Any]:
    return {"stage": stage, "role": role, "endpoint": endpoint.name, "model": endpoint.model,
            **projection.as_dict()}


def projection_line(record: dict[str, Any]) -> str:
    return (f"dry run ({record['stage']}, {record['role']}: {record['endpoint']} = {record['model']}): "
            f"{record['requests']} requests, {record['unique']} unique, {record['cached']} cached, "
            f"{record['to_send']} to send, ~{record['input_tokens']} prompt + ~{record['output_tokens']} completion "
            f"tokens, ~${record['cost']:.4f} (basis: {record['basis']})")


class LLMStep:
    """One stage run's LLM plumbing: its reply cache (resolved here, before any work: an object-store output
    needs a local cache), its endpoints, the projections it announces and the cost records it keeps."""

    def __init__(self, stage: str, output: str, *, endpoints: str | None = None, cache_dir: str | None = None,
                 max_cost: float | None = None, dry_run: bool = False, progress: bool | None = None,
                 say: Callable[[str], None] | None = None) -> None:
        self.stage = stage
        self.endpoints = endpoints
        self.cache = default_cache_location(output, cache_dir)
        self.max_cost = max_cost
        self.dry_run = dry_run
        self.progress = progress
        self.say = say
        self.projections: list[dict[str, Any]] = []  # the manifest's "dry_run"
        self.records: list[dict[str, Any]] = []  # the manifest's "llm": one per engine that ran

    def endpoint(self, name: str) -> Endpoint:
        return get_endpoint(name, self.endpoints)

    def remaining(self) -> float | None:
        """What ``max_cost`` leaves after the engines that already ran (None: no bound)."""
        if self.max_cost is None or not self.records:
            return self.max_cost
        return max(0.0, self.max_cost - sum(r["spend"] for r in self.records))

    def engine(self, role: str, endpoint: Endpoint, *, desc: str,
               connect: Callable[[], None] | None = None) -> "StepEngine":
        """An engine bounded by :meth:`remaining`, keeping this step's books for ``role``; ``connect`` reaches
        Ray when the engine first needs workers (see :class:`LLMEngine`)."""
        return StepEngine(self, role, endpoint, desc, connect)

    def plan(self, role: str, endpoint: Endpoint, requests: Sequence[LLMRequest], note: str) -> dict[str, Any]:
        """The projection of requests whose texts do not exist yet (``requests`` are placeholders sized at a
        cap, so nothing counts as cached); ``note`` says how they were sized."""
        with LLMEngine(endpoint, self.cache, progress=False) as planner:
            record = projection_record(self.stage, role, endpoint, planner.dry_run(requests))
        record = {**record, "cached": 0, "basis": f"{record['basis']}, {note}"}
        self.projections.append(record)
        return record

    def announce(self) -> bool:
        """Say every projection (when saying, and always in a dry run): the estimate comes first, before
        anything is spent. True in a dry run, where the caller stops."""
        if self.say is not None or self.dry_run:
            for record in self.projections:
                (self.say or print)(projection_line(record))
        return self.dry_run


class StepEngine:
    """An :class:`LLMEngine` (used as one: ``run``, ``dry_run``, ``summary``, ``endpoint``, ``cache``) that adds
    up its runs' counts and, on a clean exit outside a dry run, leaves its cost record with the step."""

    def __init__(self, step: LLMStep, role: str, endpoint: Endpoint, desc: str,
                 connect: Callable[[], None] | None = None) -> None:
        self.step, self.role = step, role
        self.max_cost = step.remaining()
        self.engine = LLMEngine(endpoint, step.cache, max_cost=self.max_cost, progress=step.progress is not False,
                                desc=desc, connect=connect)
        self.totals: Counter = Counter()
        self.projection: dict[str, Any] | None = None

    def __enter__(self) -> "StepEngine":
        self.engine.__enter__()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.engine.__exit__(exc_type, *exc)
        if exc_type is None and not self.step.dry_run:
            self.step.records.append(self.record())

    @property
    def endpoint(self) -> Endpoint:
        return self.engine.endpoint

    @property
    def cache(self) -> Any:
        return self.engine.cache

    @property
    def summary(self) -> dict[str, Any]:
        """The last run's counts (as ``LLMEngine.summary``)."""
        return self.engine.summary

    def dry_run(self, requests: Sequence[LLMRequest]) -> Projection:
        return self.engine.dry_run(requests)

    def start(self, wait: bool = True) -> None:
        """Start the workers ahead of the first run (see ``LLMEngine.start``)."""
        self.engine.start(wait)

    def project(self, chunks: Iterable[Sequence[LLMRequest]]) -> dict[str, Any]:
        """This engine's projection record over ``chunks`` of requests, kept with the step."""
        self.projection = projection_record(self.step.stage, self.role, self.endpoint, project_chunks(self.engine, chunks))
        self.step.projections.append(self.projection)
        return self.projection

    def check_budget(self, what: str) -> None:
        """Refuse, before anything is sent, a projection over ``max_cost``. A stage that runs in several
        engine calls (the judge's chunks) needs this; the engine checks each single run itself."""
        if self.max_cost is not None and self.projection is not None and self.projection["cost"] > self.max_cost:
            raise BudgetExceededError(f"{self.endpoint.describe()}: {what} would cost about "
                                      f"${self.projection['cost']:.4f} > --max-cost ${self.max_cost:.4f}; nothing was sent")

    def run(self, requests: Sequence[LLMRequest]) -> list[LLMResult]:
        results = self.engine.run(requests)  # one engine: its workers, cache index and max_cost span the runs
        self.totals.update({k: v for k, v in self.engine.summary.items() if k in COST_KEYS})
        return results

    def record(self) -> dict[str, Any]:
        """What this engine's runs cost so far, as kept in the stage manifest."""
        return cost_record(self.step.stage, self.role, self.endpoint, self.totals)
