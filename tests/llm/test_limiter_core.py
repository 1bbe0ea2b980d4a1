"""The limiter's schedule, without Ray: windows are never over budget, whatever the leases look like."""

from __future__ import annotations

import asyncio
import math
import types

from hypothesis import given, settings
from hypothesis import strategies as st

from profile_dist.llm import limiter
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


def test_an_exhausted_quota_pauses_everyone_and_repeats_cut_the_rate_then_it_recovers():
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


def test_scattered_429s_are_noise_and_leave_the_schedule_alone():
    core = LimiterCore(600, None, headroom=0.0, horizon_s=100.0)
    lid, slots = core.lease(0.0, [1] * 200)
    refused = [i for i in range(200) if i % 7 in (0, 3)]  # 2 in 7 (29%), never 3 in a row
    for i in refused:
        assert core.penalize(slots[i] + 0.05, 1.0, (lid, i), conclusive=False) is None
    assert core.factor == 1.0 and core.paused_until == -math.inf
    assert core.stats["noise_429"] == len(refused) and core.stats["penalties"] == 0
    _, later = core.lease(slots[-1], [1] * 3)
    assert abs((later[1] - later[0]) - 0.1) < 1e-9  # still the full rate


def test_a_run_of_refused_sends_is_a_limit_cut_to_the_share_that_went_through():
    core = LimiterCore(600, None, headroom=0.0, horizon_s=100.0, run_429=5)
    lid, slots = core.lease(0.0, [1] * 40)
    # A provider window fills at slot 10: sends 10..15 are refused; slot 12 was never sent (given back late).
    for i in range(10):
        core.correct(lid, i, 30)  # answered
    core.correct(lid, 12, None)
    now = slots[15] + 0.05
    reports = [core.penalize(now, 1.0, (lid, i), conclusive=False) for i in (15, 14, 13, 11, 10)]  # any order
    assert reports[:4] == [None] * 4 and reports[4] == now + 1.0  # the fifth refusal in a row is the evidence
    assert core.stats["cuts"] == 1 and core.stats["penalties"] == 1
    # Of the 15 sends known so far, 10 went through: the rate is cut to two thirds.
    assert abs(core.factor - 10 / 15) < 1e-12
    assert core.penalize(now + 0.1, 1.0, (lid, 16), conclusive=False) is not None  # the run goes on: paused,
    assert core.stats["cuts"] == 1  # but the same incident is cut once


def longest_run(refused: list[bool]) -> int:
    best = cur = 0
    for r in refused:
        cur = cur + 1 if r else 0
        best = max(best, cur)
    return best


def replay(core: LimiterCore, lid: int, slots: list[float], refused: list[bool], first: int = 0) -> list:
    """Report each slot's outcome in send order: a 429 (penalize) or an answer (correct)."""
    out = []
    for i, r in enumerate(refused, start=first):
        if r:
            out.append(core.penalize(slots[i] + 0.05, 1.0, (lid, i), conclusive=False))
        else:
            core.correct(lid, i, 30)
    return out


def test_runs_that_a_high_background_of_random_429s_explains_are_noise():
    # A third of the sends refused one at a time, then 30% (LLMock's storm) in runs of 6: at that rate
    # noise makes a run of 6 once in 1,400 sends (0.3^6); a limit refuses every send, so its run goes on
    # until 0.3^k <= 1e-5: k = 10.
    refused = ([True] + [False] * 2) * 20 + ([True] * 6 + [False] * 14) * 27
    assert len(refused) == 600 and longest_run(refused) == 6  # a fixed run of 5 would have cut the rate here
    core = LimiterCore(600, None, headroom=0.0, horizon_s=1000.0, run_429=5)
    lid, slots = core.lease(0.0, [1] * 640)
    assert set(replay(core, lid, slots, refused)) == {None}
    assert core.stats["penalties"] == 0 and core.stats["cuts"] == 0 and core.factor == 1.0
    # Then the provider's real limit: every send refused. Noise at 30% explains 9 in a row, not 10.
    limit = replay(core, lid, slots, [True] * 12, first=600)
    assert limit[:9] == [None] * 9 and limit[9] is not None
    assert core.stats["penalties"] >= 1 and core.stats["cuts"] == 1 and core.factor < 1.0


