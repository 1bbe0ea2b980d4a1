"""Simulated annotators, judges and generators for the test server: planted, deterministic behaviour.

The test server answers a chat request with ``reply_for(...)`` when a registered behaviour claims it,
else with its generic schema-filling reply. A behaviour is a function ``(request, messages, key,
params) -> JSON-able reply | None`` registered under a name; it claims a request by returning a value
(usually after recognising its prompt, e.g. by the ``response_format`` schema name). ``params`` is the
server's ``behaviour`` config (e.g. ``{"judge_prefers_longer": 0.8}``), settable with
``--behaviour KEY=VALUE`` or ``POST /_config``. Every draw must be a pure function of the request key
and params, so tests are reproducible whatever the arrival order.

Adding a simulated model is one new module ``profile_dist/testing/sim_<name>.py`` that calls
``register_behaviour``; modules named ``sim_*`` are imported automatically.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
from typing import Any, Callable

Behaviour = Callable[[dict[str, Any], list[dict[str, Any]], str, dict[str, Any]], Any]

_BEHAVIOURS: dict[str, Behaviour] = {}
_loaded = False


def register_behaviour(name: str) -> Callable[[Behaviour], Behaviour]:
    def decorate(fn: Behaviour) -> Behaviour:
        _BEHAVIOURS[name] = fn
        return fn
    return decorate


def load() -> None:
    """Import the sim_* modules (registering their behaviours); idempotent."""
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules([os.path.dirname(__file__)]):  # this package's sim_* modules
        if module.name.startswith("sim_"):
            importlib.import_module(f"profile_dist.testing.{module.name}")
    _loaded = True


def schema_name(request: dict[str, Any]) -> str | None:
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return (fmt.get("json_schema") or {}).get("name")
    return None


def uniform(key: str, salt: str) -> float:
    """A deterministic draw in [0, 1) from the request key."""
    digest = hashlib.sha256(f"{salt}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def reply_for(request: dict[str, Any], messages: list[dict[str, Any]], key: str, params: dict[str, Any]) -> Any:
    """The first registered behaviour's reply to this request, or None to use the generic reply."""
    load()
    for name in sorted(_BEHAVIOURS):
        reply = _BEHAVIOURS[name](request, messages, key, params)
        if reply is not None:
            return reply
    return None
