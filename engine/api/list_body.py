"""The JSON body of a recommendation answer, and the request id that makes each answer unique.

A body is rendered once into the bytes around its request id (``ListBody``), so that the cache-hit
path can keep the rendering of a cached list and only stamp each answer with a new id.  Both the
route and that path render through here: their answers are the same bytes but for the id.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import orjson

from engine.serving.service import RecommendationResult

# Request ids: a random per-process prefix and a counter.  Unique across workers and restarts with
# overwhelming probability, and a tenth of the cost of uuid4 (an os.urandom call per request).
_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count()


def _reseed_ids() -> None:
    # a worker forked from a parent that already imported this module (gunicorn --preload)
    # must not repeat the parent's ids
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = os.urandom(8).hex(), itertools.count()


os.register_at_fork(after_in_child=_reseed_ids)


REQUEST_ID_CHARS = 32  # 16 hex of prefix, 16 of counter (2^64 ids per process before it grows)


def new_request_id() -> str:
    return f"{_id_prefix}{next(_id_counter):016x}"


_ID_SLOT = b'"request_id":"'


@dataclass(frozen=True, slots=True)
class ListBody:
    head: bytes  # the body up to the request id's value
    tail: bytes  # after it

    @property
    def length(self) -> int:
        """The length of every stamped body (request ids have ``REQUEST_ID_CHARS``)."""
        return len(self.head) + REQUEST_ID_CHARS + len(self.tail)

    def stamped(self, request_id: str) -> bytes:
        # ids are hex (ASCII, nothing to escape in JSON)
        return self.head + request_id.encode() + self.tail


def list_body(
    result: RecommendationResult,
    experiment: str | None,
    variant: str | None,
    teams: tuple[str, ...] | None = None,
) -> ListBody:
    # Serialised directly: the items come from our own cache in the documented shape, and
    # re-validating ten of them through pydantic per request costs more than the cache hit.
    body = {
        "user_id": result.user_id,
        "items": result.items,
        "cached": result.cached,
        "cache_tier": result.cache_tier,
        "model": result.model,
        "experiment": experiment,
        "variant": variant,
        "fallback": result.fallback,
        "request_id": "",
    }
    if teams is not None:
        body["teams"] = teams
    raw = orjson.dumps(body)
    # the last occurrence is the top-level key: inside a string value its quotes would be escaped
    cut = raw.rindex(_ID_SLOT + b'"') + len(_ID_SLOT)
    return ListBody(raw[:cut], raw[cut:])
