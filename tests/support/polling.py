"""Waiting for what another thread or process makes true: the one polling loop of the tests.

No pytest here: ``tests/support/cache_peer.py`` polls too, in a process of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout: float = 10.0, every: float = 0.02) -> T:
    """The first truthy value of ``condition()`` within ``timeout`` seconds, else its last (falsy) one.

    The last check comes at or after the deadline.  Callers assert on the result with their own
    message; an exception from ``condition`` ends the wait.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def seconds_until(condition: Callable[[], object], timeout: float, every: float = 0.1) -> float:
    """How long ``condition()`` took to hold; an AssertionError after ``timeout`` seconds."""
    started = time.monotonic()
    assert poll(condition, timeout, every), f"condition not met within {timeout}s"
    return time.monotonic() - started
