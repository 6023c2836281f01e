"""uvicorn's httptools protocol, with the L1 fast path's answers written straight from the parser.

A cached list answered through ASGI still costs a request cycle, a task and two writes: as much as
the bare ASGI app this path is measured against (``bench http``).  When the parser has a request's
headers, this protocol asks the app's ``L1FastPath`` for the answer and, when there is one, writes
status line, uvicorn's default headers (date, server), the path's headers and the body in one
write, and goes on as uvicorn does after a response (keep-alive timer, or close).  Everything else
— no answer, a request pipelined behind one still running, a paused transport, a concurrency limit
— takes uvicorn's own path, to the same ASGI app (where ``L1FastPath`` may answer it again).

It reads uvicorn's protocol state (``cycle``, ``pipeline``, ``flow``, ``server_state``), so
uvicorn is pinned to the minor versions ``tests/engine/api/test_fast_hit_protocol.py`` ran with,
against a real server: keep-alive, ``Connection: close``, HTTP/1.0, pipelining and bodies.
"""

from __future__ import annotations

from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from engine.api.l1_fast_path import METHOD, PATH, L1FastPath

_METHOD, _PATH = METHOD.encode(), PATH.encode()
_CLOSE = b"connection: close\r\n"


class _NoWaiter:
    def set(self) -> None:  # nobody waits for a request already answered
        pass


class _Answered:
    """Stands for the request cycle of an answer already written: the parser's later callbacks for
    that request (``on_body``, ``on_message_complete``) and ``connection_lost`` see it complete."""

    response_complete = True
    message_event = _NoWaiter()


_ANSWERED: Any = _Answered()


def _fast_path(app: Any) -> L1FastPath | None:
    # uvicorn wraps the app (proxy headers, message logger): find the fast path under them
    while app is not None and not isinstance(app, L1FastPath):
        app = getattr(app, "app", None)
    return app


class FastHitProtocol(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._fast = _fast_path(self.app)

    def on_headers_complete(self) -> None:
        if self._answered():
            return
        super().on_headers_complete()

    def _answered(self) -> bool:
        fast = self._fast
        if (fast is None or self.parser.get_method() != _METHOD or self.limit_concurrency is not None
                or (self.cycle is not None and not self.cycle.response_complete) or self.pipeline
                or self.flow.write_paused or self.parser.should_upgrade()):
            return False
        url = httptools.parse_url(self.url)
        if url.path != _PATH:
            return False
        answer = fast.answer(self.headers, url.query or b"")
        if answer is None:
            return False
        rendered, body = answer
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        content = [STATUS_LINE[200]]
        for name, value in self.server_state.default_headers:
            content += (name, b": ", value, b"\r\n")
        content.append(rendered.head)
        if not keep_alive:  # after the app's headers, as uvicorn puts it
            content.append(_CLOSE)
        content += (b"\r\n", body)
        self.cycle = _ANSWERED
        self.transport.write(b"".join(content))
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()
        return True
