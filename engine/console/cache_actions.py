"""Cache operations of the console, each recorded in the audit log (who, what, how many keys).

The console shows how many keys an operation will touch before asking for confirmation, so the
counting functions here are separate from the actions.  Counting the whole recommendation cache
walks it with SCAN; a user's keys are read from the user's index set, as invalidation does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from engine.console.keyspace import SCAN_COUNT, key_family, key_text
from engine.console.notices import Notice
from engine.runtime import Engine
from engine.serving.cache import WarmReport
from engine.storage.keys import Keys
from engine.storage.scanning import scan_keys

USER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
SPLIT = re.compile(r"[\s,;]+")
CONFIRM_ALL_PHRASE = "invalidate all"
MAX_WARM_USERS = 10_000
REASON = "console"
LIST_FAMILY = "rec"


def check_user_id(raw: str) -> str:
    """A stripped user id, or ``ValueError`` with a message fit for the page."""
    user_id = raw.strip()
    if not user_id:
        raise ValueError("Enter a user id.")
    if not USER_ID.fullmatch(user_id):
        raise ValueError(f"{user_id[:40]!r} is not a valid user id: use 1–128 letters, digits or _ . : -")
    return user_id


@dataclass(frozen=True)
class ParsedUserIds:
    valid: list[str]
    invalid: list[str]


def parse_user_ids(text: str) -> ParsedUserIds:
    """User ids separated by spaces, commas, semicolons or new lines; duplicates kept once."""
    tokens = [t for t in SPLIT.split(text) if t]
    valid = list(dict.fromkeys(t for t in tokens if USER_ID.fullmatch(t)))
    invalid = [t for t in tokens if not USER_ID.fullmatch(t)]
    return ParsedUserIds(valid, invalid)


@dataclass(frozen=True)
class UserKeys:
    lists: list[str]  # cached recommendation lists of the user that still exist
    features: bool  # whether the user's feature hash is cached

    @property
    def total(self) -> int:
        return len(self.lists) + int(self.features)


def user_keys(client: redis.Redis, keys: Keys, user_id: str) -> UserKeys:
    members = sorted(key_text(m) for m in client.smembers(keys.rec_index(user_id)))
    pipe = client.pipeline(transaction=False)
    for key in members:
        pipe.exists(key)
    pipe.exists(keys.user_features(user_id))
    *alive, features = pipe.execute()
    return UserKeys([k for k, n in zip(members, alive, strict=True) if n], bool(features))


def count_cached_lists(client: redis.Redis, keys: Keys) -> int:
    """Recommendation lists in Redis (indexes and locks not counted), by SCAN."""
    return sum(1 for k in scan_keys(client, keys.rec_scan_pattern, count=SCAN_COUNT)
               if key_family(k, keys.prefix) == LIST_FAMILY)


@dataclass(frozen=True)
class InvalidationResult:
    scope: str
    lists: int
    features: int = 0

    @property
    def keys(self) -> int:
        return self.lists + self.features


def invalidate_user(engine: Engine, user_id: str, actor: str) -> InvalidationResult:
    user_id = check_user_id(user_id)
    had_features = engine.redis.exists(engine.keys.user_features(user_id))
    lists = engine.service.invalidate_user(user_id, reason=REASON)
    result = InvalidationResult(f"user:{user_id}", lists, int(bool(had_features)))
    engine.audit.record(actor, "invalidate_user", target=user_id, keys=result.keys,
                        detail=f"{lists} lists, {result.features} feature hash")
    return result


def confirmation_ok(typed: str) -> bool:
    return typed.strip().lower() == CONFIRM_ALL_PHRASE


def invalidate_all(engine: Engine, actor: str, typed_confirmation: str) -> InvalidationResult:
    """Every cached list; refuses (``ValueError``) unless the operator typed the confirmation phrase."""
    if not confirmation_ok(typed_confirmation):
        raise ValueError(f"Type “{CONFIRM_ALL_PHRASE}” to confirm.")
    lists = engine.cache.invalidate_all(reason=REASON)
    engine.audit.record(actor, "invalidate_all", target="all", keys=lists, detail="every cached list")
    return InvalidationResult("all", lists)


def warm(
    engine: Engine,
    user_ids: list[str],
    actor: str,
    n: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    source: str = "list",
) -> WarmReport:
    if not user_ids:
        raise ValueError("No users to warm.")
    if len(user_ids) > MAX_WARM_USERS:
        raise ValueError(f"At most {MAX_WARM_USERS:,} users at a time (got {len(user_ids):,}).")
    bad = [u for u in user_ids if not USER_ID.fullmatch(u)]
    if bad:
        raise ValueError(f"Invalid user id(s): {', '.join(repr(b[:40]) for b in bad[:5])}")
    size = n or engine.settings.default_n
    # the lists each user is served: their experiment arm's (both rankers' when interleaved), else the defaults
    report = engine.warm_now(user_ids, n=size, progress=progress)
    arms = report.arms_text()
    engine.audit.record(actor, "warm", target=f"{len(user_ids)} users ({source})", keys=report.keys_written,
                        detail=f"n={size}, {report.failed} failed, {report.seconds:.2f}s"
                        + (f"; per arm: {arms}" if arms else ""))
    return report


def run_confirmed(engine: Engine, action: Mapping[str, Any], actor: str) -> Notice:
    """Run the action a confirmation dialog stored (``{"kind": "invalidate_user", "user": ...}`` or
    ``{"kind": "invalidate_all", "typed": ...}``); what happened, or why nothing did."""
    kind = action.get("kind")
    try:
        if kind == "invalidate_user":
            r = invalidate_user(engine, action["user"], actor)
            return Notice("success", f"Invalidated `{action['user']}`: {r.lists} cached lists and {r.features} "
                          "feature hash deleted.")
        if kind == "invalidate_all":
            r = invalidate_all(engine, actor, action.get("typed", ""))
            return Notice("success", f"Invalidated every cached list: {r.lists} deleted.")
    except ValueError as exc:
        return Notice("error", f"{exc} Nothing was done.")
    return Notice("error", f"Unknown action {kind!r}; nothing was done.")
