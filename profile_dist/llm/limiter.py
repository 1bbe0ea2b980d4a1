"""The global rate limiter: one named Ray actor per endpoint+model, leasing send slots to workers in blocks.

Why slots rather than a token bucket per worker: N workers that each believe they own the limit send N
times the limit, and a shared bucket consulted per request puts a round trip on every call. Here the
limiter (``RateLimiter``, a detached actor found by name with ``get_if_exists``, so every worker of every
job on every node shares it) hands out *slots*: send times on one global schedule. A worker asks for a block
of slots for the requests it has waiting (``Pacer``), and gets those falling within a short horizon (at
least 8 when it has that many waiting), at most one lease per 50 ms, so the limiter sees about one call
per 8 requests whatever the rate: a Ray call costs about 3 ms of CPU across the two processes.

The schedule (``LimiterCore``) is paced evenly at (1 - headroom) x the request limit, and checked against
sliding 60 s windows (requests and estimated tokens) and, because providers quantise their limits, 1 s
windows with ceil(limit/60). Headroom absorbs send-time jitter: a margin h tolerates h x 1 s of jitter at any
rate (the default 0.5%: 5 ms). Tokens are booked at their pre-send estimate and corrected with the usage each
reply reports; a slot that was not used, or drew a 429 (which providers do not count), is released.

A 429 is not always a limit: providers also refuse requests when their shared capacity is short, at random
and whatever the caller's rate. Only evidence of a lower limit changes the schedule (:meth:`LimiterCore.penalize`):
- the 429's ``x-ratelimit-remaining-*`` headers say a quota is used up (conclusive), or
- the 429s *cluster on the schedule*: a run of consecutive sends of the shared schedule were all refused,
  longer than the background rate of 429s explains. A real limit below ours refuses every send until its
  window moves, so its 429s come in long runs; random 429s at a rate p make a run of k with probability
  p^k per send. The run needed is the shortest k with p^k <= 1e-5 (``_NOISE``), at least ``run_429`` (5)
  and at most 16, p being the share of 429s among the (up to 200) sends just before the run (fewer
  than 10: 0). So 15% of random 429s need 7 in a row, 30% need 10: at 30% a fixed 5 is met about once per 600
  sends, and cut LLMock's storm scenario's rate for nothing.
On evidence the limiter pauses the schedule for the Retry-After and pushes the pause to every registered
worker, which give back the slots they hold inside it (those after it keep their places), and cuts the
rate (once per incident): after a run of 429s to the share of recent sends that went through (at least
a quarter, at most 90%), after conclusive headers by 10% when they repeat within 10 s. The rate recovers
linearly over ``recover_s``. Anything else is noise: the refused request alone waits its Retry-After and is
sent again; the schedule does not move. ``x-ratelimit-remaining-*`` of zero on any reply pauses the schedule
until the matching reset, and ``x-ratelimit-limit-requests``/``-tokens`` below the configured limit
lower it to the provider's word.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import ray

from profile_dist.llm.endpoints import DEFAULT_HEADROOM

NAMESPACE = "profile_dist"

_EPS = 1e-4  # past a window edge, so float rounding never leaves an entry inside
_CUT = 0.9
_REPEAT_S = 10.0
_LEAD = 0.005
_FLOOR = 0.25  # the lowest rate factor a cut can reach
_SHARE_OF = 20  # recent sends whose accepted share sets the cut after a run of 429s
_NOISE = 1e-5  # chance per send that random 429s make a run taken for a limit
_BACKGROUND_OF = 200  # sends before a run that estimate the background rate of 429s
_MIN_BACKGROUND = 10  # fewer: no background assumed
_MAX_RUN = 16  # a run this long is a limit whatever the background


class _Entry:
    __slots__ = ("t", "req", "tok", "limited", "answered")

    def __init__(self, t: float, req: int, tok: int) -> None:
        self.t, self.req, self.tok = t, req, tok
        self.limited = False  # drew a 429
        self.answered = False  # its reply's usage was reported: it went through

    @property
    def sent(self) -> bool:
        return self.limited or self.req > 0  # a released slot (never sent) has req 0


class _Window:
    """Sliding window over booked slots; ``floor`` is the time up to which entries have left it."""

    def __init__(self, length: float, req_budget: float, tok_budget: float) -> None:
        self.length = length
        self.req_budget = req_budget
        self.tok_budget = tok_budget
        self.entries: collections.deque[_Entry] = collections.deque()
        self.req = 0
        self.tok = 0
        self.floor = -math.inf

    def trim(self, t: float) -> None:
        self.floor = max(self.floor, t - self.length)
        while self.entries and self.entries[0].t <= self.floor:
            e = self.entries.popleft()
            self.req -= e.req
            self.tok -= e.tok

    def blocks(self, tokens: int) -> bool:
        if not self.entries:
            return False  # a request bigger than a whole window still goes, alone
        return self.req + 1 > self.req_budget or self.tok + tokens > self.tok_budget

    def add(self, e: _Entry) -> None:
        self.entries.append(e)
        self.req += e.req
        self.tok += e.tok

    def adjust(self, e: _Entry, d_req: int, d_tok: int) -> None:
        if e.t > self.floor:  # still inside
            self.req += d_req
            self.tok += d_tok


class LimiterCore:
    """The schedule, without Ray: every time argument is in seconds on one clock (the actor uses wall time)."""

    def __init__(self, rpm: float | None, tpm: float | None, *, quantize: bool = True,
                 headroom: float = DEFAULT_HEADROOM, horizon_s: float = 1.0, min_block: int = 8,
                 max_ahead_s: float = 4.0, recover_s: float = 10.0, run_429: int = 5) -> None:
        # A lease holds the slots within horizon_s, and at least min_block (up to max_ahead_s): each Ray
        # call costs about 3 ms of CPU between the two processes, so a lease must carry several requests.
        self.horizon_s = horizon_s
        self.min_block = min_block
        self.max_ahead_s = max_ahead_s
        self.recover_s = recover_s
        self.run_429 = run_429
        self.factor = 1.0
        self._cut_factor = 1.0
        self.paused_until = -math.inf
        self._last_cut = -math.inf
        self._last_limit = -math.inf  # the last 429 taken as evidence of a limit
        self._booked: collections.deque[_Entry] = collections.deque(maxlen=1024)  # recent slots, in time order
        self._last_t = -math.inf  # the last booked slot
        self._frontier = -math.inf  # no slot before this (windows were trimmed up to it)
        self._entries: dict[tuple[int, int], _Entry] = {}
        self._lease_ids = itertools.count(1)
        self.stats = collections.Counter()
        self.configure(rpm, tpm, quantize=quantize, headroom=headroom)

    def configure(self, rpm: float | None, tpm: float | None, *, quantize: bool = True,
                  headroom: float = DEFAULT_HEADROOM) -> None:
        self.rpm, self.tpm, self.quantize, self.headroom = rpm, tpm, quantize, headroom
        inf = math.inf
        old = getattr(self, "windows", [])
        self.windows = [_Window(60.0, rpm or inf, (tpm or inf) * (1 - headroom))]
        if quantize:
            self.windows.append(_Window(1.0, math.ceil(rpm / 60) if rpm else inf,
                                        math.ceil(tpm / 60) * (1 - headroom) if tpm else inf))
        for w in self.windows:  # keep what is booked
            for o in old:
                if o.length == w.length:
                    for e in o.entries:
                        w.add(e)
                    w.floor = o.floor

    @property
    def spacing(self) -> float:
        return 60.0 / (self.rpm * (1 - self.headroom) * self.factor) if self.rpm else 0.0

    def _recover(self, now: float) -> None:
        # Linear recovery from the last cut back to the full rate over recover_s seconds of calm.
        if self.factor < 1.0:
            calm = now - max(self._last_cut, self.paused_until)
            if calm > 0:
                self.factor = min(1.0, self._cut_factor + (1.0 - self._cut_factor) * calm / self.recover_s)

    def _earliest(self, now: float, tokens: int) -> float:
        # A small lead: the slot should reach its worker before it is due.
        t = max(now + _LEAD, self.paused_until, self._last_t + self.spacing, self._frontier)
        moved = True
        while moved:
            moved = False
            for w in self.windows:
                w.trim(t)
                while w.blocks(tokens):
                    t = w.entries[0].t + w.length + _EPS
                    w.trim(t)
                    moved = True
        return t

    def lease(self, now: float, estimates: list[int]) -> tuple[int, list[float]]:
        """Slots (absolute times) for the first requests of ``estimates`` that fall within the horizon."""
        self._recover(now)
        lease_id = next(self._lease_ids)
        slots: list[float] = []
        # Scale token budgets with the rate factor after a 429 by inflating each booking.
        scale = 1.0 / self.factor
        for i, est in enumerate(estimates):
            tokens = max(1, int(est * scale))
            t = self._earliest(now, tokens)
            if slots and t > now + self.horizon_s and (len(slots) >= self.min_block or t > now + self.max_ahead_s):
                self._frontier = t  # the windows were trimmed up to t: never book before it
                break
            e = _Entry(t, 1, tokens)
            for w in self.windows:
                w.add(e)
            self._entries[(lease_id, i)] = e
            self._booked.append(e)
            self._last_t = t
            slots.append(t)
        self.stats["leases"] += 1
        self.stats["slots"] += len(slots)
        self._forget_old()
        return lease_id, slots

    def correct(self, lease_id: int, idx: int, tokens: int | None) -> None:
        """Book the reported tokens of a used slot, or release an unused one (``tokens=None``)."""
        e = self._entries.get((lease_id, idx))
        if e is None:
            return
        d_req, d_tok = (-e.req, -e.tok) if tokens is None else (0, tokens - e.tok)
        for w in self.windows:
            w.adjust(e, d_req, d_tok)
        e.req += d_req
        e.tok += d_tok
        e.answered = tokens is not None
        self.stats["released" if tokens is None else "corrected"] += 1

    def penalize(self, now: float, wait_s: float, slot: tuple[int, int] | None = None,
                 conclusive: bool = True) -> float | None:
        """A 429 on ``slot`` (Retry-After ``wait_s``). Evidence of a lower limit (``conclusive`` headers, or a
        run of ``run_429`` refused sends on the schedule) pauses everyone for ``wait_s`` and cuts the rate;
        returns the pause end. Noise returns None: the schedule does not change."""
        entry = self._entries.get(slot) if slot is not None else None
        if entry is not None:
            entry.limited = True
        self._recover(now)
        if not conclusive and (entry is None or not self._limit_run(entry)):
            self.stats["noise_429"] += 1
            return None
        self.stats["penalties"] += 1
        if conclusive:  # a lone exhausted quota may be our own send jitter: cut when it repeats
            cut = _CUT if now - self._last_limit < _REPEAT_S else None
        else:  # the provider lets through about the share that was not refused
            cut = min(_CUT, max(_FLOOR, self._accepted_share()))
        if cut is not None and now > self._last_cut + max(wait_s, 1.0):  # once per incident
            self.factor = self._cut_factor = max(_FLOOR, self.factor * cut)
            self._last_cut = now
            self.stats["cuts"] += 1
        self._last_limit = now
        self.paused_until = max(self.paused_until, now + wait_s)
        # Workers drop the slots they hold inside the pause; those after it keep their places.
        self._frontier = max(self._frontier, self.paused_until)
        return self.paused_until

    def _position(self, entry: _Entry) -> int:
        for i in range(len(self._booked) - 1, -1, -1):  # 429s are of recent slots: scan from the end
            if self._booked[i] is entry:
                return i
        return -1

    def _limit_run(self, entry: _Entry) -> bool:
        """Whether the sent slots around ``entry`` (itself included) that drew a 429 in a row are a run longer
        than the background rate of 429s explains; unsent slots are skipped."""
        i = self._position(entry)
        if i < 0:
            return self.run_429 <= 1
        run, start = 1, i
        for step in (-1, 1):
            j = i + step
            while 0 <= j < len(self._booked) and run < _MAX_RUN:
                e = self._booked[j]
                if e.limited:
                    run += 1
                    start = min(start, j)
                elif e.req > 0:
                    break
                j += step
        return run >= self.run_429 and run >= self._run_needed(start)  # (the scan only for runs that may count)

    def _run_needed(self, start: int) -> int:
        """Refusals in a row that are evidence of a limit, given the share of 429s among the sends before
        ``start`` (the run's first, whose 429 is back: those sent before it mostly have their outcome too).
        A 5xx or a stall is a send that was not refused; answers need not be reported yet."""
        sent = limited = 0
        for j in range(start - 1, -1, -1):
            e = self._booked[j]
            if e.sent:
                sent += 1
                limited += e.limited
                if sent >= _BACKGROUND_OF:
                    break
        p = limited / sent if sent >= _MIN_BACKGROUND else 0.0
        if p <= 0.0:
            return self.run_429
        if p >= 1.0:
            return _MAX_RUN
        return min(_MAX_RUN, max(self.run_429, math.ceil(math.log(_NOISE) / math.log(p))))

    def _accepted_share(self) -> float:
        """Share of the last ``_SHARE_OF`` sends with a known outcome that went through (answers are reported
        in batches, seconds late, so this errs low: the rate recovers from a cut too deep)."""
        known = answered = 0
        for e in reversed(self._booked):
            if known >= _SHARE_OF:
                break
            if e.limited or e.answered:
                known += 1
                answered += e.answered
        return answered / max(1, known)

    def observe(self, now: float, remaining_requests: float | None, reset_requests_s: float | None,
                remaining_tokens: float | None, reset_tokens_s: float | None, limit_requests: float | None = None,
                limit_tokens: float | None = None) -> None:
        """Provider headers: when it says nothing is left, wait for its reset; when its limit is below ours,
        take its word."""
        lower_rpm = limit_requests is not None and self.rpm is not None and 0 < limit_requests < self.rpm
        lower_tpm = limit_tokens is not None and self.tpm is not None and 0 < limit_tokens < self.tpm
        if lower_rpm or lower_tpm:
            self.stats["lowered"] += 1
            self.configure(limit_requests if lower_rpm else self.rpm, limit_tokens if lower_tpm else self.tpm,
                           quantize=self.quantize, headroom=self.headroom)
        if remaining_requests is not None and remaining_requests <= 0 and reset_requests_s:
            self.paused_until = max(self.paused_until, now + reset_requests_s)
        if remaining_tokens is not None and remaining_tokens <= 0 and reset_tokens_s:
            self.paused_until = max(self.paused_until, now + reset_tokens_s)

    def _forget_old(self) -> None:
        # Entries that have left the longest window can no longer be corrected usefully.
        if len(self._entries) > 4096:
            floor = self.windows[0].floor
            for k in [k for k, e in self._entries.items() if e.t <= floor]:
                del self._entries[k]


@ray.remote(num_cpus=0, max_restarts=-1)
class RateLimiter:
    """The shared limiter actor (serial: one call at a time keeps the schedule consistent)."""

    def __init__(self, rpm: float | None, tpm: float | None, quantize: bool, headroom: float) -> None:
        self.core = LimiterCore(rpm, tpm, quantize=quantize, headroom=headroom)
        self.workers: dict[str, Any] = {}

    def configure(self, rpm: float | None, tpm: float | None, quantize: bool, headroom: float) -> None:
        c = self.core
        if (c.rpm, c.tpm, c.quantize, c.headroom) != (rpm, tpm, quantize, headroom):
            c.configure(rpm, tpm, quantize=quantize, headroom=headroom)

    def register(self, worker_id: str, handle: Any) -> None:
        self.workers[worker_id] = handle

    def unregister(self, worker_id: str) -> None:
        self.workers.pop(worker_id, None)

    def _apply(self, now: float, corrections: list[tuple[int, int, int | None]],
               observation: tuple | None) -> None:
        for lease_id, idx, tokens in corrections:
            self.core.correct(lease_id, idx, tokens)
        if observation is not None:
            self.core.observe(now, *observation)

    def lease(self, estimates: list[int], corrections: list[tuple[int, int, int | None]],
              observation: tuple | None = None) -> tuple[int, list[float], float]:
        """(lease id, slot times, pause end) for a worker's waiting requests, in wall-clock seconds.

        Wall clock, not offsets: workers on this node share the clock exactly (an offset would carry the
        call's one-way latency, which is large and lopsided on a worker's first call), and nodes of a
        cluster keep theirs within milliseconds by NTP, well inside the headroom."""
        now = time.time()
        self._apply(now, corrections, observation)
        lease_id, slots = self.core.lease(now, estimates)
        return lease_id, slots, self.core.paused_until

    def report(self, corrections: list[tuple[int, int, int | None]], observation: tuple | None = None) -> None:
        self._apply(time.time(), corrections, observation)

    def penalize(self, worker_id: str, wait_s: float, slot: tuple[int, int] | None = None,
                 conclusive: bool = True) -> float:
        """A worker's 429; on evidence of a limit every worker pauses (0.0: noise, nobody pauses)."""
        now = time.time()
        until = self.core.penalize(now, wait_s, slot, conclusive)
        if until is None:
            return 0.0
        for handle in self.workers.values():
            handle.pause.remote(until - now)  # fire and forget: everyone backs off now
        return until - now

    def stats(self) -> dict[str, Any]:
        c = self.core
        return {**c.stats, "factor": c.factor, "paused_for": max(0.0, c.paused_until - time.time()),
                "rpm": c.rpm, "tpm": c.tpm, "workers": len(self.workers), "cpu_s": time.process_time()}


def get_limiter(rpm: float | None, tpm: float | None, limiter_id: str, *, quantize: bool = True,
                headroom: float = DEFAULT_HEADROOM) -> Any:
    """The limiter of an endpoint+model: created by the first caller, found by name by all others."""
    handle = RateLimiter.options(name=f"llm-limiter-{limiter_id}", namespace=NAMESPACE, get_if_exists=True,
                                 lifetime="detached").remote(rpm, tpm, quantize, headroom)
    ray.get(handle.configure.remote(rpm, tpm, quantize, headroom))
    return handle


# ---------------------------------------------------------------------------------------------------
# The worker's half of the protocol.

Slot = tuple[int, int]  # (lease id, index in lease)

_SPLIT_S = 0.02  # waits longer than this are split in two (sleep_until); shorter ones have < 0.1 ms of slack
_EARLY = 0.01  # the first part ends this share of the wait before the deadline


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` (``time.monotonic()``), waking on time in a niced process.

    Ray runs its workers at nice 15, and Linux lets a niced task's timed wait end up to 0.5% of its length late
    (timer slack, ``select_estimate_accuracy``; measured by bench/pacer_wakeup.py). A slot 0.4 s away (4 workers
    at 600 RPM) woke 2 ms late, most of the 2.5 ms a send may be late, and one send in eight was given back. So
    a long wait first sleeps to 1% before its end, and then the rest, whose slack is microseconds."""
    left = deadline - time.monotonic()
    if left > _SPLIT_S:
        await asyncio.sleep(left * (1 - _EARLY))
        left = deadline - time.monotonic()
    if left > 0:
        await asyncio.sleep(left)


@dataclass
class _Waiter:
    tokens: int
    future: asyncio.Future


class Pacer:
    """Gives a worker's requests their send times, leasing slots from the shared limiter in blocks.

    ``acquire`` returns when the request may be sent, with the slot it uses; the caller then reports
    the reported tokens (``correct``), an unused slot (``release``) or a 429 (``rate_limited``).
    """

    def __init__(self, limiter: Any, worker_id: str, refill_s: float = 0.5, max_block: int = 256,
                 late_tolerance_s: float = 0.005, flush_s: float = 2.0, min_interval_s: float = 0.05) -> None:
        self.limiter = limiter
        #: At most one lease per this interval, so requests freed one by one are leased together
        #: (a lease is a Ray call, about 3 ms of CPU; the wait is shorter than any provider's latency).
        self.min_interval_s = min_interval_s
        self._last_lease = -math.inf
        #: Lease again when the slots held reach less than this far ahead.
        self.refill_s = refill_s
        #: Corrections ride on leases; between leases they go out at most this often.
        self.flush_s = flush_s
        #: A request woken later than this after its slot gives the slot back and waits for a new one:
        #: sent late it would crowd the next slots into one provider window.
        self.late_tolerance_s = late_tolerance_s
        self.worker_id = worker_id
        self.max_block = max_block
        self._pending: collections.deque[_Waiter] = collections.deque()
        self._leasing: asyncio.Task | None = None
        self._last_send_at = -math.inf
        self._paused_until = -math.inf
        self._corrections: list[tuple[int, int, int | None]] = []
        self._observation: tuple | None = None
        self._last_flush = time.monotonic()
        self.stats: collections.Counter[str] = collections.Counter()

    async def acquire(self, tokens: int, gate: asyncio.Semaphore | None = None,
                      given_back: collections.Counter[str] | None = None) -> Slot:
        """Wait for a send slot (and, with ``gate``, the worker's in-flight limit: the caller then holds one
        unit of it, taken only once the slot is due, so waiting for a slot holds none). Slots this call gave
        back are counted by cause in ``stats`` and in ``given_back``."""
        counters = (self.stats,) if given_back is None else (self.stats, given_back)
        loop = asyncio.get_running_loop()
        while True:
            fut = loop.create_future()
            self._pending.append(_Waiter(tokens, fut))
            self._kick()
            slot, send_at = await fut
            received = time.monotonic()
            await sleep_until(send_at)
            full = gate is not None and gate.locked()
            if gate is not None:
                await gate.acquire()  # no wait unless every in-flight unit is taken; then the send may be late
            if send_at < self._paused_until - 0.002:  # (2 ms: the pushed pause arrives a little late)
                # A pause came in while waiting and covers this slot (the limiter never grants inside a
                # known pause). Slots after the pause keep their places in the schedule.
                self._give_back(slot, gate)
                for c in counters:
                    c["voided"] += 1
                continue
            # Lateness counts from when the slot was known: a slot already due on arrival (the lease's
            # return trip) goes at once, or a slow round trip would void every slot it brings.
            late = time.monotonic() - max(send_at, received)
            if late > self.late_tolerance_s:
                self._give_back(slot, gate)
                # Late after waiting for an in-flight unit: max_concurrency is below rate x latency.
                cause = "late_in_flight_full" if full else "late_wake_up"
                for c in counters:
                    c[cause] += 1
                continue
            self.stats["sent"] += 1
            return slot

    def _give_back(self, slot: Slot, gate: asyncio.Semaphore | None) -> None:
        self.release(slot)
        if gate is not None:
            gate.release()

    def release(self, slot: Slot) -> None:
        self._corrections.append((slot[0], slot[1], None))
        self._maybe_flush()

    def correct(self, slot: Slot, tokens: int) -> None:
        self._corrections.append((slot[0], slot[1], tokens))
        self._maybe_flush()

    def observe(self, observation: tuple) -> None:
        self._observation = observation
        remaining_req, _, remaining_tok, _ = observation[:4]
        if (remaining_req is not None and remaining_req <= 0) or (remaining_tok is not None and remaining_tok <= 0):
            self._maybe_flush(force=True)

    def rate_limited(self, slot: Slot, wait_s: float, conclusive: bool) -> None:
        """A 429 on ``slot``: the provider did not count it, so it is released. The limiter judges whether it
        is a limit (then it pauses every worker, this one included) or noise (only the request waits)."""
        if conclusive:
            self.pause(wait_s)  # at once here; the others when the limiter's pause reaches them
        self.limiter.penalize.remote(self.worker_id, wait_s, slot, conclusive)
        self._corrections.append((slot[0], slot[1], None))
        self._maybe_flush(force=True)

    def pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)


    def flush(self) -> None:
        self._maybe_flush(force=True)

    def _maybe_flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if (self._corrections or self._observation) and self._leasing is None and (
                force or now - self._last_flush > self.flush_s):
            self.limiter.report.remote(self._corrections, self._observation)
            self._corrections, self._observation = [], None
            self._last_flush = now

    def _kick(self) -> None:
        if self._leasing is None:
            self._leasing = asyncio.get_running_loop().create_task(self._lease_loop())

    async def _lease_loop(self) -> None:
        try:
            while self._pending:
                now = time.monotonic()
                # Lease again only when the slots held run short; wait out a known pause.
                wait = max(self._last_send_at - self.refill_s, self._paused_until,
                           self._last_lease + self.min_interval_s) - now
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                block = [w for w in itertools.islice(self._pending, self.max_block)]
                corrections, self._corrections = self._corrections, []
                observation, self._observation = self._observation, None
                self._last_lease = time.monotonic()
                lease_id, slots, pause_end = await self.limiter.lease.remote(
                    [w.tokens for w in block], corrections, observation)
                self._last_flush = mono = time.monotonic()
                to_mono = mono - time.time()  # slot times are wall clock; sleeping is on the monotonic one
                self._paused_until = max(self._paused_until, pause_end + to_mono)
                for i, slot_time in enumerate(slots):
                    w = self._pending.popleft()
                    send_at = slot_time + to_mono
                    self._last_send_at = max(self._last_send_at, send_at)
                    if w.future.done():  # its request was cancelled meanwhile
                        self._corrections.append((lease_id, i, None))
                    else:
                        w.future.set_result(((lease_id, i), send_at))
        except BaseException as exc:
            while self._pending:
                w = self._pending.popleft()
                if not w.future.done():
                    w.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("pacer stopped"))
            raise
        finally:
            self._leasing = None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in a provider's reset header: "20ms", "1.5s", "6m0s", "1h2m", or a bare number of seconds."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts:
        return None
    unit = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(n) * unit[u] for n, u in parts)
