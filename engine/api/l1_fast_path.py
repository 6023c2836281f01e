"""POST /recommendations answered from L1 in front of the framework, when nothing else is needed.

The leanest path that keeps the route's contract: a request in the plain form
``?user_id=U[&n=N]`` with no body, whose user is in no experiment or in an A/B arm already
exposed in this process, and whose list is in L1, is answered here: same validation rules (the
constants of ``engine.api.schemas``), same assignment, same cache key, same metrics (HTTP request
counter, recommendation counter and latency, cache tier counters, list quality), same body and
headers.  The body of each cached list is rendered once (``engine.api.list_body``) and kept beside
L1 for as long as L1 holds that very value, so a hit only stamps a new request id on bytes.

Answers are counted in plain Python and handed to the metrics in batches (``_Tally``): at most
``FLUSH_SECONDS`` after the first answer not yet counted, and before the app answers any other
request, so a scrape of ``/metrics`` or a read of the cache's counters sees every answer.  Counted
one by one, the five metric updates of a hit cost a third of the answer.

Everything else goes to the FastAPI app untouched, before anything is counted: a body, another
or a repeated parameter, anything percent-encoded, input the rules reject (the route answers the
422), an L1 miss, an interleaving experiment, an exploring arm (its list is drawn per request), a
user's first exposure (the route records it) — so errors, OpenAPI and every other route are the
framework's.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.list_body import ListBody, list_body, new_request_id
from engine.api.middleware import count_request
from engine.api.schemas import ID_PATTERN, LIST_SIZE_MAX, LIST_SIZE_MIN
from engine.runtime import Engine
from engine.serving.cache.entry import CachedValue
from engine.serving.service import L1Hit, ServedFromL1

log = logging.getLogger(__name__)

PATH, METHOD = "/recommendations", "POST"
# the two plain forms in one match: user_id=U[&n=N] and n=N&user_id=U, with the route's id pattern
# and canonical decimals only ("010", "+1", " 1" are left to pydantic's parsing in the route)
_ID = ID_PATTERN.removeprefix("^").removesuffix("$")
_SIZE = f"[1-9][0-9]{{0,{len(str(LIST_SIZE_MAX)) - 1}}}"
_PLAIN = re.compile(f"user_id=(?P<u>{_ID})(?:&n=(?P<n>{_SIZE}))?|n=(?P<n2>{_SIZE})&user_id=(?P<u2>{_ID})".encode())
_HEADERS_TAIL = [(b"content-type", b"application/json")]
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


@functools.lru_cache(maxsize=4096)  # pure, and the same few queries come again and again
def plain_query(query_string: bytes) -> tuple[str, int | None] | None:
    """``(user_id, n)`` from ``user_id=U[&n=N]`` (either order) when the route's rules accept both
    as written; None for anything else, valid or not, which the route then decides."""
    m = _PLAIN.fullmatch(query_string)
    if m is None:
        return None
    user, size = m.group("u") or m.group("u2"), m.group("n") or m.group("n2")
    if size is None:
        return user.decode(), None
    n = int(size)
    return (user.decode(), n) if LIST_SIZE_MIN <= n <= LIST_SIZE_MAX else None


FLUSH_SECONDS = 0.25


@dataclass(frozen=True, slots=True, eq=False)  # identity: one per rendering, a key of the tally
class _Rendered:
    entry: CachedValue  # the L1 value this was rendered from
    model: str
    body: ListBody
    start: Message  # the response's start, with this body's length (request ids have one length)
    head: bytes  # the same headers, as HTTP/1.1 header lines
    positions: np.ndarray
    diversity: float


class _Tally:
    """Answers not counted yet: how often each rendering was served, and each answer's latency."""

    __slots__ = ("latencies", "times")

    def __init__(self) -> None:
        self.times: dict[_Rendered, int] = {}
        self.latencies: list[float] = []


