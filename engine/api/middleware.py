"""A plain ASGI middleware counting HTTP requests by route template (never the raw path)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "recops_http_requests_total", "HTTP requests by method, route template and status", ["method", "route", "status"]
)


class RequestCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # labelled children looked up once per (method, route, status): .labels() takes a lock and
        # builds a tuple key, which costs more than the increment on the cache-hit path
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: dict[str, Any] = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # unmatched paths share one label so scanners cannot blow up the series count
            template = getattr(route, "path", "unmatched")
            key = (scope["method"], template, status["code"])
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = HTTP_REQUESTS.labels(key[0], key[1], str(key[2]))
            child.inc()
