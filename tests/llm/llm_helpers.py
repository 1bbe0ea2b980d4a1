"""Shared helpers of the LLM engine tests (a plain module: tests/ is not a package)."""

from __future__ import annotations

from typing import Any

from profile_dist.llm.endpoints import Endpoint, Price
from profile_dist.testing.llm_server import ServerProcess

KEY_ENV = "PROFILE_TEST_LLM_KEY"
KEY = "sk-test-0123456789abcdef"


def endpoint_for(server: ServerProcess, **overrides: Any) -> Endpoint:
    settings: dict[str, Any] = dict(name="judge", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV,
                                    max_concurrency=8, price_per_1k=Price(input=0.01, output=0.03),
                                    backoff_base_s=0.02, backoff_max_s=0.5, timeout_s=5.0)
    settings.update(overrides)
    return Endpoint(**settings)
