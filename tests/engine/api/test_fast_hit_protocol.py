"""The L1 fast path answered from uvicorn's parser (``FastHitProtocol``), on a real server.

Two uvicorn servers in this process serve the same app on one engine (one L1): ``fast`` with
``FastHitProtocol``, as ``recops serve`` runs, and ``plain`` with uvicorn's own httptools protocol.
Raw sockets check what a client sees on the wire — the same bytes but for the date and request
id, keep-alive, ``Connection: close``, HTTP/1.0, pipelining, requests with a body — and a scrape
checks the metrics count the answers.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from bench.harness import metric_total
from engine.api.app import create_server
from engine.api.fast_hit_protocol import FastHitProtocol
from engine.local_processes import free_port
from engine.runtime import Engine

REQUEST_ID = re.compile(rb'"request_id":"[0-9a-f]{32}"')
DATE = re.compile(rb"date: [^\r]+\r\n")


@dataclass
class Servers:
    fast: int  # ports
    plain: int
    engine: Engine
    reached: list[str]  # the queries of the fast server's POSTs that reached ASGI


class _Recorder:
    """Above the app as uvicorn's own wrappers are: the protocol finds the fast path under it."""

    def __init__(self, app: Any) -> None:
        self.app, self.reached = app, []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.reached.append(scope["query_string"].decode())
        await self.app(scope, receive, send)


def _serve(app: object, port: int, http: object) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=http, loop="uvloop",  # type: ignore[arg-type]
                            log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    return server, thread


@pytest.fixture
def servers(engine: Engine) -> Iterator[Servers]:
    recorder = _Recorder(create_server(engine=engine))
    running = [_serve(app, port, http) for app, port, http in (
        (recorder, free_port(), FastHitProtocol), (create_server(engine=engine), free_port(), "httptools"))]
    try:
        yield Servers(running[0][0].config.port, running[1][0].config.port, engine, recorder.reached)
    finally:
        for server, thread in running:
            server.should_exit = True
            thread.join(timeout=10)


def _exchange(port: int, raw: bytes, responses: int = 1) -> tuple[list[bytes], bool]:
    """Send ``raw`` on one connection; read ``responses`` answers (each with a content-length); and
    whether the server closed the connection after them."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        buffer, answers = b"", []
        while len(answers) < responses:
            while b"\r\n\r\n" not in buffer:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {len(answers)} answers: {buffer!r}"
                buffer += chunk
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
            while len(rest) < length:
                rest += sock.recv(65536)
            answers.append(head + b"\r\n\r\n" + rest[:length])
            buffer = rest[length:]
        sock.settimeout(0.5)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return answers, closed


def _post(query: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"POST /recommendations?{query} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def _normal(answer: bytes) -> bytes:
    return DATE.sub(b"date: -\r\n", REQUEST_ID.sub(b'"request_id":"-"', answer))


def _hit(servers: Servers, query: str) -> None:
    with httpx.Client() as client:  # computed by the route, now in L1
        client.post(f"http://127.0.0.1:{servers.plain}/recommendations?{query}")


def test_a_hit_is_what_uvicorns_own_protocol_sends_but_for_date_and_id(servers: Servers) -> None:
    query = "user_id=u00011&n=10"
    _hit(servers, query)
    (fast,), fast_closed = _exchange(servers.fast, _post(query))
    (plain,), _ = _exchange(servers.plain, _post(query))
    assert b'"cache_tier":"l1"' in fast
    assert _normal(fast) == _normal(plain)
    assert fast.startswith(b"HTTP/1.1 200 OK\r\n") and b"server: uvicorn\r\n" in fast and DATE.search(fast)
    assert not fast_closed, "keep-alive by default"
    assert servers.reached == [], "answered from the parser, not through ASGI"


def test_keep_alive_answers_every_request_of_a_connection_with_its_own_id(servers: Servers) -> None:
    query = "user_id=u00012"
    _hit(servers, query)
    answers, closed = _exchange(servers.fast, _post(query) * 3, responses=3)  # pipelined, all hits
    assert len({_normal(a) for a in answers}) == 1
    assert len({REQUEST_ID.search(a).group(0) for a in answers}) == 3  # type: ignore[union-attr]
    assert not closed
    assert servers.reached == []


@pytest.mark.parametrize(("version", "extra"), [("1.1", "Connection: close\r\n"), ("1.0", "")])
def test_a_client_that_does_not_keep_alive_gets_connection_close(servers: Servers, version: str, extra: str) -> None:
    query = "user_id=u00013&n=5"
    _hit(servers, query)
    (fast,), fast_closed = _exchange(servers.fast, _post(query, version, extra))
    (plain,), plain_closed = _exchange(servers.plain, _post(query, version, extra))
    assert b"connection: close\r\n" in fast and fast_closed and plain_closed
    assert _normal(fast) == _normal(plain)


def test_a_hit_pipelined_behind_a_miss_waits_its_turn(servers: Servers) -> None:
    hot, cold = "user_id=u00014&n=10", "user_id=u00015&n=10"
    _hit(servers, hot)
    (miss, hit), _ = _exchange(servers.fast, _post(cold) + _post(hot), responses=2)
    assert b'"user_id":"u00015"' in miss and b'"cache_tier":"miss"' in miss
    assert b'"user_id":"u00014"' in hit and b'"cache_tier":"l1"' in hit
    assert servers.reached == [cold, hot], "behind a running request, uvicorn's own path keeps the order"


def test_requests_the_fast_path_does_not_read_reach_the_route(servers: Servers) -> None:
    query = "user_id=u00016&n=10"
    _hit(servers, query)
    body = b'{"context": {"device": "ios"}}'
    with_body = _post(query, extra=f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n").rstrip(b"\r\n")
    (fast,), _ = _exchange(servers.fast, with_body + b"\r\n\r\n" + body)
    (plain,), _ = _exchange(servers.plain, with_body + b"\r\n\r\n" + body)
    assert _normal(fast) == _normal(plain)
    (bad,), _ = _exchange(servers.fast, _post("user_id=u00016&n=0"))
    assert bad.startswith(b"HTTP/1.1 422 ")
    assert servers.reached == [query, "user_id=u00016&n=0"]


def test_answers_from_the_parser_are_counted(servers: Servers) -> None:
    query = "user_id=u00017&n=10"
    _hit(servers, query)
    base = f"http://127.0.0.1:{servers.fast}"
    labels = {"method": "POST", "route": "/recommendations", "status": "200"}
    with httpx.Client() as client:
        before = client.get(f"{base}/metrics").text
        answers, _ = _exchange(servers.fast, _post(query) * 5, responses=5)
        after = client.get(f"{base}/metrics").text
    assert all(b'"cache_tier":"l1"' in a for a in answers)
    for name, extra in [("recops_http_requests_total", labels),
                        ("recops_recommendation_latency_seconds_count", {"tier": "l1"}),
                        ("recops_cache_requests_total", {"tier": "l1", "result": "hit"})]:
        assert metric_total(after, name, **extra) - metric_total(before, name, **extra) == 5, name
