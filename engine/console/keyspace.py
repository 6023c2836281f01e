"""Key counts, memory and TTLs per key family, from SCAN (never KEYS) and a per-family sample.

A family is the static part of a key name under the prefix: ``recops:rec:{u:42}:als:10:c3l0.7`` is
``rec``, ``recops:feat:item:i0001`` is ``feat:item``, ``recops:rec:…:lock`` is ``rec:lock``.  Every
key is counted; ``MEMORY USAGE`` and ``PTTL`` are asked for a bounded reservoir sample of each
family (pipelined), and the memory of a family is estimated as its count times the sampled mean.
The scan stops after ``max_keys`` keys so a huge keyspace cannot stall the console.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd
import redis

from engine.storage.keys import Keys
from engine.storage.scanning import key_count, scan_keys

SCAN_COUNT = 1000
SAMPLE_PER_FAMILY = 200  # keys per family asked for MEMORY USAGE and PTTL
MAX_AGE_SECONDS = 30.0  # a scan older than this is redone in the background (see StaleWhileRevalidate)
MAX_FAMILY_DEPTH = 2
LOCK_SUFFIX = ":lock"

FAMILY_LABELS = {
    "rec": "recommendation lists (L2)",
    "recidx": "per-user list index",
    "rec:lock": "compute locks",
    "listlog": "per-user list ledger (miss causes)",
    "warmclaim": "cache warming claims",
    "feat:user": "user features",
    "feat:item": "item features",
    "evid": "event idempotency ids",
    "events": "event stream",
    "events:count": "event counters",
    "live:log": "live interaction logs",
    "live:bought": "live purchase sets",
    "audit": "audit log",
    "exp:cfg": "experiment configs",
    "exp:asg": "experiment assignments",
    "exp:unit": "experiment unit counters",
    "exp:stats": "experiment statistics",
    "exp:daily": "experiment daily statistics",
    "exp:days": "experiment day index",
    "exp:bandit": "bandit weight log",
    "exp:index": "experiment index",
    "exp:version": "experiment config version",
    "exp:holdout": "experiment holdout",
    "exp:lock": "experiment locks",
}


def key_text(value: str | bytes) -> str:
    """A key name as text, whether the client decodes replies or not."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def key_family(key: str, prefix: str) -> str:
    """The family of ``key``: at most two name components after the prefix, up to a hash tag."""
    head = f"{prefix}:"
    if not key.startswith(head):
        return "(outside prefix)"
    parts: list[str] = []
    for part in key[len(head):].split(":"):
        if part.startswith("{") or len(parts) == MAX_FAMILY_DEPTH:
            break
        parts.append(part)
    family = ":".join(parts) or "(unnamed)"
    if key.endswith(LOCK_SUFFIX) and not family.endswith("lock"):
        family += LOCK_SUFFIX
    return family


def family_label(family: str) -> str:
    return FAMILY_LABELS.get(family, family)


@dataclass
class FamilyStats:
    family: str
    keys: int = 0
    sample: list[str] = field(default_factory=list, repr=False)
    sampled: int = 0
    mean_bytes: float | None = None
    no_ttl: int = 0  # sampled keys without an expiry
    ttls: list[float] = field(default_factory=list, repr=False)  # remaining TTL of sampled keys, seconds

    @property
    def label(self) -> str:
        return family_label(self.family)

    @property
    def est_bytes(self) -> float | None:
        return None if self.mean_bytes is None else self.mean_bytes * self.keys


@dataclass
class KeyspaceReport:
    families: list[FamilyStats]
    scanned: int
    truncated: bool
    seconds: float
    db_size: int

    def table(self) -> pd.DataFrame:
        rows = [
            {
                "family": f.family, "what": f.label, "keys": f.keys, "sampled": f.sampled,
                "mean bytes": f.mean_bytes, "est. memory (bytes)": f.est_bytes,
                "sampled without TTL": f.no_ttl,
                "median TTL (s)": float(pd.Series(f.ttls).median()) if f.ttls else None,
            }
            for f in self.families
        ]
        return pd.DataFrame(rows)

    def ttl_frame(self) -> pd.DataFrame:
        """One row per sampled key with a TTL: family label and remaining seconds."""
        rows = [(f.label, ttl) for f in self.families for ttl in f.ttls]
        return pd.DataFrame(rows, columns=["family", "ttl_seconds"])

    def family(self, name: str) -> FamilyStats | None:
        return next((f for f in self.families if f.family == name), None)


def scan_keyspace(
    client: redis.Redis,
    keys: Keys,
    sample_per_family: int = SAMPLE_PER_FAMILY,
    max_keys: int = 1_000_000,
    seed: int = 0,
) -> KeyspaceReport:
    """Count every key under the prefix by family and sample each family's memory and TTL."""
    started = time.perf_counter()
    rng = random.Random(seed)
    stats: dict[str, FamilyStats] = defaultdict(lambda: FamilyStats(""))
    scanned = 0
    truncated = False
    for key in scan_keys(client, keys.scan_pattern(), count=SCAN_COUNT):
        if scanned >= max_keys:
            truncated = True
            break
        family = key_family(key, keys.prefix)
        fam = stats[family]
        fam.family = family
        fam.keys += 1
        # reservoir sampling: every key of the family is equally likely to be in the sample
        if len(fam.sample) < sample_per_family:
            fam.sample.append(key)
        else:
            slot = rng.randrange(fam.keys)
            if slot < sample_per_family:
                fam.sample[slot] = key
        scanned += 1
    families = sorted(stats.values(), key=lambda f: (-f.keys, f.family))
    _measure(client, families)
    return KeyspaceReport(families, scanned, truncated, time.perf_counter() - started, key_count(client))


def _measure(client: redis.Redis, families: list[FamilyStats]) -> None:
    """MEMORY USAGE and PTTL of every sampled key, in one pipelined round trip."""
    sampled = [(f, key) for f in families for key in f.sample]
    if not sampled:
        return
    pipe = client.pipeline(transaction=False)
    for _, key in sampled:
        pipe.memory_usage(key)
        pipe.pttl(key)
    replies = pipe.execute(raise_on_error=False)
    sizes: dict[str, list[int]] = defaultdict(list)
    for i, (fam, _) in enumerate(sampled):
        size, pttl = replies[2 * i], replies[2 * i + 1]
        if not isinstance(size, int) or not isinstance(pttl, int) or pttl == -2:
            continue  # expired or deleted between the scan and now
        sizes[fam.family].append(size)
        if pttl == -1:
            fam.no_ttl += 1
        else:
            fam.ttls.append(pttl / 1000.0)
    for fam in families:
        got = sizes.get(fam.family, [])
        fam.sampled = len(got)
        fam.mean_bytes = sum(got) / len(got) if got else None
