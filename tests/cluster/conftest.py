from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: starts its own Ray head with `ray start --head` and submits jobs to it (runs in CI; ~1 min)"
    )
