"""What the Cache page shows: the keyspace as cards, a table and charts; the texts around the cache
operations; a user's or an item's cached features; the audit log as a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd
import plotly.graph_objects as go

from engine.console import charts, preview
from engine.console.cache_actions import UserKeys, check_user_id, parse_user_ids
from engine.console.cards import MetricCard
from engine.console.formatting import MISSING, human_bytes, human_seconds, when
from engine.console.keyspace import MAX_AGE_SECONDS, SAMPLE_PER_FAMILY, KeyspaceReport
from engine.runtime import Engine
from engine.serving.cache import WarmReport

WARM_MODES = ("Most active users", "Pasted list")
EntityKind = Literal["User", "Item"]
ENTITY_KINDS: tuple[EntityKind, ...] = ("User", "Item")
FAMILY_COLUMNS = ["family", "what", "keys", "est. memory", "sampled", "median TTL", "sampled without TTL"]


# ----------------------------------------------------------------------------- keyspace


def keyspace_cards(report: KeyspaceReport) -> list[MetricCard]:
    return [
        MetricCard("Keys in the database", f"{report.db_size:,}"),
        MetricCard("Keys under the prefix", f"{report.scanned:,}" + (" (truncated)" if report.truncated else "")),
        MetricCard("Estimated memory", human_bytes(sum(f.est_bytes or 0 for f in report.families))),
        MetricCard("Scan time", f"{report.seconds * 1000:.0f} ms"),
    ]


def scan_caption(age_seconds: float) -> str:
    return (f"Counted with SCAN (never KEYS); memory is MEMORY USAGE of a random sample of up to {SAMPLE_PER_FAMILY} "
            f"keys per prefix times the key count. Scanned {human_seconds(age_seconds)} ago; past "
            f"{MAX_AGE_SECONDS:g} s the next visit starts a new scan in the background (Rescan waits for one).")


def families_table(table: pd.DataFrame) -> pd.DataFrame:
    """``KeyspaceReport.table()`` as shown: memory and TTLs written for people."""
    shown = table.assign(**{"est. memory": table["est. memory (bytes)"].map(human_bytes),
                            "median TTL": table["median TTL (s)"].map(human_seconds)})
    return shown[FAMILY_COLUMNS]


def memory_figure(table: pd.DataFrame) -> go.Figure:
    return charts.hbar_chart(table["what"].tolist(), table["est. memory (bytes)"].fillna(0).tolist(),
                             "Estimated memory (label: keys)", [f"{k:,}" for k in table["keys"]],
                             height=max(260, 34 * len(table)))


def ttl_figure(report: KeyspaceReport) -> go.Figure | None:
    """Box plots of the remaining TTL of the sampled keys, per family; None when no sampled key expires."""
    ttl = report.ttl_frame()
    if ttl.empty:
        return None
    boxes = [{"type": "box", "x": rows["ttl_seconds"], "name": str(name), "orientation": "h",
              "boxpoints": "outliers"} for name, rows in ttl.groupby("family", sort=False)]
    return charts.figure(boxes, "Remaining TTL of sampled keys", height=max(240, 44 * ttl["family"].nunique()),
                         showlegend=False, xaxis={"title": {"text": "seconds (log scale)"}, "type": "log", "dtick": 1},
                         fit_labels=True)


# ----------------------------------------------------------------------------- operations


def user_keys_text(user_id: str, keys: UserKeys) -> str:
    return (f"`{user_id}` has {len(keys.lists)} cached list(s) and {'a' if keys.features else 'no'} cached "
            "feature hash.")


def confirm_user_text(user_id: str, keys: UserKeys) -> str:
    return (f"Delete **{len(keys.lists)}** cached list(s) and {'the' if keys.features else 'no'} feature hash of "
            f"`{user_id}`? Their next request is computed afresh; every API process drops its L1 copy.")


def confirm_all_text(count: int) -> str:
    return (f"This deletes **all {count:,}** cached recommendation lists. Until the cache refills, every request "
            "is computed, and latency rises.")


def cached_lists_text(count: int) -> str:
    return f"{count:,} cached recommendation lists in Redis."


@dataclass(frozen=True)
class WarmRequest:
    users: list[str]
    source: str  # for the audit log: "list" or "top N active"


def warm_request(engine: Engine, mode: str, top_n: int, pasted: str) -> WarmRequest:
    """The users to warm: the pasted ids, or the ``top_n`` most active; ``ValueError`` on an invalid id."""
    if mode == WARM_MODES[1]:
        parsed = parse_user_ids(pasted)
        if parsed.invalid:
            raise ValueError(f"Not valid user ids: {', '.join(repr(t[:40]) for t in parsed.invalid[:5])}.")
        return WarmRequest(parsed.valid, "list")
    return WarmRequest(engine.features.top_active_users(top_n), f"top {top_n} active")


def warm_start_text(request: WarmRequest) -> str:
    return f"Warming {len(request.users)} users …"


def warm_progress(done: int, total: int) -> tuple[float, str]:
    """The progress bar's fraction and text after ``done`` of ``total`` users."""
    return done / max(total, 1), f"{done:,} / {total:,} users"


