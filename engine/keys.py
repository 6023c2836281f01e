"""Redis key names, all under one prefix.

User-scoped keys carry the user id inside a hash tag (``{u:<id>}``) so that every key of one
user lands in one Redis Cluster slot and a user's multi-key operations stay atomic there.
User ids are validated before they get here, and no key built here is ever used as a glob.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str = "recops"

    def user_tag(self, user_id: str) -> str:
        return "{u:" + user_id + "}"

    # feature store
    def user_features(self, user_id: str) -> str:
        return f"{self.prefix}:feat:user:{self.user_tag(user_id)}"

    def item_features(self, item_id: str) -> str:
        return f"{self.prefix}:feat:item:{item_id}"

    # recommendation cache
    def rec_list(self, user_id: str, model: str, n: int, variant: str = "") -> str:
        return f"{self.prefix}:rec:{self.user_tag(user_id)}:{model}:{n}:{variant}"

    def rec_index(self, user_id: str) -> str:
        """Set of a user's cached list keys, so invalidation needs no KEYS/SCAN."""
        return f"{self.prefix}:recidx:{self.user_tag(user_id)}"

    def rec_lock(self, key: str) -> str:
        return f"{key}:lock"

    @property
    def rec_scan_pattern(self) -> str:
        return f"{self.prefix}:rec*"

    @property
    def invalidation_channel(self) -> str:
        return f"{self.prefix}:invalidate"

    # events
    @property
    def event_stream(self) -> str:
        return f"{self.prefix}:events"

    @property
    def event_counts(self) -> str:
        return f"{self.prefix}:events:count"

    def event_id(self, user_id: str, event_id: str) -> str:
        """Idempotency marker; tagged by user so the dedupe and the live-log append share a slot."""
        return f"{self.prefix}:evid:{self.user_tag(user_id)}:{event_id}"

    def user_log(self, user_id: str) -> str:
        """Capped list of a user's interactions since the dataset was built, newest first."""
        return f"{self.prefix}:live:log:{self.user_tag(user_id)}"

    def user_purchased(self, user_id: str) -> str:
        """Set of items a user bought since the dataset was built (outlives the capped log)."""
        return f"{self.prefix}:live:bought:{self.user_tag(user_id)}"

    # operations
    @property
    def audit_log(self) -> str:
        return f"{self.prefix}:audit"

    def scan_pattern(self, section: str = "") -> str:
        return f"{self.prefix}:{section}*"
