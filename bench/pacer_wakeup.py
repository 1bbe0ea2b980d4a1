"""How late a Ray worker wakes for a send slot: ``asyncio.sleep`` against the pacer's ``sleep_until``.

Ray runs worker processes at nice 15 (``RAY_worker_niceness``), and Linux lets a niced task's timed wait end
up to 0.5% of its length late (timer slack). The pacer gives a send slot back when it wakes more than
headroom/2 late (2.5 ms by default), so a slot 0.4 s away (4 workers at 600 RPM) is at risk. One async
actor sleeps to deadlines ``--waits`` seconds away, ``--repeats`` times each, both ways; the last line has
the median and worst lateness in ms per wait and way, and the worker's niceness.

    python bench/pacer_wakeup.py                      # about 40 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time

import ray

from profile_dist.llm.limiter import sleep_until


@ray.remote(num_cpus=0)
class Sleeper:
    async def lateness(self, wait: float, repeats: int, split: bool) -> list[float]:
        out = []
        for _ in range(repeats):
            deadline = time.monotonic() + wait
            if split:
                await sleep_until(deadline)
            else:
                await asyncio.sleep(wait)
            out.append((time.monotonic() - deadline) * 1000)
        return out

    def niceness(self) -> int:
        return os.nice(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--waits", default="0.1,0.4,1.0", help="seconds to each deadline, comma-separated")
    p.add_argument("--repeats", type=int, default=10)
    a = p.parse_args()
    load = os.getloadavg()
    print(f"machine: {platform.machine()} cores={os.cpu_count()} python={platform.python_version()} "
          f"loadavg={load[0]:.1f},{load[1]:.1f},{load[2]:.1f}", flush=True)
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    sleeper = Sleeper.remote()
    figures = {"worker_nice": ray.get(sleeper.niceness.remote())}
    for wait in (float(w) for w in a.waits.split(",")):
        for way, split in (("asyncio_sleep", False), ("sleep_until", True)):
            late = ray.get(sleeper.lateness.remote(wait, a.repeats, split))
            figures[f"wait{wait:g}_{way}_p50_ms"] = round(statistics.median(late), 3)
            figures[f"wait{wait:g}_{way}_max_ms"] = round(max(late), 3)
            print(f"wait={wait:g}s {way}: lateness ms median={statistics.median(late):.3f} max={max(late):.3f}",
                  flush=True)
    ray.shutdown()
    figures["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    print(" ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
