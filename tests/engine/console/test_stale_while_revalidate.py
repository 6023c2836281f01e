"""StaleWhileRevalidate: the console's background refresh of slow reads (the keyspace scan)."""

from __future__ import annotations

import threading

import pytest

from engine.console.stale_while_revalidate import StaleWhileRevalidate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_first_read_computes_then_stale_reads_return_at_once_and_refresh_in_the_background() -> None:
    clock, calls = Clock(), []
    release = threading.Event()

    def compute() -> int:
        calls.append(clock.now)
        if len(calls) > 1:
            assert release.wait(5)
        return len(calls)

    swr = StaleWhileRevalidate(compute, max_age=30, clock=clock)
    assert not swr.has_value
    assert swr.get().value == 1 and calls == [0.0]
    clock.now = 10
    first = swr.get()
    assert (first.value, first.age_seconds, len(calls)) == (1, 10, 1)  # fresh enough: no recomputation

    clock.now = 31
    stale = swr.get()  # past max_age: the old value at once, a refresh started (and blocked in compute)
    assert (stale.value, stale.age_seconds) == (1, 31)
    assert swr.get().value == 1  # a second stale reader does not start another refresh
    release.set()
    swr.wait(5)
    assert len(calls) == 2
    fresh = swr.get()
    assert (fresh.value, fresh.age_seconds) == (2, 0)


def test_clear_makes_the_next_read_compute_and_a_failed_refresh_surfaces_on_the_next_read() -> None:
    clock = Clock()
    results: list[object] = [1, 2, RuntimeError("redis down")]

    def compute() -> object:
        result = results.pop(0)
        if isinstance(result, Exception):
            raise result
        return result

    swr = StaleWhileRevalidate(compute, max_age=5, clock=clock)
    assert swr.get().value == 1
    swr.clear()
    assert swr.get().value == 2  # recomputed on the read itself, not served stale
    clock.now = 6
    assert swr.get().value == 2  # stale, while the refresh fails in the background
    swr.wait(5)
    assert not swr.has_value
    results.append(RuntimeError("still down"))
    with pytest.raises(RuntimeError, match="still down"):
        swr.get()
