"""What a page says in a coloured box (or a caption): the text, how loud, and its icon.

The pages draw a ``Notice`` with one Streamlit call per level; which level and which words are
decided here, so that they can be tested without Streamlit.  The failures of a dependency in the
middle of a page are turned into notices here too, never into a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import redis

from engine.console.dependencies import Health, redis_unavailable
from engine.console.monitoring_panels import MetricsUnavailableError

Level = Literal["success", "info", "warning", "error", "caption"]
DATABASE_OFF = ":material/database_off:"
# what a dependency raises mid-page: Redis (down, or refusing a command) and the metrics backends
DEPENDENCY_FAILURES: tuple[type[Exception], ...] = (redis.RedisError, ConnectionError, TimeoutError,
                                                    MetricsUnavailableError)


@dataclass(frozen=True)
class Notice:
    level: Level
    text: str
    icon: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.level == "success"


def engine_failed(exc: Exception) -> Notice:
    return Notice("error", f"**The engine could not start**: {type(exc).__name__}: {exc}. Check RECOPS_DATA_DIR "
                  "and the console's log.", ":material/error:")


def redis_down(h: Health) -> Notice:
    return Notice("error", f"**Redis is unreachable** ({h.url or 'REDIS_URL'}): {h.detail}. The cache, the feature "
                  "store, experiments and the audit log live there, so this page cannot show live data. "
                  "Serving keeps answering with fallback lists. Check the Redis process, then reload.", DATABASE_OFF)


def dependency_failed(exc: Exception, while_doing: str) -> Notice:
    """The notice for one of ``DEPENDENCY_FAILURES`` raised while the page was ``while_doing`` something."""
    if isinstance(exc, MetricsUnavailableError):
        return Notice("warning", f"Metrics are unavailable while {while_doing}: {exc}")
    if redis_unavailable(exc):
        return Notice("error", f"**Redis is unreachable** while {while_doing}: {exc}. Check the Redis process, "
                      "then reload.", DATABASE_OFF)
    return Notice("error", f"Redis refused a command while {while_doing}: {exc}")
