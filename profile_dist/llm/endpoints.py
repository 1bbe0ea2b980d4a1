"""Named LLM endpoints from a YAML file (``--endpoints FILE``, default ``$PROFILE_ENDPOINTS``).

```yaml
endpoints:
  judge:
    base_url: http://127.0.0.1:8000/v1
    model: gpt-4o-2024-08-06
    api_key_env: OPENAI_API_KEY      # the key itself never sits in a file; null for keyless servers
    rpm: 500                         # requests per minute (omit: unlimited)
    tpm: 200000                      # tokens per minute (omit: unlimited)
    max_concurrency: 64              # requests in flight, over all workers (split evenly); below requests/s x
                                     # reply latency, send slots go unused (the summary counts them)
    params: {temperature: 0}         # decoding parameters, part of the cache key
    price_per_1k: {input: 0.0025, output: 0.01}
    # optional, with defaults:
    workers: 1                       # async worker actors (processes) sharing the limiter
    timeout_s: 60                    # per HTTP attempt, and the read timeout until replies were seen
    read_timeout_factor: 4           # then: a reply not back within p99 latency x this is abandoned as
    read_timeout_floor_s: 5          #   stalled (at least this long) and asked again; null: timeout_s
    structured: auto                 # auto | json_schema | json_object
    max_attempts: 8                  # transport attempts per call (429, 5xx, timeouts, dropped connections)
    backoff_base_s: 0.5              # exponential backoff with jitter between attempts
    backoff_max_s: 30
    max_reasks: 2                    # re-asks after an invalid reply (a separate budget)
    quantize: true                   # also keep to limit/60 in any 1 s window
    headroom: 0.005                  # share of the request rate left unused to absorb send jitter: a send
                                     # may be up to headroom/2 s late (else it waits for a new slot);
                                     # raise it on a busy machine or a jittery network
    simulated: false                 # true: a simulated model (the project's test server), not a real LLM;
                                     # stage manifests and the report label what it produced as simulated
```
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

#: Headroom h leaves h x 1 s of slack in any 1 s window for send jitter: 5 ms. Alone on 2 cores, issue 16's
#: benchmark table ran with 0 429s at 0.5% (docs/benchmarks-llm.md); each 0.1% more costs 0.1% of the rate.
DEFAULT_HEADROOM = 0.005

import yaml

from profile_dist.errors import ConfigError

ENDPOINTS_ENV = "PROFILE_ENDPOINTS"


class EndpointConfigError(ConfigError, ValueError):
    """The endpoints file or an endpoint entry is wrong, or its key is missing from the environment."""


class Secret:
    """Keeps a value out of reprs, logs and Ray's task descriptions."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"


@dataclass(frozen=True)
class Price:
    input: float = 0.0  # per 1,000 prompt tokens
    output: float = 0.0  # per 1,000 completion tokens

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return input_tokens / 1000.0 * self.input + output_tokens / 1000.0 * self.output


@dataclass(frozen=True)
class Endpoint:
    name: str
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    rpm: int | None = None
    tpm: int | None = None
    max_concurrency: int = 64
    params: dict[str, Any] = field(default_factory=dict)
    price_per_1k: Price = field(default_factory=Price)
    workers: int = 1
    timeout_s: float = 60.0
    read_timeout_factor: float | None = 4.0
    read_timeout_floor_s: float = 5.0
    structured: Literal["auto", "json_schema", "json_object"] = "auto"
    max_attempts: int = 8
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_reasks: int = 2
    quantize: bool = True
    headroom: float = DEFAULT_HEADROOM
    simulated: bool = False

    def __post_init__(self) -> None:
        where = f"endpoint {self.name!r}"
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise EndpointConfigError(f"{where}: {name} must be positive or omitted, got {value}")
        if self.max_concurrency < 1 or self.workers < 1 or self.max_attempts < 1 or self.max_reasks < 0:
            raise EndpointConfigError(f"{where}: max_concurrency, workers, max_attempts must be >= 1, "
                                      "max_reasks >= 0")
        if self.structured not in ("auto", "json_schema", "json_object"):
            raise EndpointConfigError(f"{where}: structured must be auto, json_schema or json_object")
        if self.timeout_s <= 0 or self.read_timeout_floor_s <= 0 or (
                self.read_timeout_factor is not None and self.read_timeout_factor < 1):
            raise EndpointConfigError(f"{where}: timeout_s and read_timeout_floor_s must be positive, "
                                      "read_timeout_factor >= 1 or null")
        if not 0 <= self.headroom < 0.5:
            raise EndpointConfigError(f"{where}: headroom must be in [0, 0.5)")

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    @property
    def limiter_id(self) -> str:
        """One limiter per provider endpoint and model, whatever the entry is called."""
        return hashlib.sha256(f"{self.base_url.rstrip('/')}|{self.model}".encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"endpoint {self.name!r} (model {self.model} at {self.base_url})"

    def api_key(self) -> str:
        if self.api_key_env is None:
            return "EMPTY"  # keyless OpenAI-compatible servers (vLLM, a local proxy) accept any key
        key = os.environ.get(self.api_key_env)
        if not key:
            raise EndpointConfigError(f"{self.describe()}: environment variable {self.api_key_env} is not set")
        return key

    @classmethod
    def from_dict(cls, name: str, raw: dict[str, Any]) -> "Endpoint":
        if not isinstance(raw, dict):
            raise EndpointConfigError(f"endpoint {name!r}: expected a mapping, got {type(raw).__name__}")
        if "api_key" in raw or "api_key" in (raw.get("price_per_1k") or {}):
            raise EndpointConfigError(f"endpoint {name!r}: put the key in an environment variable named by "
                                      "api_key_env, not in the file")
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise EndpointConfigError(f"endpoint {name!r}: unknown keys {unknown}; known: {sorted(known)}")
        missing = [k for k in ("base_url", "model") if k not in raw]
        if missing:
            raise EndpointConfigError(f"endpoint {name!r}: missing {missing}")
        args = dict(raw)
        price = args.pop("price_per_1k", None) or {}
        try:
            args["price_per_1k"] = Price(**price)
        except TypeError as exc:
            raise EndpointConfigError(f"endpoint {name!r}: price_per_1k takes input and output: {exc}") from None
        args["params"] = dict(args.get("params") or {})
        return cls(name=name, **args)


def load_endpoints(path: str | os.PathLike[str] | None = None) -> dict[str, Endpoint]:
    """All endpoints of a YAML file (``path``, else ``$PROFILE_ENDPOINTS``)."""
    path = path or os.environ.get(ENDPOINTS_ENV)
    if not path:
        raise EndpointConfigError(f"no endpoints file: pass --endpoints FILE or set ${ENDPOINTS_ENV}")
    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise EndpointConfigError(f"cannot read endpoints file {path}: {exc}") from None
    entries = (doc or {}).get("endpoints") if isinstance(doc, dict) else None
    if not isinstance(entries, dict) or not entries:
        raise EndpointConfigError(f"{path}: expected a top-level 'endpoints:' mapping of name -> settings")
    return {name: Endpoint.from_dict(str(name), raw) for name, raw in entries.items()}


def get_endpoint(name: str, path: str | os.PathLike[str] | None = None) -> Endpoint:
    endpoints = load_endpoints(path)
    try:
        return endpoints[name]
    except KeyError:
        raise EndpointConfigError(f"no endpoint {name!r}; defined: {sorted(endpoints)}") from None
