"""Feature store: per-user and per-item features in Redis hashes, refreshed from a source of truth.

    >>> source = FeatureSource.from_dataset(dataset, history_length=settings.history_length)
    >>> store = FeatureStore(redis_client, keys, settings, source)
    >>> store.get_users(["u1", "u2"])          # one round trip when both are cached

The source of truth is the dataset's aggregates merged with each user's *live log*: the events
the tracker (``engine.events.tracker``) accepted after the dataset was built, kept in Redis as a capped
list plus a set of purchased items.  The live-log format is defined here, next to its reader.

Round trips: a batch of cached users costs one (pipelined HGETALL); misses cost two more, one to
read the live logs and one to write the hashes back.  A write-back is skipped when the user's
live log changed since it was read, so a purchase racing a refresh cannot be overwritten by
features computed before it (the tracker's invalidation deletes the hash; this guard stops the
stale refresh from re-creating it).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import orjson
import pandas as pd
import redis

from engine.config import Settings
from engine.data.schema import EVENT_WEIGHTS, ITEM_COLUMNS, Dataset, interaction_weights
from engine.monitoring.prometheus_metrics import FEATURE_REQUESTS
from engine.storage.client import as_text, eval_script_batch, text_hash
from engine.storage.keys import Keys

T = TypeVar("T")
TOP_CATEGORIES = 5
LIVE_LOG_TTL_SECONDS = 30 * 86_400

# Writes a feature hash with its TTL atomically (a hash is never left without one).  With a second
# key, only while that live log's head is still the one the features were computed from.
# Every key of one call shares the user's hash tag, so this stays valid on Redis Cluster.
_WRITE_FEATURES = """
if KEYS[2] then
  local head = redis.call('LINDEX', KEYS[2], 0)
  if (head or '') ~= ARGV[2] then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _opt_float(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def _parse_opt_float(value: str) -> float | None:
    return None if value == "" else float(value)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------- live log


@dataclass(frozen=True)
class LiveEntry:
    """One accepted interaction in a user's live log.  The event id keeps every entry distinct,
    which the write-back guard relies on."""

    event_id: str
    item_id: str
    type: str
    timestamp: float

    def encode(self) -> str:
        return orjson.dumps({"e": self.event_id, "i": self.item_id, "t": self.type, "ts": self.timestamp}).decode()

    @classmethod
    def decode(cls, raw: str | bytes) -> LiveEntry:
        data = orjson.loads(raw)
        return cls(event_id=data["e"], item_id=data["i"], type=data["t"], timestamp=float(data["ts"]))


def logged_in_live_log(event_type: str) -> bool:
    """Impressions say nothing about taste and would crowd real interactions out of the capped log."""
    return EVENT_WEIGHTS.get(event_type, 0.0) > 0


@dataclass(frozen=True)
class LiveState:
    entries: tuple[LiveEntry, ...]
    purchased: frozenset[str]
    head: str  # raw first list element ('' when empty): what the write-back guard compares


# --------------------------------------------------------------------------- feature records


@dataclass(frozen=True)
class UserFeatures:
    user_id: str
    history: tuple[str, ...] = ()  # distinct items, most recent first
    purchased: frozenset[str] = frozenset()
    category_affinity: dict[str, float] = field(default_factory=dict)  # top categories, share of weight
    total_purchases: int = 0
    last_active: float | None = None
    is_new: bool = True

    @classmethod
    def empty(cls, user_id: str) -> UserFeatures:
        return cls(user_id=user_id)

    def to_hash(self) -> dict[str, str]:
        return {
            "history": orjson.dumps(list(self.history)).decode(),
            "purchased": orjson.dumps(sorted(self.purchased)).decode(),
            "category_affinity": orjson.dumps(self.category_affinity).decode(),
            "total_purchases": str(self.total_purchases),
            "last_active": _opt_float(self.last_active),
            "is_new": "1" if self.is_new else "0",
        }

    @classmethod
    def from_hash(cls, user_id: str, raw: Mapping[Any, Any]) -> UserFeatures:
        data = text_hash(raw)
        return cls(
            user_id=user_id,
            history=tuple(orjson.loads(data["history"])),
            purchased=frozenset(orjson.loads(data["purchased"])),
            category_affinity={str(k): float(v) for k, v in orjson.loads(data["category_affinity"]).items()},
            total_purchases=int(data["total_purchases"]),
            last_active=_parse_opt_float(data["last_active"]),
            is_new=data["is_new"] == "1",
        )


@dataclass(frozen=True)
class ItemFeatures:
    item_id: str
    category: str
    title: str
    popularity: float
    avg_rating: float | None = None
    price: float | None = None
    # the item file's further columns of an imported dataset, as text (the demo world has none)
    attributes: dict[str, str] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        return {
            "category": self.category,
            "title": self.title,
            "popularity": repr(float(self.popularity)),
            "avg_rating": _opt_float(self.avg_rating),
            "price": _opt_float(self.price),
            "attributes": orjson.dumps(self.attributes).decode(),
        }

    @classmethod
    def from_hash(cls, item_id: str, raw: Mapping[Any, Any]) -> ItemFeatures:
        data = text_hash(raw)
        return cls(
            item_id=item_id,
            category=data["category"],
            title=data["title"],
            popularity=float(data["popularity"]),
            avg_rating=_parse_opt_float(data["avg_rating"]),
            price=_parse_opt_float(data["price"]),
            attributes={str(k): str(v) for k, v in orjson.loads(data["attributes"]).items()},
        )


# --------------------------------------------------------------------------- source of truth


@dataclass(frozen=True)
class _BaseUser:
    history: tuple[str, ...]
    purchased: frozenset[str]
    category_weight: dict[str, float]  # absolute weight of the top categories
    total_weight: float  # over all categories, so merged shares keep the right denominator
    total_purchases: int
    last_active: float | None


_NO_BASE = _BaseUser((), frozenset(), {}, 0.0, 0, None)


def _split_by_user(users: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """Runs of ``values`` per user code; ``users`` must already be grouped (sorted)."""
    if len(users) == 0:
        return {}
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    return {int(users[s]): values[s:e] for s, e in zip(starts, ends, strict=True)}


class FeatureSource:
    """Dataset aggregates per user and item, plus the live logs in Redis."""

    def __init__(
        self,
        users: dict[str, _BaseUser],
        items: dict[str, ItemFeatures],
        activity_order: list[str],
        history_length: int = 50,
        keys: Keys | None = None,
    ) -> None:
        self.users = users
        self.items = items
        self.activity_order = activity_order  # user ids by number of events, most first
        self.history_length = history_length
        self.keys = keys or Keys()

    @classmethod
    def from_dataset(cls, dataset: Dataset, history_length: int = 50, keys: Keys | None = None) -> FeatureSource:
        # Everything runs on integer codes: sorting and grouping (arrow) strings is what costs time.
        events, items = dataset.events, dataset.items
        ucode, uids = pd.factorize(events["user_id"])
        icode, iids = pd.factorize(events["item_id"])
        tcode, types = pd.factorize(events["type"])
        user_ids = np.asarray(uids, dtype=object)
        item_ids = np.asarray(iids, dtype=object)
        n_users = len(user_ids)
        categories = pd.Series(items["category"].astype(str).to_numpy(), index=items["item_id"].astype(str))
        ccode, cats = pd.factorize(categories.reindex(item_ids))  # -1 where the catalogue lacks the item
        cat_names = np.asarray(cats, dtype=object)
        weight = interaction_weights(events)
        is_purchase = np.asarray(types == "purchase")[tcode]
        frame = pd.DataFrame(
            {
                "u": ucode,
                "i": icode,
                "t": events["timestamp"].to_numpy(dtype=np.float64),
                "w": weight,
                "c": ccode[icode],
            }
        )
        inter = frame.loc[weight > 0]

        recent = (
            inter.sort_values(["u", "t"], ascending=[True, False], kind="stable")
            .drop_duplicates(["u", "i"])
            .groupby("u", sort=False)
            .head(history_length)
        )
        history = _split_by_user(recent["u"].to_numpy(), recent["i"].to_numpy())
        bought = frame.loc[is_purchase, ["u", "i"]].drop_duplicates().sort_values("u", kind="stable")
        purchased = _split_by_user(bought["u"].to_numpy(), bought["i"].to_numpy())
        purchase_counts = np.bincount(ucode[is_purchase], minlength=n_users)
        last_active = np.full(n_users, np.nan)
        last = inter.groupby("u")["t"].max()
        last_active[last.index.to_numpy()] = last.to_numpy()

        known = inter.loc[inter["c"] >= 0]
        total_weight = np.bincount(known["u"].to_numpy(), weights=known["w"].to_numpy(), minlength=n_users)
        by_cat = known.groupby(["u", "c"], sort=False)["w"].sum().reset_index()
        top = (
            by_cat.sort_values(["u", "w"], ascending=[True, False], kind="stable")
            .groupby("u", sort=False)
            .head(TOP_CATEGORIES)
        )
        category_weight: dict[int, dict[str, float]] = {}
        for u, c, w in zip(top["u"].to_numpy(), top["c"].to_numpy(), top["w"].to_numpy(), strict=True):
            category_weight.setdefault(int(u), {})[cat_names[c]] = float(w)

        empty = np.zeros(0, dtype=np.int64)
        users = {
            str(user_ids[u]): _BaseUser(
                history=tuple(item_ids[history.get(u, empty)]),
                purchased=frozenset(item_ids[purchased.get(u, empty)]),
                category_weight=category_weight.get(u, {}),
                total_weight=float(total_weight[u]),
                total_purchases=int(purchase_counts[u]),
                last_active=_finite_or_none(last_active[u]),
            )
            for u in range(n_users)
        }
        # ties in activity keep first-appearance order, so the ranking is deterministic
        activity = np.argsort(-np.bincount(ucode, minlength=n_users), kind="stable")
        return cls(users, _item_features(items, events), [str(user_ids[u]) for u in activity], history_length, keys)

    # ------------------------------------------------------------------ users
    def known_user(self, user_id: str) -> bool:
        return user_id in self.users

    def top_active_users(self, n: int) -> list[str]:
        return self.activity_order[:n]

    def read_live(self, client: redis.Redis, user_ids: Sequence[str], keys: Keys | None = None) -> dict[str, LiveState]:
        """Live logs and purchase sets of a batch, in one pipelined round trip."""
        keys = keys or self.keys
        if not user_ids:
            return {}
        pipe = client.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.lrange(keys.user_log(user_id), 0, self.history_length - 1)
            pipe.smembers(keys.user_purchased(user_id))
        raw = pipe.execute()
        states: dict[str, LiveState] = {}
        for n, user_id in enumerate(user_ids):
            log, bought = raw[2 * n], raw[2 * n + 1]
            states[user_id] = LiveState(
                entries=tuple(LiveEntry.decode(entry) for entry in log),
                purchased=frozenset(as_text(i) for i in bought),
                head=as_text(log[0]) if log else "",
            )
        return states

    def merge(self, user_id: str, live: LiveState | None = None) -> UserFeatures:
        """Dataset aggregates of a user updated with the live entries (which all came later)."""
        base = self.users.get(user_id, _NO_BASE)
        entries = live.entries if live else ()
        live_bought = live.purchased if live else frozenset()
        if not entries and not live_bought and base is _NO_BASE:
            return UserFeatures.empty(user_id)

        recent = [e.item_id for e in entries] + list(base.history)
        history = tuple(dict.fromkeys(recent))[: self.history_length]

        weights = dict(base.category_weight)
        total = base.total_weight
        for entry in entries:
            w = EVENT_WEIGHTS.get(entry.type, 0.0)
            item = self.items.get(entry.item_id)
            total += w
            if item is not None:
                weights[item.category] = weights.get(item.category, 0.0) + w
        # the heaviest categories first, ties in insertion order (what Counter.most_common does)
        top = heapq.nlargest(TOP_CATEGORIES, weights.items(), key=lambda cw: cw[1])
        affinity = {c: round(w / total, 6) for c, w in top} if total > 0 else {}
        last_seen = [t for t in [base.last_active, *(e.timestamp for e in entries)] if t is not None]
        return UserFeatures(
            user_id=user_id,
            history=history,
            purchased=base.purchased | live_bought,
            category_affinity=affinity,
            # the capped log forgets old live purchases, the set does not; repeats of one item count once
            total_purchases=base.total_purchases + len(live_bought),
            last_active=max(last_seen) if last_seen else None,
            is_new=not history and not base.purchased and not live_bought,
        )

    def user_features(
        self, client: redis.Redis, user_ids: Sequence[str], keys: Keys | None = None
    ) -> dict[str, UserFeatures]:
        live = self.read_live(client, list(dict.fromkeys(user_ids)), keys)
        return {user_id: self.merge(user_id, state) for user_id, state in live.items()}

    # ------------------------------------------------------------------ items
    def item_features(self, item_ids: Iterable[str]) -> dict[str, ItemFeatures]:
        return {i: self.items[i] for i in item_ids if i in self.items}


PRICE_COLUMN = "price"


def _item_features(items: pd.DataFrame, events: pd.DataFrame) -> dict[str, ItemFeatures]:
    """Catalogue rows as records; price from a ``price`` column when the catalogue has one, else
    the median purchase value (a purchase event's value is what was paid); any further column (an
    imported item file's attributes) kept as text, empty values left out."""
    ids = items["item_id"].astype(str).to_numpy(dtype=object)
    if PRICE_COLUMN in items.columns:
        prices = items[PRICE_COLUMN].to_numpy(dtype=np.float64)
    else:
        paid = events.loc[(events["type"] == "purchase") & (events["value"] > 0)]
        median = paid.groupby("item_id")["value"].median()
        prices = pd.Series(ids).map(median).to_numpy(dtype=np.float64)
    return {
        iid: ItemFeatures(
            item_id=iid,
            category=str(category),
            title=str(title),
            popularity=float(popularity),
            avg_rating=_finite_or_none(rating),
            price=_finite_or_none(price),
            attributes=attributes,
        )
        for iid, category, title, popularity, rating, price, attributes in zip(
            ids,
            items["category"].to_numpy(),
            items["title"].to_numpy(),
            items["popularity"].to_numpy(dtype=np.float64),
            items["avg_rating"].to_numpy(dtype=np.float64),
            prices,
            _attributes(items),
            strict=True,
        )
    }


def _attributes(items: pd.DataFrame) -> list[dict[str, str]]:
    """Per item, its values of the columns beyond the engine's own (``ITEM_COLUMNS``, price)."""
    names = [c for c in items.columns if c not in ITEM_COLUMNS and c != PRICE_COLUMN]
    if not names:
        return [{} for _ in range(len(items))]
    columns = [(str(name), items[name].to_numpy(dtype=object)) for name in names]
    return [{name: str(values[row]) for name, values in columns if not pd.isna(values[row])}
            for row in range(len(items))]


# --------------------------------------------------------------------------- the store


def _flatten(mapping: Mapping[str, str]) -> list[str]:
    return [part for pair in mapping.items() for part in pair]


class FeatureStore:
    def __init__(self, client: redis.Redis, keys: Keys, settings: Settings, source: FeatureSource) -> None:
        self.redis = client
        self.keys = keys
        self.settings = settings
        self.source = source
        self._write = client.register_script(_WRITE_FEATURES)

    # ------------------------------------------------------------------ users
    def get_users(self, user_ids: Sequence[str]) -> dict[str, UserFeatures]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return {}
        cached = self._read_hashes([self.keys.user_features(u) for u in ids])
        found: dict[str, UserFeatures] = {}
        for user_id, raw in zip(ids, cached, strict=True):
            parsed = self._parse(UserFeatures.from_hash, user_id, raw)
            if parsed is not None:
                found[user_id] = parsed
        misses = [u for u in ids if u not in found]
        self._count("user", hits=len(found), misses=len(misses))
        if misses:
            live = self.source.read_live(self.redis, misses, self.keys)
            fresh = {u: self.source.merge(u, live[u]) for u in misses}
            ttl = self.settings.user_feature_ttl_seconds
            eval_script_batch(
                self.redis,
                self._write,
                [
                    (
                        [self.keys.user_features(u), self.keys.user_log(u)],
                        [ttl, live[u].head, *_flatten(fresh[u].to_hash())],
                    )
                    for u in misses
                ],
            )
            found.update(fresh)
        return {u: found[u] for u in ids}

    def get_user(self, user_id: str) -> UserFeatures:
        return self.get_users([user_id])[user_id]

    def invalidate_user(self, user_id: str) -> bool:
        return bool(self.redis.delete(self.keys.user_features(user_id)))

    def known_user(self, user_id: str) -> bool:
        """In the dataset, or seen live since."""
        return self.source.known_user(user_id) or bool(self.redis.exists(self.keys.user_log(user_id)))

    def top_active_users(self, n: int) -> list[str]:
        return self.source.top_active_users(n)

    # ------------------------------------------------------------------ items
    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemFeatures]:
        """Features of the known items among ``item_ids``; unknown ids are left out."""
        ids = list(dict.fromkeys(item_ids))
        if not ids:
            return {}
        cached = self._read_hashes([self.keys.item_features(i) for i in ids])
        found: dict[str, ItemFeatures] = {}
        for item_id, raw in zip(ids, cached, strict=True):
            parsed = self._parse(ItemFeatures.from_hash, item_id, raw)
            if parsed is not None:
                found[item_id] = parsed
        misses = [i for i in ids if i not in found]
        self._count("item", hits=len(found), misses=len(misses))
        fresh = self.source.item_features(misses)
        if fresh:
            ttl = self.settings.item_feature_ttl_seconds
            eval_script_batch(
                self.redis,
                self._write,
                [([self.keys.item_features(i)], [ttl, "", *_flatten(f.to_hash())]) for i, f in fresh.items()],
            )
            found.update(fresh)
        return {i: found[i] for i in ids if i in found}

    # ------------------------------------------------------------------ internals
    def _read_hashes(self, keys: list[str]) -> list[Mapping[Any, Any]]:
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()

    @staticmethod
    def _parse(parser: Callable[[str, Mapping[Any, Any]], T], entity_id: str, raw: Mapping[Any, Any]) -> T | None:
        """A hash from an older schema or a damaged write reads as a miss and gets rewritten."""
        if not raw:
            return None
        try:
            return parser(entity_id, raw)
        except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
            return None

    @staticmethod
    def _count(entity: str, hits: int, misses: int) -> None:
        if hits:
            FEATURE_REQUESTS.labels(entity=entity, result="hit").inc(hits)
        if misses:
            FEATURE_REQUESTS.labels(entity=entity, result="miss").inc(misses)
