"""Run counters, the live progress bar and the summary a stage writes into its output metadata."""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
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
        for k in ("calls", "retries", "reasks", "rate_limited", "input_tokens", "output_tokens", "slots_in_flight_full"):
            self.c[k] += wire.get(k, 0)
        self.spend += cost
        now = time.monotonic()
        self._recent.append((now, wire.get("calls", 0), wire.get("input_tokens", 0) + wire.get("output_tokens", 0)))
        while self._recent and self._recent[0][0] < now - _WINDOW_S:
            self._recent.popleft()

    def recent_answered(self) -> int:
        """Requests answered (done or failed) within the last minute."""
        now = time.monotonic()
        while self._recent and self._recent[0][0] < now - _WINDOW_S:
            self._recent.popleft()
        return len(self._recent)

    def live_rates(self) -> tuple[float, float]:
        """Requests and tokens per minute over the last minute (or since the start, if shorter)."""
        span = min(_WINDOW_S, max(1e-3, time.monotonic() - self.started))
        calls = sum(c for _, c, _ in self._recent)
        tokens = sum(t for _, _, t in self._recent)
        return calls * 60.0 / span, tokens * 60.0 / span

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
            "slots_in_flight_full": c["slots_in_flight_full"],
            "stopped": self.stopped,
        }


@dataclass(frozen=True)
class Estimate:
    """Rate and time left of a run, counting only requests actually sent: cached answers take no time."""

    rate: float | None  # sent requests answered per second, over the recent window; None before any
    eta_s: float | None  # seconds until every request is answered at that rate; 0 when none is left


def estimate(total: int, cached: int, answered: int, recent_answered: int, recent_span_s: float) -> Estimate:
    """Rate over the requests answered in the last ``recent_span_s`` seconds of sending; the ETA divides
    what is left (``total`` minus the ``cached`` and the ``answered`` ones) by it.

    Cached answers are excluded from both: a fully cached run has no rate and nothing left, a resumed
    one is not credited with the thousands of replies it found at once.
    """
    left = max(0, total - cached - answered)
    rate = recent_answered / recent_span_s if recent_answered > 0 and recent_span_s > 0 else None
    if left == 0:
        return Estimate(rate, 0.0)
    return Estimate(rate, left / rate if rate else None)


class ProgressBar:
    """tqdm over unique requests; cached ones count as progress but not toward the rate or the ETA.

    The line shows sent-request rate and ETA, counts (done / cached / failed / retried) and the spend
    so far against ``--max-cost``; it is refreshed at most twice a second.
    """

    _FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, stats: RunStats, total: int, desc: str, enabled: bool, *, cached: int = 0,
                 max_cost: float | None = None, spent_before: float = 0.0) -> None:
        self.stats, self.total, self.cached = stats, total, cached
        self.max_cost, self.spent_before = max_cost, spent_before
        self.sending_since: float | None = None
        self.bar = tqdm(total=total, initial=cached, desc=desc, unit="req", disable=not enabled, mininterval=0.5,
                        dynamic_ncols=True, bar_format=self._FORMAT, postfix=self.describe())
        self._last = 0.0

    def start_sending(self) -> None:
        """The clock of the rate starts when requests start going out (workers are up)."""
        self.sending_since = time.monotonic()

    def estimate(self) -> Estimate:
        c = self.stats.c
        span = 0.0
        if self.sending_since is not None:
            span = min(_WINDOW_S, time.monotonic() - self.sending_since)
        return estimate(self.total, self.cached, c["done"] + c["failed"], self.stats.recent_answered(), span)

    def describe(self) -> str:
        c, est = self.stats.c, self.estimate()
        rate = f"{est.rate:.1f} req/s sent" if est.rate is not None else "- req/s sent"
        eta = tqdm.format_interval(est.eta_s) if est.eta_s is not None else "?"
        spend = f"${self.spent_before + self.stats.spend:.4f}"
        if self.max_cost is not None:
            spend += f" of ${self.max_cost:.2f}"
        return (f"{rate}, ETA {eta} | done={c['done']} cached={self.cached} failed={c['failed']} "
                f"retried={c['retries']} | {spend}")

    def advance(self, n: int = 1) -> None:
        self.bar.update(n)
        now = time.monotonic()
        if now - self._last > 0.5:
            self._last = now
            self.bar.set_postfix_str(self.describe(), refresh=False)

    def close(self) -> None:
        self.bar.set_postfix_str(self.describe(), refresh=False)
        self.bar.close()
