"""Fixtures for the evaluation/generation settings tests."""

from __future__ import annotations

import pytest
from settings_helpers import KEY, KEY_ENV


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
