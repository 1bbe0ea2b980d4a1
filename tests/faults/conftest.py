"""Fault-injection suite: real failures (SIGKILL, dead actors, a flaky server, a store that goes away).

Cases marked ``slow`` run only with ``pytest -m slow tests/faults``; at least one case of every kind
runs by default (CI).
"""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    here = str(config.rootpath / "tests" / "faults")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(here):
            item.add_marker(skip)