class L1FastPath:
    """ASGI in front of ``app``; ``engine`` returns the app's engine (None before start-up)."""

    def __init__(self, app: ASGIApp, engine: Callable[[], Engine | None]) -> None:
        self.app = app
        self._engine = engine
        # (L1 key, experiment, variant) -> the body of that list; only touched on the event loop
        self._rendered: dict[tuple[str, str | None, str | None], _Rendered] = {}
        self._tally = _Tally()  # only touched on the event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == PATH and scope["method"] == METHOD:
                answer = self.answer(scope["headers"], scope["query_string"])
                if answer is not None:
                    rendered, body = answer
                    await send(rendered.start)
                    await send({"type": "http.response.body", "body": body})
                    return
            self.flush()
        elif scope["type"] == "lifespan":
            try:
                await self.app(scope, receive, send)
            finally:
                self.flush()
            return
        await self.app(scope, receive, send)

    def flush(self) -> None:
        """Hand the answers not counted yet to the metrics (a no-op when there are none)."""
        tally = self._tally
        if not tally.latencies:
            return
        self._tally = _Tally()
        engine = self._engine()
        if engine is None:
            return
        try:
            engine.service.served_from_l1(
                [ServedFromL1(r.model, r.positions, r.diversity, k) for r, k in tally.times.items()], tally.latencies)
            count_request(METHOD, PATH, 200, len(tally.latencies))
        except Exception:  # the answers went out; losing their counts must not break the next ones
            log.exception("counting %d fast-path answers failed", len(tally.latencies))

    def _count(self, rendered: _Rendered, started: float) -> None:
        tally = self._tally
        if not tally.latencies:
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
        tally.times[rendered] = tally.times.get(rendered, 0) + 1
        tally.latencies.append(time.perf_counter() - started)

    def answer(self, headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> tuple[_Rendered, bytes] | None:
        """The answer to ``POST /recommendations?query_string`` (its rendering and body), or None to
        leave the request to the route (nothing counted then)."""
        try:
            return self._answer(headers, query_string)
        except Exception:  # never worse than the route: it answers instead
            log.exception("L1 fast path failed; the route answers")
            return None

    def _answer(self, headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> tuple[_Rendered, bytes] | None:
        engine = self._engine()
        if engine is None:
            return None
        for name, value in headers:
            if name in _BODY_HEADERS and value != b"0":
                return None
        query = plain_query(query_string)
        if query is None:
            return None
        uid, size = query
        size = size or engine.settings.default_n
        assignment = engine.experiments.assign(uid)
        if assignment is None:
            hit = engine.service.l1_hit(uid, size, batched=True)
            experiment = variant = None
        else:
            if assignment.rankers is not None or not engine.experiments.already_exposed(assignment):
                return None
            serving = assignment.serving
            if engine.service.list_settings(serving=serving).exploration is not None:
                return None
            hit = engine.service.l1_hit(uid, serving.length(size), assignment.model,
                                        version=assignment.version, serving=serving, batched=True)
            experiment, variant = assignment.experiment, assignment.variant
        if hit is None:
            return None
        rendered = self._rendered.get((hit.key, experiment, variant))
        if rendered is None or rendered.entry is not hit.entry:
            rendered = self._render(engine, hit, experiment, variant)
        self._count(rendered, hit.started)
        return rendered, rendered.body.stamped(new_request_id())

    def _render(self, engine: Engine, hit: L1Hit, experiment: str | None, variant: str | None) -> _Rendered:
        result = engine.service.l1_result(hit)
        body = list_body(result, experiment, variant)
        headers = [(b"content-length", str(body.length).encode()), *_HEADERS_TAIL]
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        head = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
        rendered = _Rendered(hit.entry, hit.model, body, start, head, engine.service.catalog_positions(result.items),
                             result.diversity)
        memo = self._rendered
        if len(memo) >= max(1, engine.settings.l1_max_entries):  # oldest out: no more than L1 can hold
            del memo[next(iter(memo))]
        memo[(hit.key, experiment, variant)] = rendered
        return rendered
