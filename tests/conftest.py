"""Shared fixtures: one real local Ray runtime for the whole session, and the shared real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    """Cases marked ``slow`` run only when asked for (``pytest -m slow ...``), so the default run (CI) stays quick."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def shared_data_dir() -> Path:
    return Path(os.environ.get("PROFILE_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path}; set PROFILE_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def ray_session():
    """The one real local Ray runtime of the session, for every test directory (starting Ray takes seconds;
    shut down at the end only if started here)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()
