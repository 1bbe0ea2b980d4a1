"""The worker actor's Ray shell, importable without the HTTP stack.

The driver only needs the actor class to start workers; the ``openai``/``aiohttp`` client stack (about
half a second of imports) is loaded by each worker process when it starts (:mod:`profile_dist.llm.worker`),
in parallel with the driver, and never by the driver itself.
"""

from __future__ import annotations

import gc
import time
from typing import Any, AsyncIterator

import ray

from profile_dist.llm.endpoints import Endpoint, Secret


@ray.remote(num_cpus=0)
class LLMWorker:
    """Ray shell of :class:`~profile_dist.llm.worker.WorkerCore` (async actor: all calls share one event loop)."""

    def __init__(self, endpoint: Endpoint, api_key: Secret, worker_id: str, limiter: Any | None,
                 in_flight: int, cache_dir: str | None = None, driver_node: str | None = None,
                 hold: bool = False) -> None:
        from profile_dist.llm.worker import WorkerCore  # here, in the worker process: no openai in the driver

        # The cache directory is the driver's: only a worker on the same node can append to it.
        same_node = driver_node is not None and ray.get_runtime_context().get_node_id() == driver_node
        self.core = WorkerCore(endpoint, api_key, worker_id, limiter, in_flight,
                               cache_dir=cache_dir if same_node else None, hold=hold)
        if limiter is not None:
            limiter.register.remote(worker_id, ray.get_runtime_context().current_actor)

    async def ready(self) -> str | None:
        """None when warmed up and the key is accepted, else the fatal message."""
        fatal = await self.core.start()
        # What start-up left (Ray, the HTTP stack) lives as long as the process. Out of the collector's
        # reach, full collections stop scanning it: they woke the pacer late, and every send slot due
        # meanwhile was given back.
        gc.freeze()
        return fatal

    async def process(self, batch: list[dict[str, Any]]) -> AsyncIterator[list[dict[str, Any]]]:
        async for out in self.core.process(batch):
            yield out

    async def pause(self, seconds: float) -> None:
        self.core.pause(seconds)

    async def stats(self) -> dict[str, float]:
        """Pacer counts (sent; given back: late_wake_up, late_in_flight_full, voided) and this process's CPU seconds."""
        out: dict[str, float] = dict(self.core.pacer.stats) if self.core.pacer is not None else {}
        out["cpu_s"] = time.process_time()
        return out

    async def close(self) -> None:
        await self.core.close()
        if self.core.pacer is not None:
            self.core.pacer.limiter.unregister.remote(self.core.worker_id)
