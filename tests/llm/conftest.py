"""Fixtures for the LLM engine tests: test servers as real processes (Ray: the root conftest's ``ray_session``)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator

import pytest

from llm_helpers import KEY, KEY_ENV

from profile_dist.testing.llm_server import ServerProcess


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
