"""Fixtures for the LLM engine tests: one local Ray runtime per session, test servers as real processes."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import pytest

from llm_helpers import KEY, KEY_ENV

from profile_dist.testing.llm_server import ServerProcess


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


@pytest.fixture
def tmp_cache(tmp_path: Any) -> str:
    return os.fspath(tmp_path / "llm-cache")
