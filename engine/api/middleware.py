"""A plain ASGI middleware counting HTTP requests by route template (never the raw path)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "recops_http_requests_total", "HTTP requests by method, route template and status", ["method", "route", "status"]
)

# labelled children looked up once per (method, route, status): .labels() takes a lock and builds a
# tuple key, which costs more than the increment on the cache-hit path
_children: dict[tuple[str, str, int], Any] = {}


def count_request(method: str, route: str, status: int, n: int = 1) -> None:
    """``n`` requests answered: ``route`` is the route's template ("unmatched" for no route)."""
    key = (method, route, status)
    child = _children.get(key)
    if child is None:
        child = _children[key] = HTTP_REQUESTS.labels(method, route, str(status))
    child.inc(n)


class RequestCounter:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
            count_request(scope["method"], getattr(route, "path", "unmatched"), status["code"])
