"""What the engine is asked (``LLMRequest``) and what it answers (``LLMResult``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from profile_dist.llm.endpoints import Endpoint

Message = dict[str, str]

#: Failures that are final by nature: asking again would get the same answer (the reply failed the schema
#: after the re-asks, the model or its filter refused, the request itself is invalid). They are cached like
#: replies. Every other failure (transport: 5xx, timeouts, stalls, dropped connections after the retries;
#: length: a truncated reply; not_run, internal, fatal) is not: the next run asks again.
FINAL_FAILURES = frozenset({"invalid_reply", "refusal", "content_filter", "bad_request"})


def failure_reason(error: str | None) -> str | None:
    """The reason of an error text ("<reason>: <detail>"), None for a success."""
    return None if error is None else error.split(":", 1)[0]


def is_final(error: str | None) -> bool:
    """A success or a failure a rerun would repeat (what the cache keeps)."""
    return error is None or failure_reason(error) in FINAL_FAILURES


@dataclass(frozen=True)
class LLMRequest:
    messages: Sequence[Message]
    #: Identifies the prompt template (bump on any change in wording or schema).
    template_version: str
    #: The reply must be a JSON object matching this schema; None accepts any text as ``{"text": ...}``.
    json_schema: dict[str, Any] | None = None
    schema_name: str = "reply"
    #: Decoding parameters on top of the endpoint's (e.g. max_tokens for this prompt).
    params: dict[str, Any] = field(default_factory=dict)

    def decoding_params(self, endpoint: Endpoint) -> dict[str, Any]:
        return {**endpoint.params, **self.params}

    def cache_key(self, endpoint: Endpoint) -> str:
        """sha256 of everything that determines the reply: model, decoding parameters, template version,
        schema and rendered messages. Not the base URL (the same model behind another proxy answers the
        same) and never the API key."""
        payload = {
            "model": endpoint.model,
            "params": self.decoding_params(endpoint),
            "template_version": self.template_version,
            "schema": self.json_schema,
            "messages": list(self.messages),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def reply_record(value: Any, error: str | None, raw: str | None, input_tokens: int, output_tokens: int,
                 cost: float, finish: str | None) -> dict[str, Any]:
    """What the cache keeps for one request (written by a worker on the driver's node, else by the driver)."""
    return {"value": value, "error": error, "raw": raw, "in": input_tokens, "out": output_tokens, "cost": cost,
            "finish": finish}


@dataclass
class LLMResult:
    key: str
    #: The validated reply (a dict for JSON schemas), or None when the request failed.
    value: Any
    #: None on success; else "<reason>: <detail>", reason one of invalid_reply, length, refusal,
    #: content_filter, bad_request, transport, not_run.
    error: str | None
    #: The last reply text (for failures: the text that failed validation), None if nothing came back.
    raw: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    #: What this run paid for this row (0 for cache hits and in-run duplicates).
    cost: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
    #: HTTP calls made for it in this run (transport retries and re-asks included).
    calls: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def reason(self) -> str | None:
        return failure_reason(self.error)

    @property
    def final(self) -> bool:
        """A success or a failure final by nature; False for one the next run retries."""
        return is_final(self.error)

    def to_record(self) -> dict[str, Any]:
        return reply_record(self.value, self.error, self.raw, self.input_tokens, self.output_tokens, self.cost,
                            self.finish_reason)

    @classmethod
    def from_record(cls, key: str, rec: dict[str, Any]) -> "LLMResult":
        return cls(key=key, value=rec.get("value"), error=rec.get("error"), raw=rec.get("raw"),
                   input_tokens=rec.get("in", 0), output_tokens=rec.get("out", 0), cost=0.0, cached=True,
                   finish_reason=rec.get("finish"), calls=0)
