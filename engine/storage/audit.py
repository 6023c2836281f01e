"""The audit log of operator writes: who did what, when, to how many keys.

Kept in a capped Redis stream so that the console and the API (several processes) append to
one ordered log; entries are never edited.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis
from redis.typing import EncodableT, FieldT

from engine.storage.client import stream_entries
from engine.storage.keys import Keys

MAX_ENTRIES = 100_000


@dataclass(frozen=True)
class AuditEntry:
    at: float
    actor: str
    action: str
    target: str
    keys: int
    detail: str = ""


class AuditLog:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.key = keys.audit_log

    def record(self, actor: str, action: str, target: str = "", keys: int = 0, detail: str = "") -> None:
        fields: dict[FieldT, EncodableT] = {"at": f"{time.time():.3f}", "actor": actor, "action": action,
                                            "target": target, "keys": str(keys), "detail": detail}
        self.client.xadd(self.key, fields, maxlen=MAX_ENTRIES, approximate=True)

    def recent(self, n: int = 100) -> list[AuditEntry]:
        return [
            AuditEntry(at=float(f["at"]), actor=f["actor"], action=f["action"], target=f.get("target", ""),
                       keys=int(f.get("keys", 0)), detail=f.get("detail", ""))
            for _, f in stream_entries(self.client.xrevrange(self.key, count=n))
        ]
