"""Run counters, the live progress bar and the summary a stage writes into its output metadata."""

from __future__ import annotations

import collections
import time
from typing import Any

from tqdm import tqdm

_WINDOW_S = 60.0


class RunStats:
    def __init__(self, endpoint: str, model: str, workers: int) -> None:
        self.endpoint, self.model, self.workers = endpoint, model, workers
        self.started = time.monotonic()
        self.c: collections.Counter[str] = collections.Counter()
        self.failed_by_reason: collections.Counter[str] = collections.Counter()
        self.spend = 0.0
        self.stopped: str | None = None
        self._recent: collections.deque[tuple[float, int, int]] = collections.deque()

    def add_requests(self, total: int, unique: int, cached: int) -> None:
        self.c["requests"] += total
        self.c["unique"] += unique
        self.c["duplicates"] += total - unique
        self.c["cached"] += cached

    def add_result(self, ok: bool, reason: str | None, cost: float, wire: dict[str, Any]) -> None:
        self.c["sent"] += 1
        self.c["done" if ok else "failed"] += 1
        if not ok and reason:
            self.failed_by_reason[reason] += 1
        for k in ("calls", "retries", "reasks", "rate_limited", "input_tokens", "output_tokens"):
            self.c[k] += wire.get(k, 0)
        self.spend += cost
        now = time.monotonic()
        self._recent.append((now, wire.get("calls", 0), wire.get("input_tokens", 0) + wire.get("output_tokens", 0)))
        while self._recent and self._recent[0][0] < now - _WINDOW_S:
            self._recent.popleft()

    def live_rates(self) -> tuple[float, float]:
        """Requests and tokens per minute over the last minute (or since the start, if shorter)."""
        span = min(_WINDOW_S, max(1e-3, time.monotonic() - self.started))
        calls = sum(c for _, c, _ in self._recent)
        tokens = sum(t for _, _, t in self._recent)
        return calls * 60.0 / span, tokens * 60.0 / span

    def postfix(self) -> str:
        rpm, tpm = self.live_rates()
        return (f"done={self.c['done']} failed={self.c['failed']} cached={self.c['cached']} "
                f"rpm={rpm:.0f} tpm={tpm:.0f} spend=${self.spend:.4f}")

    def summary(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self.started
        minutes = max(elapsed, 1e-9) / 60.0
        c = self.c
        return {
            "endpoint": self.endpoint, "model": self.model, "workers": self.workers,
            "requests": c["requests"], "unique": c["unique"], "duplicates": c["duplicates"],
            "cached": c["cached"], "sent": c["sent"], "done": c["done"], "failed": c["failed"],
            "failed_by_reason": dict(self.failed_by_reason),
            "http_calls": c["calls"], "retries": c["retries"], "reasks": c["reasks"], "http_429": c["rate_limited"],
            "input_tokens": c["input_tokens"], "output_tokens": c["output_tokens"],
            "spend": round(self.spend, 6), "elapsed_s": round(elapsed, 3),
            "requests_per_min": round(c["calls"] / minutes, 1),
            "tokens_per_min": round((c["input_tokens"] + c["output_tokens"]) / minutes, 1),
            "stopped": self.stopped,
        }


class ProgressBar:
    """tqdm over unique requests; the postfix is refreshed at most twice a second."""

    def __init__(self, stats: RunStats, total: int, desc: str, enabled: bool) -> None:
        self.stats = stats
        self.bar = tqdm(total=total, desc=desc, unit="req", disable=not enabled, mininterval=0.5, dynamic_ncols=True)
        self._last = 0.0

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)
        now = time.monotonic()
        if now - self._last > 0.5:
            self._last = now
            self.bar.set_postfix_str(self.stats.postfix(), refresh=False)

    def close(self) -> None:
        self.bar.set_postfix_str(self.stats.postfix(), refresh=False)
        self.bar.close()
