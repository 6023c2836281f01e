"""Why a list was not in the cache: the cause of a miss, decided from what the cache remembers.

Each user has a small *ledger* hash in Redis next to their lists (same hash tag, so the scripts
that write and invalidate lists update it atomically; see ``l2``).  It outlives the lists and
holds, per list *slot* (the list key without the model version), the version, expiry and write
time of the last list written there, plus the time and reason of the user's last invalidation
and a generation counter every invalidation bumps.  A miss in Redis (the list is computed) is
then explained by one ``HMGET`` on the miss path only:

- ``first_seen``: no list was ever written in that slot (within the ledger's memory);
- ``invalidated``: an event (purchase, cart add, rating) or an operator dropped it since;
- ``model_changed``: the last list there came from another model version, or a model reload
  flushed every list since it was written;
- ``expired``: its TTL ran out;
- ``evicted``: it is gone before its expiry without an invalidation (Redis memory eviction).

L1 misses (served from L2 or computed) have their own causes, from the in-process tier:
``first_seen`` (never in this worker's L1, which is per worker), ``expired`` (the L1 TTL),
``evicted`` (the L1 capacity) and ``invalidated``.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_SEEN = "first_seen"
INVALIDATED = "invalidated"
MODEL_CHANGED = "model_changed"
EXPIRED = "expired"
EVICTED = "evicted"
CAUSES = (FIRST_SEEN, INVALIDATED, MODEL_CHANGED, EXPIRED, EVICTED)

MODEL_RELOAD = "model_reload"  # the reason ``swap_models`` flushes with

# ledger fields besides the slots (slots always contain a ':', these never do)
INVALIDATION_FIELD = "inv"
GENERATION_FIELD = "gen"


def list_slot(key: str) -> tuple[str, str]:
    """``(slot, version)`` of a list key ``<prefix>:rec:{u:<id>}:<model>[@<version>]:<n>:<variant>``:
    the slot names the list without its model version (``<model>:<n>:<variant>``)."""
    _, _, rest = key.partition("}:")
    model, _, tail = rest.partition(":")
    name, _, version = model.partition("@")
    return f"{name}:{tail}", version


def slot_record(version: str, expiry: float, written: float) -> str:
    return f"{version}|{expiry:.3f}|{written:.3f}"


def invalidation_record(reason: str, at: float) -> str:
    return f"{reason}|{at:.3f}"


@dataclass(frozen=True, slots=True)
class Written:
    version: str
    expiry: float
    written: float

    @classmethod
    def parse(cls, raw: str) -> Written | None:
        parts = raw.split("|")
        if len(parts) != 3:
            return None
        try:
            return cls(parts[0], float(parts[1]), float(parts[2]))
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class Flush:
    reason: str
    at: float


def parse_invalidation(raw: str | None) -> Flush | None:
    if not raw:
        return None
    reason, _, at = raw.rpartition("|")
    try:
        return Flush(reason, float(at))
    except ValueError:
        return None


def l2_miss_cause(
    written: Written | None, invalidation: Flush | None, flush: Flush | None, version: str, now: float
) -> str:
    """The cause of a miss in Redis of a list at ``version``, given its slot's last write, the
    user's last invalidation and the last flush of every list (``flush``, known in process)."""
    if written is None:
        return FIRST_SEEN
    if invalidation is not None and invalidation.at >= written.written:
        return INVALIDATED
    if flush is not None and flush.at >= written.written:
        return MODEL_CHANGED if flush.reason == MODEL_RELOAD else INVALIDATED
    if written.version != version:
        return MODEL_CHANGED
    if now >= written.expiry:
        return EXPIRED
    return EVICTED
