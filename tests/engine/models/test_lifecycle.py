"""Stages, promotion and rollback against a real Redis audit log; registries from before the lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from engine.data.schema import InteractionMatrix
from engine.models import lifecycle
from engine.models.popularity import PopularityRecommender
from engine.models.registry import LifecycleError, ModelRegistry, UnknownModelError
from engine.models.watch import RegistryWatcher
from engine.storage.audit import AuditLog
from engine.storage.keys import Keys
from tests.support.synthetic_data import two_taste_dataset


@pytest.fixture(scope="module")
def two_taste() -> InteractionMatrix:
    return two_taste_dataset().interactions()


def popularity(interactions: InteractionMatrix, half_life: float | None) -> PopularityRecommender:
    return PopularityRecommender(half_life_days=half_life).fit(interactions)


def three_versions(registry: ModelRegistry, interactions: InteractionMatrix) -> list[str]:
    return [registry.save("popularity", popularity(interactions, h), dataset="shop") for h in (None, 1.0, 7.0)]


def test_promote_and_rollback_are_audited(tmp_path: Path, redis_client: redis.Redis, two_taste: InteractionMatrix
                                          ) -> None:
    registry = ModelRegistry(tmp_path)
    audit = AuditLog(redis_client, Keys())
    v1, v2, v3 = three_versions(registry, two_taste)
    assert [r.stage for r in registry.records("shop")] == ["production", "candidate", "candidate"]

    change = lifecycle.promote(registry, audit, "ada", "popularity", v2, dataset="shop")
    assert (change.version, change.previous) == (v2, v1)
    lifecycle.promote(registry, audit, "ada", "popularity", v3)
    assert [r.stage for r in registry.records("shop")] == ["archived", "archived", "production"]
    assert registry.load("popularity", dataset="shop").version == v3

    back = lifecycle.rollback(registry, audit, "bob", "popularity", "shop")
    assert (back.version, back.previous) == (v2, v3)
    assert registry.current_version("popularity", "shop") == v2
    assert [r.stage for r in registry.records("shop")] == ["archived", "production", "archived"]
    lifecycle.rollback(registry, audit, "bob", "popularity", "shop")
    assert registry.current_version("popularity", "shop") == v1
    with pytest.raises(LifecycleError, match="no earlier production version"):
        lifecycle.rollback(registry, audit, "bob", "popularity", "shop")

    entries = [(e.actor, e.action, e.target, e.detail) for e in reversed(audit.recent(10))]
    assert entries == [
        ("ada", "promote_model", "popularity:shop", f"{v2} (was {v1})"),
        ("ada", "promote_model", "popularity:shop", f"{v3} (was {v2})"),
        ("bob", "rollback_model", "popularity:shop", f"{v2} (was {v3})"),
        ("bob", "rollback_model", "popularity:shop", f"{v1} (was {v2})"),
    ]


def test_refused_switches_leave_the_registry_as_it_was(tmp_path: Path, redis_client: redis.Redis,
                                                       two_taste: InteractionMatrix) -> None:
    registry = ModelRegistry(tmp_path)
    audit = AuditLog(redis_client, Keys())
    v1, v2, _ = three_versions(registry, two_taste)
    before = (tmp_path / "registry.json").read_bytes()
    for attempt, error in [
        (lambda: lifecycle.promote(registry, audit, "ada", "popularity", "19990101T000000000000Z-deadbeef"),
         UnknownModelError),
        (lambda: lifecycle.promote(registry, audit, "ada", "deep_magic", v2), UnknownModelError),
        (lambda: lifecycle.promote(registry, audit, "ada", "als", v2), UnknownModelError),
        (lambda: lifecycle.promote(registry, audit, "ada", "popularity", v1), LifecycleError),  # already production
        (lambda: lifecycle.promote(registry, audit, "ada", "popularity", v2, dataset="demo"), LifecycleError),
        (lambda: lifecycle.rollback(registry, audit, "ada", "popularity", "demo"), LifecycleError),
    ]:
        with pytest.raises(error):
            attempt()
    assert (tmp_path / "registry.json").read_bytes() == before

    # Redis gone between the check and the write: the switch is undone, not left unaudited
    dead = AuditLog(redis.Redis(port=1, socket_connect_timeout=0.2), Keys())
    with pytest.raises(lifecycle.AuditUnavailableError, match="undone"):
        lifecycle.promote(registry, dead, "ada", "popularity", v2)
    assert registry.current_version("popularity", "shop") == v1
    assert [r.stage for r in registry.records("shop")] == ["production", "candidate", "candidate"]
    assert audit.recent(5) == []


def test_a_registry_from_before_the_lifecycle_still_loads(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    # what ModelRegistry.save wrote before stages existed: models under <name>/<version>/ and format 1
    old, current = "20250101T000000000000Z-aaaaaaaa", "20250102T000000000000Z-bbbbbbbb"
    popularity(two_taste, None).save(tmp_path / "popularity" / old)
    popularity(two_taste, 3.0).save(tmp_path / "popularity" / current)
    (tmp_path / "registry.json").write_text(json.dumps({
        "default": "popularity", "default_pinned": False,
        "models": {"popularity": {"current": current, "versions": [old, current]}},
    }))
    registry = ModelRegistry(tmp_path)
    assert registry.names() == ["popularity"] and registry.default == "popularity"
    assert registry.current_version("popularity") == current
    assert registry.load("popularity").params() == {"half_life_days": 3.0}
    records = registry.records()
    assert [(r.version, r.dataset, r.stage) for r in records] == [(old, "demo", "archived"),
                                                                   (current, "demo", "production")]
    assert records[0].trained_at == "2025-01-01T00:00:00+00:00" and records[0].lineage == {}
    # the next change writes format 2, and the old production version is where a rollback goes
    new = registry.save("popularity", popularity(two_taste, 9.0))
    assert registry.record("popularity", new).stage == "candidate"
    registry.promote("popularity", new)
    data = json.loads((tmp_path / "registry.json").read_text())
    assert data["format"] == 2 and data["models"]["popularity"]["production"] == {"demo": [current, new]}
    registry.rollback("popularity")
    assert registry.load("popularity").params() == {"half_life_days": 3.0}


def test_the_watcher_reloads_on_a_promotion_only(tmp_path: Path, two_taste: InteractionMatrix) -> None:
    registry = ModelRegistry(tmp_path)
    v1 = registry.save("popularity", popularity(two_taste, None))
    serving = {"versions": {"popularity": v1}}
    reloads: list[dict[str, str]] = []

    def reload() -> None:
        if len(reloads) == 1:  # the second reload fails once: the watcher must try again
            reloads.append({})
            raise RuntimeError("disk hiccup")
        serving["versions"] = registry.served()
        reloads.append(dict(serving["versions"]))

    watcher = RegistryWatcher(registry, "demo", lambda: (dict(serving["versions"]), "popularity"), reload)
    assert watcher.check() is False  # nothing to do: what it serves is what the registry says
    v2 = registry.save("popularity", popularity(two_taste, 2.0))  # a candidate changes nothing served
    registry.save("popularity", popularity(two_taste, 2.0), dataset="elsewhere")  # nor another dataset
    assert watcher.check() is False and reloads == []
    registry.promote("popularity", v2)
    assert watcher.check() is True and reloads == [{"popularity": v2}]
    registry.rollback("popularity")
    with pytest.raises(RuntimeError):
        watcher.check()
    assert watcher.check() is True and serving["versions"] == {"popularity": v1}
    assert watcher.check() is False
