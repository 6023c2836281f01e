"""The in-process tier: a bounded LRU with a TTL and a per-user index, safe across threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from engine.serving.cache.entry import CachedValue
from engine.serving.cache.miss_causes import EVICTED, EXPIRED, FIRST_SEEN, INVALIDATED


@dataclass(slots=True)
class _Slot:
    user: str
    entry: CachedValue
    deadline: float  # monotonic seconds


class L1Cache:
    """LRU over ``max_entries`` keys; an entry lives ``ttl_seconds`` or until its value expires.

    The per-user index makes dropping one user's entries cost O(their entries) instead of a scan.
    ``max_entries <= 0`` disables the tier (every ``get`` misses).

    Removed keys leave a *ghost* (key → why it went: expired, evicted, invalidated) in a second
    LRU of the same bound, so that a miss can say why (``miss_cause``) at the cost of a dict
    look-up; a key never seen, or whose ghost was pushed out, is ``first_seen``.
    """

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._monotonic = monotonic
        self._wall = wall
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        self._ghosts: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, key: str) -> CachedValue | None:
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                return None
            if self._monotonic() >= slot.deadline:
                self._remove(key, slot, EXPIRED)
                return None
            self._slots.move_to_end(key)
            return slot.entry

    def put(self, user: str, key: str, entry: CachedValue) -> None:
        if self.max_entries <= 0:
            return
        # never keep a value past its own (L2) expiry, whatever the L1 TTL says
        remaining = min(self.ttl_seconds, entry.expiry - self._wall())
        if remaining <= 0:
            return
        deadline = self._monotonic() + remaining
        with self._lock:
            old = self._slots.get(key)
            if old is not None:
                self._remove(key, old, "")
            self._ghosts.pop(key, None)
            self._slots[key] = _Slot(user, entry, deadline)
            self._by_user.setdefault(user, set()).add(key)
            while len(self._slots) > self.max_entries:
                evicted_key, evicted = self._slots.popitem(last=False)
                self._unindex(evicted_key, evicted.user)
                self._ghost(evicted_key, EVICTED)
                self.evictions += 1

    def drop_user(self, user: str) -> int:
        with self._lock:
            keys = self._by_user.pop(user, set())
            for key in keys:
                del self._slots[key]
                self._ghost(key, INVALIDATED)
            return len(keys)

    def clear(self) -> int:
        with self._lock:
            n = len(self._slots)
            for key in self._slots:
                self._ghost(key, INVALIDATED)
            self._slots.clear()
            self._by_user.clear()
            return n

    def miss_cause(self, key: str) -> str:
        """Why ``key`` is not here (call after ``get`` returned None): the cause its ghost noted,
        else ``first_seen``.  The ghost stays, so the next miss of the key says the same."""
        with self._lock:
            return self._ghosts.get(key, FIRST_SEEN)

    def _remove(self, key: str, slot: _Slot, cause: str) -> None:
        del self._slots[key]
        self._unindex(key, slot.user)
        if cause:
            self._ghost(key, cause)

    def _ghost(self, key: str, cause: str) -> None:
        self._ghosts[key] = cause
        self._ghosts.move_to_end(key)
        while len(self._ghosts) > self.max_entries:
            self._ghosts.popitem(last=False)

    def _unindex(self, key: str, user: str) -> None:
        keys = self._by_user.get(user)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_user[user]
