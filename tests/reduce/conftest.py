"""Slow cases here run only when asked for (`pytest -m slow`), so the default `pytest -q` stays quick."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords and str(item.fspath).startswith(str(config.rootpath / "tests" / "reduce")):
            item.add_marker(skip)