def warm_result_text(report: WarmReport) -> str:
    """What a warm did; with the lists per arm when users in experiments were warmed too."""
    arms = report.arms_text()
    return (f"Warmed {report.users:,} users: {report.keys_written:,} lists written in {report.seconds:.2f} s"
            + (f" ({report.failed} failed, see the log)" if report.failed else "")
            + (f"; per arm: {arms}" if arms else "") + ".")


# ----------------------------------------------------------------------------- inspect


class NotInCatalogueError(LookupError):
    """An item id that is valid but names no item; the message is fit for the page."""


@dataclass(frozen=True)
class Inspection:
    caption: str  # the Redis key and whether it is cached
    table: pd.DataFrame  # feature, value


def inspect_entity(engine: Engine, kind: EntityKind, raw: str) -> Inspection:
    """A user's or an item's features as the feature store serves them, and whether they are cached.

    ``ValueError`` for a malformed id, ``NotInCatalogueError`` for an item the catalogue lacks.
    """
    try:
        entity = check_user_id(raw)  # item ids share the id charset
    except ValueError as exc:
        raise ValueError(str(exc).replace("user id", f"{kind.lower()} id")) from None
    if kind == "User":
        key = engine.keys.user_features(entity)
        ttl = engine.redis.ttl(key)
        prof = preview.user_profile(engine, entity)
        f = prof.features
        fields: dict[str, object] = {
            "known user": prof.known, "new (no history)": f.is_new, "history items": len(f.history),
            "purchased items": len(f.purchased), "total purchases": f.total_purchases,
            "last active": when(f.last_active) if f.last_active else MISSING,
            "top categories": ", ".join(f"{c} {s:.0%}" for c, s in f.category_affinity.items()) or MISSING}
    else:
        key = engine.keys.item_features(entity)
        ttl = engine.redis.ttl(key)
        item = preview.item_profile(engine, entity)
        if item is None:
            raise NotInCatalogueError(f"No item `{entity}` in the catalogue.")
        fields = {"title": item.title, "category": item.category, "popularity": f"{item.popularity:.5f}",
                  "average rating": f"{item.avg_rating:.2f}" if item.avg_rating is not None else MISSING,
                  "price": f"{item.price:.2f}" if item.price is not None else MISSING,
                  **item.attributes}  # an imported item file's further columns
    state = f"cached, expires in {ttl} s" if ttl > 0 else "not cached: computed from the source of truth now"
    return Inspection(f"`{key}` — {state}",
                      pd.DataFrame({"feature": list(fields), "value": [str(v) for v in fields.values()]}))


# ----------------------------------------------------------------------------- audit


def audit_table(engine: Engine, rows: int) -> pd.DataFrame:
    """The latest ``rows`` operator writes, newest first; empty when none is recorded."""
    return pd.DataFrame([{"when": when(e.at), "who": e.actor, "what": e.action, "target": e.target, "keys": e.keys,
                          "detail": e.detail} for e in engine.audit.recent(rows)],
                        columns=["when", "who", "what", "target", "keys", "detail"])
