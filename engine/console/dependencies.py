"""Health of the console's dependencies: Redis, the API and Prometheus, each with a short reason."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import httpx
import redis

from engine.storage.embedded_redis import redact_url as redact

State = Literal["up", "degraded", "down", "absent"]
TIMEOUT_SECONDS = 1.5


@dataclass(frozen=True)
class Health:
    name: str
    state: State  # absent = not configured (no URL), which is not an error
    detail: str = ""
    latency_ms: float | None = None
    url: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "up"

    @property
    def summary(self) -> str:
        """The detail, the answer's latency when measured, and the (redacted) URL on a line of its own."""
        detail = self.detail if self.latency_ms is None else f"{self.detail} · {self.latency_ms:.0f} ms"
        return detail if not self.url else f"{detail}  \n`{self.url}`"


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def redact_url(url: str | None) -> str | None:
    """The URL without its password (``redis://:secret@host`` must never reach a page or a log)."""
    return redact(url) if url else url


def redis_unavailable(exc: BaseException) -> bool:
    """Connection-level failures, as opposed to a bad command: what the 'Redis is down' banner is for."""
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError | TimeoutError)


def check_redis(client: redis.Redis, url: str | None = None) -> Health:
    url = redact_url(url)
    started = time.perf_counter()
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return Health("Redis", "down", f"{type(exc).__name__}: {exc}", url=url)
    return Health("Redis", "up", "PING answered", _elapsed_ms(started), url)


def check_api(url: str | None, client: httpx.Client | None = None) -> Health:
    if not url:
        return Health("API", "absent", "RECOPS_API_URL is not set (start the stack with `recops up`)")
    started = time.perf_counter()
    try:
        response = (client or httpx).get(f"{url}/health", timeout=TIMEOUT_SECONDS)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Health("API", "down", f"{type(exc).__name__}: {exc}", url=url)
    status = body.get("status") if isinstance(body, dict) else None
    if response.status_code != 200 or status not in ("healthy", "degraded"):
        return Health("API", "down", f"/health answered {response.status_code}", url=url)
    if status == "degraded":
        parts = [f"{k}: {v.get('detail') or v.get('status')}" for k, v in body.items()
                 if isinstance(v, dict) and v.get("status", "ok") != "ok"]  # the dataset has no status
        return Health("API", "degraded", "; ".join(parts) or "degraded", _elapsed_ms(started), url)
    return Health("API", "up", "healthy", _elapsed_ms(started), url)


def check_prometheus(url: str | None, client: httpx.Client | None = None) -> Health:
    if not url:
        return Health("Prometheus", "absent", "not configured: monitoring reads the API's /metrics instead")
    started = time.perf_counter()
    try:
        response = (client or httpx).get(f"{url}/-/ready", timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return Health("Prometheus", "down", f"{type(exc).__name__}: {exc}", url=url)
    if response.status_code != 200:
        return Health("Prometheus", "down", f"/-/ready answered {response.status_code}", url=url)
    return Health("Prometheus", "up", "ready", _elapsed_ms(started), url)
