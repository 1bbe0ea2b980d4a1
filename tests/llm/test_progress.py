"""The LLM progress line: rate and ETA count only requests actually sent (cached ones take no time)."""

from __future__ import annotations

import re

import pytest

from profile_dist.llm.progress import Estimate, ProgressBar, RunStats, estimate


@pytest.mark.parametrize("case, args, expected", [
    # total, cached, answered, answered in the window, window seconds
    ("fully cached: nothing left, no rate", (1000, 1000, 0, 0, 0.0), Estimate(None, 0.0)),
    ("fresh, nothing answered yet: no guess", (100, 0, 0, 0, 2.0), Estimate(None, None)),
    ("fresh run at 4 req/s", (100, 0, 20, 20, 5.0), Estimate(4.0, 20.0)),
    ("resumed: 900 cached are not credited to the rate", (1000, 900, 30, 30, 10.0), Estimate(3.0, 70 / 3.0)),
    ("mixed, last minute only: 120 in the window of 60 s", (5000, 2000, 600, 120, 60.0), Estimate(2.0, 1200.0)),
    ("all answered", (10, 4, 6, 6, 3.0), Estimate(2.0, 0.0)),
])
def test_rate_and_eta(case, args, expected):
    got = estimate(*args)
    total, cached, answered, window_answered, window_s = args
    # Independent reference: requests per second over the window, time = what is left / rate.
    rate = window_answered / window_s if window_answered else None
    left = total - cached - answered
    assert got == expected, case
    assert got.rate == rate
    assert got.eta_s == (0.0 if left == 0 else (left / rate if rate else None))


def _bar_text(capsys) -> str:
    return capsys.readouterr().err.replace("\r", "\n")


def test_a_fully_cached_run_shows_no_absurd_rate(capsys):
    stats = RunStats("judge", "m", 1)
    stats.add_requests(1000, 1000, 1000)
    bar = ProgressBar(stats, 1000, "annotate (llm)", True, cached=1000)
    bar.close()
    text = _bar_text(capsys)
    assert "1000/1000" in text and "cached=1000" in text and "ETA 00:00" in text
    # The old bar divided 1000 instant cache hits by a few microseconds ("12892327.87req/s").
    assert not re.search(r"\d{3,}(\.\d+)?\s*req/s", text), text
    assert "- req/s sent" in text


def test_counts_and_spend_against_the_budget(capsys):
    stats = RunStats("judge", "m", 1)
    stats.add_requests(10, 10, 4)
    bar = ProgressBar(stats, 10, "judge", True, cached=4, max_cost=5.0, spent_before=0.25)
    bar.start_sending()
    stats.add_result(True, None, 0.01, {"calls": 2, "retries": 1})
    stats.add_result(False, "http_500", 0.0, {"calls": 3, "retries": 2})
    bar.advance(2)
    bar.close()
    line = _bar_text(capsys).strip().splitlines()[-1]
    assert "6/10" in line
    assert "done=1 cached=4 failed=1 retried=3" in line
    assert "$0.2600 of $5.00" in line
    assert re.search(r"[\d.]+ req/s sent, ETA \d", line), line
