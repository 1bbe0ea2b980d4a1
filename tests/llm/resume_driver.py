"""A driver process for the SIGKILL/resume test: annotates N texts with fluency through the engine."""

from __future__ import annotations

import argparse
import json

import polars as pl
import ray

from profile_dist.factors.llm_calls import SINGLE
from profile_dist.factors.llm_fluency import FLUENCY
from profile_dist.llm.endpoints import Endpoint
from profile_dist.llm.engine import LLMEngine


def texts(n: int) -> list[str]:
    return [f"Resumable response number {i} reads well." if i % 2 else f"resumable {i} 7 8 9" for i in range(n)]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--address", required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--key-env", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--concurrency", type=int, default=4)
    a = p.parse_args()
    ray.init(address=a.address, log_to_driver=False)
    ep = Endpoint(name="judge", base_url=a.base_url, model="test-judge", api_key_env=a.key_env,
                  max_concurrency=a.concurrency)
    with LLMEngine(ep, a.cache, progress=False) as engine:
        results = engine.run(SINGLE.requests(pl.DataFrame({"text": texts(a.n)}), [FLUENCY]))
        summary = engine.summary
    with open(a.out, "w") as f:
        json.dump({"values": [r.value for r in results], "errors": [r.error for r in results],
                   "summary": summary}, f)


if __name__ == "__main__":
    main()
