"""What every multi-prompt LLM scorer shares: requests from a prompt spec, runs that keep a cost ledger,
failure texts, and the output rows.

A scorer (``CombinedResponseScorer``, ``AtomicFactScorer``) has ``annotate(frame, factors, engine, usage)``
returning rows of :data:`profile_dist.schema.LLM_FACTOR_VALUES` (one per response and factor; ``value`` null
exactly where ``error`` says why) and ``requests(frame, factors)`` for dry runs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import polars as pl
import pyarrow as pa

from profile_dist.prompts.fencing import PromptSpec
from profile_dist.llm.request import LLMRequest, LLMResult
from profile_dist.schema import LLM_FACTOR_VALUES

#: The engine's per-run counts that add up over runs (same list as the annotate stage sums).
SUMMED_COUNTS = ("requests", "duplicates", "cached", "sent", "done", "failed", "http_calls", "retries", "reasks",
                 "http_429", "input_tokens", "output_tokens", "spend", "retryable", "slots_in_flight_full")
_RAW_IN_ERROR = 500


@dataclass
class FactorCost:
    """What one factor's values cost. A call shared by k factors (combined prompt, fact extraction) counts
    1/k towards each. Tokens include cache hits (what the value costs to produce); spend is this run's."""

    calls: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    spend: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 9 if k == "spend" else 3) for k, v in self.__dict__.items()}


@dataclass
class Usage:
    """Ledger of one stage run: the engine's summed counts and the cost per factor."""

    totals: Counter = field(default_factory=Counter)
    per_factor: dict[str, FactorCost] = field(default_factory=dict)
    #: Requests that failed transiently (not cached: the next run asks them again), by reason.
    retryable: Counter = field(default_factory=Counter)

    def add_run(self, summary: dict[str, Any]) -> None:
        self.totals.update({k: v for k, v in summary.items() if k in SUMMED_COUNTS})
        self.retryable.update(summary.get("retryable_by_reason") or {})

    def charge(self, factors: Sequence[str], results: Sequence[LLMResult | None]) -> None:
        share = 1.0 / max(1, len(factors))
        for name in factors:
            cost = self.per_factor.setdefault(name, FactorCost())
            for r in results:
                if r is None:
                    continue
                cost.calls += share
                cost.input_tokens += r.input_tokens * share
                cost.output_tokens += r.output_tokens * share
                cost.spend += r.cost * share

    def merge(self, other: "Usage") -> None:
        self.totals.update(other.totals)
        self.retryable.update(other.retryable)
        for name, c in other.per_factor.items():
            total = self.per_factor.setdefault(name, FactorCost())
            for k, v in c.__dict__.items():
                setattr(total, k, getattr(total, k) + v)

    def report(self, n_responses: int) -> dict[str, Any]:
        """Per factor and per annotated response: tokens and spend (divided by the responses annotated)."""
        n = max(1, n_responses)
        per_factor = {name: c.as_dict() for name, c in sorted(self.per_factor.items())}
        total_in = sum(c.input_tokens for c in self.per_factor.values())
        total_out = sum(c.output_tokens for c in self.per_factor.values())
        total_spend = sum(c.spend for c in self.per_factor.values())
        return {
            "responses": n_responses,
            "per_response": {"input_tokens": round(total_in / n, 3), "output_tokens": round(total_out / n, 3),
                             "spend": round(total_spend / n, 8)},
            "per_factor": per_factor,
            "per_factor_per_response": {name: {"input_tokens": round(c.input_tokens / n, 3),
                                               "output_tokens": round(c.output_tokens / n, 3),
                                               "spend": round(c.spend / n, 8)}
                                        for name, c in sorted(self.per_factor.items())},
        }


def spec_requests(spec: PromptSpec, frame: pl.DataFrame, version: str | None = None) -> list[LLMRequest | None]:
    """One request per row of ``frame`` (``text``, ``source_text``); None where the text is null."""
    sources = frame["source_text"].to_list() if "source_text" in frame.columns else [None] * frame.height
    out: list[LLMRequest | None] = []
    for text, src in zip(frame["text"].to_list(), sources):
        out.append(None if text is None else LLMRequest(
            messages=spec.render(src, text), template_version=version or spec.template_version,
            json_schema=spec.json_schema, schema_name=spec.name, params=dict(spec.params)))
    return out


def run_requests(engine: Any, requests: Sequence[LLMRequest | None], usage: Usage, factors: Sequence[str]
                 ) -> list[LLMResult | None]:
    """Results aligned with ``requests`` (None stays None), the run's counts and costs in ``usage``."""
    sent = [i for i, r in enumerate(requests) if r is not None]
    out: list[LLMResult | None] = [None] * len(requests)
    if sent:
        results = engine.run([requests[i] for i in sent])
        usage.add_run(engine.summary)
        for i, r in zip(sent, results):
            out[i] = r
        usage.charge(factors, results)
    return out


def error_text(r: LLMResult) -> str:
    """The recorded failure: reason, detail and (cut) the raw reply."""
    error = r.error or "invalid_reply: unknown"
    if r.raw is not None:
        error = f"{error}; raw={json.dumps(r.raw[:_RAW_IN_ERROR], ensure_ascii=False)}"
    return error


def rows_table(ids: list[str], factors: list[str], values: list[float | None], errors: list[str | None]) -> pa.Table:
    return pa.table({"response_id": pa.array(ids, pa.string()), "factor": pa.array(factors, pa.string()),
                     "value": pa.array(values, pa.float64()), "error": pa.array(errors, pa.string())},
                    schema=LLM_FACTOR_VALUES)


def single_version(factor: Any) -> str:
    """The request version of a factor's own prompt: factor name, factor version, template version."""
    return f"{factor.name}/{factor.version}/{factor.llm.template_version}"


class SinglePromptScorer:
    """Factors with one prompt of their own (a PromptSpec): one call per response and factor."""

    name = "single"

    def requests(self, frame: pl.DataFrame, factors: list[Any], engine: Any = None) -> list[LLMRequest]:
        return [r for f in factors for r in spec_requests(f.llm, frame, single_version(f)) if r is not None]

    def annotate(self, frame: pl.DataFrame, factors: list[Any], engine: Any, usage: Usage) -> pa.Table:
        ids = frame["response_id"].to_list()
        parts = []
        for f in factors:
            spec: PromptSpec = f.llm
            values: list[float | None] = []
            errors: list[str | None] = []
            for r in run_requests(engine, spec_requests(spec, frame, single_version(f)), usage, [f.name]):
                if r is None:
                    values.append(None)
                    errors.append("no_text: the response text is null")
                    continue
                if r.ok:
                    try:
                        values.append(spec.parse(r.value))
                        errors.append(None)
                        continue
                    except (KeyError, TypeError, ValueError) as exc:
                        r = LLMResult(**{**r.__dict__, "error": f"invalid_reply: cannot read {spec.value_field!r}: {exc}"})
                values.append(None)
                errors.append(error_text(r))
            parts.append(rows_table(ids, [f.name] * len(ids), values, errors))
        return pa.concat_tables(parts) if parts else rows_table([], [], [], [])


SINGLE = SinglePromptScorer()
