"""The endpoints file tests and benchmarks point at the loopback test server (testing/llm_server.py): one
writer instead of YAML spelled by hand in every test directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

#: What the test server's replies cost per 1k tokens in every test endpoints file.
TEST_PRICE = {"input": 0.001, "output": 0.002}


def write_endpoints_file(path: str | Path, base_url: str, models: Mapping[str, str], *, key_env: str,
                         **options: Any) -> str:
    """Write an endpoints YAML with one endpoint per ``name -> model`` of ``models``, all at ``base_url``
    and keyed by the environment variable ``key_env``; ``options`` (max_concurrency, workers, timeout_s,
    ...) go into every entry, ``None`` values left out. Returns the path."""
    extra = {k: v for k, v in options.items() if v is not None}
    entries = {name: {"base_url": base_url, "model": model, "api_key_env": key_env, **extra,
                      "price_per_1k": dict(TEST_PRICE)} for name, model in models.items()}
    Path(path).write_text(yaml.safe_dump({"endpoints": entries}, sort_keys=False))
    return str(path)
