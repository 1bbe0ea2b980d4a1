"""The limiter's schedule, without Ray: windows are never over budget, whatever the leases look like."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from profile_dist.llm.limiter import LimiterCore, parse_duration


def booked(core: LimiterCore) -> list[tuple[float, int, int]]:
    """Every booking still known to the core (time, requests, tokens)."""
    return sorted((e.t, e.req, e.tok) for e in core._entries.values())


def max_in_window(entries: list[tuple[float, int, int]], length: float) -> tuple[int, int]:
    best_req = best_tok = 0
    lo = 0
    req = tok = 0
    for hi, (t, r, k) in enumerate(entries):
        req += r
        tok += k
        while entries[lo][0] <= t - length:
            req -= entries[lo][1]
            tok -= entries[lo][2]
            lo += 1
        best_req, best_tok = max(best_req, req), max(best_tok, tok)
    return best_req, best_tok


@settings(max_examples=60, deadline=None)
@given(rpm=st.integers(30, 3000), tpm=st.integers(5_000, 200_000),
       leases=st.lists(st.tuples(st.floats(0, 0.6), st.lists(st.integers(1, 900), min_size=1, max_size=12)),
                       min_size=1, max_size=60))
def test_booked_slots_respect_every_window(rpm, tpm, leases):
    core = LimiterCore(rpm, tpm, quantize=True, headroom=0.01)
    now = 1000.0
    for gap, estimates in leases:
        now += gap
        _, slots = core.lease(now, estimates)
        assert slots and all(t >= now for t in slots)
        assert slots == sorted(slots)
    entries = booked(core)
    req60, tok60 = max_in_window(entries, 60.0)
    req1, tok1 = max_in_window(entries, 1.0)
    assert req60 <= rpm and req1 <= math.ceil(rpm / 60)
    # A single request larger than a whole window still goes (alone), so compare against the biggest.
    biggest = max(e[2] for e in entries)
    assert tok60 <= max(tpm * 0.99, biggest)
    assert tok1 <= max(math.ceil(tpm / 60) * 0.99, biggest)
    gaps = [b[0] - a[0] for a, b in zip(entries, entries[1:])]
    assert min(gaps, default=math.inf) >= 60.0 / (rpm * 0.99) - 1e-9


def test_even_pacing_at_the_rate_less_headroom():
    core = LimiterCore(600, None, headroom=0.01, horizon_s=10.0)
    _, slots = core.lease(0.0, [10] * 50)
    assert len(slots) == 50
    spacing = [b - a for a, b in zip(slots, slots[1:])]
    assert all(abs(s - 60 / 594) < 1e-9 for s in spacing)


def test_lease_stops_at_the_horizon_but_always_grants_one():
    core = LimiterCore(60, None, horizon_s=0.5, min_block=1)  # one request a second
    _, slots = core.lease(0.0, [1] * 5)
    assert len(slots) == 1
    _, later = core.lease(0.0, [1] * 5)
    assert len(later) == 1 and later[0] > slots[0] + 1.0


def test_a_lease_carries_a_minimum_block_within_the_lookahead_cap():
    core = LimiterCore(600, None, horizon_s=0.5, min_block=8, max_ahead_s=4.0)  # 10 a second
    _, slots = core.lease(0.0, [1] * 20)
    assert len(slots) == 8  # 0.8 s of schedule: past the horizon, up to the block
    slow = LimiterCore(60, None, horizon_s=0.5, min_block=8, max_ahead_s=4.0)  # 1 a second
    _, slots = slow.lease(0.0, [1] * 20)
    assert len(slots) == 4 and slots[-1] <= 4.0  # the cap on how far ahead a block may reach


def test_release_returns_budget_and_correction_books_real_tokens():
    core = LimiterCore(None, 600, quantize=False, headroom=0.0, horizon_s=100.0)  # 600 tokens a minute
    lid, slots = core.lease(0.0, [300, 300])
    assert len(slots) == 2
    _, blocked = core.lease(0.0, [300])
    assert blocked[0] >= 60.0  # the minute's tokens are gone
    core2 = LimiterCore(None, 600, quantize=False, headroom=0.0, horizon_s=100.0)
    lid2, _ = core2.lease(0.0, [300, 300])
    core2.correct(lid2, 1, None)  # the second one was never sent
    core2.correct(lid2, 0, 100)  # the first one used 100
    _, now_free = core2.lease(0.0, [400])
    assert now_free[0] < 1.0


def test_429_pauses_everyone_and_repeated_429s_cut_the_rate_then_it_recovers():
    core = LimiterCore(600, None, headroom=0.0, horizon_s=5.0, recover_s=10.0)
    core.lease(0.0, [1] * 5)  # 0.005 .. 0.405
    assert core.penalize(0.3, 2.0) == 2.3
    _, slots = core.lease(0.4, [1] * 3)
    assert slots[0] >= 2.3  # nothing inside the pause
    assert abs((slots[1] - slots[0]) - 0.1) < 1e-9  # a lone 429 is jitter: no cut
    core.penalize(2.5, 1.0)  # again within 10 s: the provider's limit is lower than ours
    _, slots = core.lease(2.6, [1] * 3)
    assert slots[0] >= 3.5 and abs((slots[1] - slots[0]) - 0.1 / 0.9) < 1e-9
    core.penalize(2.7, 1.0)  # same incident: no second cut
    assert abs(core.factor - 0.9) < 1e-12
    core.lease(3.7 + 10.0, [1])  # 10 s of calm after the last pause ended
    assert core.factor == 1.0


def test_provider_saying_nothing_is_left_pauses_until_reset():
    core = LimiterCore(600, None)
    core.observe(0.0, 0, 1.5, None, None)
    _, slots = core.lease(0.0, [1])
    assert slots[0] >= 1.5


def test_parse_duration():
    assert parse_duration("20ms") == 0.02
    assert parse_duration("1.5s") == 1.5
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("1h2m") == 3720.0
    assert parse_duration("7") == 7.0
    assert parse_duration("") is None and parse_duration("soon") is None
