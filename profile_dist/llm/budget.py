"""Spend: what a set of requests will cost before it is sent, and the guard that keeps a run under --max-cost.

A projection counts what is not cached yet, estimates each request's prompt tokens (see
:mod:`profile_dist.llm.tokens`) and its completion tokens (max_tokens when set, else 256), prices them
with the endpoint's ``price_per_1k``, and gives the least wall time the rate limits allow. A dry run on a
sample (``LLMEngine.dry_run(..., sample=n)``) replaces the guesses with what n real requests measured:
prompt tokens per estimated token, completion tokens and HTTP calls per request (re-asks and retries).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable

from profile_dist.errors import ProfileDistError
from profile_dist.llm.endpoints import Endpoint
from profile_dist.llm.request import LLMRequest
from profile_dist.llm.tokens import TokenEstimator


_REASK_FEEDBACK = 100


class BudgetExceededError(ProfileDistError, RuntimeError):
    """The run would cost more than --max-cost: refused before sending, or stopped cleanly mid-run."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


@dataclass
class Measured:
    """Per-request averages taken from a real sample."""

    prompt_ratio: float  # reported prompt tokens / estimated prompt tokens
    completion_tokens: float
    calls: float  # HTTP calls per request, re-asks and retries included


@dataclass
class Projection:
    requests: int
    unique: int
    cached: int
    to_send: int
    input_tokens: int
    output_tokens: int
    cost: float
    #: Least wall time the endpoint's rpm/tpm allow for the calls to send (0 if unlimited).
    minutes_at_limit: float
    basis: str  # "estimate" or "sample of N"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CostModel:
    """Prices one request before it is sent (conservatively: a full completion)."""

    def __init__(self, endpoint: Endpoint, measured: Measured | None = None) -> None:
        self.endpoint = endpoint
        self.measured = measured
        self.estimator = TokenEstimator(endpoint.model)

    def tokens(self, request: LLMRequest) -> tuple[int, int]:
        raw = self.estimator.prompt_tokens(request.messages)
        params = request.decoding_params(self.endpoint)
        cap = params.get("max_tokens") or params.get("max_completion_tokens")
        if self.measured is not None:
            calls = self.measured.calls
            prompt = raw * self.measured.prompt_ratio
            completion = self.measured.completion_tokens
        else:
            calls, prompt, completion = 1.0, float(raw), float(cap or 256)
        return math.ceil(prompt * calls), math.ceil(completion * calls)

    def cost(self, request: LLMRequest) -> float:
        return self.endpoint.price_per_1k.cost(*self.tokens(request))

    def worst_cost(self, request: LLMRequest) -> float:
        """The most one request can cost: every re-ask used, each carrying the previous reply and the error
        (a full completion plus ~100 tokens of feedback) on top of the prompt, and one more call with twice the
        cap after a truncated reply. What the run reserves while a request is in flight, so that --max-cost
        holds even when every reply needs re-asking."""
        raw = self.estimator.prompt_tokens(request.messages)
        params = request.decoding_params(self.endpoint)
        cap = int(params.get("max_tokens") or params.get("max_completion_tokens") or 256)
        calls = 1 + self.endpoint.max_reasks
        prompt = sum(raw + j * (cap + _REASK_FEEDBACK) for j in range(calls))
        # Plus one re-ask of a truncated reply with twice the cap (see profile_dist.llm.worker).
        return self.endpoint.price_per_1k.cost(prompt + raw, calls * cap + 2 * cap)


def project(endpoint: Endpoint, requests: Iterable[LLMRequest], keys: list[str], cached: set[str],
            measured: Measured | None = None, basis: str = "estimate") -> Projection:
    model = CostModel(endpoint, measured)
    reqs = list(requests)
    seen: set[str] = set()
    n_in = n_out = 0
    to_send = n_cached = 0
    for req, key in zip(reqs, keys):
        if key in seen:
            continue
        seen.add(key)
        if key in cached:
            n_cached += 1
            continue
        to_send += 1
        i, o = model.tokens(req)
        n_in += i
        n_out += o
    calls = to_send * (measured.calls if measured else 1.0)
    minutes = 0.0
    if endpoint.rpm:
        minutes = max(minutes, calls / endpoint.rpm)
    if endpoint.tpm:
        minutes = max(minutes, (n_in + n_out) / endpoint.tpm)
    return Projection(requests=len(reqs), unique=len(seen), cached=n_cached, to_send=to_send, input_tokens=n_in,
                      output_tokens=n_out, cost=endpoint.price_per_1k.cost(n_in, n_out),
                      minutes_at_limit=minutes, basis=basis)