def test_the_background_counts_before_the_answers_are_reported():
    # The first seconds of a run: 429s come back at once, answers only with the worker's next report. 7
    # of the first 20 sends were refused at random (nothing else reported yet), then 6 in a row: noise
    # at 35% (0.35^6 = 0.2%). A limit's run goes on, and is taken for one by the 16th at the latest.
    core = LimiterCore(600, None, headroom=0.0, horizon_s=1000.0, run_429=5)
    lid, slots = core.lease(0.0, [1] * 60)
    early = [i in (1, 4, 7, 9, 12, 15, 18) for i in range(20)]
    for i, r in enumerate(early):
        if r:
            assert core.penalize(slots[i] + 0.05, 1.0, (lid, i), conclusive=False) is None
    run = [core.penalize(slots[i] + 0.05, 1.0, (lid, i), conclusive=False) for i in range(20, 36)]
    assert run[:6] == [None] * 6 and run[-1] is not None and core.stats["cuts"] == 1


def test_a_low_background_of_random_429s_still_lets_a_run_of_five_be_a_limit():
    import random

    rng = random.Random(3)
    refused = [rng.random() < 0.05 for _ in range(300)]
    assert longest_run(refused) < 5
    core = LimiterCore(600, None, headroom=0.0, horizon_s=1000.0, run_429=5)
    lid, slots = core.lease(0.0, [1] * 310)
    assert set(replay(core, lid, slots, refused)) == {None}
    limit = replay(core, lid, slots, [True] * 5, first=300)
    assert limit[:4] == [None] * 4 and limit[4] is not None and core.stats["cuts"] == 1


def test_a_run_is_found_whatever_the_order_its_reports_arrive_in():
    import itertools

    for order in itertools.permutations(range(5)):
        core = LimiterCore(600, None, headroom=0.0, horizon_s=100.0, run_429=5)
        lid, slots = core.lease(0.0, [1] * 10)
        results = [core.penalize(1.0, 0.5, (lid, 2 + i), conclusive=False) for i in order]
        assert results[:4] == [None] * 4 and results[4] is not None, order
        assert core.stats["cuts"] == 1


def test_the_cut_never_goes_below_a_quarter():
    core = LimiterCore(600, None, headroom=0.0, horizon_s=100.0, run_429=5)
    lid, slots = core.lease(0.0, [1] * 30)
    for i in range(30):
        core.penalize(slots[-1], 1.0, (lid, i), conclusive=False)
    assert core.factor == 0.25


def test_provider_headers_naming_a_lower_limit_lower_ours():
    core = LimiterCore(1200, None, headroom=0.0, horizon_s=100.0)
    core.observe(0.0, 250, 1.0, None, None, 300, None)
    assert core.rpm == 300 and core.stats["lowered"] == 1
    _, slots = core.lease(0.0, [1] * 3)
    assert abs((slots[1] - slots[0]) - 0.2) < 1e-9
    core.observe(1.0, 250, 1.0, None, None, 6000, None)  # a higher one is not taken: ours is the user's
    assert core.rpm == 300


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



def test_a_long_wait_for_a_slot_ends_with_a_short_sleep(monkeypatch):
    """Ray runs workers at nice 15, where Linux lets a timed wait end up to 0.5% of its length late: a slot
    0.4 s away woke 2 ms late. The sleep that ends at the slot must be short, so its slack is microseconds."""
    clock = [100.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(limiter, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(limiter, "asyncio", types.SimpleNamespace(sleep=fake_sleep))
    for wait in (0.4, 5.0):
        slept.clear()
        asyncio.run(limiter.sleep_until(clock[0] + wait))
        assert len(slept) == 2 and abs(sum(slept) - wait) < 1e-9 and slept[-1] <= 0.01 * wait + 1e-9
    slept.clear()
    asyncio.run(limiter.sleep_until(clock[0] + 0.01))  # short: one sleep
    assert len(slept) == 1 and abs(slept[0] - 0.01) < 1e-9
    slept.clear()
    asyncio.run(limiter.sleep_until(clock[0] - 1.0))  # already due: no sleep
    assert slept == []
