"""Experiment configs and statistics in Redis.

A config is one JSON string per experiment (``Experiment.model_dump_json``), listed in an index
set.  Updates are optimistic: WATCH the config key, check the version, write the next version in
MULTI; a concurrent writer makes the transaction fail and the change is re-applied to the fresh
config.  Every change writes a new global version token that serving processes poll.

Configs are records, not cache entries: they carry no TTL.  Statistics stay until the experiment
is deleted.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis

from engine.experiments.assignment import Holdout
from engine.experiments.model import ConflictError, Experiment, ExperimentError, NotFoundError, parse_experiment
from engine.experiments.results import phase_variants
from engine.storage.client import as_text, text_hash
from engine.storage.keys import Keys

log = logging.getLogger(__name__)
UPDATE_ATTEMPTS = 10


class ExperimentStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    # ------------------------------------------------------------------ configs
    def version(self) -> str | None:
        raw = self.redis.get(self.keys.experiment_version)
        return None if raw is None else as_text(raw)

    def load_all(self) -> list[Experiment]:
        names = sorted(as_text(k) for k in self.redis.smembers(self.keys.experiment_index))
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.get(self.keys.experiment_config(name))
        out = []
        for name, raw in zip(names, pipe.execute(), strict=True):
            if raw is None:
                continue  # deleted between the two reads
            try:
                out.append(parse_experiment(json.loads(raw), stored=True))
            except (ValueError, ExperimentError):
                log.exception("stored config of experiment %r is unreadable; skipped", name)
        return out

    def load(self, key: str) -> Experiment:
        raw = self.redis.get(self.keys.experiment_config(key))
        if raw is None:
            raise NotFoundError(f"no experiment {key!r}")
        return parse_experiment(json.loads(raw), stored=True)

    def insert(self, exp: Experiment) -> Experiment:
        if not self.redis.set(self.keys.experiment_config(exp.key), exp.model_dump_json(), nx=True):
            raise ExperimentError(f"experiment {exp.key!r} already exists", "key")
        self.redis.sadd(self.keys.experiment_index, exp.key)
        self._bump()
        return exp

    def update(
        self, key: str, change: Callable[[Experiment], Experiment], expected_version: int | None = None
    ) -> Experiment:
        """Apply ``change`` to the stored config atomically; the result gets the next version."""
        config_key = self.keys.experiment_config(key)
        for _ in range(UPDATE_ATTEMPTS):
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(config_key)
                    raw = pipe.get(config_key)
                    if raw is None:
                        raise NotFoundError(f"no experiment {key!r}")
                    current = parse_experiment(json.loads(raw), stored=True)
                    if expected_version is not None and current.version != expected_version:
                        raise ConflictError(
                            f"experiment {key!r} is at version {current.version}, not {expected_version}: "
                            "it changed since it was read; reload and retry"
                        )
                    changed = change(current)
                    data = changed.model_dump()
                    data.update(version=current.version + 1, updated_at=time.time())
                    new = parse_experiment(data)
                    pipe.multi()
                    pipe.set(config_key, new.model_dump_json())
                    pipe.execute()
                except redis.WatchError:
                    continue
            self._bump()
            return new
        raise ConflictError(f"experiment {key!r} kept changing under {UPDATE_ATTEMPTS} attempts to update it")

    def delete(self, exp: Experiment) -> int:
        """Remove the config and every statistic of every phase; returns the keys deleted."""
        doomed = [self.keys.experiment_config(exp.key), self.keys.experiment_bandit_log(exp.key)]
        for phase in range(1, exp.phase + 1):
            days = self.redis.smembers(self.keys.experiment_days(exp.key, phase))
            doomed += [self.keys.experiment_daily(exp.key, phase, as_text(d)) for d in days]
            doomed += [
                self.keys.experiment_assignments(exp.key, phase),
                self.keys.experiment_units(exp.key, phase),
                self.keys.experiment_dimensions(exp.key, phase),
                self.keys.experiment_stats(exp.key, phase),
                self.keys.experiment_days(exp.key, phase),
                self.keys.experiment_served(exp.key, phase),
                # an interleaving experiment's credit (its impressions expire on their own)
                self.keys.experiment_credit(exp.key, phase),
                self.keys.experiment_position_credit(exp.key, phase),
                self.keys.experiment_health(exp.key, phase),
                self.keys.experiment_crossed(exp.key, phase),
                self.keys.experiment_quality(exp.key, phase),
                *(self.keys.experiment_lists(exp.key, phase, v.name) for v in phase_variants(exp, phase)),
                # hourly keys expire; these are the hours of every day with data (events carry their own time)
                *(self.keys.experiment_hourly(exp.key, phase, f"{as_text(d)}T{h:02d}")
                  for d in days for h in range(24)),
            ]
        pipe = self.redis.pipeline(transaction=False)
        for key in doomed:
            pipe.delete(key)  # one key per command: the keys may live in different cluster slots
        pipe.srem(self.keys.experiment_index, exp.key)
        deleted = sum(int(n) for n in pipe.execute()[:-1])
        self._bump()
        return deleted

    def _bump(self) -> None:
        # A fresh random token rather than a counter: a counter restarts after a flush or a restore
        # and could repeat the very value a serving process last saw, hiding the change from it.
        self.redis.set(self.keys.experiment_version, uuid.uuid4().hex)

    # ------------------------------------------------------------------ holdout
    def holdout(self) -> Holdout:
        raw = self.redis.get(self.keys.experiment_holdout)
        if raw is None:
            return Holdout()
        data = json.loads(raw)
        return Holdout(pct=float(data["pct"]), salt=str(data["salt"]))

    def set_holdout(self, holdout: Holdout) -> None:
        self.redis.set(self.keys.experiment_holdout, json.dumps({"pct": holdout.pct, "salt": holdout.salt}))
        self._bump()

    # ------------------------------------------------------------------ statistics
    def read_stats(self, key: str, phase: int) -> dict[str, str]:
        return text_hash(self.redis.hgetall(self.keys.experiment_stats(key, phase)))

    def read_units(self, key: str, phase: int) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """Per-unit records of a phase — assignments, counters, dimensions — for capping and breakdowns
        (``engine.experiments.custom_results.UnitTable``); one pipelined round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for name in ("experiment_assignments", "experiment_units", "experiment_dimensions"):
            pipe.hgetall(getattr(self.keys, name)(key, phase))
        assignments, units, dims = (text_hash(raw) for raw in pipe.execute())
        return assignments, units, dims

    def read_served(self, key: str, phase: int) -> dict[str, int]:
        """``<variant>|<model>@<version>`` -> exposures (see ``engine.experiments.served``)."""
        return {field: int(count) for field, count in text_hash(
            self.redis.hgetall(self.keys.experiment_served(key, phase))).items()}

    def read_daily(self, key: str, phase: int) -> list[tuple[str, dict[str, str]]]:
        """Each day's increments, oldest first (days are ISO dates, so they sort as text)."""
        days = sorted(as_text(d) for d in self.redis.smembers(self.keys.experiment_days(key, phase)))
        if not days:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.hgetall(self.keys.experiment_daily(key, phase, day))
        return [(day, text_hash(raw)) for day, raw in zip(days, pipe.execute(), strict=True)]

    def read_hourly(self, key: str, phase: int, hours: list[str]) -> list[dict[str, str]]:
        """The increments of each of ``hours`` (``2026-12-02T04``; expired or empty hours read as {})."""
        pipe = self.redis.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(self.keys.experiment_hourly(key, phase, hour))
        return [text_hash(raw) for raw in pipe.execute()] if hours else []

    def read_health(self, key: str, phase: int) -> tuple[dict[str, float], int]:
        """The health counters and times of a phase, and how many assignment records it holds."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.experiment_health(key, phase))
        pipe.hlen(self.keys.experiment_assignments(key, phase))
        raw, records = pipe.execute()
        return {k: float(v) for k, v in text_hash(raw).items()}, int(records)

    def sample_users(self, key: str, phase: int, n: int) -> list[str]:
        """Up to ``n`` users exposed in ``phase``, drawn at random (HRANDFIELD: bounded whatever its size)."""
        raw: Any = self.redis.hrandfield(self.keys.experiment_assignments(key, phase), n)  # a list with a count
        return [as_text(u) for u in raw or []]

    def exposed_among(self, key: str, phase: int, users: list[str]) -> int:
        """How many of ``users`` have an exposure record in ``key``'s ``phase``."""
        if not users:
            return 0
        return sum(r is not None for r in self.redis.hmget(self.keys.experiment_assignments(key, phase), users))

    def read_quality(
        self, key: str, phase: int, variants: list[str]
    ) -> tuple[dict[str, str], list[list[str]]]:
        """The quality counters (``<variant>|lists|cold|fallback``) and each arm's sampled list entries."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.experiment_quality(key, phase))
        for variant in variants:
            pipe.lrange(self.keys.experiment_lists(key, phase, variant), 0, -1)
        raw, *lists = pipe.execute()
        return text_hash(raw), [[as_text(e) for e in entries] for entries in lists]

    def epoch_weights(self, key: str) -> dict[int, list[float]]:
        raw: Mapping[Any, Any] = self.redis.hgetall(self.keys.experiment_bandit_log(key))
        return {int(as_text(k)): [float(w) for w in json.loads(v)["weights"]] for k, v in raw.items()}

    def record_epoch(self, key: str, epoch: int, weights: list[float], at: float) -> None:
        entry = json.dumps({"weights": weights, "at": at})
        self.redis.hset(self.keys.experiment_bandit_log(key), str(epoch), entry)

    def try_lock(self, name: str, seconds: float) -> bool:
        """A best-effort lease so that one process of many runs a periodic job."""
        return bool(self.redis.set(self.keys.experiment_lock(name), "1", nx=True, px=max(1, int(seconds * 1000))))
