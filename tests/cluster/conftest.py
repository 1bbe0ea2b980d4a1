from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: starts its own Ray head with `ray start --head` and submits jobs to it (runs in CI; ~1 min)"
    )


def pytest_collection_modifyitems(config, items):
    """Cases marked slow here run only when asked for (`pytest -m slow tests/cluster`)."""
    import pytest

    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    here = str(config.rootpath / "tests" / "cluster")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)
