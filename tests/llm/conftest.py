"""Fixtures for the LLM engine tests: one local Ray runtime per session, test servers as real processes."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import pytest

from profile_dist.llm.endpoints import Endpoint, Price
from profile_dist.testing.llm_server import ServerProcess

KEY_ENV = "PROFILE_TEST_LLM_KEY"
KEY = "sk-test-0123456789abcdef"


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """The session's Ray (started here unless another fixture already did; Ray takes seconds to start)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture
def llm_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``llm_server("--rpm", "600")`` starts a server process (with the test key) on a free port."""
    servers: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(["--api-key", KEY, *args])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def endpoint_for(server: ServerProcess, **overrides: Any) -> Endpoint:
    settings: dict[str, Any] = dict(name="judge", base_url=server.base_url, model="test-judge", api_key_env=KEY_ENV,
                                    max_concurrency=8, price_per_1k=Price(input=0.01, output=0.03),
                                    backoff_base_s=0.02, backoff_max_s=0.5, timeout_s=5.0)
    settings.update(overrides)
    return Endpoint(**settings)


@pytest.fixture
def tmp_cache(tmp_path: Any) -> str:
    return os.fspath(tmp_path / "llm-cache")
