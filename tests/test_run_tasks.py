"""runtime.run_tasks: results in call order, and at most max_in_flight calls' arguments alive at once."""

from __future__ import annotations

import pytest

from profile_dist.errors import ConfigError
from profile_dist.stages.runtime import run_tasks

pytestmark = pytest.mark.usefixtures("ray_session")


def _square_or_fail(ray_session):
    def square_or_fail(x: int, fail: bool) -> int:  # defined here: pickled by value (workers cannot import tests/)
        if fail:
            raise ConfigError(f"task {x} failed")
        return x * x
    return ray_session.remote(square_or_fail)


def test_results_come_in_call_order_from_a_generator(ray_session):
    remote = _square_or_fail(ray_session)
    produced = []

    def calls():
        for x in range(25):
            produced.append(x)
            yield (x, False)

    assert run_tasks(remote, calls(), desc="t", progress=False, total=25, max_in_flight=3) == [x * x for x in range(25)]
    assert produced == list(range(25))


def test_calls_are_drawn_only_as_tasks_finish(ray_session):
    """The first task fails: the run stops having drawn no more than the window of calls (plus the ones
    submitted as earlier tasks finished), so a long generator is not expanded up front."""
    remote = _square_or_fail(ray_session)
    produced = []

    def calls():
        for x in range(1000):
            produced.append(x)
            yield (x, x == 0)

    with pytest.raises(ConfigError, match="task 0 failed"):
        run_tasks(remote, calls(), desc="t", progress=False, max_in_flight=2)
    assert 2 <= len(produced) < 1000
