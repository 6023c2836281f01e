"""Background subscriber to the invalidation channel that outlives Redis restarts."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import orjson
import redis

from engine.storage.client import subscriber

log = logging.getLogger(__name__)


class InvalidationListener:
    """Calls ``on_message(doc)`` for every JSON message on ``channel`` in a daemon thread.

    Every (re)subscription is seen through the server's ``subscribe`` confirmation, including
    those redis-py makes on its own after a reconnect; ``on_resubscribe`` runs for each one after
    the first, because messages published while the connection was down are lost for good.
    On errors the thread waits ``backoff`` seconds, doubling up to ``max_backoff``, and tries again;
    an outage logs one warning when it starts (the retries that follow log at debug level) and an
    info line when the subscription is back.
    """

    def __init__(
        self,
        client: redis.Redis,
        channel: str,
        on_message: Callable[[dict[str, object]], None],
        on_resubscribe: Callable[[], None],
        backoff: float = 0.05,
        max_backoff: float = 2.0,
        poll_seconds: float = 0.25,
    ) -> None:
        self._client = client
        self._channel = channel
        self._on_message = on_message
        self._on_resubscribe = on_resubscribe
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.subscriptions = 0
        self.errors = 0
        self._failed_attempts = 0  # of the current outage

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="recops-cache-invalidation", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.connected.clear()

    def _run(self) -> None:
        delay = self._backoff
        while not self._stop.is_set():
            pubsub = subscriber(self._client, self._failed_attempts)  # on a cluster: another node after a failure
            try:
                pubsub.subscribe(self._channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=self._poll_seconds)
                    if message is not None:
                        self._handle(message)
                        delay = self._backoff
            except (redis.RedisError, OSError) as exc:
                self.errors += 1
                self.connected.clear()
                # one warning per outage; the retries that follow are expected and logged at debug
                level = logging.DEBUG if self._failed_attempts else logging.WARNING
                self._failed_attempts += 1
                log.log(level, "cache invalidation listener lost Redis (%s); retrying in %.2fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, self._max_backoff)
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    pubsub.close()
        self.connected.clear()

    def _handle(self, message: dict[str, object]) -> None:
        try:
            self._dispatch(message)
        except (redis.RedisError, OSError):
            raise
        except Exception:
            # a bad callback must not kill the only thread that keeps L1 coherent
            log.exception("cache invalidation handler failed on %r", message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            self.subscriptions += 1
            if self.subscriptions > 1:
                self._on_resubscribe()
            if self._failed_attempts:
                log.info("cache invalidation listener subscribed again after %d failed attempt(s)",
                         self._failed_attempts)
            self._failed_attempts = 0
            self.connected.set()
        elif kind == "message":
            data = message.get("data")
            try:
                doc = orjson.loads(data)  # type: ignore[arg-type]
            except (orjson.JSONDecodeError, TypeError):
                log.warning("ignoring malformed invalidation message %r", data)
                return
            if isinstance(doc, dict):
                self._on_message(doc)
