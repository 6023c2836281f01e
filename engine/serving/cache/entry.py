"""A cached recommendation list with what XFetch needs: its compute time and its expiry.

In Redis the entry is one JSON document ``{"v": value, "d": delta, "e": expiry}``; in L1 the
value is kept as JSON bytes so that every caller decodes its own copy and no caller can mutate
what the next one is served.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class CachedValue:
    value_json: bytes
    delta: float  # seconds the value took to compute
    expiry: float  # wall-clock (epoch) seconds, shared by every process

    @classmethod
    def from_value(cls, value: Any, delta: float, expiry: float) -> CachedValue:
        return cls(orjson.dumps(value), delta, expiry)

    def value(self) -> Any:
        return orjson.loads(self.value_json)

    def envelope(self) -> bytes:
        # spliced rather than re-serialised: value_json is already valid JSON
        head = orjson.dumps({"d": self.delta, "e": self.expiry})
        return head[:-1] + b',"v":' + self.value_json + b"}"

    @classmethod
    def from_envelope(cls, raw: str | bytes) -> CachedValue:
        doc = orjson.loads(raw)
        return cls(orjson.dumps(doc["v"]), float(doc["d"]), float(doc["e"]))


def xfetch_due(entry: CachedValue, now: float, beta: float, rand: Callable[[], float]) -> bool:
    """Vattani et al.'s test: refresh early when ``now - delta*beta*ln(rand()) >= expiry``.

    ``rand`` must return a value in (0, 1]; 0 (ln = -inf) means "refresh now".
    """
    r = rand()
    if r <= 0.0:
        return True
    return now - entry.delta * beta * math.log(r) >= entry.expiry
