"""In-process coordination: one computation per key (single-flight), and no write of a value
that an invalidation overtook while it was being computed (write guard)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class _Call(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class SingleFlight(Generic[T]):
    """Concurrent ``do(key, fn)`` calls run ``fn`` once; the others wait and share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, _Call[T]] = {}

    def do(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        """``(result, shared)``: ``shared`` is True for a caller that waited on another's call."""
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if call is None:
                call = self._calls[key] = _Call()
        if not leader:
            call.done.wait()
            if call.error is not None:
                raise call.error
            return call.result, True  # type: ignore[return-value]
        try:
            call.result = fn()
            return call.result, False
        except BaseException as exc:
            call.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            call.done.set()

    def in_flight(self) -> int:
        return len(self._calls)


class WriteTicket:
    __slots__ = ("stale", "user")

    def __init__(self, user: str) -> None:
        self.user = user
        self.stale = False


class WriteGuard:
    """Tickets for values being computed; an invalidation marks the matching tickets stale.

    A value is written to L1 only under the guard's lock and only if its ticket is still fresh, and
    the invalidation drops L1 entries under the same lock, so a computation that started before an
    invalidation can never put its (possibly outdated) value into L1 after it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets: dict[str, set[WriteTicket]] = {}

    @contextlib.contextmanager
    def ticket(self, user: str) -> Iterator[WriteTicket]:
        t = WriteTicket(user)
        with self._lock:
            self._tickets.setdefault(user, set()).add(t)
        try:
            yield t
        finally:
            with self._lock:
                held = self._tickets.get(user)
                if held is not None:
                    held.discard(t)
                    if not held:
                        del self._tickets[user]

    def commit(self, ticket: WriteTicket, write: Callable[[], None]) -> bool:
        with self._lock:
            if ticket.stale:
                return False
            write()
            return True

    def invalidate(self, user: str | None, drop: Callable[[], object]) -> None:
        """Mark ``user``'s tickets (every ticket when ``user`` is None) stale, then run ``drop``."""
        with self._lock:
            groups = self._tickets.values() if user is None else [self._tickets.get(user, set())]
            for group in groups:
                for t in group:
                    t.stale = True
            drop()
